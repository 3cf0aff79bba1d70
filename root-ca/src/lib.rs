//! The offline root CA. Its key is generated in a PKCS#11 token and only ever used there;
//! every operation is a reviewed ceremony file. No networking code is linked in.
#![forbid(unsafe_code)]

pub mod airgap;
pub mod ceremonies;
pub mod ceremony;
pub mod error;
pub mod log;
pub mod pin;
pub mod state;

/// The PKCS#11 signer lives in pki-core (the intermediate can keep its key in a token too).
pub use pki_core::pkcs11;
