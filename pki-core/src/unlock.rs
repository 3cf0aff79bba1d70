//! Where the secret that unlocks a key at rest comes from. Never a flag value: an identity
//! *file* (`--identity` or `PKI_AGE_IDENTITY`, a path), a passphrase file
//! (`--passphrase-file` or `PKI_PASSPHRASE_FILE`), or a prompt the binary supplies.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keyfile::KeySecret;
use crate::output;

/// Environment variable naming an age identity file.
pub const ENV_IDENTITY: &str = "PKI_AGE_IDENTITY";
/// Environment variable naming a file that holds the passphrase.
pub const ENV_PASSPHRASE_FILE: &str = "PKI_PASSPHRASE_FILE";

/// Resolves the key secret in order: explicit identity file, explicit passphrase file,
/// `PKI_AGE_IDENTITY`, `PKI_PASSPHRASE_FILE`, then `prompt` (which returns None off a TTY).
pub fn resolve(
    identity: Option<&Path>,
    passphrase_file: Option<&Path>,
    prompt: impl FnOnce() -> Option<Zeroizing<String>>,
) -> Result<KeySecret> {
    if let Some(p) = identity {
        return KeySecret::from_identity_file(p);
    }
    if let Some(p) = passphrase_file {
        return passphrase_from_file(p);
    }
    if let Some(p) = std::env::var_os(ENV_IDENTITY).filter(|v| !v.is_empty()) {
        return KeySecret::from_identity_file(&PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os(ENV_PASSPHRASE_FILE).filter(|v| !v.is_empty()) {
        return passphrase_from_file(&PathBuf::from(p));
    }
    match prompt() {
        Some(p) => KeySecret::passphrase(p),
        None => Err(Error::NoKeySecret),
    }
}

fn passphrase_from_file(path: &Path) -> Result<KeySecret> {
    let text = Zeroizing::new(output::read_to_string(path)?);
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_string());
    KeySecret::passphrase(line)
}
