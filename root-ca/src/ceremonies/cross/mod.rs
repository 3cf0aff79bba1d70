//! `root-ca cross-sign`: one root's key certifies another root (RFC 4210 §4.4). The cross
//! certificate carries the certified root's exact subject name and key, the signer's name as
//! issuer, the signer's key identifier as authority key identifier, and a validity inside both
//! roots'. It is recorded in the signer's index beside its intermediates (so `root-ca revoke`
//! and `root-ca crl` cover it) and its ceremony log; the certified root's folder is only read.

use std::path::Path;

use pki_core::output::{self, Mode};
use pki_core::x509::{fmt_time, CertFacts, Profile, Serial, Validity};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyIdMethod, KeyPair,
    SubjectPublicKeyInfo,
};
use serde_json::json;
use time::OffsetDateTime;

use super::log::check_log;
use super::{
    ceremony_record, check_folder, check_output, describe_params, open_token, recorded_key_id,
    root_key, say, sign_checked, Run,
};
use crate::airgap;
use crate::ceremony::{self, CrossDirection, CrossSignCeremony};
use crate::error::{Result, RootError};
use crate::state::{IntermediateEntry, RootDir};

/// The `kind` a cross certificate has in the signer's index.
pub const CROSS_KIND: &str = "cross-certificate";

pub fn cross_sign(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<CrossSignCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let direction = c.direction().map_err(|i| i.at(file))?;
    let signer_dir = RootDir::new(&ceremony::resolve(&base, &c.signer_root_dir));
    let subject_dir = RootDir::new(&ceremony::resolve(&base, &c.subject_root_dir));
    let signer = signer_dir.cert()?;
    let subject = subject_dir.cert()?;
    let mut index = signer_dir.index()?;
    check_log(&signer_dir, &index)?;
    check_pair(&signer, &subject, direction)?;
    let key_fp = pki_core::x509::fingerprint(&subject.spki_der);
    if !c.allow_resign {
        if let Some(e) = index.intermediates.iter().find(|e| {
            e.kind.as_deref() == Some(CROSS_KIND)
                && e.key_fingerprint.as_deref() == Some(key_fp.as_str())
        }) {
            return Err(RootError::AlreadySigned {
                what: format!("the root key of {} (a cross certificate)", subject.subject),
                serial: e.serial.clone(),
                index: signer_dir.index_path(),
                kept: signer_dir.intermediate_path(&e.serial),
            });
        }
    }
    let out = ceremony::resolve(&base, &c.output.certificate);
    check_output(&out)?;
    check_folder(&signer_dir.path)?;

    let now = OffsetDateTime::now_utc();
    let validity = cross_validity(c.days, &signer, &subject, now)?;
    let serial = Serial::random();
    let params = cross_params(&subject, &validity, &serial)?;
    let subject_key = SubjectPublicKeyInfo::from_der(&subject.spki_der)
        .map_err(|e| RootError::Lint(format!("the certified root's key: {e}")))?;
    describe_params(
        run,
        &format!(
            "root-ca cross-sign: {} cross certificate, signed by key '{}' in token '{}'",
            direction.as_str(),
            c.token.key_label,
            c.token.token_label
        ),
        &pki_core::x509::Subject::cn(subject.subject_cn.clone()),
        &validity,
        &serial,
        &[
            format!("subject:    {} (exactly as in {})", subject.subject, subject_dir.cert_path().display()),
            format!("key:        the key of root SHA256 {}", subject.fingerprint),
            format!("issuer:     {} (root SHA256 {})", signer.subject, signer.fingerprint),
            "extensions: basicConstraints critical CA:TRUE pathlen:1; keyUsage critical keyCertSign, cRLSign; SKI (the certified root's); AKI (the signer's)".into(),
            format!("output:     {}", out.display()),
        ],
    );
    if let Some(warning) = path_warning(&signer) {
        say(run, warning);
    }
    if run.dry_run {
        let problems = preview(&params, &subject_key, &signer, &subject)?;
        say(
            run,
            format!(
                "pre-issuance check: {}",
                if problems.is_empty() {
                    "conforms to the root profile, same subject and key identifier as the certified root".to_string()
                } else {
                    problems.join("; ")
                }
            ),
        );
        say(run, "drawn at signing time: the serial and the validity dates above are examples; the real ceremony draws a new random serial and starts the validity when the token signs");
        say(
            run,
            "dry run: nothing signed or written; the token was not opened",
        );
        return Ok(());
    }

    let token = open_token(
        run,
        &c.token,
        recorded_key_id(&index, &c.token),
        &signer_dir,
        "cross-sign",
    )?;
    let key = root_key(&token, &c.token, &signer_dir, &signer)?;
    let der = sign_checked(
        &params,
        Profile::Root,
        &subject_key,
        Some(&signer.der),
        &key,
    )?;
    let facts = CertFacts::from_der("cross certificate", &der)?;
    let problems = cross_problems(&facts, &signer, &subject);
    if !problems.is_empty() {
        return Err(RootError::BadTokenSignature(format!(
            "the signed cross certificate is not what was planned: {}",
            problems.join("; ")
        )));
    }
    let serial = facts.serial.to_hex();
    // Recorded before the output is written, as an intermediate is: revocable whatever fails next.
    output::create_dir(&signer_dir.path.join("intermediates"), 0o755)?;
    output::write_atomic(
        &signer_dir.intermediate_path(&serial),
        facts.pem().as_bytes(),
        Mode::Public,
        false,
    )
    .map_err(RootError::from_output)?;
    index.intermediates.push(IntermediateEntry {
        serial: serial.clone(),
        subject: facts.subject.clone(),
        fingerprint: facts.fingerprint.clone(),
        not_after: fmt_time(facts.not_after),
        status: "active".into(),
        reason: None,
        revoked_at: None,
        request_id: None,
        key_fingerprint: Some(key_fp.clone()),
        kind: Some(CROSS_KIND.into()),
    });
    let mut record = ceremony_record(file, &sha256, c.allow_network);
    record["allow_resign"] = json!(c.allow_resign);
    signer_dir.log(
        &mut index,
        "cross-signed",
        json!({ "direction": direction.as_str(), "serial": serial, "subject": facts.subject,
                "fingerprint": facts.fingerprint, "key_fingerprint": key_fp,
                "certified_root": subject.fingerprint,
                "not_before": fmt_time(facts.not_before), "not_after": fmt_time(facts.not_after),
                "ceremony": record }),
    )?;
    output::write_atomic(&out, facts.pem().as_bytes(), Mode::Public, false).map_err(|e| {
        RootError::Undelivered {
            serial: serial.clone(),
            kept: signer_dir.intermediate_path(&serial),
            output: out.clone(),
            reason: RootError::from_output(e).to_string(),
        }
    })?;
    say(run, format!("cross certificate: {}", out.display()));
    say(
        run,
        format!(
            "signed {} cross certificate serial {serial}",
            direction.as_str()
        ),
    );
    say(
        run,
        format!(
            "cross certificate fingerprint: SHA256 {}",
            facts.fingerprint
        ),
    );
    say(
        run,
        format!(
            "ceremony log head ({}): {} (write it down)",
            signer_dir.path.display(),
            index.log_head
        ),
    );
    Ok(())
}

