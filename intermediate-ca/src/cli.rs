//! Command-line definitions of `intermediate-ca` (clap only; no behaviour here).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
pub use pki_core::unlock::SecretArgs;

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
    /// Show the generations of a CA folder and which one is active.
    Status {
        #[arg(long)]
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}
