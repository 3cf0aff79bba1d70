//! `root-ca crl`: sign the root's CRL in the token, check its signature in software, record
//! its number, and write it (also kept in the root folder for response bundles).

use pki_core::x509::X509Error;
use std::path::Path;

use pki_core::keys::verify_signature;
use pki_core::output::{self, Mode};
use pki_core::x509::fmt_time;
use pki_core::x509::Serial;
use pki_core::x509::{fingerprint, CertFacts};
use rcgen::Issuer;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::log::check_log;
use super::{
    ceremony_record, check_folder, check_output, open_token, recorded_key_id, root_key, say, Run,
};
use crate::airgap;
use crate::ceremony::{self, reason_code, CrlCeremony};
use crate::error::{Result, RootError};
use crate::state::{RootDir, RootIndex};
use pki_core::keys::Signer as _;
use pki_core::keys::TokenKey;

pub fn crl(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<CrlCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let out_path = ceremony::resolve(&base, &c.output.crl);
    check_output(&out_path)?;
    check_folder(&dir.path)?;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    let next = now + Duration::days(c.next_update_days as i64);
    if next > root.not_after {
        return Err(pki_core::Error::from(X509Error::OutlivesIssuer {
            requested: fmt_time(next),
            issuer: fmt_time(root.not_after),
        })
        .into());
    }
    let number = index.crl_number + 1;
    let revoked = revoked_entries(&index, now);
    describe_crl(run, &index, number, revoked.len(), (now, next), &out_path);
    if run.dry_run {
        say(run, "dry run: nothing signed, the token was not opened");
        return Ok(());
    }
    let ski = root_ski(&root.der)?;
    let params = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: next,
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::PreSpecified(ski),
    };
    let token = open_token(
        run,
        &c.token,
        recorded_key_id(&index, &c.token),
        &dir,
        "crl",
    )?;
    let key = root_key(&token, &c.token, &dir, &root)?;
    let der = sign_crl(&params, &root, &key)?;
    // The number is recorded before the CRL is written anywhere: a failure below burns it,
    // and the next CRL gets a higher one. Two CRLs never share a number.
    index.crl_number = number;
    let revoked_serials: Vec<String> = index
        .intermediates
        .iter()
        .filter(|e| e.status == "revoked")
        .map(|e| e.serial.clone())
        .collect();
    dir.log(
        &mut index,
        "crl-signed",
        json!({ "crl_number": number, "revoked": revoked_serials,
        "next_update": fmt_time(next), "sha256": fingerprint(&der),
        "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
    )?;
    write_crl(&dir, &out_path, &der, number)?;
    say(run, format!("signed CRL {number}: {}", out_path.display()));
    say(
        run,
        format!("ceremony log head: {} (write it down)", index.log_head),
    );
    Ok(())
}

/// The CRL entries: every intermediate the index marks revoked, with its reason code. A
/// revocation without a readable time is dated `now`.
fn revoked_entries(index: &RootIndex, now: OffsetDateTime) -> Vec<rcgen::RevokedCertParams> {
    let mut revoked = Vec::new();
    for e in index.intermediates.iter().filter(|e| e.status == "revoked") {
        let when = e
            .revoked_at
            .as_deref()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(now);
        revoked.push(rcgen::RevokedCertParams {
            serial_number: Serial::from_hex(&e.serial)
                .expect("index serial")
                .to_rcgen(),
            revocation_time: when,
            reason_code: e.reason.as_deref().and_then(reason_code),
            invalidity_date: None,
        });
    }
    revoked
}

/// The plan the operator reviews: number, dates, the revoked intermediates, the output.
fn describe_crl(
    run: &mut Run<'_>,
    index: &RootIndex,
    number: u64,
    count: usize,
    (now, next): (OffsetDateTime, OffsetDateTime),
    out_path: &Path,
) {
    say(
        run,
        format!("root-ca crl: CRL number {number}, {count} revoked intermediate(s)"),
    );
    say(
        run,
        format!(
            "  thisUpdate {}  nextUpdate {}",
            fmt_time(now),
            fmt_time(next)
        ),
    );
    for e in index.intermediates.iter().filter(|e| e.status == "revoked") {
        say(
            run,
            format!(
                "  revoked {} {} ({})",
                e.serial,
                e.subject,
                e.reason.clone().unwrap_or_default()
            ),
        );
    }
    say(run, format!("  output {}", out_path.display()));
}

/// The token signs the CRL; the signature is checked in software before it is used.
fn sign_crl(
    params: &rcgen::CertificateRevocationListParams,
    root: &CertFacts,
    key: &TokenKey,
) -> Result<Vec<u8>> {
    let issuer = Issuer::from_ca_cert_der(&root.der.clone().into(), key)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let crl = params.signed_by(&issuer).map_err(|e| {
        RootError::pkcs11(
            "sign CRL",
            key.take_sign_error().unwrap_or_else(|| e.to_string()),
        )
    })?;
    let der = crl.der().to_vec();
    verify_crl_signature(&der, &root.spki_der)?;
    Ok(der)
}

/// Writes a recorded CRL; a failure says its number is used up.
fn write_crl(dir: &RootDir, out_path: &Path, der: &[u8], number: u64) -> Result<()> {
    let pem = pki_core::x509::to_pem("X509 CRL", der);
    let undelivered = |out: &Path, e: pki_core::Error| RootError::CrlUndelivered {
        number,
        next: number + 1,
        output: out.to_path_buf(),
        reason: RootError::from_output(e).to_string(),
    };
    // The latest CRL also stays in the root folder: response bundles carry it.
    output::write_atomic(&dir.crl_path(), pem.as_bytes(), Mode::Public, true)
        .map_err(|e| undelivered(&dir.crl_path(), e))?;
    output::write_atomic(out_path, pem.as_bytes(), Mode::Public, false)
        .map_err(|e| undelivered(out_path, e))
}

fn root_ski(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    for ext in c.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(k) = ext.parsed_extension() {
            return Ok(k.0.to_vec());
        }
    }
    Err(RootError::Lint(
        "the root certificate has no subjectKeyIdentifier".into(),
    ))
}

