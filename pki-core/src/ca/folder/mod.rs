//! The intermediate's state folder:
//!
//! ```text
//! DIR/ca.toml                              which generation is active, and how each key is protected
//! DIR/generations/<N>/intermediate.crt     the CA certificate of generation N
//! DIR/generations/<N>/intermediate.key.age its private key, age-encrypted (PKCS#8 PEM inside)
//! DIR/ledger.sqlite                        every leaf issued from this folder
//! ```
//!
//! Generations let a rotated intermediate be staged beside the active one.

mod lock;
pub(crate) mod root_crl;
pub(crate) mod root_hold;
mod staging;

pub use lock::CaLock;
pub use staging::StagedRequest;

use crate::keys::KeyError;
use crate::x509::X509Error;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bundle::{Bundle, BundleKind};
use crate::ca::ledger::Ledger;
use crate::error::{Error, ResponseProblem, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::keyfile::KeySecret;
use crate::keys::signer::FileKey;
use crate::output::{self, Mode};
use crate::x509::certs::{normalize_fingerprint, CertFacts};
use crate::x509::csr::CheckedCsr;
use crate::x509::profile::Subject;
use crate::x509::validity::fmt_time;

const STATE_FILE: &str = "ca.toml";

/// The contents of `ca.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaState {
    /// Version of the state file's format (1).
    pub format: u32,
    /// The generation that issues; None until one is installed.
    pub active: Option<u32>,
    /// Where the ledger lives: absent for `ledger.sqlite` in the folder, or a PostgreSQL
    /// address (`postgres://user@host:port/database`, no password in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<String>,
    /// The file holding the PostgreSQL password (mode 0600); else PGPASSFILE or ~/.pgpass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_password_file: Option<PathBuf>,
    /// The CA file the database's TLS certificate chains to; TLS is required when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger_tls_ca: Option<PathBuf>,
    /// Every generation, in order of creation (the `[[generation]]` tables).
    #[serde(default, rename = "generation")]
    pub generations: Vec<GenerationState>,
}

/// One generation of the intermediate: a key and, once installed, its certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationState {
    /// The generation number, counting from 1; names its folder under `generations/`.
    pub id: u32,
    /// `import` or `request`
    pub source: String,
    /// When the generation was created, RFC 3339.
    pub created: String,
    /// `x25519:<recipient>`, `passphrase`, or `pkcs11` (the key is in a token)
    pub key_protection: String,
    /// The request ID of the enrolment that created this generation (`request` only).
    #[serde(default)]
    pub request_id: Option<String>,
    /// Where the key lives when it is in a PKCS#11 token (`key_protection = "pkcs11"`).
    #[serde(default)]
    pub pkcs11: Option<TokenLocation>,
}

/// A key in a PKCS#11 token: module, token label, key label.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLocation {
    /// Path of the PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The key pair's label in the token.
    pub key_label: String,
    /// The key's CKA_ID (hex), recorded when `request` generated it: the key is found by label
    /// and ID, so a second key planted under the same label is never picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl TokenLocation {
    /// The [`crate::keys::pkcs11::TokenConfig`] that opens this key.
    pub fn config(&self) -> crate::keys::pkcs11::TokenConfig {
        crate::keys::pkcs11::TokenConfig {
            module: self.module.clone(),
            token_label: self.token.clone(),
            key_label: self.key_label.clone(),
            key_id: self.key_id.clone(),
        }
    }
}

/// Where a new intermediate key is made.
pub enum NewKey<'a> {
    /// In memory, then sealed at rest with the secret.
    File(&'a KeySecret),
    /// In a PKCS#11 token (opened and logged in), under this location.
    Token(
        &'a std::sync::Arc<crate::keys::pkcs11::Token>,
        TokenLocation,
    ),
}

/// A managed CA folder.
pub struct CaDir {
    /// The folder.
    pub path: PathBuf,
    /// Its `ca.toml`, as read (or as it will be written).
    pub state: CaState,
}

