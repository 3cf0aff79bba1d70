//! The library behind `root-ca`, `intermediate-ca` and `issuer`: certificate profiles, key
//! algorithms, signers, keys at rest, the ledger and verification. It never prints or exits;
//! the binaries do.
// Denied everywhere but `keys/pkcs11/raw.rs`, the few PKCS#11 calls cryptoki's safe API
// cannot make (see that file); nothing else may opt out.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bundle;
pub mod ca;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod etcd;
pub mod failpoint;
pub mod group_sync;
pub mod keys;
pub mod oid;
pub mod output;
pub mod x509;

pub use error::{Error, Result};
