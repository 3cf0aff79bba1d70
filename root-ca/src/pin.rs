//! Where the token PIN comes from: `--pin-file`, the `ROOT_CA_PIN` environment variable, or a
//! prompt on the terminal; or, once the root is under custody, from M custodians' shares
//! (`--custodian-identity`, or their identity files' paths typed in turn at a prompt). Never a
//! flag value, never logged, zeroized after use.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::custody;
use crate::error::{Result, RootError};
use crate::state::RootDir;

pub const ENV_PIN: &str = "ROOT_CA_PIN";
pub const ENV_SO_PIN: &str = "ROOT_CA_SO_PIN";

/// The token's security officer PIN, which only `backup` needs (the SO imports the trusted
/// wrap key): `--so-pin-file`, `ROOT_CA_SO_PIN`, or a prompt. It is not under custody: the SO
/// is a party of its own to every backup.
pub fn resolve_so(so_pin_file: Option<&Path>) -> Result<Zeroizing<String>> {
    if let Some(p) = so_pin_file {
        let text = pki_core::output::read_secret_file(p, "SO PIN")?;
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Ok(v) = std::env::var(ENV_SO_PIN) {
        if !v.is_empty() {
            return Ok(Zeroizing::new(v));
        }
    }
    pki_core::keys::prompt_on_tty("Token security officer (SO) PIN", false)?
        .ok_or(RootError::NoSoPin)
}

/// The PIN an operator holds: the file, the environment, or a prompt.
pub fn resolve(pin_file: Option<&Path>) -> Result<Zeroizing<String>> {
    if let Some(p) = pin_file {
        let text = pki_core::output::read_secret_file(p, "PIN")?;
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or("").to_string(),
        ));
    }
    if let Ok(v) = std::env::var(ENV_PIN) {
        if !v.is_empty() {
            return Ok(Zeroizing::new(v));
        }
    }
    pki_core::keys::prompt_on_tty("Token user PIN", false)?.ok_or(RootError::NoPin)
}

/// Who unlocked the token: the operator's PIN source, or a custody quorum.
pub enum PinSource {
    Operator,
    Custody {
        generation: u32,
        custodians: Vec<String>,
    },
}

/// The PIN of the token that holds `root`'s key. Under custody the operator's sources are
/// refused (a PIN file beside a custody split would undo it) and M custodians must take part.
pub fn for_root(
    root: &RootDir,
    pin_file: Option<&Path>,
    identities: &[PathBuf],
) -> Result<(Zeroizing<String>, PinSource)> {
    if !custody::is_active(root) {
        return Ok((resolve(pin_file)?, PinSource::Operator));
    }
    if pin_file.is_some() || std::env::var_os(ENV_PIN).is_some_and(|v| !v.is_empty()) {
        return Err(RootError::CustodyPinSource {
            path: custody::state_path(root),
        });
    }
    let state = custody::load(root)?;
    let quorum = custody::gather(root, &state, identities)?;
    Ok((
        quorum.secret.token_pin(),
        PinSource::Custody {
            generation: state.generation,
            custodians: quorum.custodians,
        },
    ))
}