impl CaDir {
    /// Opens a managed CA folder; fails with [`Error::NotCaDir`] when its `ca.toml` is missing,
    /// unreadable or invalid.
    pub fn open(path: &Path) -> Result<Self> {
        let file = path.join(STATE_FILE);
        let text = output::read_to_string(&file).map_err(|_| Error::NotCaDir {
            path: path.to_path_buf(),
            reason: format!("{} is missing or unreadable", file.display()),
        })?;
        let state: CaState = toml::from_str(&text).map_err(|e| Error::NotCaDir {
            path: path.to_path_buf(),
            reason: format!("{}: {e}", file.display()),
        })?;
        Ok(CaDir {
            path: path.to_path_buf(),
            state,
        })
    }

    /// `generations/<id>`: the folder of generation `id`.
    pub fn generation_dir(&self, id: u32) -> PathBuf {
        self.path.join("generations").join(id.to_string())
    }

    /// The certificate of generation `id` (PEM), present once the generation is installed.
    pub fn cert_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("intermediate.crt")
    }

    /// The age-encrypted private key of generation `id` (absent when the key is in a token).
    pub fn key_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("intermediate.key.age")
    }

    /// The CSR of generation `id`, PEM (generations made by `request`).
    pub fn csr_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("request.csr")
    }

    /// The root certificate pinned at install time.
    pub fn root_path(&self) -> PathBuf {
        self.path.join("root.crt")
    }

    /// The latest root CRL received in a response bundle.
    pub fn root_crl_path(&self) -> PathBuf {
        self.path.join("root-crl.pem")
    }

    /// The ledger database, `ledger.sqlite`.
    pub fn ledger_path(&self) -> PathBuf {
        self.path.join("ledger.sqlite")
    }

    /// Where the folder's ledger lives, as `ca.toml` says.
    pub fn ledger_location(&self) -> Result<crate::ca::LedgerLocation> {
        crate::ca::LedgerLocation::resolve(
            &self.path.join(STATE_FILE),
            self.ledger_path(),
            self.state.ledger.as_deref(),
            self.state.ledger_password_file.as_deref(),
            self.state.ledger_tls_ca.as_deref(),
        )
    }

    /// Names the ledger `ca.toml` points at (after `issuer ledger migrate` verified it).
    pub fn set_ledger(
        &mut self,
        url: &str,
        password_file: Option<&Path>,
        tls_ca: Option<&Path>,
    ) -> Result<()> {
        self.state.ledger = Some(url.to_string());
        self.state.ledger_password_file = password_file.map(Path::to_path_buf);
        self.state.ledger_tls_ca = tls_ca.map(Path::to_path_buf);
        self.save_state()
    }

    /// This host's record of what it last saw of the ledger (`ledger-seen.toml`).
    pub fn ledger_mark(&self) -> crate::ca::LedgerMark {
        crate::ca::LedgerMark::at(&self.path.join("ledger-seen.toml"))
    }

    /// Opens the folder's ledger (creating an SQLite one if needed); refuses a ledger that is
    /// behind what this host saw of it ([`Error::LedgerRolledBack`]).
    pub fn ledger(&self) -> Result<Ledger> {
        Ledger::connect(&self.ledger_location()?, Some(self.ledger_mark()))
    }

    /// The active generation; fails with [`Error::NotCaDir`] before one is installed.
    pub fn active(&self) -> Result<u32> {
        self.state.active.ok_or_else(|| Error::NotCaDir {
            path: self.path.clone(),
            reason: "no active intermediate yet; install one first".into(),
        })
    }

    /// The certificate of generation `id`, read from its file.
    pub fn cert(&self, id: u32) -> Result<CertFacts> {
        let p = self.cert_path(id);
        CertFacts::from_pem(&p.display().to_string(), &output::read(&p)?)
    }

    fn save_state(&self) -> Result<()> {
        let text = toml::to_string(&self.state).expect("state serialises");
        output::write_atomic(
            &self.path.join(STATE_FILE),
            text.as_bytes(),
            Mode::Public,
            true,
        )
    }

    /// Brings an existing CA (certificate + PKCS#8 key, e.g. from the OpenSSL flow) under
    /// management as generation 1 of a new folder. The key is re-encrypted at rest with
    /// `secret`; nothing is written unless the pair is a usable CA.
    pub fn import(dir: &Path, cert_pem: &[u8], key_pem: &str, secret: &KeySecret) -> Result<Self> {
        if dir.join(STATE_FILE).exists() {
            return Err(Error::AlreadyManaged {
                path: dir.to_path_buf(),
            });
        }
        let facts = CertFacts::from_pem("CA certificate", cert_pem)?;
        if !facts.is_ca || !facts.key_cert_sign {
            return Err(X509Error::NotCa(format!("CA certificate ({})", facts.subject)).into());
        }
        let now = OffsetDateTime::now_utc();
        if facts.not_after < now {
            return Err(Error::IssuerNotCurrent {
                not_before: fmt_time(facts.not_before),
                not_after: fmt_time(facts.not_after),
            });
        }
        let key = FileKey::from_pkcs8_pem("CA key", key_pem)?;
        check_key_matches(&key, &facts)?;
        let sealed = secret.seal(key.to_pkcs8_pem().as_bytes())?;

        let ca = CaDir {
            path: dir.to_path_buf(),
            state: CaState {
                format: 1,
                active: Some(1),
                ledger: None,
                ledger_password_file: None,
                ledger_tls_ca: None,
                generations: vec![GenerationState {
                    id: 1,
                    source: "import".into(),
                    created: fmt_time(now),
                    key_protection: secret.description(),
                    request_id: None,
                    pkcs11: None,
                }],
            },
        };
        output::create_dir(dir, 0o700)?;
        output::create_dir(&ca.generation_dir(1), 0o700)?;
        output::write_atomic(&ca.key_path(1), &sealed, Mode::Secret, false)?;
        output::write_atomic(
            &ca.cert_path(1),
            facts.pem().as_bytes(),
            Mode::Public,
            false,
        )?;
        ca.ledger()?;
        ca.save_state()?;
        Ok(ca)
    }

    /// The active generation's token location, when its key is in a PKCS#11 token.
    pub fn active_token(&self) -> Option<TokenLocation> {
        let id = self.state.active?;
        self.state
            .generations
            .iter()
            .find(|g| g.id == id)?
            .pkcs11
            .clone()
    }

    /// The active generation's key from its token, checked against its certificate.
    pub fn issuing_token_key(
        &self,
        token: &std::sync::Arc<crate::keys::pkcs11::Token>,
    ) -> Result<(u32, CertFacts, crate::keys::CaKey)> {
        let id = self.active()?;
        let facts = self.cert(id)?;
        let key = token.key()?;
        if key.spki_der() != facts.spki_der {
            return Err(KeyError::KeyMismatch(format!(
                "the token key is not the key of {} ({})",
                self.cert_path(id).display(),
                facts.subject
            ))
            .into());
        }
        Ok((id, facts, crate::keys::CaKey::Token(key)))
    }

    /// Decrypts the active generation's key and checks it still matches its certificate.
    pub fn issuing_key(&self, secret: &KeySecret) -> Result<(u32, CertFacts, FileKey)> {
        let id = self.active()?;
        let facts = self.cert(id)?;
        let pem = secret.open(&self.key_path(id))?;
        let pem = std::str::from_utf8(&pem).map_err(|_| KeyError::KeyNotText {
            path: self.key_path(id),
        })?;
        let key = FileKey::from_pkcs8_pem("CA key", pem)?;
        check_key_matches(&key, &facts)?;
        Ok((id, facts, key))
    }
}

/// SHA-256 of a SubjectPublicKeyInfo, as upper-case hex with colons.
pub fn key_fingerprint(spki_der: &[u8]) -> String {
    crate::x509::certs::fingerprint(spki_der)
}

/// Refuses a key whose public half differs from the certificate's.
pub fn check_key_matches(key: &FileKey, cert: &CertFacts) -> Result<()> {
    if key.spki_der() != cert.spki_der {
        return Err(KeyError::KeyMismatch(format!(
            "certificate '{}' has a different public key than the {}",
            cert.subject,
            crate::keys::signer::Signer::describe(key)
        ))
        .into());
    }
    Ok(())
}
