//! Private keys and who signs with them: key algorithms, the [`signer::Signer`] trait, keys at rest in files
//! (age-encrypted or passphrase-protected PKCS#8), keys in a PKCS#11 token, and unlocking them.

pub mod algorithm;
mod ca_key;
pub mod keyfile;
pub mod pkcs11;
pub mod sigcheck;
pub mod signer;
pub mod unlock;

pub use ca_key::CaKey;
