//! The errors `root-ca` reports. Each says what to check next; none carries the PIN.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Core(#[from] pki_core::Error),

    #[error("cannot load the PKCS#11 module {module}: {reason}. Check the path in [token] module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so from the softhsm2 package)")]
    Module { module: PathBuf, reason: String },

    #[error("no token labelled '{label}' in {module} (tokens found: {found}). Check [token] token-label, and SOFTHSM2_CONF for SoftHSM2")]
    NoToken {
        label: String,
        module: PathBuf,
        found: String,
    },

    #[error("token '{label}' refused the PIN (wrong PIN). Check the PIN source; repeated failures lock the token")]
    WrongPin { label: String },

    #[error(
        "token '{label}' is locked after too many wrong PINs; the security officer must unblock it"
    )]
    PinLocked { label: String },

    #[error("no private key labelled '{key}' in token '{token}'. Check [token] key-label, or run `root-ca init` first")]
    NoKey { key: String, token: String },

    #[error("token '{token}' already holds a key labelled '{key}'; refusing to create a second one. Choose a new key-label")]
    KeyExists { key: String, token: String },

    #[error("the key '{key}' in the token is not the key of the root certificate {cert}: wrong token or wrong key-label")]
    TokenKeyMismatch { key: String, cert: PathBuf },

    #[error("PKCS#11 {op} failed: {reason}")]
    Pkcs11 { op: &'static str, reason: String },

    #[error("ceremony file {path}: {reason}")]
    Ceremony { path: PathBuf, reason: String },

    #[error("network interface '{iface}' is up: root-ca runs only on an air-gapped machine. Take it down, or set allow-network = true in the ceremony file for a rehearsal")]
    NetworkUp { iface: String },

    #[error("no PIN: pass --pin-file FILE, set ROOT_CA_PIN, or run on a terminal to be prompted")]
    NoPin,

    #[error("the pre-issuance check failed: {0}. Nothing was signed by the token")]
    Lint(String),

    #[error("the token's signature does not verify in software ({0}); nothing was written. Check the token")]
    BadTokenSignature(String),

    #[error("ceremony log {path}: record {line}: {reason}")]
    Log {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("{0}")]
    Refused(String),
}

impl RootError {
    pub fn pkcs11(op: &'static str, e: impl std::fmt::Display) -> Self {
        RootError::Pkcs11 {
            op,
            reason: e.to_string(),
        }
    }
}

pub type Result<T, E = RootError> = std::result::Result<T, E>;
