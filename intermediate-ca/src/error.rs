//! The errors `intermediate-ca` reports: its own refusals of how it was called ([`Usage`]),
//! and the library's errors, worded here. The library says what is wrong; where the next step
//! is one of intermediate-ca's own flags or commands, it is added here.

use pki_core::keys::KeyAlgorithm;
use pki_core::keys::KeyError;
use pki_core::Error;

/// An error of an `intermediate-ca` command.
#[derive(Debug, thiserror::Error)]
pub enum IcaError {
    /// The library refused or failed.
    #[error(transparent)]
    Core(#[from] Error),
    /// intermediate-ca refused how it was called.
    #[error(transparent)]
    Usage(#[from] Usage),
}

// The library's concept errors reach this tool through its `Error` (converted at the edge).
impl From<pki_core::keys::KeyError> for IcaError {
    fn from(e: pki_core::keys::KeyError) -> Self {
        Self::Core(e.into())
    }
}

impl From<pki_core::x509::X509Error> for IcaError {
    fn from(e: pki_core::x509::X509Error) -> Self {
        Self::Core(e.into())
    }
}

/// Result alias of `intermediate-ca`'s commands.
pub type Result<T, E = IcaError> = std::result::Result<T, E>;

/// intermediate-ca's refusals of how it was called. Each names the flag to pass.
#[derive(Debug, thiserror::Error)]
pub enum Usage {
    /// `request --key` names an algorithm too weak for an intermediate (RSA below 3072 bits).
    #[error("an intermediate key must be p384, p256, ed25519, rsa3072 or rsa4096, not {algorithm}: pass one of them with --key")]
    WeakIntermediateKey {
        /// The algorithm given.
        algorithm: KeyAlgorithm,
    },
    /// `request` without the root's transport recipient.
    #[error("pass --to RECIPIENT or --to-file FILE")]
    NoRecipient,
}

/// The message `intermediate-ca` prints for `e`.
pub fn message(e: &IcaError) -> String {
    match e {
        IcaError::Core(e) => core_message(e),
        IcaError::Usage(u) => u.to_string(),
    }
}

/// The message for a library error, with intermediate-ca's next step.
fn core_message(e: &Error) -> String {
    if let Some(m) = pki_core::cli::common_message(e) {
        return m;
    }
    match e {
        Error::NothingStaged { path } => format!(
            "{e} (`intermediate-ca status --dir {}` shows the generations)",
            path.display()
        ),
        Error::ReplyNeedsIdentity { .. } => {
            format!("{e}; pass --identity FILE (the one given to `intermediate-ca request`)")
        }
        Error::StagedRequestMismatch { staged, .. } => format!(
            "{e}; pass --request {staged} to abandon it (`intermediate-ca status` shows it)"
        ),
        pki_core::Error::Key(KeyError::BadRecipient { .. }) => format!(
            "{e}; pass the root's transport recipient (age1..., as `root-ca init` printed it) with --to or --to-file"
        ),
        Error::Token(pki_core::error::TokenError::Module { .. }) => format!(
            "{e}. Check --pkcs11-module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so from the softhsm2 package)"
        ),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn flags_are_named_here_not_in_the_library() {
        let e = Error::StagedRequestMismatch {
            path: PathBuf::from("ca"),
            generation: 2,
            staged: "r-2".into(),
            given: "r-1".into(),
        };
        assert!(!e.to_string().contains("--"), "{e}");
        assert_eq!(
            message(&e.into()),
            "ca: the staged generation 2 belongs to request r-2, not r-1; pass --request r-2 to abandon it (`intermediate-ca status` shows it)"
        );
        assert!(message(&KeyError::NoTokenPin.into())
            .ends_with("pass --pin-file FILE or set PKI_TOKEN_PIN_FILE"));
        let weak = IcaError::from(Usage::WeakIntermediateKey {
            algorithm: KeyAlgorithm::Rsa(2048),
        });
        assert!(message(&weak).contains("not rsa2048"), "{}", message(&weak));
    }
}
