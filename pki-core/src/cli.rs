//! The command-line pieces the three tools share (cargo feature `cli`): the secret flags and
//! the generated completions and man pages.

use crate::keys::KeyError;
use std::path::PathBuf;

use crate::ca::folder::CaDir;
use crate::ca::issuing::IssuingCa;
use crate::error::Result;
use crate::keys::keyfile::KeySecret;
use crate::keys::unlock::{prompt_on_tty, resolve, token_pin};
use crate::keys::CaKey;

/// The flags every command that unlocks (or locks) a CA key takes. Secrets never come from a
/// flag value, only from files, the environment or a terminal prompt.
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

impl SecretArgs {
    /// Unlocks the active intermediate of `ca`, asking for what its key needs.
    pub fn unlock_ca(&self, ca: &CaDir) -> Result<IssuingCa<CaKey>> {
        IssuingCa::unlock(
            ca,
            || self.resolve("Passphrase for the CA key", false),
            || token_pin(self.pin_file.as_deref()),
        )
    }

    /// The secret that unlocks a key at rest: `--identity`, `--passphrase-file`, the environment,
    /// then a terminal prompt labelled `label` (asked twice when `confirm`). Fails with
    /// [`KeyError::NoKeySecret`] when none of them gives one.
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
pub mod generated_docs {
    use std::path::Path;

    /// Writes the completion script of command `C` for `shell` to stdout.
    pub fn completions<C: clap::CommandFactory>(
        shell: clap_complete::Shell,
    ) -> std::io::Result<()> {
        let mut cmd = C::command();
        let name = cmd.get_name().to_string();
        clap_complete::generate(shell, &mut cmd, name, &mut std::io::stdout());
        Ok(())
    }

    /// Writes the man pages of command `C` and of each of its subcommands into `dir`, creating the
    /// folder if needed.
    pub fn manpages<C: clap::CommandFactory>(dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        clap_mangen::generate_to(C::command(), dir)
    }
}

/// The message for an error whose next step is the same in every tool that unlocks a CA key:
/// the secrets [`SecretArgs`] supplies, `--force` for an existing output, installing a root
/// CRL. `None` for any other error (each tool words those itself).
pub fn common_message(e: &crate::Error) -> Option<String> {
    use crate::Error;
    Some(match e {
        crate::Error::Key(KeyError::NoKeySecret) => format!(
            "{e}; pass --identity FILE or --passphrase-file FILE (or set PKI_AGE_IDENTITY or PKI_PASSPHRASE_FILE), or run on a terminal to be prompted"
        ),
        crate::Error::Key(KeyError::KeyNeedsPassphrase { .. }) => {
            format!("{e}; pass --passphrase-file FILE (or run on a terminal to be prompted)")
        }
        crate::Error::Key(KeyError::KeyNeedsIdentity { .. }) => format!("{e}; pass --identity FILE"),
        crate::Error::Key(KeyError::NoTokenPin) => format!("{e}: pass --pin-file FILE or set PKI_TOKEN_PIN_FILE"),
        Error::OutputExists { .. } => format!("{e} (pass --force to replace it)"),
        Error::RootCrlUnusable { .. } => {
            format!("{e}. Install a good one with `intermediate-ca root-crl --dir CA_DIR FILE`")
        }
        _ => return None,
    })
}
