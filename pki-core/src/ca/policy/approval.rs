//! What a leaf request may ask for: a CSR's or cfssl request's names and CN against what the
//! operator approved, and the request a renewal or re-issue repeats from the ledger.

use crate::error::{Error, Result};
use crate::x509::csr::CheckedCsr;
use crate::x509::profile::{LeafRole, Subject, SubjectNames};
use crate::x509::X509Error;

/// Names a CSR asks for that the operator did not pass with --dns/--ip.
pub(super) fn unapproved_names(what: &str, csr: &CheckedCsr, names: &SubjectNames) -> Result<()> {
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
        return Err(X509Error::RequestsCa { what: what.into() }.into());
    }
    unapproved_names(what, csr, a.names)?;
    approve_cn(what, csr.common_name.as_deref(), a.cn)
}

/// The CN rule shared by CSRs and cfssl request files: a proposed CN is certified only when
/// the operator typed the same one with --cn.
pub fn approve_cn(what: &str, requested: Option<&str>, cn: Option<&str>) -> Result<Option<String>> {
    match (requested, cn) {
        (Some(r), None) => Err(X509Error::CnRequired {
            what: what.into(),
            requested: r.into(),
        }
        .into()),
        (Some(r), Some(c)) if r != c => Err(X509Error::CnMismatch {
            what: what.into(),
            requested: r.into(),
            approved: c.into(),
        }
        .into()),
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

/// Whether the certificate `der` presented for a renewal is what its ledger row `rec` says:
/// the same CN, the same DNS and IP names, the extended key usages of the row's profile, and
/// issued by `issuer` (the subject of the row's generation). A renewal copies the row, so a
/// row changed in the database (an `UPDATE` of CN, names or profile) must not become a
/// certificate for another identity: the mismatch is named instead.
pub fn presented_matches_row(
    rec: &crate::ca::ledger::LeafRecord,
    der: &[u8],
    issuer: &str,
) -> std::result::Result<(), String> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("unreadable: {e}"))?;
    let facts = crate::x509::CertFacts::from_der("presented certificate", der)
        .map_err(|e| e.to_string())?;
    let mismatch = |what: &str, row: String, cert: String| {
        Err(format!(
            "the ledger row of serial {} says {what} {row}, the certificate presented says {cert}",
            rec.serial
        ))
    };
    if facts.subject_cn != rec.subject {
        return mismatch("CN", rec.subject.clone(), facts.subject_cn);
    }
    if facts.issuer != issuer {
        return mismatch("issuer", issuer.to_string(), facts.issuer);
    }
    let names = crate::x509::san_names(&cert);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let cert_dns = sorted(names.dns.clone());
    let cert_ips = sorted(names.ips.iter().map(|i| i.to_string()).collect());
    if sorted(rec.dns.clone()) != cert_dns || sorted(rec.ips.clone()) != cert_ips {
        return mismatch(
            "names",
            format!("{:?} {:?}", rec.dns, rec.ips),
            format!("{cert_dns:?} {cert_ips:?}"),
        );
    }
    let role: LeafRole = rec.profile.parse().map_err(|e: Error| e.to_string())?;
    let mut ekus: Vec<String> = cert
        .extensions()
        .iter()
        .filter_map(|e| match e.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(u) => Some(u),
            _ => None,
        })
        .flat_map(|u| {
            let mut v = Vec::new();
            if u.server_auth {
                v.push(crate::oid::SERVER_AUTH.to_string());
            }
            if u.client_auth {
                v.push(crate::oid::CLIENT_AUTH.to_string());
            }
            v.extend(u.other.iter().map(|o| o.to_id_string()));
            v
        })
        .collect();
    ekus.sort();
    let mut want: Vec<String> = role.eku_oids().iter().map(|s| s.to_string()).collect();
    want.sort();
    if ekus != want {
        return mismatch(
            &format!("profile {}", rec.profile),
            format!("(extended key usages {want:?})"),
            format!("extended key usages {ekus:?}"),
        );
    }
    Ok(())
}
