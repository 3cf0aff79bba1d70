//! The issuance gate: every decision about what a leaf may carry is taken here, once, for every
//! path that signs one (`issuer issue`, `batch`, `etcd`, `renew`, `reissue`, and any service
//! built later). [`crate::ca::issuing::IssuingCa::sign_leaf`] asks the gate before it signs, so no
//! caller can skip it; callers that issue many leaves also ask it up front ([`Gate::check`]) so
//! that a refusal comes before the first file is written.
//!
//! What the gate enforces:
//! * the name constraints (RFC 5280 §4.2.1.10) of the issuing intermediate and of the pinned
//!   root: a leaf a validator would reject is never signed;
//! * the root CRL held in the CA folder: nothing is issued from an intermediate the root revoked,
//!   and a root CRL that does not verify against the pinned root stops issuance;
//! * CSR approval: names and the CN (the etcd RBAC user) come from the operator, never from the
//!   requester.

use std::net::IpAddr;
use std::path::PathBuf;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::folder::root_crl::RootCrl;
use crate::ca::folder::CaDir;
use crate::ca::request::{LeafKey, LeafRequest};
use crate::error::{Error, Result};
use crate::x509::certs::CertFacts;
use crate::x509::csr::CheckedCsr;
use crate::x509::profile::{LeafRole, Subject, SubjectNames};

/// One subtree of a nameConstraints extension, of a type our leaves can carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subtree {
    /// A dNSName subtree; the empty string matches every DNS name.
    Dns(String),
    /// Network address and mask, both 4 or both 16 bytes.
    Ip {
        /// The network address.
        addr: Vec<u8>,
        /// The network mask.
        mask: Vec<u8>,
    },
}

/// A name in a leaf, as the constraints see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeafName {
    /// A DNS subject alternative name, or a CN that looks like a host name.
    Dns(String),
    /// An IP subject alternative name.
    Ip(IpAddr),
}

impl std::fmt::Display for LeafName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeafName::Dns(d) => write!(f, "DNS:{d}"),
            LeafName::Ip(ip) => write!(f, "IP:{ip}"),
        }
    }
}

impl std::fmt::Display for Subtree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subtree::Dns(d) if d.is_empty() => f.write_str("DNS:<any>"),
            Subtree::Dns(d) => write!(f, "DNS:{d}"),
            Subtree::Ip { addr, mask } => {
                let ip = ip_of(addr).map(|i| i.to_string()).unwrap_or_default();
                match prefix_len(mask) {
                    Some(p) => write!(f, "IP:{ip}/{p}"),
                    None => write!(
                        f,
                        "IP:{ip}/{}",
                        ip_of(mask).map(|m| m.to_string()).unwrap_or_default()
                    ),
                }
            }
        }
    }
}

fn ip_of(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// The prefix length of a contiguous mask, None for a non-contiguous one.
fn prefix_len(mask: &[u8]) -> Option<u32> {
    let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
    let contiguous = mask
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .skip(ones as usize)
        .all(|bit| bit == 0);
    contiguous.then_some(ones)
}

/// RFC 5280 §4.2.1.10 for dNSName, as OpenSSL and Go apply it: the constraint matches the name
/// itself and any name with labels added on the left, on a label boundary; a constraint with
/// a leading dot matches only names below it; the empty constraint matches every name.
pub fn dns_matches(constraint: &str, name: &str) -> bool {
    let c = constraint.to_ascii_lowercase();
    let n = name.to_ascii_lowercase();
    if c.is_empty() {
        return true;
    }
    if c.starts_with('.') {
        return n.len() > c.len() && n.ends_with(&c);
    }
    n == c || (n.len() > c.len() && n.ends_with(&c) && n.as_bytes()[n.len() - c.len() - 1] == b'.')
}

/// iPAddress constraints are address and mask; an IPv4 constraint never matches an IPv6
/// address (an IPv4-mapped one included), as in OpenSSL and Go.
pub fn ip_matches(addr: &[u8], mask: &[u8], ip: IpAddr) -> bool {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets.len() == addr.len()
        && addr.len() == mask.len()
        && octets
            .iter()
            .zip(addr)
            .zip(mask)
            .all(|((o, a), m)| o & m == a & m)
}

impl Subtree {
    /// Whether the subtree is of the name's type, and if so whether it matches it.
    fn test(&self, name: &LeafName) -> Option<bool> {
        match (self, name) {
            (Subtree::Dns(c), LeafName::Dns(n)) => Some(dns_matches(c, n)),
            (Subtree::Ip { addr, mask }, LeafName::Ip(ip)) => Some(ip_matches(addr, mask, *ip)),
            _ => None,
        }
    }
}

/// The nameConstraints of one CA certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Constraints {
    /// Subject of the certificate that carries them.
    pub holder: String,
    /// Permitted subtrees of the name types our leaves carry.
    pub permitted: Vec<Subtree>,
    /// Excluded subtrees of the name types our leaves carry.
    pub excluded: Vec<Subtree>,
    /// Subtrees that bind what our leaves carry but that we cannot evaluate (directoryName,
    /// malformed iPAddress): their presence stops issuance.
    pub uncheckable: Vec<String>,
}

