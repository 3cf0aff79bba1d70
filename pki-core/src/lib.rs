//! The library behind `root-ca`, `intermediate-ca` and `issuer`: certificate profiles, key
//! algorithms, signers, keys at rest, the ledger and verification. It never prints or exits;
//! the binaries do.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod batch;
pub mod bundle;
pub mod ca_dir;
pub mod certs;
pub mod cfssl;
pub mod crl;
pub mod csr;
pub mod error;
pub mod etcd;
pub mod etcd_check;
mod etcd_values;
pub mod failpoint;
pub mod issue;
pub mod keyfile;
pub mod ledger;
pub mod lifecycle;
pub mod output;
pub mod pkcs11;
pub mod policy;
pub mod profile;
pub mod root_crl;
pub mod serial;
pub mod sigcheck;
pub mod signer;
pub mod unlock;
pub mod validity;
pub mod verify;

pub use error::{Error, Result};
