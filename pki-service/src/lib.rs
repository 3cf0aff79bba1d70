//! The online issuing service of a CA folder (`issuer serve`) and the HTTPS client its agents
//! use (`pki-agent`).
//!
//! - [`protocol`]: the requests and answers both sides exchange, and their paths.
//! - [`server`]: the service: mutual TLS, renewal, enrolment with one-time tokens, CRLs,
//!   health and metrics, per-identity authorisation and rate limits, an append-only audit log.
//! - [`client`]: one request over mutual TLS, as an agent makes it.
//! - [`tls`]: reading certificates and keys into rustls, and the two TLS configurations.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod error;
pub mod protocol;
pub mod server;
pub mod tls;

pub use error::{ServiceError, ServiceResult};