impl Constraints {
    /// The constraints of a certificate, None when it carries none.
    pub fn of_certificate(what: &str, der: &[u8]) -> Result<Option<Self>> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| Error::BadCertificate {
            what: what.into(),
            detail: e.to_string(),
        })?;
        let Some(nc) = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::NameConstraints(nc) => Some(nc),
                _ => None,
            })
        else {
            return Ok(None);
        };
        let mut c = Constraints {
            holder: cert.subject().to_string(),
            ..Default::default()
        };
        for (subtrees, permitted) in [
            (&nc.permitted_subtrees, true),
            (&nc.excluded_subtrees, false),
        ] {
            for s in subtrees.iter().flatten() {
                let tree = match &s.base {
                    GeneralName::DNSName(d) => Subtree::Dns(d.to_string()),
                    GeneralName::IPAddress(b) if b.len() == 8 || b.len() == 32 => {
                        let (addr, mask) = b.split_at(b.len() / 2);
                        Subtree::Ip {
                            addr: addr.to_vec(),
                            mask: mask.to_vec(),
                        }
                    }
                    GeneralName::IPAddress(b) => {
                        c.uncheckable
                            .push(format!("iPAddress of {} bytes", b.len()));
                        continue;
                    }
                    GeneralName::DirectoryName(n) => {
                        c.uncheckable.push(format!("directoryName {n}"));
                        continue;
                    }
                    // Email, URI and other name forms: our leaves never carry them (and their
                    // subjects carry no emailAddress), so these subtrees never apply.
                    _ => continue,
                };
                if permitted {
                    c.permitted.push(tree);
                } else {
                    c.excluded.push(tree);
                }
            }
        }
        Ok(Some(c))
    }

    /// Refuses a name an excluded subtree matches, or a name of a type with permitted subtrees
    /// that none of them matches.
    pub fn check(&self, name: &LeafName) -> Result<()> {
        if let Some(u) = self.uncheckable.first() {
            return Err(Error::UncheckableConstraint {
                issuer: self.holder.clone(),
                constraint: u.clone(),
            });
        }
        if let Some(x) = self.excluded.iter().find(|s| s.test(name) == Some(true)) {
            return Err(self.refusal(name, format!("it excludes {x}")));
        }
        let same_type: Vec<&Subtree> = self
            .permitted
            .iter()
            .filter(|s| s.test(name).is_some())
            .collect();
        if !same_type.is_empty() && !same_type.iter().any(|s| s.test(name) == Some(true)) {
            let list: Vec<String> = same_type.iter().map(|s| s.to_string()).collect();
            return Err(self.refusal(name, format!("it permits only {}", list.join(", "))));
        }
        Ok(())
    }

    fn refusal(&self, name: &LeafName, rule: String) -> Error {
        Error::NameNotPermitted {
            name: name.to_string(),
            issuer: self.holder.clone(),
            rule,
        }
    }
}

/// OpenSSL checks a leaf's CN against dNSName constraints when the leaf has no DNS SAN and the
/// CN looks like a host name (two or more LDH labels); Go (etcd) ignores the CN. We follow the
/// stricter one, so that what we issue verifies with both.
fn cn_as_dns(cn: &str) -> Option<&str> {
    let b = cn.as_bytes();
    let mut dotted = false;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_alphanumeric() || c == b'_' {
            continue;
        }
        let inner = i > 0 && i + 1 < b.len();
        if inner && c == b'-' {
            continue;
        }
        if inner && c == b'.' && b[i + 1] != b'.' && b[i - 1] != b'-' && b[i + 1] != b'-' {
            dotted = true;
            continue;
        }
        return None;
    }
    dotted.then_some(cn)
}

