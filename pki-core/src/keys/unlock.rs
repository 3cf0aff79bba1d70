//! Where the secret that unlocks a key at rest comes from. Never a flag value: an identity
//! *file* (`--identity` or `PKI_AGE_IDENTITY`, a path), a passphrase file
//! (`--passphrase-file` or `PKI_PASSPHRASE_FILE`), or a prompt the binary supplies.

use crate::keys::KeyError;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::keyfile::KeySecret;

/// Environment variable naming an age identity file.
pub const ENV_IDENTITY: &str = "PKI_AGE_IDENTITY";
/// Environment variable naming a file that holds the passphrase.
pub const ENV_PASSPHRASE_FILE: &str = "PKI_PASSPHRASE_FILE";

/// Resolves the key secret in order: explicit identity file, explicit passphrase file,
/// `PKI_AGE_IDENTITY`, `PKI_PASSPHRASE_FILE`, then `prompt` (which returns None off a TTY).
pub fn resolve(
    identity: Option<&Path>,
    passphrase_file: Option<&Path>,
    prompt: impl FnOnce() -> Result<Option<Zeroizing<String>>>,
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
    match prompt()? {
        Some(p) => KeySecret::passphrase(p),
        None => Err(KeyError::NoKeySecret.into()),
    }
}

fn passphrase_from_file(path: &Path) -> Result<KeySecret> {
    let text = crate::output::read_secret_file(path, "passphrase")?;
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_string());
    KeySecret::passphrase(line)
}

/// Asks for a passphrase on the controlling terminal (not stdout, never echoed). Returns None
/// when there is no terminal, so scripts get [`KeyError::NoKeySecret`] instead of a hang.
pub fn prompt_on_tty(label: &str, confirm: bool) -> Result<Option<Zeroizing<String>>> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let Ok(first) = rpassword::prompt_password(format!("{label}: ")) else {
        return Ok(None);
    };
    let first = Zeroizing::new(first);
    if confirm {
        let Ok(again) = rpassword::prompt_password(format!("{label} (again): ")) else {
            return Ok(None);
        };
        if *Zeroizing::new(again) != *first {
            return Err(Error::EntriesDiffer {
                what: label.to_string(),
            });
        }
    }
    Ok(Some(first))
}

/// Environment variable naming a file that holds the token PIN of a token-held CA key.
pub const ENV_TOKEN_PIN_FILE: &str = "PKI_TOKEN_PIN_FILE";

/// The token PIN: `pin_file`, else `PKI_TOKEN_PIN_FILE`, else a prompt.
pub fn token_pin(pin_file: Option<&Path>) -> Result<Zeroizing<String>> {
    let from_file = |p: &Path| -> Result<Zeroizing<String>> {
        let text = crate::output::read_secret_file(p, "PIN")?;
        Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ))
    };
    if let Some(p) = pin_file {
        return from_file(p);
    }
    if let Some(p) = std::env::var_os(ENV_TOKEN_PIN_FILE).filter(|v| !v.is_empty()) {
        return from_file(Path::new(&p));
    }
    prompt_on_tty("Token user PIN", false)?.ok_or(KeyError::NoTokenPin.into())
}
