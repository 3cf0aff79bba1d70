//! What can go wrong with keys: at rest (age, passphrases, PEM), their secrets (identity
//! files, PINs), generation and signatures. Each message says what to do next and never
//! carries a secret.

use std::path::PathBuf;

use crate::error::KeyFileProblem;

/// Key errors, wrapped by [`crate::Error`] at the library's edge.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A private key (in a file or a token) is not the key of the certificate it goes with.
    /// Holds which key and certificate.
    #[error("the private key does not match the certificate's public key ({0}); check that you passed the right pair")]
    KeyMismatch(String),

    /// A sealed (age-encrypted) key file cannot be decrypted: the wrong identity or
    /// passphrase, the wrong kind of secret, or a damaged file.
    #[error("cannot decrypt {path}: {reason}")]
    KeyDecrypt {
        /// The sealed key file.
        path: PathBuf,
        /// Why it could not be decrypted, and what to pass instead.
        reason: String,
    },

    /// No identity file, passphrase file, environment variable or terminal prompt gave the
    /// secret that unlocks a key at rest.
    #[error("no way to unlock the key at rest: no identity or passphrase file was given, PKI_AGE_IDENTITY and PKI_PASSPHRASE_FILE are unset, and there is no terminal to prompt on")]
    NoKeySecret,

    /// No PIN file was given, `PKI_TOKEN_PIN_FILE` is unset and there is no terminal.
    #[error("no token PIN")]
    NoTokenPin,

    /// A key at rest was given an identity, but it is protected by a passphrase.
    #[error("cannot decrypt {path}: this key is protected by a passphrase, not an age identity")]
    KeyNeedsPassphrase {
        /// The key file.
        path: PathBuf,
    },

    /// A key at rest was given a passphrase, but it is encrypted to an age identity.
    #[error("cannot decrypt {path}: this key is encrypted to an age identity, not a passphrase")]
    KeyNeedsIdentity {
        /// The key file.
        path: PathBuf,
    },

    /// A new passphrase below the minimum length.
    #[error("the passphrase must be at least {min} characters")]
    ShortPassphrase {
        /// The minimum length.
        min: usize,
    },

    /// age could not encrypt or decrypt a bundle or a key at rest.
    #[error("age {op} failed: {reason}")]
    Age {
        /// `encryption` or `decryption`.
        op: &'static str,
        /// What age reported.
        reason: String,
    },

    /// A file holding a secret (PIN, passphrase, age identity) gives the group or others some
    /// access to it.
    #[error("{what} file {path} can be read or written by others (mode {mode:04o}); it holds a secret, so it is refused as ssh refuses an open key: run `chmod 600 {path}` (and check who has already read it)")]
    SecretFileOpen {
        /// What the file holds (`passphrase`, `age identity`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },

    /// A text that is not an age X25519 recipient (`age1...`).
    #[error("recipient: '{recipient}' is not an age X25519 recipient ({detail})")]
    BadRecipient {
        /// The text as given, trimmed.
        recipient: String,
        /// age's complaint.
        detail: String,
    },

    /// A PEM private key that is not an unencrypted PKCS#8 key this toolkit can use.
    #[error("{what}: {problem}")]
    BadKeyFile {
        /// The key, as named in the message.
        what: String,
        /// What is wrong with it.
        problem: KeyFileProblem,
    },

    /// A CA key at rest whose decrypted content is not text.
    #[error("{}: the decrypted key is not PEM text", .path.display())]
    KeyNotText {
        /// The sealed key file.
        path: PathBuf,
    },

    /// Signing a certificate, CRL or CSR failed (a token's error, or rcgen's).
    #[error("signing the {what} with {signer} failed: {reason}")]
    SigningFailed {
        /// What was being signed: `certificate`, `CRL`, `CSR`.
        what: &'static str,
        /// The signing key, as its [`Signer::describe`](crate::keys::signer::Signer::describe) says.
        signer: String,
        /// The token's or rcgen's reason.
        reason: String,
    },

    /// Generating a new key in software failed.
    #[error("generating a {algorithm} key failed: {reason}")]
    KeyGeneration {
        /// The algorithm asked for, as `p256`, `rsa3072`, ...
        algorithm: String,
        /// aws-lc's reason.
        reason: String,
    },

    /// A signature that does not verify with the public key it is checked against.
    #[error("the signature does not verify")]
    SignatureInvalid,

    /// An age identity file has no `AGE-SECRET-KEY-1` line, or an invalid one.
    #[error("age identity {path}: {reason}")]
    Identity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
