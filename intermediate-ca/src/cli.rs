//! Command-line definitions of `intermediate-ca` (clap only; no behaviour here).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
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
    NewIdentity {
        /// Where to write the identity (keep it off the CA machine's backups in clear).
        file: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Bring an existing CA certificate and key (e.g. from the OpenSSL flow) under management.
    Import {
        /// The CA certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// The CA private key (PEM, PKCS#8 unencrypted). It is re-encrypted at rest; delete the
        /// original afterwards.
        #[arg(long)]
        key: PathBuf,
        /// The CA folder to create.
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// New intermediate key and CSR, sent to the root as an encrypted request bundle. On a
    /// folder with an active intermediate this stages the next generation (rotation) and leaves
    /// the active one working.
    Request {
        /// The CA folder (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// The root's transport recipient (age1...), as printed by `root-ca init`.
        #[arg(long, value_name = "RECIPIENT", required_unless_present = "to_file")]
        to: Option<String>,
        /// A file holding the root's transport recipient (the root's transport.recipient).
        #[arg(long, value_name = "FILE", conflicts_with = "to")]
        to_file: Option<PathBuf>,
        /// Where to write the request bundle.
        #[arg(long)]
        out: PathBuf,
        /// Common name of the intermediate.
        #[arg(long, default_value = "etcd intermediate CA")]
        cn: String,
        /// Key algorithm: p384 (default), p256, ed25519, rsa3072, rsa4096.
        #[arg(long, default_value = "p384")]
        key: String,
        /// Replace an existing bundle file.
        #[arg(long)]
        force: bool,
        /// Generate the key in this PKCS#11 module's token instead of an age-encrypted file
        /// (the token PIN comes from --pin-file, PKI_TOKEN_PIN_FILE or a prompt).
        #[arg(long, value_name = "MODULE", requires_all = ["token", "key_label"])]
        pkcs11_module: Option<PathBuf>,
        /// The token label (with --pkcs11-module).
        #[arg(long, value_name = "LABEL")]
        token: Option<String>,
        /// The label of the new key in the token (must not exist yet).
        #[arg(long, value_name = "LABEL")]
        key_label: Option<String>,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Install the signed intermediate from the root's response bundle and make it active.
    Install {
        #[arg(long)]
        dir: PathBuf,
        /// SHA-256 fingerprint of the root certificate, obtained out of band.
        #[arg(long, value_name = "SHA256")]
        root_fingerprint: String,
        /// The response bundle.
        response: PathBuf,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Give up the staged generation (a request the root will not answer, or answered wrongly):
    /// deletes its sealed key, CSR and reply identity, and prints every path removed.
    Abandon {
        /// The CA folder.
        #[arg(long)]
        dir: PathBuf,
        /// The request ID of the staged generation, as `status` and `request` print it: you name
        /// what you are deleting.
        #[arg(long, value_name = "ID")]
        request: String,
    },
    /// Install a newer root CRL from a root ceremony (checked against the pinned root; its CRL
    /// number must exceed the installed one's). A CRL revoking the active intermediate stops
    /// issuance until a new one is installed.
    RootCrl {
        /// The CA folder (it must hold the pinned root.crt, as enrolled folders do).
        #[arg(long)]
        dir: PathBuf,
        /// The root CRL file (PEM or DER), as written by `root-ca crl`.
        file: PathBuf,
    },
    /// Show the generations of a CA folder and which one is active.
    Status {
        #[arg(long)]
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write man pages for this tool and its subcommands into a folder.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
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
