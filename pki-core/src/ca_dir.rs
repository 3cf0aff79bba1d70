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

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::certs::CertFacts;
use crate::error::{Error, Result};
use crate::keyfile::KeySecret;
use crate::ledger::Ledger;
use crate::output::{self, Mode};
use crate::signer::FileKey;
use crate::validity::fmt_time;

const STATE_FILE: &str = "ca.toml";

/// The contents of `ca.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaState {
    pub format: u32,
    pub active: Option<u32>,
    #[serde(default, rename = "generation")]
    pub generations: Vec<GenerationState>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationState {
    pub id: u32,
    /// `import` or `request`
    pub source: String,
    pub created: String,
    /// `x25519:<recipient>` or `passphrase`
    pub key_protection: String,
}

/// A managed CA folder.
pub struct CaDir {
    pub path: PathBuf,
    pub state: CaState,
}

impl CaDir {
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

    pub fn generation_dir(&self, id: u32) -> PathBuf {
        self.path.join("generations").join(id.to_string())
    }

    pub fn cert_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("intermediate.crt")
    }

    pub fn key_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("intermediate.key.age")
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.path.join("ledger.sqlite")
    }

    pub fn ledger(&self) -> Result<Ledger> {
        Ledger::open(&self.ledger_path())
    }

    pub fn active(&self) -> Result<u32> {
        self.state.active.ok_or_else(|| Error::NotCaDir {
            path: self.path.clone(),
            reason: "no active intermediate yet; install one first".into(),
        })
    }

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
            return Err(Error::Policy(format!(
                "{} is already a managed CA folder; import into a new, empty folder",
                dir.display()
            )));
        }
        let facts = CertFacts::from_pem("CA certificate", cert_pem)?;
        if !facts.is_ca || !facts.key_cert_sign {
            return Err(Error::NotCa(format!("CA certificate ({})", facts.subject)));
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
                generations: vec![GenerationState {
                    id: 1,
                    source: "import".into(),
                    created: fmt_time(now),
                    key_protection: secret.description(),
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

    /// Decrypts the active generation's key and checks it still matches its certificate.
    pub fn issuing_key(&self, secret: &KeySecret) -> Result<(u32, CertFacts, FileKey)> {
        let id = self.active()?;
        let facts = self.cert(id)?;
        let pem = secret.open(&self.key_path(id))?;
        let pem = std::str::from_utf8(&pem)
            .map_err(|_| Error::input("CA key", "decrypted key is not PEM text"))?;
        let key = FileKey::from_pkcs8_pem("CA key", pem)?;
        check_key_matches(&key, &facts)?;
        Ok((id, facts, key))
    }
}

/// Refuses a key whose public half differs from the certificate's.
pub fn check_key_matches(key: &FileKey, cert: &CertFacts) -> Result<()> {
    if key.spki_der() != cert.spki_der {
        return Err(Error::KeyMismatch(format!(
            "certificate '{}' has a different public key than the {}",
            cert.subject,
            crate::signer::Signer::describe(key)
        )));
    }
    Ok(())
}
