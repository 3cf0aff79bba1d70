//! Private keys and who signs with them: key algorithms, the [`Signer`] trait, keys at rest in files
//! (age-encrypted or passphrase-protected PKCS#8), keys in a PKCS#11 token, and unlocking them.

// The submodules are private to the crate: other crates use the items re-exported here.
pub(crate) mod algorithm;
mod ca_key;
mod error;
pub(crate) mod keyfile;
pub(crate) mod pkcs11;
pub(crate) mod sigcheck;
pub(crate) mod signer;
pub(crate) mod unlock;

pub use algorithm::KeyAlgorithm;
pub use ca_key::CaKey;
pub use error::KeyError;
pub use keyfile::{new_identity_file, KeySecret};
pub use pkcs11::{
    default_module, is_softhsm, pkcs11_return_value, Capabilities, CeremonyNeed, KeyAttributes,
    KeyBackup, KeyPolicy, PublicParts, RawTokenInfo, SealScheme, Token, TokenConfig, TokenError,
    TokenKey, Verdict, CUSTODY_PIN_LEN,
};
pub use sigcheck::{refuse_weak_signature, verify as verify_signature, verify_certificate};
pub use signer::{FileKey, Signer};
pub use unlock::{
    prompt_on_tty, resolve, token_pin, ENV_IDENTITY, ENV_PASSPHRASE_FILE, ENV_TOKEN_PIN_FILE,
};
