//! Errors of the service's set-up and of the agent's client. Refusals of single requests are
//! answers ([`crate::protocol::Refusal`]), not errors of the process.

use std::path::PathBuf;

/// What stops the service from starting, or an agent's request from getting an answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A failure of the CA folder, a key or a certificate.
    #[error(transparent)]
    Core(#[from] pki_core::Error),
    /// A certificate or key file rustls cannot use.
    #[error("{path}: {reason}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A TLS configuration rustls refused.
    #[error("TLS set-up: {0}")]
    TlsSetup(String),
    /// The service's own certificate does not chain to the CA folder's root.
    #[error(
        "the service certificate {path} does not chain to this CA's root for serverAuth: {reason}"
    )]
    ServiceCertNotOurs {
        /// The certificate file.
        path: PathBuf,
        /// The path-building error.
        reason: String,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The service could not be reached, or the connection broke.
    #[error("cannot reach the service at {url}: {reason}")]
    Unreachable {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The service answered with a refusal.
    #[error("the service refused ({status} {error}): {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The refusal's code.
        error: String,
        /// The refusal's sentence.
        reason: String,
        /// Seconds the service asked to wait (`Retry-After`), when it said.
        retry_after: Option<u64>,
    },
    /// A service URL that is not `https://HOST:PORT`.
    #[error("service URL '{url}': {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The service's answer was not what the protocol says.
    #[error("unexpected answer from the service: {0}")]
    BadAnswer(String),
}

// The library's concept errors reach this tool through its `Error` (converted at the edge).
impl From<pki_core::keys::KeyError> for ServiceError {
    fn from(e: pki_core::keys::KeyError) -> Self {
        Self::Core(e.into())
    }
}

impl From<pki_core::x509::X509Error> for ServiceError {
    fn from(e: pki_core::x509::X509Error) -> Self {
        Self::Core(e.into())
    }
}

impl ServiceError {
    /// Whether trying again later may succeed (the service unreachable, busy or failing),
    /// rather than a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            ServiceError::Unreachable { .. } => true,
            ServiceError::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Seconds the service asked to wait before the next request, when it said.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ServiceError::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The refusal's code when the service refuses this leaf for good (revoked, superseded,
    /// unknown to the ledger, expired): asking again will not help; the host must re-enrol.
    pub fn permanent_refusal(&self) -> Option<&str> {
        match self {
            ServiceError::Refused { status, error, .. }
                if (*status == 401 || *status == 403)
                    && matches!(
                        error.as_str(),
                        "revoked" | "superseded" | "unknown-leaf" | "expired"
                    ) =>
            {
                Some(error)
            }
            _ => None,
        }
    }
}

/// Result of the service crate.
pub type ServiceResult<T> = std::result::Result<T, ServiceError>;
