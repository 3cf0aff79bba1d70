//! The errors `root-ca` reports. Each says what to check next; none carries the PIN.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Core(#[from] pki_core::Error),

    #[error(transparent)]
    Token(#[from] pki_core::pkcs11::TokenError),

    #[error("the key '{key}' in the token is not the key of the root certificate {cert}: wrong token or wrong key-label")]
    TokenKeyMismatch { key: String, cert: PathBuf },

    #[error("ceremony file {path}: {reason}")]
    Ceremony { path: PathBuf, reason: String },

    #[error("network interface '{iface}' is up: root-ca runs only on an air-gapped machine. Take it down, or set allow-network = true in the ceremony file for a rehearsal")]
    NetworkUp { iface: String },

    #[error("cannot tell whether this machine is air-gapped: {reason}. root-ca refuses to run without knowing: make the kernel's interface list readable, or, for a rehearsal on a networked machine only, set allow-network = true in the ceremony file")]
    NetworkUnknown { reason: String },

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
        RootError::Token(pki_core::pkcs11::TokenError::pkcs11(op, e))
    }
}

pub type Result<T, E = RootError> = std::result::Result<T, E>;
