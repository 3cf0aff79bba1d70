//! How `intermediate-ca` words the library's errors. The library says what is wrong; where the
//! next step is one of intermediate-ca's own flags or commands, it is added here.

use pki_core::Error;

/// The message `intermediate-ca` prints for `e`.
pub fn message(e: &Error) -> String {
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
            message(&e),
            "ca: the staged generation 2 belongs to request r-2, not r-1; pass --request r-2 to abandon it (`intermediate-ca status` shows it)"
        );
        assert!(
            message(&Error::NoTokenPin).ends_with("pass --pin-file FILE or set PKI_TOKEN_PIN_FILE")
        );
    }
}