/// Checks a CRL's signature in software against the root key.
pub fn verify_crl_signature(der: &[u8], spki: &[u8]) -> Result<()> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| RootError::BadTokenSignature(e.to_string()))?;
    verify_signature(
        &crl.signature_algorithm.algorithm.to_id_string(),
        spki,
        crl.tbs_cert_list.as_ref(),
        crl.signature_value.as_ref(),
    )
    .map_err(|e| RootError::BadTokenSignature(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::IntermediateEntry;

    fn entry(
        serial: &str,
        status: &str,
        reason: Option<&str>,
        at: Option<&str>,
    ) -> IntermediateEntry {
        IntermediateEntry {
            serial: serial.into(),
            subject: format!("CN=int {serial}"),
            fingerprint: String::new(),
            not_after: String::new(),
            status: status.into(),
            reason: reason.map(Into::into),
            revoked_at: at.map(Into::into),
            request_id: None,
            key_fingerprint: None,
            kind: None,
        }
    }

    #[test]
    fn revoked_entries_list_only_revoked_intermediates() {
        let now = time::macros::datetime!(2026-03-01 12:00 UTC);
        let index = RootIndex {
            intermediates: vec![
                entry("01", "active", None, None),
                entry(
                    "0a",
                    "revoked",
                    Some("keyCompromise"),
                    Some("2026-02-01T10:00:00Z"),
                ),
                entry("0b", "revoked", Some("superseded"), Some("not a time")),
                entry("0c", "revoked", Some("made-up"), None),
            ],
            ..RootIndex::default()
        };
        let got = revoked_entries(&index, now);
        let serials: Vec<_> = got
            .iter()
            .map(|r| hex::encode(r.serial_number.as_ref()))
            .collect();
        assert_eq!(serials, ["0a", "0b", "0c"]);
        // The recorded time, or now when it cannot be read.
        assert_eq!(
            got[0].revocation_time,
            time::macros::datetime!(2026-02-01 10:00 UTC)
        );
        assert_eq!(got[1].revocation_time, now);
        assert_eq!(got[2].revocation_time, now);
        // A reason the CRL cannot carry is left out rather than guessed.
        let reasons: Vec<_> = got.iter().map(|r| r.reason_code).collect();
        assert_eq!(
            reasons,
            [
                Some(rcgen::RevocationReason::KeyCompromise),
                Some(rcgen::RevocationReason::Superseded),
                None
            ]
        );
        assert!(revoked_entries(&RootIndex::default(), now).is_empty());
    }
}
