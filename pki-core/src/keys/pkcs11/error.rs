//! What can go wrong with a PKCS#11 token: the token concept's own error type, wrapped by
//! [`crate::Error::Token`] at the library's edge. Each message says what to check next; none
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
    #[error("no token labelled '{label}' in {module} (tokens found: {found}). Check the token label{hint}")]
    NoToken {
        /// The token label looked for.
        label: String,
        /// The module's path.
        module: PathBuf,
        /// The labels of the tokens found, quoted and comma-separated, or `none`.
        found: String,
        /// A hint for this module (SoftHSM2's configuration variable), or empty.
        hint: String,
    },

    /// More than one token carries the configured label.
    #[error("{count} tokens in {module} are labelled '{label}'; refusing to guess which one holds the key. Give each token its own label (pkcs11-tool --module {module} --list-slots lists them)")]
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

    /// A PKCS#11 call returned an error: the function, the CKR_ name and number, what the
    /// call was about (mechanism, attribute), and what to do next.
    #[error("PKCS#11 {op} failed: {function} returned {ckr} ({number:#x}){detail}. {next}")]
    Pkcs11 {
        /// The operation, such as `sign` or `open session`.
        op: &'static str,
        /// The PKCS#11 function, such as `C_GenerateKeyPair`.
        function: String,
        /// The return value's name, such as `CKR_MECHANISM_INVALID`.
        ckr: &'static str,
        /// The return value's number.
        number: u64,
        /// `; mechanism CKM_…` or `; attribute CKA_…`, or empty.
        detail: String,
        /// What to do next.
        next: &'static str,
    },

    /// A failure that is not a PKCS#11 return value (the library's own conversions, or the
    /// message a signer kept from the token).
    #[error("could not {op}: {reason}")]
    Failed {
        /// The operation.
        op: &'static str,
        /// Why.
        reason: String,
    },

    /// The token cannot do what the ceremony needs; found before anything was generated.
    #[error("token '{token}' cannot {what}: {why}. Nothing was generated or changed in the token. {next}")]
    Unsupported {
        /// The token's label.
        token: String,
        /// What the ceremony needs, such as `hold a backup key`.
        what: String,
        /// What the token lacks, from its mechanism list, PIN range or a refused template.
        why: String,
        /// The next step.
        next: String,
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
    /// A [`TokenError::Pkcs11`] for operation `op` from cryptoki's error (a return value with
    /// its function), or [`TokenError::Failed`] for the library's own errors.
    pub fn pkcs11(op: &'static str, e: cryptoki::error::Error) -> Self {
        Self::pkcs11_about(op, "", e)
    }

    /// [`TokenError::pkcs11`] naming what the call was about (`mechanism CKM_ECDSA`,
    /// `attribute CKA_WRAP_WITH_TRUSTED`, ...).
    pub fn pkcs11_about(op: &'static str, about: &str, e: cryptoki::error::Error) -> Self {
        match e {
            cryptoki::error::Error::Pkcs11(rv, function) => {
                let (ckr, number) = super::ckr::name_and_number(rv);
                TokenError::Pkcs11 {
                    op,
                    function: format!("C_{function:?}"),
                    ckr,
                    // CK_RV is 64 bits here, 32 on other platforms.
                    #[allow(clippy::unnecessary_cast)]
                    number: number as u64,
                    detail: if about.is_empty() {
                        String::new()
                    } else {
                        format!("; {about}")
                    },
                    next: next_step(rv),
                }
            }
            other => TokenError::Failed {
                op,
                reason: other.to_string(),
            },
        }
    }

    /// A [`TokenError::Failed`]: `op` failed for `reason`.
    pub fn failed(op: &'static str, reason: impl std::fmt::Display) -> Self {
        TokenError::Failed {
            op,
            reason: reason.to_string(),
        }
    }

    /// The return value of a [`TokenError::Pkcs11`].
    pub fn return_value(&self) -> Option<&'static str> {
        match self {
            TokenError::Pkcs11 { ckr, .. } => Some(ckr),
            _ => None,
        }
    }
}

/// What a ceremony team does next about a return value.
fn next_step(rv: cryptoki::error::RvError) -> &'static str {
    use cryptoki::error::RvError as R;
    match rv {
        R::MechanismInvalid | R::MechanismParamInvalid => "The token does not offer this mechanism or these parameters: `root-ca token check` lists what it offers and which ceremonies it can run",
        R::AttributeTypeInvalid | R::AttributeValueInvalid | R::TemplateInconsistent | R::TemplateIncomplete | R::AttributeReadOnly => "The token refuses this key template: `root-ca token check` tries the templates on session objects and says which ceremonies it can run",
        R::FunctionNotSupported => "The module does not implement this function: `root-ca token check` says which ceremonies avoid it",
        R::GeneralError | R::FunctionFailed | R::DeviceError | R::DeviceMemory => "The token failed internally: check the module's own log (tpm2-pkcs11: TSS2_LOG=all+error; opencryptoki: /var/log/opencryptoki) and run `root-ca token check`",
        R::PinLenRange => "The PIN's length is outside the token's range (`root-ca token check` prints it)",
        R::PinIncorrect | R::PinInvalid => "Check the PIN source; repeated failures lock the token",
        R::PinLocked => "The user PIN is locked: the security officer must unblock it",
        R::UserNotLoggedIn | R::UserPinNotInitialized => "Log in with the user PIN (initialise the user PIN first on a new token)",
        R::DeviceRemoved | R::TokenNotPresent | R::TokenNotRecognized => "Reconnect the token and run the ceremony again",
        R::KeySizeRange => "The token does not support this key size: `root-ca token check` prints the sizes it offers",
        R::KeyFunctionNotPermitted | R::KeyTypeInconsistent => "The key's attributes do not allow this use: check it with pkcs11-tool --list-objects",
        R::ObjectHandleInvalid | R::KeyHandleInvalid => "The object is gone from the token: check the key label with pkcs11-tool --list-objects",
        R::SessionHandleInvalid | R::SessionClosed | R::SessionCount => "The session ended: run the ceremony again",
        R::EncryptedDataInvalid | R::EncryptedDataLenRange => "The sealed data does not decrypt under this token's key: the file is damaged or belongs to another token",
        R::TokenWriteProtected => "The token is read-only: use a writable token",
        _ => "Run `root-ca token check` against this token to see which ceremonies it supports",
    }
}

pub(crate) type Result<T, E = TokenError> = std::result::Result<T, E>;
