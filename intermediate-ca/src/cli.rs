//! Command-line definitions of `intermediate-ca` (clap only; no behaviour here).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
pub use pki_core::cli::SecretArgs;

/// The online intermediate CA: its key, its certificate, its generations.
#[derive(Parser, Debug)]
#[command(name = "intermediate-ca", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an age X25519 identity file (0600) that will protect CA keys at rest; prints its recipient.
    NewIdentity(NewIdentityArgs),
    /// Bring an existing CA certificate and key (e.g. from the OpenSSL flow) under management.
    Import(ImportArgs),
    /// New intermediate key and CSR, sent to the root as an encrypted request bundle. On a
    /// folder with an active intermediate this stages the next generation (rotation) and leaves
    /// the active one working.
    Request(RequestArgs),
    /// Install the signed intermediate from the root's response bundle and make it active.
    Install(InstallArgs),
    /// Give up the staged generation (a request the root will not answer, or answered wrongly):
    /// deletes its sealed key, CSR and reply identity, and prints every path removed.
    Abandon(AbandonArgs),
    /// Install a newer root CRL from a root ceremony (checked against the pinned root; its CRL
    /// number must exceed the installed one's). A CRL revoking the active intermediate stops
    /// issuance until a new one is installed.
    RootCrl(RootCrlArgs),
    /// Show the generations of a CA folder and which one is active.
    Status(StatusArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write man pages for this tool and its subcommands into a folder.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

// The arguments of each subcommand (plain comments: the variant's doc is its help).

// `intermediate-ca new-identity`
#[derive(Args, Debug)]
pub struct NewIdentityArgs {
    /// Where to write the identity (keep it off the CA machine's backups in clear).
    pub file: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

// `intermediate-ca import`
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The CA certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// The CA private key (PEM, PKCS#8 unencrypted). It is re-encrypted at rest; delete the
    /// original afterwards.
    #[arg(long)]
    pub key: PathBuf,
    /// The CA folder to create.
    #[arg(long)]
    pub dir: PathBuf,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// `intermediate-ca request`
#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The CA folder (created if missing).
    #[arg(long)]
    pub dir: PathBuf,
    /// The root's transport recipient (age1...), as printed by `root-ca init`.
    #[arg(long, value_name = "RECIPIENT", required_unless_present = "to_file")]
    pub to: Option<String>,
    /// A file holding the root's transport recipient (the root's transport.recipient).
    #[arg(long, value_name = "FILE", conflicts_with = "to")]
    pub to_file: Option<PathBuf>,
    /// Where to write the request bundle.
    #[arg(long)]
    pub out: PathBuf,
    /// Common name of the intermediate.
    #[arg(long, default_value = "etcd intermediate CA")]
    pub cn: String,
    /// Key algorithm: p384 (default), p256, ed25519, rsa3072, rsa4096.
    #[arg(long, default_value = "p384")]
    pub key: String,
    /// Replace an existing bundle file.
    #[arg(long)]
    pub force: bool,
    /// Generate the key in this PKCS#11 module's token instead of an age-encrypted file
    /// (the token PIN comes from --pin-file, PKI_TOKEN_PIN_FILE or a prompt).
    #[arg(long, value_name = "MODULE", requires_all = ["token", "key_label"])]
    pub pkcs11_module: Option<PathBuf>,
    /// The token label (with --pkcs11-module).
    #[arg(long, value_name = "LABEL")]
    pub token: Option<String>,
    /// The label of the new key in the token (must not exist yet).
    #[arg(long, value_name = "LABEL")]
    pub key_label: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// `intermediate-ca install`
#[derive(Args, Debug)]
pub struct InstallArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// SHA-256 fingerprint of the root certificate, obtained out of band.
    #[arg(long, value_name = "SHA256")]
    pub root_fingerprint: String,
    /// The response bundle.
    pub response: PathBuf,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// `intermediate-ca abandon`
#[derive(Args, Debug)]
pub struct AbandonArgs {
    /// The CA folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// The request ID of the staged generation, as `status` and `request` print it: you name
    /// what you are deleting.
    #[arg(long, value_name = "ID")]
    pub request: String,
}

// `intermediate-ca root-crl`
#[derive(Args, Debug)]
pub struct RootCrlArgs {
    /// The CA folder (it must hold the pinned root.crt, as enrolled folders do).
    #[arg(long)]
    pub dir: PathBuf,
    /// The root CRL file (PEM or DER), as written by `root-ca crl`.
    pub file: PathBuf,
}

// `intermediate-ca status`
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
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
