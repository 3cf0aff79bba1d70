//! The errors `issuer` reports: its own refusals of how it was called ([`Usage`]), and the
//! library's errors, worded here. The library says what is wrong; where the next step is one
//! of issuer's own flags, it is added here, so the library names no flag.

use pki_core::x509::X509Error;
use std::path::PathBuf;

use pki_core::Error;

/// An error of an `issuer` command.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// The library refused or failed.
    #[error(transparent)]
    Core(#[from] Error),
    /// issuer refused how it was called.
    #[error(transparent)]
    Usage(#[from] Usage),
}

// The library's concept errors reach this tool through its `Error` (converted at the edge).
impl From<pki_core::keys::KeyError> for IssuerError {
    fn from(e: pki_core::keys::KeyError) -> Self {
        Self::Core(e.into())
    }
}

impl From<pki_core::x509::X509Error> for IssuerError {
    fn from(e: pki_core::x509::X509Error) -> Self {
        Self::Core(e.into())
    }
}

/// Result alias of `issuer`'s commands.
pub type Result<T, E = IssuerError> = std::result::Result<T, E>;

/// issuer's refusals of how it was called: a missing or conflicting flag, or a flag value
/// that does not fit the CA folder. Each names the flag to pass.
#[derive(Debug, thiserror::Error)]
pub enum Usage {
    /// `issuer ledger migrate --to` something other than a PostgreSQL address.
    #[error("--to {to}: write the PostgreSQL database to migrate into, postgres://USER@HOST:PORT/DATABASE")]
    MigrateTarget {
        /// The value given.
        to: String,
    },
    /// `issuer ledger migrate --from` an SQLite file that does not exist.
    #[error("--from {}: no SQLite ledger there", .path.display())]
    MigrateSource {
        /// The file.
        path: std::path::PathBuf,
    },
    /// `issuer ledger accept-restore` without its confirmation.
    #[error("accepting a restored ledger makes every revocation it lost forgotten: revoke those leaves again first (the last CRL this CA published lists them), then pass --revocations-replayed")]
    AcceptRestoreUnconfirmed,
    /// `issuer crl` without any output.
    #[error("nothing to write: pass --out, --etcd-out or --etcd-bundle")]
    NothingToWrite,
    /// `issuer crl --days` out of range.
    #[error("--days must be between 1 and 366 (got {days})")]
    CrlDays {
        /// The value given.
        days: u32,
    },
    /// `issuer crl --root-crl` without a root certificate to check it against.
    #[error("a root CRL needs the root certificate to check it: pass --root")]
    RootCrlWithoutRoot,
    /// `issuer issue` without `--cn` and without a request that proposes one.
    #[error("no common name: pass --cn (the member name, or the etcd user for a client)")]
    NoCommonName,
    /// `issuer reissue --from` the active generation.
    #[error("generation {from} is the active one; install the new intermediate first (intermediate-ca install), then re-issue from the old generation")]
    ReissueFromActive {
        /// The generation given.
        from: u32,
    },
    /// `issuer reissue --from` a generation the folder does not have.
    #[error("this CA folder has no generation {from}")]
    NoSuchGeneration {
        /// The generation given.
        from: u32,
    },
    /// No `--root` and no pinned root certificate in the folder (or an unreadable one).
    #[error("no root certificate at {}: pass --root ROOT.crt (an imported CA has no pinned root)", .path.display())]
    NoRoot {
        /// The root certificate looked for.
        path: PathBuf,
    },
    /// The active intermediate is not signed by the root given.
    #[error("the active intermediate ({intermediate}) is not signed by the root {root}; pass the right --root")]
    OtherRoot {
        /// The intermediate's subject.
        intermediate: String,
        /// The root's subject.
        root: String,
    },
    /// `issuer token create --member` names no member of the cluster file.
    #[error("the cluster file has no [[member]] named '{name}'")]
    NoSuchMember {
        /// The name given.
        name: String,
    },
    /// `issuer token create --client` names no client of the cluster file.
    #[error("the cluster file has no [[client]] named '{name}'")]
    NoSuchClient {
        /// The name given.
        name: String,
    },
    /// `issuer token create --ttl` outside what an enrolment token may live.
    #[error("--ttl {ttl} is outside 1s..24h: an enrolment token is short-lived")]
    TokenTtl {
        /// The duration given.
        ttl: String,
    },
    /// `issuer serve --leaf-lifetime` outside what a leaf may live.
    #[error("invalid validity: --leaf-lifetime {lifetime} is outside 10s..825d")]
    LeafLifetime {
        /// The duration given.
        lifetime: String,
    },
    /// `issuer issue --lifetime` outside what a leaf may live.
    #[error("invalid validity: --lifetime {lifetime} is outside 10s..825d")]
    Lifetime {
        /// The duration given.
        lifetime: String,
    },
    /// `issuer serve --root-crl-hold` longer than a week.
    #[error("--root-crl-hold {hold}: at most 7d; a hold keeps a revoked intermediate trusted by etcd for that long")]
    RootCrlHold {
        /// The duration given.
        hold: String,
    },
    /// `issuer etcd --enrol-only` for a cluster file that names no service.
    #[error("--enrol-only: the cluster file names no `service`; hosts enrol through `issuer serve`: add service = \"https://HOST:PORT\" to it")]
    EnrolOnlyWithoutService,
    /// `issuer etcd --enrol-only` for a cluster file with proxies (they have no agent).
    #[error("--enrol-only: the cluster file has proxies ({names}), which have no agent to enrol with; issue the bundle without --enrol-only, or move the proxies to a cluster file of their own")]
    EnrolOnlyWithProxies {
        /// The proxies' names.
        names: String,
    },
    /// `issuer serve --metrics-listen` on an address other hosts can reach.
    #[error("--metrics-listen {addr}: the metrics listener is plain HTTP and takes a loopback address only (127.0.0.1:PORT or [::1]:PORT); scrape /metrics through the TLS listener from other hosts")]
    MetricsListen {
        /// The address given.
        addr: String,
    },
    /// `issuer revoke SERIAL` with a serial that is not hex.
    #[error("serial: '{serial}' is not hex; give the serial as `issuer list` shows it")]
    SerialNotHex {
        /// The serial as given.
        serial: String,
    },
}

/// The message `issuer` prints for `e`.
pub fn message(e: &IssuerError) -> String {
    match e {
        IssuerError::Core(e) => core_message(e),
        IssuerError::Usage(u) => u.to_string(),
    }
}

/// The message for a library error, with issuer's next step.
fn core_message(e: &Error) -> String {
    if let Some(m) = pki_core::cli::common_message(e) {
        return m;
    }
    match e {
        pki_core::Error::X509(X509Error::RequestsCa { .. }) => {
            format!("{e}. If this is expected, pass --ignore-requested-ca to issue a plain leaf")
        }
        Error::UnapprovedNames { .. } => {
            format!("{e}: pass each one with --dns/--ip if it is right")
        }
        pki_core::Error::X509(X509Error::CnRequired { what, requested }) => format!(
            "{what}: the request asks for CN={requested}, and no --cn was given; the CN is the \
             etcd user the certificate logs in as, so the operator must type it: pass --cn \
             {requested} if that is right"
        ),
        pki_core::Error::X509(X509Error::CnMismatch {
            what,
            requested,
            approved,
        }) => format!(
            "{what}: the request asks for CN={requested}, but --cn is {approved}; the CN is the \
             etcd user the certificate logs in as and is never taken from a request. Ask the \
             requester for a request with CN={approved}, or pass --cn {requested} if that user \
             is right"
        ),
        pki_core::Error::X509(X509Error::UnknownRevocationReason { .. }) => {
            format!("{e} (--reason)")
        }
        pki_core::Error::X509(X509Error::ZeroDays) => {
            format!("{e} (--days, or days in the batch or cluster file)")
        }
        pki_core::Error::X509(X509Error::NoNames { .. }) => {
            format!("{e}: pass --dns or --ip, or list them in the batch or cluster file")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki_core::keys::KeyError;
    use std::path::PathBuf;

    #[test]
    fn flags_are_named_here_not_in_the_library() {
        let exists = Error::OutputExists {
            path: PathBuf::from("out/server.crt"),
        };
        assert!(!exists.to_string().contains("--"));
        assert_eq!(
            message(&exists.into()),
            "out/server.crt: already exists; refusing to overwrite it (pass --force to replace it)"
        );
        let cn = X509Error::CnRequired {
            what: "evil.csr".into(),
            requested: "root".into(),
        };
        assert!(!cn.to_string().contains("--"), "{cn}");
        let cn = message(&cn.into());
        assert!(
            cn.contains("no --cn was given") && cn.ends_with("pass --cn root if that is right")
        );
        assert!(message(&KeyError::NoKeySecret.into())
            .contains("pass --identity FILE or --passphrase-file FILE"));
        // Errors without a flag to suggest read as the library wrote them.
        let other = KeyError::SignatureInvalid.into();
        assert_eq!(message(&other), "the signature does not verify");
        // issuer's own refusals name its flags.
        let usage = IssuerError::from(Usage::RootCrlWithoutRoot);
        assert!(message(&usage).ends_with("pass --root"));
    }
}
