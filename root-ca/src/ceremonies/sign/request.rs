//! The request a sign ceremony signs: read from a CSR file or opened from a request bundle,
//! checked against the key fingerprint read out at the ceremony and against what this root
//! already signed.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use pki_core::bundle::{Bundle, BundleKind};
use pki_core::keys::KeyAlgorithm;
use pki_core::output;
use pki_core::x509::CheckedCsr;
use pki_core::x509::{fingerprint, normalize_fingerprint, CertFacts};

use super::super::{open_token, recorded_key_id, Run};
use crate::ceremony::{self, RequestSource, SignCeremony};
use crate::error::{Result, RootError};
use crate::state::{RootDir, RootIndex};
use pki_core::keys::Token;

/// The request being signed: its CSR and, for a bundle, the bundle and the opened token.
pub(super) struct Request {
    pub(super) csr: CheckedCsr,
    pub(super) bundle: Option<Bundle>,
    pub(super) token: Option<Arc<Token>>,
}

pub(super) fn read_request(
    file: &Path,
    c: &SignCeremony,
    base: &Path,
    dir: &RootDir,
    index: &RootIndex,
    run: &Run<'_>,
) -> Result<Request> {
    match c.request.source().map_err(|i| i.at(file))? {
        RequestSource::Csr(csr_path) => {
            let csr_path = ceremony::resolve(base, csr_path);
            Ok(Request {
                csr: CheckedCsr::from_pem(
                    &csr_path.display().to_string(),
                    &output::read(&csr_path)?,
                )?,
                bundle: None,
                token: None,
            })
        }
        RequestSource::Bundle(bundle_path) => {
            let bundle_path = ceremony::resolve(base, bundle_path);
            let data = output::read(&bundle_path)?;
            // The transport identity is unsealed by the token's AES key; the root signing key
            // is not used for this, so a dry run does it too.
            let t = open_token(run, &c.token, recorded_key_id(index, &c.token), dir, "sign")?;
            let identity = transport_identity(&t, dir)?;
            let b = Bundle::open(
                &bundle_path.display().to_string(),
                &data,
                &identity,
                BundleKind::IntermediateRequest,
            )?;
            let csrs = b.blocks_tagged("CERTIFICATE REQUEST");
            if csrs.len() != 1 {
                return Err(RootError::BadRequestBundle {
                    path: bundle_path.to_path_buf(),
                    problem: format!("it carries {} CSRs, not exactly one", csrs.len()),
                });
            }
            let parsed =
                CheckedCsr::from_der(&format!("CSR in {}", bundle_path.display()), csrs[0])?;
            let reply_to = b
                .header("reply-to")
                .ok_or_else(|| RootError::BadRequestBundle {
                    path: bundle_path.to_path_buf(),
                    problem: "it has no reply-to recipient".into(),
                })?;
            // The response is sealed after signing: a recipient that cannot be used must be
            // refused now, not after a certificate exists.
            age::x25519::Recipient::from_str(reply_to.trim()).map_err(|e| {
                RootError::BadRequestBundle {
                    path: bundle_path.to_path_buf(),
                    problem: format!(
                        "its reply-to '{}' is not an age X25519 recipient ({e})",
                        reply_to.trim()
                    ),
                }
            })?;
            Ok(Request {
                csr: parsed,
                bundle: Some(b),
                token: Some(t),
            })
        }
    }
}

/// Refuses a second signature for a request ID or key this root already signed, unless the
/// ceremony file says `allow-resign = true`.
pub(super) fn check_resign(
    c: &SignCeremony,
    dir: &RootDir,
    index: &RootIndex,
    request_id: Option<&str>,
    key_fp: &str,
) -> Result<()> {
    if c.allow_resign {
        return Ok(());
    }
    for e in &index.intermediates {
        // Rows written before the key fingerprint was recorded: read it from the kept copy.
        let signed_key = e.key_fingerprint.clone().or_else(|| {
            let path = dir.intermediate_path(&e.serial);
            let pem = output::read(&path).ok()?;
            let facts = CertFacts::from_pem(&path.display().to_string(), &pem).ok()?;
            Some(fingerprint(&facts.spki_der))
        });
        let what = match (&e.request_id, request_id) {
            (Some(a), Some(b)) if a == b => format!("request {b}"),
            _ if signed_key.as_deref() == Some(key_fp) => {
                format!("the key with fingerprint {key_fp}")
            }
            _ => continue,
        };
        return Err(RootError::AlreadySigned {
            what,
            serial: e.serial.clone(),
            index: dir.index_path(),
            kept: dir.intermediate_path(&e.serial),
        });
    }
    Ok(())
}

/// Checks the request's key against the fingerprint read out at the ceremony; returns it.
pub(super) fn check_request_key(c: &SignCeremony, csr: &CheckedCsr) -> Result<String> {
    let got = fingerprint(&csr.spki_der);
    let want = normalize_fingerprint(&c.request.key_fingerprint);
    if got != want {
        return Err(RootError::FingerprintMismatch { got, want });
    }
    if matches!(csr.key_alg, KeyAlgorithm::Rsa(b) if b < 3072) {
        return Err(RootError::WeakRequestKey {
            alg: csr.key_alg.to_string(),
        });
    }
    Ok(got)
}

/// Unseals the root's transport identity with the token's transport key (the seal names
/// its scheme; an RSA-OAEP seal's signature is checked against the root certificate).
fn transport_identity(token: &Token, dir: &RootDir) -> Result<age::x25519::Identity> {
    let sealed = output::read(&dir.sealed_identity_path())?;
    let secret = token.open_transport(&sealed, &dir.cert()?.spki_der)?;
    let damaged = || RootError::SealedIdentityDamaged {
        path: dir.sealed_identity_path(),
    };
    let text = std::str::from_utf8(&secret).map_err(|_| damaged())?;
    age::x25519::Identity::from_str(text.trim()).map_err(|_| damaged())
}
