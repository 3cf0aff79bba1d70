//! The root ceremonies, one file each, and what they share. Each one: read and check the
//! ceremony file, check the air gap, check every output is absent, show the plan (and stop
//! there on --dry-run), and only then open the token. Every token signature is verified in
//! software before anything is written.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pki_core::keys::verify_certificate;
use pki_core::output;
use pki_core::x509::ca_conformance;
use pki_core::x509::CertFacts;
use pki_core::x509::Serial;
use pki_core::x509::{fmt_time, Validity};
use pki_core::x509::{Profile, Subject};
use rcgen::{CertificateParams, Issuer, PublicKeyData};
use serde_json::json;

use crate::ceremony;
use crate::error::{Result, RootError};
use crate::pin;
use crate::state::{RootDir, RootIndex};
use pki_core::keys::Signer as _;
use pki_core::keys::{Token, TokenKey};

mod backup;
mod crl;
mod cross;
mod custody;
mod init;
mod log;
mod revoke;
mod sign;

pub use backup::{backup, restore};
pub use crl::{crl, verify_crl_signature};
pub use cross::cross_sign;
pub use custody::{custody_resplit, custody_split, custody_verify};
pub use init::{init, token_check};
pub use log::log_verify;
pub use revoke::revoke;
pub use sign::sign;

/// How a ceremony gets its PIN and where it reports.
pub struct Run<'a> {
    pub dry_run: bool,
    pub pin_file: Option<&'a Path>,
    /// The custodians' age identity files, when the root's PIN is under custody (none: they
    /// are asked for on the terminal).
    pub custodians: &'a [PathBuf],
    /// The security officer's PIN file (`backup` only).
    pub so_pin_file: Option<&'a Path>,
    pub out: &'a mut dyn Write,
}

fn say(run: &mut Run<'_>, text: impl AsRef<str>) {
    let _ = writeln!(run.out, "{}", text.as_ref());
}

/// Opens the token of `dir`'s root with the PIN from the operator or, under custody, from M
/// custodians; a quorum that opened the token is recorded in the ceremony log (not on a dry
/// run, which writes nothing), with the ceremony it was gathered for.
fn open_token(
    run: &Run<'_>,
    section: &ceremony::TokenSection,
    key_id: Option<String>,
    dir: &RootDir,
    purpose: &str,
) -> Result<Arc<Token>> {
    let (pin, source) = pin::for_root(dir, run.pin_file, run.custodians)?;
    let token = Token::open(&section.config(key_id), &pin)?;
    drop(pin);
    if let pin::PinSource::Custody {
        generation,
        custodians,
    } = source
    {
        if !run.dry_run {
            let mut index = dir.index()?;
            dir.log(
                &mut index,
                "custody-quorum",
                json!({ "for": purpose, "generation": generation, "custodians": custodians }),
            )?;
        }
    }
    Ok(token)
}

/// The CKA_ID init recorded, for the key label it recorded. A ceremony naming another label
/// finds that key by label alone; the root certificate check then names the mismatch.
fn recorded_key_id(index: &RootIndex, section: &ceremony::TokenSection) -> Option<String> {
    (section.key_label == index.key_label)
        .then(|| index.key_id.clone())
        .flatten()
}

/// Signs `params` with the token key, as the issuer `issuer_der` (None: self-signed), after a
/// pre-issuance lint on a throwaway-key signature of the same to-be-signed data; then checks
/// the token's signature in software and that the token signed exactly what was linted.
fn sign_checked(
    params: &CertificateParams,
    profile: Profile,
    subject_key: &impl PublicKeyData,
    issuer_der: Option<&[u8]>,
    key: &TokenKey,
) -> Result<Vec<u8>> {
    let alg = pki_core::keys::Signer::key_algorithm(key);
    let throwaway = alg.generate()?;
    let lint_der = match issuer_der {
        Some(root) => {
            let issuer = Issuer::from_ca_cert_der(&root.to_vec().into(), &throwaway)
                .map_err(|e| RootError::Lint(e.to_string()))?;
            params.signed_by(subject_key, &issuer)
        }
        None => params.self_signed(&throwaway),
    }
    .map_err(|e| RootError::Lint(e.to_string()))?
    .der()
    .to_vec();
    let problems = conformance(profile, params, &lint_der);
    if !problems.is_empty() {
        return Err(RootError::Lint(problems.join("; ")));
    }
    let signed = match issuer_der {
        Some(root) => {
            let issuer = Issuer::from_ca_cert_der(&root.to_vec().into(), key)
                .map_err(|e| RootError::Lint(e.to_string()))?;
            params.signed_by(subject_key, &issuer)
        }
        None => params.self_signed(key),
    }
    .map_err(|e| {
        RootError::pkcs11(
            "sign",
            key.take_sign_error().unwrap_or_else(|| e.to_string()),
        )
    })?;
    let der = signed.der().to_vec();
    verify_certificate(&der, &key.spki_der())
        .map_err(|e| RootError::BadTokenSignature(e.to_string()))?;
    if issuer_der.is_some() && tbs(&der)? != tbs(&lint_der)? {
        return Err(RootError::BadTokenSignature(
            "the token-signed certificate differs from the linted one".into(),
        ));
    }
    let problems = conformance(profile, params, &der);
    if !problems.is_empty() {
        return Err(RootError::Lint(problems.join("; ")));
    }
    Ok(der)
}

