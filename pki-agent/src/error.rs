//! The agent's errors, each with what to do next.

use std::path::PathBuf;

/// What stops the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file, key or certificate problem.
    #[error(transparent)]
    Core(#[from] pki_core::Error),
    /// The service could not be reached or refused.
    #[error(transparent)]
    Service(#[from] pki_service::ServiceError),
    /// The configuration file is wrong.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The field at fault and why.
        reason: String,
    },
    /// The service sent a certificate the agent will not install.
    #[error(
        "refused the certificate the service sent for {role}: {reason}; nothing was installed"
    )]
    BadCertificate {
        /// The leaf's role.
        role: String,
        /// Why.
        reason: String,
    },
    /// The service sent a CRL the agent will not install.
    #[error("refused the CRL the service sent: {reason}; the installed CRL is unchanged")]
    BadCrl {
        /// Why.
        reason: String,
    },
    /// A CSR for a new key could not be made.
    #[error("could not make a CSR for the new key: {0}")]
    Csr(String),
    /// Enrolment would replace files that exist.
    #[error("{path} exists: this host is enrolled already (the agent renews it); after a revocation, a supersession or an expiry (`pki-agent status` exits 3 or shows it expired), `pki-agent enrol --replace` with a new token swaps in new leaves")]
    AlreadyEnrolled {
        /// The file.
        path: PathBuf,
    },
    /// A leaf file of the configuration is missing.
    #[error("{path} is missing: enrol first (pki-agent enrol --token-file FILE)")]
    NotEnrolled {
        /// The file.
        path: PathBuf,
    },
}

// The library's concept errors reach this tool through its `Error` (converted at the edge).
impl From<pki_core::keys::KeyError> for AgentError {
    fn from(e: pki_core::keys::KeyError) -> Self {
        Self::Core(e.into())
    }
}

impl From<pki_core::x509::X509Error> for AgentError {
    fn from(e: pki_core::x509::X509Error) -> Self {
        Self::Core(e.into())
    }
}

/// Result of the agent.
pub type AgentResult<T> = std::result::Result<T, AgentError>;