/// Every name of a leaf the constraints apply to.
pub fn leaf_names(subject: &Subject, names: &SubjectNames) -> Vec<LeafName> {
    let mut v: Vec<LeafName> = names.dns.iter().map(|d| LeafName::Dns(d.clone())).collect();
    v.extend(names.ips.iter().map(|i| LeafName::Ip(*i)));
    if names.dns.is_empty() {
        if let Some(cn) = cn_as_dns(&subject.common_name) {
            v.push(LeafName::Dns(cn.to_string()));
        }
    }
    v
}

/// Why the active intermediate may not issue at all.
#[derive(Clone, Debug)]
enum Block {
    Revoked {
        crl: PathBuf,
        serial: String,
        revoked_at: String,
    },
    CrlUnusable {
        crl: PathBuf,
        reason: String,
    },
}

/// The issuance policy of one issuing CA: its constraints, those of its root, and whether
/// the root revoked it.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    issuer: String,
    constraints: Vec<Constraints>,
    block: Option<Block>,
}

impl Gate {
    /// The gate of a bare CA certificate: its own constraints only (no root, no root CRL).
    pub fn for_certificate(cert: &CertFacts) -> Result<Self> {
        Ok(Gate {
            issuer: cert.subject.clone(),
            constraints: Constraints::of_certificate(&cert.subject, &cert.der)?
                .into_iter()
                .collect(),
            block: None,
        })
    }

    /// The gate of a CA folder's active intermediate: its constraints, the pinned root's, and
    /// the root CRL the folder holds. Reads certificates only; no key is unlocked.
    pub fn for_ca(ca: &CaDir) -> Result<Self> {
        let cert = ca.cert(ca.active()?)?;
        Self::for_ca_cert(ca, &cert)
    }

    /// As [`Gate::for_ca`], for the certificate `cert` of that folder.
    pub fn for_ca_cert(ca: &CaDir, cert: &CertFacts) -> Result<Self> {
        let mut gate = Self::for_certificate(cert)?;
        let root = if ca.root_path().exists() {
            let p = ca.root_path();
            let root = CertFacts::from_pem(&p.display().to_string(), &crate::output::read(&p)?)?;
            gate.constraints
                .extend(Constraints::of_certificate("root certificate", &root.der)?);
            Some(root)
        } else {
            None
        };
        gate.block = root_crl_block(ca, root.as_ref(), cert);
        Ok(gate)
    }

