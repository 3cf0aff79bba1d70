//! `pki-agent`: keeps the leaves of one etcd member or client host current through
//! `issuer serve`, and its CRL file. The keys never leave the host.
//!
//! - [`config`]: the TOML file `issuer etcd` writes per member and client.
//! - [`agent`]: enrolment, renewal, confirmation, CRL fetching.
//! - [`install`]: key and certificate switched together, in one rename.
//! - [`crl`]: the checks a CRL passes before it is installed.
//! - [`run`]: one pass, and the daemon loop with backoff.
//! - [`status`]: what `status --json` prints.
//! - [`trust`]: the intermediates and root CRL an agent trusts beyond its root.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod config;
pub mod crl;
pub mod error;
pub mod install;
pub mod run;
pub mod state;
pub mod status;
pub mod trust;
