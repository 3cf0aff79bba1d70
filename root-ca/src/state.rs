//! The root's state folder, meant to be committed to version control after every ceremony:
//!
//! ```text
//! root.crt                  the self-signed root certificate
//! transport.recipient       the age recipient the online side encrypts requests to
//! transport.sealed          its identity, AES-GCM encrypted by a key that never leaves the token
//! crl.pem                   the latest root CRL (also in every response bundle)
//! index.toml                the intermediates signed, their status, the CRL number, the log head
//! intermediates/<serial>.crt  every CA certificate this root signed: intermediates and cross certificates
//! ceremony.log              hash-chained JSON lines, one record per operation
//! ```

use std::path::{Path, PathBuf};

use pki_core::output::{self, Mode};
use pki_core::x509::CertFacts;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RootError};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RootIndex {
    pub token_label: String,
    pub key_label: String,
    /// The root key's CKA_ID (hex), recorded at init: the key is found by label and ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The root key was generated extractable under a wrap key (`[key] backup = true` at
    /// init): `root-ca backup` can take it out of the token, wrapped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub key_backup: bool,
    pub crl_number: u64,
    pub log_head: String,
    #[serde(default, rename = "intermediate")]
    pub intermediates: Vec<IntermediateEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IntermediateEntry {
    pub serial: String,
    pub subject: String,
    pub fingerprint: String,
    pub not_after: String,
    /// `active` or `revoked`
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// The enrolment request this answered (bundles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// SHA-256 of the certified public key: a second signature for it needs allow-resign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    /// `cross-certificate` for a cross certificate of another root (`root-ca cross-sign`);
    /// absent for an intermediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl RootIndex {
    /// The attributes the root key must show in the token.
    pub fn key_policy(&self) -> pki_core::keys::KeyPolicy {
        if self.key_backup {
            pki_core::keys::KeyPolicy::WrappedBackup
        } else {
            pki_core::keys::KeyPolicy::NeverExtractable
        }
    }
}

pub struct RootDir {
    pub path: PathBuf,
}

impl RootDir {
    pub fn new(path: &Path) -> Self {
        RootDir {
            path: path.to_path_buf(),
        }
    }
    pub fn cert_path(&self) -> PathBuf {
        self.path.join("root.crt")
    }
    pub fn index_path(&self) -> PathBuf {
        self.path.join("index.toml")
    }
    pub fn log_path(&self) -> PathBuf {
        self.path.join("ceremony.log")
    }
    pub fn recipient_path(&self) -> PathBuf {
        self.path.join("transport.recipient")
    }
    pub fn sealed_identity_path(&self) -> PathBuf {
        self.path.join("transport.sealed")
    }
    /// The latest root CRL.
    pub fn crl_path(&self) -> PathBuf {
        self.path.join("crl.pem")
    }
    pub fn intermediate_path(&self, serial: &str) -> PathBuf {
        self.path
            .join("intermediates")
            .join(format!("{serial}.crt"))
    }

    pub fn cert(&self) -> Result<CertFacts> {
        let p = self.cert_path();
        let bytes = output::read(&p).map_err(|_| RootError::RootMissing { path: p.clone() })?;
        Ok(CertFacts::from_pem(&p.display().to_string(), &bytes)?)
    }

    pub fn index(&self) -> Result<RootIndex> {
        let p = self.index_path();
        let text = output::read_to_string(&p).map_err(|e| RootError::IndexUnreadable {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| RootError::IndexUnreadable {
            path: p,
            reason: e.to_string().trim().replace('\n', " "),
        })
    }

    pub fn save_index(&self, index: &RootIndex) -> Result<()> {
        let text = toml::to_string(index).expect("index serialises");
        output::write_atomic(&self.index_path(), text.as_bytes(), Mode::Public, true)?;
        Ok(())
    }

    /// Appends a ceremony log record and records the new head in the index.
    pub fn log(&self, index: &mut RootIndex, op: &str, data: serde_json::Value) -> Result<()> {
        index.log_head = crate::log::append(&self.log_path(), op, data)?;
        self.save_index(index)
    }
}