    /// Refuses when the issuing CA may not issue at all (revoked by the root, or its root CRL
    /// unusable).
    pub fn check_issuer(&self) -> Result<()> {
        match &self.block {
            None => Ok(()),
            Some(Block::Revoked {
                crl,
                serial,
                revoked_at,
            }) => Err(Error::IssuerRevoked {
                issuer: self.issuer.clone(),
                serial: serial.clone(),
                crl: crl.clone(),
                revoked_at: revoked_at.clone(),
            }),
            Some(Block::CrlUnusable { crl, reason }) => Err(Error::RootCrlUnusable {
                crl: crl.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Refuses names the constraints of the chain exclude or do not permit.
    pub fn check_names(&self, subject: &Subject, names: &SubjectNames) -> Result<()> {
        for n in leaf_names(subject, names) {
            for c in &self.constraints {
                c.check(&n)?;
            }
        }
        Ok(())
    }

    /// Everything the gate decides about one leaf, before anything is signed.
    /// `role` is not consulted yet; it is part of the question so that a per-role rule (or a
    /// service with its own policy) needs no change to any caller.
    pub fn check(&self, _role: LeafRole, subject: &Subject, names: &SubjectNames) -> Result<()> {
        self.check_issuer()?;
        self.check_names(subject, names)
    }

    /// The gate's decision on a full request, including that a CSR's names and CN were
    /// approved (see [`approve_csr`]): a request whose CSR asks for more than the operator
    /// approved never reaches a signature, whichever path built it.
    pub fn check_request(&self, req: &LeafRequest) -> Result<()> {
        if let LeafKey::Csr(csr) = &req.key {
            unapproved_names(&csr.subject, csr, &req.names)?;
            if let Some(requested) = &csr.common_name {
                if *requested != req.subject.common_name {
                    return Err(Error::CnMismatch {
                        what: format!("CSR {}", csr.subject),
                        requested: requested.clone(),
                        approved: req.subject.common_name.clone(),
                    });
                }
            }
        }
        self.check(req.role, &req.subject, &req.names)
    }
}

fn root_crl_block(ca: &CaDir, root: Option<&CertFacts>, cert: &CertFacts) -> Option<Block> {
    let path = ca.root_crl_path();
    if !path.exists() {
        return None;
    }
    let unusable = |reason: String| {
        Some(Block::CrlUnusable {
            crl: path.clone(),
            reason,
        })
    };
    let Some(root) = root else {
        return unusable(format!(
            "there is no pinned root certificate ({}) to check it against",
            ca.root_path().display()
        ));
    };
    let crl = match RootCrl::load(&path, root) {
        Ok(c) => c,
        Err(e) => match crate::ca::folder::root_crl::unusable(path.clone(), e) {
            Error::RootCrlUnusable { reason, .. } => return unusable(reason),
            other => return unusable(other.to_string()),
        },
    };
    crl.revocation_of(cert).map(|revoked_at| Block::Revoked {
        crl: path.clone(),
        serial: cert.serial.to_hex(),
        revoked_at,
    })
}

/// Names a CSR asks for that the operator did not pass with --dns/--ip.
fn unapproved_names(what: &str, csr: &CheckedCsr, names: &SubjectNames) -> Result<()> {
    let unapproved: Vec<String> = csr
        .requested_names
        .dns
        .iter()
        .filter(|d| !names.dns.iter().any(|n| n.eq_ignore_ascii_case(d)))
        .map(|d| format!("DNS:{d}"))
        .chain(
            csr.requested_names
                .ips
                .iter()
                .filter(|ip| !names.ips.contains(ip))
                .map(|ip| format!("IP:{ip}")),
        )
        .collect();
    if !unapproved.is_empty() {
        return Err(Error::UnapprovedNames {
            what: what.into(),
            names: unapproved.join(", "),
        });
    }
    Ok(())
}

/// What the operator typed for a leaf requested by a CSR or a cfssl request file.
pub struct Approval<'a> {
    /// `--cn`: required whenever a request proposes a CN, and it must equal it.
    pub cn: Option<&'a str>,
    /// `--dns`/`--ip`: the names to certify; every name a request asks for must be among them.
    pub names: &'a SubjectNames,
    /// `--ignore-requested-ca`: issue a plain leaf for a CSR that asks for CA:TRUE.
    pub ignore_requested_ca: bool,
}

/// Approves a CSR against what the operator typed. The CN (the etcd RBAC user) and every SAN
/// must come from the operator: a CSR proposing a CN needs `--cn` with the same value, and
/// each name it asks for must be passed with --dns/--ip. Returns the CN to certify, if any.
pub fn approve_csr(what: &str, csr: &CheckedCsr, a: &Approval<'_>) -> Result<Option<String>> {
    if csr.requested_ca && !a.ignore_requested_ca {
        return Err(Error::RequestsCa { what: what.into() });
    }
    unapproved_names(what, csr, a.names)?;
    approve_cn(what, csr.common_name.as_deref(), a.cn)
}

/// The CN rule shared by CSRs and cfssl request files: a proposed CN is certified only when
/// the operator typed the same one with --cn.
pub fn approve_cn(what: &str, requested: Option<&str>, cn: Option<&str>) -> Result<Option<String>> {
    match (requested, cn) {
        (Some(r), None) => Err(Error::CnRequired {
            what: what.into(),
            requested: r.into(),
        }),
        (Some(r), Some(c)) if r != c => Err(Error::CnMismatch {
            what: what.into(),
            requested: r.into(),
            approved: c.into(),
        }),
        (_, c) => Ok(c.map(str::to_string)),
    }
}

/// The role, subject and names a renewal or re-issue of ledger row `rec` asks for (the same
/// as the leaf it replaces), for checking a whole set of successors before replacing any.
pub fn ledger_request(
    rec: &crate::ca::ledger::LeafRecord,
) -> Result<(LeafRole, Subject, SubjectNames)> {
    let role: LeafRole = rec.profile.parse()?;
    let ips = rec
        .ips
        .iter()
        .map(|i| i.parse().map_err(|_| Error::LedgerIp { value: i.clone() }))
        .collect::<Result<_>>()?;
    Ok((
        role,
        Subject::cn(rec.subject.clone()),
        SubjectNames {
            dns: rec.dns.clone(),
            ips,
        },
    ))
}

#[cfg(test)]
mod tests;
