//! How `issuer` words the library's errors. The library says what is wrong; where the next
//! step is one of issuer's own flags, it is added here, so the library names no flag.

use pki_core::Error;

/// The message `issuer` prints for `e`.
pub fn message(e: &Error) -> String {
    if let Some(m) = pki_core::cli::common_message(e) {
        return m;
    }
    match e {
        Error::RequestsCa { .. } => {
            format!("{e}. If this is expected, pass --ignore-requested-ca to issue a plain leaf")
        }
        Error::UnapprovedNames { .. } => {
            format!("{e}: pass each one with --dns/--ip if it is right")
        }
        Error::CnRequired { what, requested } => format!(
            "{what}: the request asks for CN={requested}, and no --cn was given; the CN is the \
             etcd user the certificate logs in as, so the operator must type it: pass --cn \
             {requested} if that is right"
        ),
        Error::CnMismatch {
            what,
            requested,
            approved,
        } => format!(
            "{what}: the request asks for CN={requested}, but --cn is {approved}; the CN is the \
             etcd user the certificate logs in as and is never taken from a request. Ask the \
             requester for a request with CN={approved}, or pass --cn {requested} if that user \
             is right"
        ),
        Error::ZeroDays => format!("{e} (--days, or days in the batch or cluster file)"),
        Error::NoNames { .. } => {
            format!("{e}: pass --dns or --ip, or list them in the batch or cluster file")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn flags_are_named_here_not_in_the_library() {
        let exists = Error::OutputExists {
            path: PathBuf::from("out/server.crt"),
        };
        assert!(!exists.to_string().contains("--"));
        assert_eq!(
            message(&exists),
            "out/server.crt: already exists; refusing to overwrite it (pass --force to replace it)"
        );
        let cn = Error::CnRequired {
            what: "evil.csr".into(),
            requested: "root".into(),
        };
        assert!(!cn.to_string().contains("--"), "{cn}");
        assert!(
            message(&cn).contains("no --cn was given")
                && message(&cn).ends_with("pass --cn root if that is right")
        );
        assert!(
            message(&Error::NoKeySecret).contains("pass --identity FILE or --passphrase-file FILE")
        );
        // Errors without a flag to suggest read as the library wrote them.
        let other = Error::Policy("x".into());
        assert_eq!(message(&other), "x");
    }
}
