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
