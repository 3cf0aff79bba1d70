//! Where the secret that unlocks a key at rest comes from. Never a flag value: an identity
//! *file* (`--identity` or `PKI_AGE_IDENTITY`, a path), a passphrase file
//! (`--passphrase-file` or `PKI_PASSPHRASE_FILE`), or a prompt the binary supplies.

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

/// Reads a file holding a secret (PIN, passphrase, age identity), refusing it when its mode
/// gives the group or others any access: someone else may have read it, or may replace it.
/// The mode is taken from the open handle, so the file checked is the file read.
pub fn read_secret_file(path: &Path, what: &'static str) -> Result<Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mode = f
        .metadata()
        .map_err(|e| Error::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::SecretFileOpen {
            what,
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::input(path.display().to_string(), "not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_string()))
}

fn passphrase_from_file(path: &Path) -> Result<KeySecret> {
    let text = read_secret_file(path, "passphrase")?;
    let line = Zeroizing::new(text.lines().next().unwrap_or("").to_string());
    KeySecret::passphrase(line)
}

/// Asks for a passphrase on the controlling terminal (not stdout, never echoed). Returns None
/// when there is no terminal, so scripts get [`Error::NoKeySecret`] instead of a hang.
pub fn prompt_on_tty(label: &str, confirm: bool) -> Option<Zeroizing<String>> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let first = Zeroizing::new(rpassword::prompt_password(format!("{label}: ")).ok()?);
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password(format!("{label} (again): ")).ok()?);
        if *again != *first {
            return None;
        }
    }
    Some(first)
}

/// The flags every command that unlocks (or locks) a CA key takes. Secrets never come from a
/// flag value, only from files, the environment or a terminal prompt.
#[cfg(feature = "cli")]
#[derive(clap::Args, Debug, Default)]
pub struct SecretArgs {
    /// age identity file that unlocks the CA key (env: PKI_AGE_IDENTITY).
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// File whose first line is the passphrase (env: PKI_PASSPHRASE_FILE). Without either,
    /// you are prompted on a terminal.
    #[arg(long, value_name = "FILE", conflicts_with = "identity")]
    pub passphrase_file: Option<PathBuf>,
    /// File whose first line is the token PIN, when the CA key is in a PKCS#11 token
    /// (env: PKI_TOKEN_PIN_FILE; else a prompt).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// Environment variable naming a file that holds the token PIN of a token-held CA key.
pub const ENV_TOKEN_PIN_FILE: &str = "PKI_TOKEN_PIN_FILE";

/// The token PIN: `pin_file`, else `PKI_TOKEN_PIN_FILE`, else a prompt.
pub fn token_pin(pin_file: Option<&Path>) -> Result<Zeroizing<String>> {
    let from_file = |p: &Path| -> Result<Zeroizing<String>> {
        let text = read_secret_file(p, "PIN")?;
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
    prompt_on_tty("Token user PIN", false).ok_or_else(|| {
        Error::Policy("no token PIN: pass --pin-file FILE or set PKI_TOKEN_PIN_FILE".into())
    })
}

#[cfg(feature = "cli")]
impl SecretArgs {
    /// Unlocks the active intermediate of `ca`, asking for what its key needs.
    pub fn unlock_ca(
        &self,
        ca: &crate::ca::folder::CaDir,
    ) -> Result<crate::ca::issuing::IssuingCa<crate::keys::signer::CaKey>> {
        crate::ca::issuing::IssuingCa::unlock(
            ca,
            || self.resolve("Passphrase for the CA key", false),
            || token_pin(self.pin_file.as_deref()),
        )
    }

    pub fn resolve(&self, label: &str, confirm: bool) -> Result<KeySecret> {
        resolve(
            self.identity.as_deref(),
            self.passphrase_file.as_deref(),
            || prompt_on_tty(label, confirm),
        )
    }
}

/// Completions and man pages come from the clap definitions, never written by hand: the
/// hidden `completions SHELL` and `manpages DIR` subcommands of every tool call these.
#[cfg(feature = "cli")]
pub mod generated_docs {
    use std::path::Path;

    pub fn completions<C: clap::CommandFactory>(
        shell: clap_complete::Shell,
    ) -> std::io::Result<()> {
        let mut cmd = C::command();
        let name = cmd.get_name().to_string();
        clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
        Ok(())
    }

    pub fn manpages<C: clap::CommandFactory>(dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        clap_mangen::generate_to(C::command(), dir)
    }
}

#[cfg(test)]
mod secret_file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_file_is_read_only_when_no_one_else_can_open_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "1234\n").unwrap();
        for (mode, accepted) in [
            (0o600, true),
            (0o400, true),
            (0o700, true),
            (0o644, false),
            (0o640, false),
            (0o604, false),
            (0o620, false),
            (0o602, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            match read_secret_file(&p, "PIN") {
                Ok(text) => {
                    assert!(accepted, "mode {mode:o} accepted");
                    assert_eq!(text.as_str(), "1234\n");
                }
                Err(e) => {
                    assert!(!accepted, "mode {mode:o} refused: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("(mode {mode:04o})")), "{msg}");
                    assert!(msg.contains(&format!("chmod 600 {}", p.display())), "{msg}");
                }
            }
        }
    }
}
