//! Command-line definitions of `root-ca` (clap only).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The offline root CA: key in a PKCS#11 token, every operation a reviewed ceremony file.
///
/// The token PIN comes from --pin-file, the ROOT_CA_PIN environment variable, or a prompt;
/// once the root is under custody (`root-ca custody split`), from M custodians' shares.
#[derive(Parser, Debug)]
#[command(name = "root-ca", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Init,
    Sign,
    Revoke,
    Crl,
    CrossSign,
    Custody,
    Backup,
    Restore,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The ceremony file (TOML).
    pub file: PathBuf,
    /// Show what would be generated or signed, writing nothing and never using the root key.
    /// The token is not opened, except by `init` (it prints the token's capability check,
    /// generating nothing) and by `sign` with a request bundle: the bundle is encrypted to the
    /// transport identity, which only the token can unseal. Both need the PIN. The serial and
    /// validity dates shown are drawn again at signing time.
    #[arg(long)]
    pub dry_run: bool,
    /// File whose first line is the token user PIN (else ROOT_CA_PIN, else a prompt). Refused
    /// once the root is under custody; `restore` reads the fresh token's PIN from it.
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    /// A custodian's age identity file, to decrypt their share of the custody secret; once per
    /// custodian taking part (M of them). Without it, on a terminal, each custodian is asked
    /// for the path of their identity file in turn.
    #[arg(long = "custodian-identity", value_name = "FILE")]
    pub custodian_identities: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a commented ceremony file to start from.
    Template { kind: Kind },
    /// Generate the root key in the token and self-sign the root.
    Init(RunArgs),
    /// Sign an intermediate CA certificate from a request.
    Sign(RunArgs),
    /// Mark an intermediate revoked (the next CRL lists it).
    Revoke(RunArgs),
    /// Sign the root CRL in the token.
    Crl(RunArgs),
    /// Root rollover: certify another root's key with this root's key (new-with-old or
    /// old-with-new).
    CrossSign(RunArgs),
    /// M-of-N custody of the token PIN and the backup wrap key.
    Custody {
        #[command(subcommand)]
        command: CustodyCommand,
    },
    /// Write the root key, wrapped in the token under the custody wrap key, to a backup file.
    Backup(BackupArgs),
    /// Unwrap a backup into a fresh token, which then holds the same root key.
    Restore(RunArgs),
    /// What a PKCS#11 token can do for each ceremony, before anything is generated.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Ceremony log commands.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write man pages for this tool and its subcommands into a folder.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// File whose first line is the token's security officer PIN: the SO imports the trusted
    /// wrap key (else ROOT_CA_SO_PIN, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub so_pin_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CustodyCommand {
    /// First split: replace the token PIN by one held M-of-N by the custodians.
    Split(RunArgs),
    /// A new set of custodians or threshold; M custodians of the current split take part.
    Resplit(RunArgs),
    /// A custodian checks their share against the root's commitments, without revealing it.
    Verify {
        /// The root's state folder.
        #[arg(long, value_name = "DIR")]
        root_dir: PathBuf,
        /// The custodian's age identity file.
        #[arg(long, value_name = "FILE")]
        identity: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Open the token an init ceremony file names and print, for each ceremony, whether the
    /// token can run it and why (mechanisms, key sizes, PIN lengths, key templates tried on
    /// session objects). Generates nothing; fails when the token cannot finish that init.
    Check(TokenCheckArgs),
}

#[derive(clap::Args, Debug)]
pub struct TokenCheckArgs {
    /// An init ceremony file: its [token] names the module, token and key label, its [key] the
    /// algorithm and whether the key must be backed up.
    pub file: PathBuf,
    /// File whose first line is the token user PIN (else ROOT_CA_PIN, else a prompt): the
    /// templates are tried on session objects, which need a login.
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Check the hash chain of the ceremony log in a root folder.
    Verify { dir: PathBuf },
}

/// The hidden doc-generation subcommands; None for every other command.
pub fn generate_docs(command: &Command) -> Option<std::io::Result<()>> {
    use pki_core::cli::generated_docs;
    match command {
        Command::Completions { shell } => Some(generated_docs::completions::<Cli>(*shell)),
        Command::Manpages { dir } => Some(generated_docs::manpages::<Cli>(dir)),
        _ => None,
    }
}
