//! Private keys and who signs with them: the [`signer::Signer`] trait, keys at rest in files
//! (age-encrypted or passphrase-protected PKCS#8), keys in a PKCS#11 token, and unlocking them.

pub mod keyfile;
pub mod pkcs11;
pub mod signer;
pub mod unlock;
