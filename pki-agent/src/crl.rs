//! The CRL an agent installs: signed by the active intermediate (which must chain to the
//! agent's own root), not older than the one installed, not past its nextUpdate.

use pki_core::x509::CertFacts;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use crate::error::{AgentError, AgentResult};

/// A CRL that passed [`check`].
#[derive(Debug, Clone, Copy)]
pub struct CheckedCrl {
    /// Its CRL number.
    pub number: u64,
    /// Its nextUpdate.
    pub next_update: OffsetDateTime,
}

/// Checks CRL `der` against the intermediate the service named and our `root`.
pub fn check(
    der: &[u8],
    intermediate_pem: &str,
    root: &CertFacts,
    installed: Option<u64>,
) -> AgentResult<CheckedCrl> {
    let bad = |reason: String| AgentError::BadCrl { reason };
    let int = CertFacts::from_pem("intermediate", intermediate_pem.as_bytes())?;
    pki_core::keys::verify_certificate(&int.der, &root.spki_der).map_err(|_| {
        bad(format!(
            "the intermediate the service named ({}) is not signed by our root ({})",
            int.subject, root.subject
        ))
    })?;
    let now = OffsetDateTime::now_utc();
    if !int.is_ca || now < int.not_before || now > int.not_after {
        return Err(bad(format!(
            "the intermediate {} is not a CA certificate valid now",
            int.subject
        )));
    }
    let (rest, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| bad(format!("not a DER CRL ({e})")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the CRL".into()));
    }
    if crl.issuer().as_raw() != int.subject_der.as_slice() {
        return Err(bad(format!(
            "it is issued by '{}', not by the active intermediate '{}'",
            crl.issuer(),
            int.subject
        )));
    }
    pki_core::x509::verify_crl_signature(der, &int.spki_der)
        .map_err(|_| bad("its signature does not verify with the intermediate's key".into()))?;
    let number: u64 = crl
        .crl_number()
        .and_then(|n| n.to_string().parse().ok())
        .ok_or_else(|| bad("it has no CRL number".into()))?;
    if let Some(have) = installed.filter(|have| number < *have) {
        return Err(bad(format!(
            "its number {number} is lower than the installed CRL's {have} (a replay or a rolled-back service)"
        )));
    }
    let next_update = crl
        .next_update()
        .map(|t| t.to_datetime())
        .ok_or_else(|| bad("it has no nextUpdate".into()))?;
    if next_update <= now {
        return Err(bad(format!("its nextUpdate {next_update} has passed")));
    }
    Ok(CheckedCrl {
        number,
        next_update,
    })
}

/// The number and nextUpdate of the CRL file installed at `path` (DER or PEM), when it can be
/// read and is signed by `issuer` (SPKI, DER): a CRL installed by other means (`issuer crl
/// --etcd-bundle`, `issuer etcd`) is then never replaced by an older one on the agent's first
/// pass; one of another intermediate (a forged high number) is no floor.
pub fn installed(path: &std::path::Path, issuer: &[u8]) -> Option<(u64, OffsetDateTime)> {
    let bytes = std::fs::read(path).ok()?;
    let der = if bytes.first() == Some(&0x30) {
        bytes
    } else {
        pki_core::x509::pem_blocks("installed CRL", &bytes, "X509 CRL")
            .ok()?
            .into_iter()
            .next()?
    };
    pki_core::x509::verify_crl_signature(&der, issuer).ok()?;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).ok()?;
    let number = crl.crl_number().and_then(|n| n.try_into().ok())?;
    Some((number, crl.next_update()?.to_datetime()))
}