/// A signer root whose path length leaves no room for the cross certificate: OpenSSL and Go
/// enforce a trust anchor's pathLenConstraint, and a path anchor → cross → intermediate → leaf
/// has two CA certificates under the anchor.
pub(crate) fn path_warning(signer: &CertFacts) -> Option<String> {
    match super::path_length(&signer.der) {
        Some((_, Some(n), _)) if n < 2 => Some(format!(
            "warning: the signing root {} has pathlen:{n}: OpenSSL and Go refuse a path through this cross certificate to a leaf (path length constraint exceeded) for parties that trust only that root. It still serves verifiers that ignore the anchor's path length; for etcd, trust both roots instead (docs/root-rollover.md, step 1). Roots made with [root] path-length = 2 leave room for it",
            signer.subject
        )),
        _ => None,
    }
}

/// The two roots must be two different, currently valid, self-signed roots with different
/// names, and `direction` must match which one is newer.
pub(crate) fn check_pair(
    signer: &CertFacts,
    subject: &CertFacts,
    direction: CrossDirection,
) -> Result<()> {
    let bad = |reason: String| RootError::CrossPair { reason };
    for (which, r) in [("signer", signer), ("subject", subject)] {
        if !r.self_signed || !r.is_ca {
            return Err(bad(format!(
                "the {which} root.crt ({}) is not a self-signed CA certificate; the *-root-dir fields name root folders made by `root-ca init`",
                r.subject
            )));
        }
    }
    if signer.spki_der == subject.spki_der {
        return Err(bad(
            "both folders hold the same root key: a cross certificate joins two different roots"
                .into(),
        ));
    }
    if signer.subject_der == subject.subject_der {
        return Err(bad(format!(
            "both roots are named {}: relying parties could not tell the two apart when building a path. Give the new root its own name (e.g. with the year) at init",
            subject.subject
        )));
    }
    let subject_is_newer = subject.not_before > signer.not_before;
    let (want, newer_one) = if subject_is_newer {
        (CrossDirection::NewWithOld, "subject")
    } else {
        (CrossDirection::OldWithNew, "signer")
    };
    if direction != want {
        return Err(bad(format!(
            "direction = \"{}\" but the {newer_one} root is the newer one (subject starts {}, signer starts {}): this is {}. Fix direction or swap signer-root-dir and subject-root-dir",
            direction.as_str(),
            fmt_time(subject.not_before),
            fmt_time(signer.not_before),
            want.as_str()
        )));
    }
    Ok(())
}

