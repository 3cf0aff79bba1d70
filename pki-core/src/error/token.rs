//! What can go wrong with a PKCS#11 token. Each message says what to check next; none
//! carries the PIN.

use std::path::PathBuf;

/// Errors of a PKCS#11 token. Each says what to check next; none carries the PIN.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The PKCS#11 module is missing, cannot be loaded, or fails to initialise.
    #[error("cannot load the PKCS#11 module {module}: {reason}")]
    Module {
        /// The module's path.
        module: PathBuf,
        /// Why it could not be used.
        reason: String,
    },

    /// No initialised token carries the configured label.
    #[error("no token labelled '{label}' in {module} (tokens found: {found}). Check the token label, and SOFTHSM2_CONF for SoftHSM2")]
    NoToken {
        /// The token label looked for.
        label: String,
        /// The module's path.
        module: PathBuf,
        /// The labels of the tokens found, quoted and comma-separated, or `none`.
        found: String,
    },

    /// More than one token carries the configured label.
    #[error("{count} tokens in {module} are labelled '{label}'; refusing to guess which one holds the key. Give each token its own label (softhsm2-util --show-slots lists them)")]
    AmbiguousToken {
        /// The token label from the configuration.
        label: String,
        /// The PKCS#11 module.
        module: PathBuf,
        /// How many tokens carry it.
        count: usize,
    },

    /// The token refused the PIN (incorrect, or of a length it does not accept).
    #[error("token '{label}' refused the PIN (wrong PIN). Check the PIN source; repeated failures lock the token")]
    WrongPin {
        /// The token's label.
        label: String,
    },

    /// The user PIN is locked after too many wrong attempts.
    #[error(
        "token '{label}' is locked after too many wrong PINs; the security officer must unblock it"
    )]
    PinLocked {
        /// The token's label.
        label: String,
    },

    /// No key object with the label (and the recorded CKA_ID, if any) is in the token.
    #[error("no private key labelled '{key}' in token '{token}'. Check the key label, or generate the key first")]
    NoKey {
        /// The key label (with `-transport` for the transport key).
        key: String,
        /// The token's label.
        token: String,
    },

    /// More than one object of one class matches the key label (and CKA_ID).
    #[error("token '{token}' holds {count} {class} objects labelled '{key}'{id}; refusing to guess which one signs. Remove the objects not generated for this CA (pkcs11-tool --list-objects shows them)")]
    AmbiguousKey {
        /// The key label.
        key: String,
        /// The token's label.
        token: String,
        /// The object class: `private-key`, `public-key` or `secret-key`.
        class: &'static str,
        /// How many objects matched.
        count: usize,
        /// ` with CKA_ID <hex>` when the lookup used the recorded ID, else empty.
        id: String,
    },

    /// The private and public objects of a key do not form a pair: different or empty
    /// CKA_IDs, or a test signature that the public key does not verify.
    #[error("the private and public objects labelled '{key}' in token '{token}' do not belong together ({reason}); refusing to sign. Check the token's objects with pkcs11-tool --list-objects")]
    KeyPairMismatch {
        /// The key label.
        key: String,
        /// The token's label.
        token: String,
        /// The CKA_IDs found, or why the test signature failed.
        reason: String,
    },

    /// A key attribute read back from the token shows the key could leave it or be misused
    /// (not sensitive, extractable, usable without login, ...).
    #[error("key '{key}' in token '{token}' has {attribute}={value}: {why}; refusing to use it. Use a key generated inside the token by this toolkit")]
    WeakKey {
        /// The key label.
        key: String,
        /// The token's label.
        token: String,
        /// The attribute, such as `CKA_EXTRACTABLE`.
        attribute: &'static str,
        /// The value the token reports for it.
        value: bool,
        /// Why that value is refused.
        why: &'static str,
    },

    /// Generating a key whose label an object in the token already carries.
    #[error("token '{token}' already holds a key labelled '{key}'; refusing to create a second one. Choose a new key label")]
    KeyExists {
        /// The key label.
        key: String,
        /// The token's label.
        token: String,
    },

    /// A PKCS#11 call failed.
    #[error("PKCS#11 {op} failed: {reason}")]
    Pkcs11 {
        /// The operation, such as `sign` or `open session`.
        op: &'static str,
        /// The PKCS#11 library's error.
        reason: String,
    },

    /// The token returned a signature of the wrong shape (an ECDSA signature of the wrong
    /// length).
    #[error("the token's signature is malformed: {0}")]
    BadSignature(String),

    /// The toolkit refuses what the token holds or returns: a key of an unsupported type, a
    /// recorded CKA_ID that is not hex, a truncated sealed transport identity.
    #[error("{0}")]
    Refused(String),
}

impl TokenError {
    /// A [`TokenError::Pkcs11`] for operation `op`, with the library's error as the reason.
    pub fn pkcs11(op: &'static str, e: impl std::fmt::Display) -> Self {
        TokenError::Pkcs11 {
            op,
            reason: e.to_string(),
        }
    }
}