/// The profile check of a CA certificate. A root made with `path-length = 2` (room for a
/// cross certificate, docs/root-rollover.md) is held to that path length instead of the
/// root profile's 1; everything else is the profile's.
pub(crate) fn conformance(profile: Profile, params: &CertificateParams, der: &[u8]) -> Vec<String> {
    let mut problems = ca_conformance(profile, der);
    let want = match params.is_ca {
        rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(n)) => n,
        _ => return problems,
    };
    if profile != Profile::Root || want == 1 {
        return problems;
    }
    problems.retain(|p| !p.starts_with("basicConstraints must be"));
    match path_length(der) {
        Some((true, Some(n), true)) if n as u8 == want => {}
        found => problems.push(format!(
            "basicConstraints must be critical CA:TRUE, pathlen:{want} (found {found:?} as CA, pathlen, critical)"
        )),
    }
    problems
}

/// basicConstraints of a certificate as (CA, pathlen, critical); None without the extension.
pub(crate) fn path_length(der: &[u8]) -> Option<(bool, Option<u32>, bool)> {
    use x509_parser::prelude::{FromDer, ParsedExtension};
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    c.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => Some((b.ca, b.path_len_constraint, e.critical)),
            _ => None,
        })
}

fn tbs(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    Ok(c.tbs_certificate.as_ref().to_vec())
}

fn describe_params(
    run: &mut Run<'_>,
    title: &str,
    subject: &Subject,
    v: &Validity,
    serial: &Serial,
    extras: &[String],
) {
    say(run, title);
    say(run, format!("  subject:    CN={}", subject.common_name));
    say(run, format!("  serial:     {}", serial.to_hex()));
    say(
        run,
        format!(
            "  validity:   {} .. {}",
            fmt_time(v.not_before),
            fmt_time(v.not_after)
        ),
    );
    for e in extras {
        say(run, format!("  {e}"));
    }
}

/// Checks an output before the token is opened: absent, and its folder exists and takes a
/// new file (probed by creating one: permission bits say nothing for root or a read-only mount).
fn check_output(path: &Path) -> Result<()> {
    output::ensure_absent(path, false).map_err(RootError::from_output)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    check_folder(&parent)
}

fn check_folder(folder: &Path) -> Result<()> {
    let bad = |reason: String| RootError::OutputFolder {
        path: folder.to_path_buf(),
        reason,
    };
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad("is not a folder".into())),
        Err(e) => return Err(bad(e.to_string())),
    }
    let probe = folder.join(format!(
        ".root-ca-probe-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| bad(format!("cannot create a file there ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The ceremony file behind a log record: which reviewed bytes, with which overrides.
fn ceremony_record(file: &Path, sha256: &str, allow_network: bool) -> serde_json::Value {
    json!({ "file": file.display().to_string(), "sha256": sha256, "allow_network": allow_network })
}

/// The token's key, checked to be the root certificate's key before it signs.
fn root_key(
    token: &Arc<Token>,
    section: &ceremony::TokenSection,
    dir: &RootDir,
    root: &CertFacts,
) -> Result<TokenKey> {
    let policy = dir.index().map(|i| i.key_policy()).unwrap_or_default();
    let key = token.key_as(policy)?;
    if key.spki_der() != root.spki_der {
        return Err(RootError::TokenKeyMismatch {
            key: section.key_label.clone(),
            cert: dir.cert_path(),
        });
    }
    Ok(key)
}