/// `days` from now (default: as long as both roots last), never past either root's end.
pub(crate) fn cross_validity(
    days: Option<u32>,
    signer: &CertFacts,
    subject: &CertFacts,
    now: OffsetDateTime,
) -> Result<Validity> {
    let end = signer.not_after.min(subject.not_after);
    if now < subject.not_before || now > subject.not_after {
        return Err(RootError::CrossPair {
            reason: format!(
                "the certified root is not valid now ({} .. {})",
                fmt_time(subject.not_before),
                fmt_time(subject.not_after)
            ),
        });
    }
    let lifetime = match days {
        Some(d) => {
            let want = time::Duration::days(d as i64);
            if now + want > end {
                return Err(RootError::CrossPair {
                    reason: format!(
                        "days = {d} ends after {}, when the {} root expires; a cross certificate never outlives either root. Leave days out to end then",
                        fmt_time(end),
                        if signer.not_after <= subject.not_after { "signing" } else { "certified" }
                    ),
                });
            }
            want
        }
        None => end - now.replace_nanosecond(0).expect("zero nanoseconds"),
    };
    Ok(Validity::lasting(
        lifetime,
        Some((signer.not_before, signer.not_after)),
        now,
    )?)
}

/// The root profile's extensions over the certified root's own subject name (its exact
/// encoding) and key identifier, with the signer's key identifier as authority.
pub(crate) fn cross_params(
    subject: &CertFacts,
    validity: &Validity,
    serial: &Serial,
) -> Result<CertificateParams> {
    let alg = pki_core::keys::KeyAlgorithm::from_spki_der(&subject.spki_der)?;
    let mut p = Profile::Root.params(
        &pki_core::x509::Subject::cn(subject.subject_cn.clone()),
        &pki_core::x509::SubjectNames::default(),
        validity,
        serial,
        alg,
        None,
    )?;
    p.distinguished_name = same_name(&subject.der)?;
    if let Some(ski) = &subject.ski {
        p.key_identifier_method = KeyIdMethod::PreSpecified(ski.clone());
    }
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// The subject name of `der`, attribute by attribute in its order and string types, so that
/// the cross certificate's subject is the same bytes (checked again after signing).
fn same_name(der: &[u8]) -> Result<DistinguishedName> {
    use x509_parser::prelude::FromDer;
    let bad = |why: String| RootError::Lint(format!("the certified root's subject name: {why}"));
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let oid: Vec<u64> = attr
                .attr_type()
                .iter()
                .ok_or_else(|| bad("an attribute type too large to read".into()))?
                .collect();
            let text = attr
                .as_str()
                .map_err(|e| bad(format!("an attribute that is not text ({e})")))?
                .to_string();
            let value = match attr.attr_value().tag().0 {
                12 => DnValue::Utf8String(text),
                19 => DnValue::PrintableString(text.try_into().map_err(|e| bad(format!("{e}")))?),
                22 => DnValue::Ia5String(text.try_into().map_err(|e| bad(format!("{e}")))?),
                t => {
                    return Err(bad(format!(
                        "string type (tag {t}) this tool does not copy"
                    )))
                }
            };
            dn.push(DnType::from_oid(&oid), value);
        }
    }
    Ok(dn)
}

/// How a signed cross certificate differs from what it must be; empty when it is right.
pub(crate) fn cross_problems(
    cross: &CertFacts,
    signer: &CertFacts,
    subject: &CertFacts,
) -> Vec<String> {
    let mut p = Vec::new();
    if cross.subject_der != subject.subject_der {
        p.push(format!(
            "subject {} is not the certified root's name {} byte for byte",
            cross.subject, subject.subject
        ));
    }
    if cross.spki_der != subject.spki_der {
        p.push("the key is not the certified root's key".into());
    }
    if cross.ski != subject.ski {
        p.push("subjectKeyIdentifier differs from the certified root's".into());
    }
    if cross.issuer != signer.subject {
        p.push(format!(
            "issuer {} is not the signer {}",
            cross.issuer, signer.subject
        ));
    }
    if cross.not_before < signer.not_before || cross.not_after > signer.not_after {
        p.push("validity is not inside the signer's".into());
    }
    if cross.not_after > subject.not_after {
        p.push("validity ends after the certified root".into());
    }
    if !cross.is_ca || !cross.key_cert_sign {
        p.push("not a CA certificate with keyCertSign".into());
    }
    p
}

/// The planned cross certificate signed by a throwaway key under the signer's name: the
/// profile check and the cross-certificate checks, without the token. The throwaway signature
/// does not verify; names, keys, extensions and dates are what the token will sign.
fn preview(
    params: &CertificateParams,
    subject_key: &SubjectPublicKeyInfo,
    signer: &CertFacts,
    subject: &CertFacts,
) -> Result<Vec<String>> {
    let alg = pki_core::keys::KeyAlgorithm::from_spki_der(&signer.spki_der)?;
    let throwaway = KeyPair::generate_for(alg.signature_algorithm())
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_der(&signer.der.clone().into(), &throwaway)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let der = params
        .signed_by(subject_key, &issuer)
        .map_err(|e| RootError::Lint(e.to_string()))?
        .der()
        .to_vec();
    let mut problems = pki_core::x509::ca_conformance(Profile::Root, &der);
    let facts = CertFacts::from_der("planned cross certificate", &der)?;
    problems.extend(cross_problems(&facts, signer, subject));
    Ok(problems)
}

#[cfg(test)]
mod tests;
