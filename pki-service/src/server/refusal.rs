//! A refused request: its HTTP status, a stable code and a sentence for the caller. A refusal
//! changes nothing; internal failures say so without their details (those go to the log).

use crate::protocol::Refusal;

/// A request the service will not (or cannot) fulfil.
#[derive(Debug, Clone)]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// Stable code, also the `reason` label of the refusal metric.
    pub code: &'static str,
    /// What happened and what to do next.
    pub reason: String,
    /// Detail for the service's own log only (an internal error's cause).
    pub log_detail: Option<String>,
    /// Seconds to wait, for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl Refused {
    fn new(status: u16, code: &'static str, reason: impl Into<String>) -> Self {
        Refused {
            status,
            code,
            reason: reason.into(),
            log_detail: None,
            retry_after: None,
        }
    }

    /// The answer's body.
    pub fn body(&self) -> Refusal {
        Refusal {
            error: self.code.into(),
            reason: self.reason.clone(),
        }
    }

    /// No (usable) client certificate.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        Self::new(401, "unauthenticated", reason)
    }

    /// A certificate that chains to the root but is not this ledger's leaf.
    pub fn unknown_leaf(serial: &str) -> Self {
        Self::new(
            403,
            "unknown-leaf",
            format!("the ledger has no active leaf with serial {serial} and this certificate; enrol with a new token"),
        )
    }

    /// The presented leaf expired.
    pub fn expired(serial: &str) -> Self {
        Self::new(
            403,
            "expired",
            format!("leaf {serial} has expired; an expired leaf is not renewed: enrol again with a new token"),
        )
    }

    /// The presented leaf was revoked.
    pub fn revoked(serial: &str) -> Self {
        Self::new(
            403,
            "revoked",
            format!("leaf {serial} is revoked; it can obtain nothing. Enrol again with a new token once the cause is dealt with"),
        )
    }

    /// The presented leaf was replaced.
    pub fn superseded(serial: &str) -> Self {
        Self::new(
            403,
            "superseded",
            format!("leaf {serial} was replaced by a renewal; present the newest certificate"),
        )
    }

    /// A CSR that failed its checks.
    pub fn bad_csr(e: pki_core::Error) -> Self {
        Self::new(400, "bad-csr", e.to_string())
    }

    /// The CSR certifies the key of the presented leaf.
    pub fn key_reused() -> Self {
        Self::new(
            400,
            "key-reused",
            "the CSR is for the key of the certificate being renewed; a renewal needs a new key",
        )
    }

    /// The token is unknown, used or expired (never told apart).
    pub fn bad_token() -> Self {
        Self::new(
            403,
            "bad-token",
            "the enrolment token is unknown, already used or expired; ask the operator for a new one (issuer token create)",
        )
    }

    /// A malformed request.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(400, "bad-request", reason)
    }

    /// Too many requests from one identity.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        let mut r = Self::new(
            429,
            "rate-limited",
            format!("too many requests from this identity; try again in {retry_after_s} s"),
        );
        r.retry_after = Some(retry_after_s);
        r
    }

    /// The chain's unconfirmed successors were replaced too often.
    pub fn renewal_pending(pending: &str) -> Self {
        Self::new(
            409,
            "renewal-pending",
            format!("this leaf's renewal {pending} was never installed and its chain has replaced too many renewals; install {pending} or ask the operator (the service log names the chain)"),
        )
    }

    /// An unknown path or method.
    pub fn not_found() -> Self {
        Self::new(
            404,
            "not-found",
            "no such path; see the protocol in docs/production.md",
        )
    }

    /// The audit log cannot be written: nothing that changes state is handed out.
    pub fn audit_unavailable(after_the_fact: bool) -> Self {
        let mut r = Self::new(
            503,
            "audit-unavailable",
            match after_the_fact {
                true => "the service could not record this request in its audit log, so it hands out nothing; try again later",
                false => "the service cannot write its audit log and refuses requests that change anything; try again later",
            },
        );
        r.retry_after = Some(60);
        r
    }

    /// `/metrics` is served on the metrics listener only.
    pub fn metrics_elsewhere() -> Self {
        Self::new(
            404,
            "not-found",
            "/metrics is served on the service's metrics listener (issuer serve --metrics-listen), not here",
        )
    }

    /// The service is shutting down.
    pub fn draining() -> Self {
        Self::new(
            503,
            "unavailable",
            "the service is shutting down; try again shortly",
        )
    }

    /// A failure of the service itself (ledger, lock, key): nothing was issued.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        let mut r = Self::new(
            503,
            "unavailable",
            "the service could not complete the request and issued nothing; try again later",
        );
        r.log_detail = Some(e.to_string());
        r
    }

    /// The ledger row of the presented leaf no longer describes it (changed in the database).
    pub fn row_mismatch(reason: String) -> Self {
        Self::new(
            403,
            "ledger-mismatch",
            format!("{reason}; nothing was issued. The ledger row was changed: check the database and the audit log"),
        )
    }

    /// A failure of signing a leaf: policy refusals are the caller's, the rest the service's.
    pub fn from_issuance(e: pki_core::Error) -> Self {
        use pki_core::x509::X509Error as X;
        use pki_core::Error as E;
        match e {
            E::X509(
                X::NameNotPermitted { .. }
                | X::UncheckableConstraint { .. }
                | X::NoNames { .. }
                | X::CnRequired { .. }
                | X::CnMismatch { .. }
                | X::RequestsCa { .. }
                | X::OutlivesIssuer { .. },
            )
            | E::IssuerRevoked { .. }
            | E::UnapprovedNames { .. }
            | E::IssuerNotCurrent { .. } => Self::new(403, "policy", e.to_string()),
            E::X509(X::CsrRejected { .. } | X::WeakAlgorithm(_) | X::UnknownAlgorithm(_)) => {
                Self::bad_csr(e)
            }
            other => Self::internal(other),
        }
    }
}
