//! RFC 5280 §4.2.1.10 name constraints as the gate applies them: the subtrees a CA certificate
//! carries, how each matches a leaf's names (as OpenSSL and Go match them), and which names of
//! a leaf they apply to.

use crate::x509::X509Error;
use std::net::IpAddr;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, Result};
use crate::x509::profile::{Subject, SubjectNames};

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
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| X509Error::BadCertificate {
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
            return Err(X509Error::UncheckableConstraint {
                issuer: self.holder.clone(),
                constraint: u.clone(),
            }
            .into());
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
        X509Error::NameNotPermitted {
            name: name.to_string(),
            issuer: self.holder.clone(),
            rule,
        }
        .into()
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
