//! Where the token PIN comes from: `--pin-file`, the `ROOT_CA_PIN` environment variable, or a
//! prompt on the terminal. Never a flag value, never logged, zeroized after use.

use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Result, RootError};

pub const ENV_PIN: &str = "ROOT_CA_PIN";

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
