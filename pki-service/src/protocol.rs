//! What the service and its agents exchange: JSON bodies over HTTPS, one path per action.
//!
//! | path | who | what |
//! |------|-----|------|
//! | `POST /v1/renew` | a leaf, by its certificate | a successor of that leaf for the key of a CSR |
//! | `POST /v1/confirm` | the successor, by its certificate | its predecessor becomes superseded |
//! | `POST /v1/enrol` | a one-time token (`Authorization: Bearer`) | the first leaves of one cluster-file entry |
//! | `GET /v1/crl/etcd` | anyone | the etcd CRL file (DER; `?format=pem` for PEM), number in `X-CRL-Number` |
//! | `GET /v1/crl/direct` | anyone | the active intermediate's own CRL (PEM) |
//! | `GET /v1/ca` | anyone | [`CaInfo`]: the intermediate that signs leaves and CRLs |
//! | `GET /v1/health` | anyone | [`Health`] |
//! | `GET /metrics` | anyone | Prometheus text format |

use serde::{Deserialize, Serialize};

/// Renewal of the caller's own leaf.
pub const RENEW: &str = "/v1/renew";
/// Confirmation that a renewed leaf is installed.
pub const CONFIRM: &str = "/v1/confirm";
/// First leaves of an entry, with a one-time token.
pub const ENROL: &str = "/v1/enrol";
/// The etcd CRL file.
pub const CRL_ETCD: &str = "/v1/crl/etcd";
/// The intermediate's own CRL.
pub const CRL_DIRECT: &str = "/v1/crl/direct";
/// The active intermediate.
pub const CA: &str = "/v1/ca";
/// Health.
pub const HEALTH: &str = "/v1/health";
/// Metrics, Prometheus text format.
pub const METRICS: &str = "/metrics";
/// The response header holding a CRL's number.
pub const CRL_NUMBER_HEADER: &str = "x-crl-number";
/// Largest request body the service reads.
pub const MAX_BODY: usize = 64 * 1024;

/// `POST /v1/renew`: a CSR for a new key. Names, profile and lifetime come from the ledger
/// row of the certificate the caller presented, never from the CSR.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The PKCS#10 request, PEM.
    pub csr_pem: String,
}

/// `POST /v1/enrol`: one CSR per leaf the token grants.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// A CSR per role (`server`, `peer`, `client`).
    pub csrs: Vec<RoleCsr>,
}

/// A CSR for the leaf of one role.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleCsr {
    /// `server`, `peer` or `client`.
    pub role: String,
    /// The PKCS#10 request, PEM.
    pub csr_pem: String,
}

/// A leaf the service issued (and recorded before answering).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Issued {
    /// Serial, lower-case hex.
    pub serial: String,
    /// `server`, `peer` or `client`.
    pub role: String,
    /// The subject CN.
    pub subject: String,
    /// Leaf then issuing intermediate, PEM: the file etcd's flags expect.
    pub chain_pem: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
}

/// The answer to an enrolment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrolResponse {
    /// The cluster-file entry the token was made for.
    pub entry: String,
    /// The leaves issued, one per CSR.
    pub leaves: Vec<Issued>,
    /// The root certificate, PEM: the trust file.
    pub root_pem: String,
}

/// The answer to a confirmation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfirmResponse {
    /// The serial now superseded; None when the presented leaf renewed nothing.
    pub superseded: Option<String>,
}

/// Every refusal: a stable code and a sentence saying what to do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable, machine-readable: `unauthenticated`, `unknown-leaf`, `revoked`, `superseded`,
    /// `bad-csr`, `key-reused`, `policy`, `bad-token`, `rate-limited`, `bad-request`,
    /// `not-found`, `unavailable`.
    pub error: String,
    /// What happened and what to do next.
    pub reason: String,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, `degraded` when the CRL could not be re-signed on time, or `reload-failed` when
    /// the last SIGHUP reload failed (the answer is then 503).
    pub status: String,
    /// Why the last reload failed, while it is the latest word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<String>,
    /// The active generation of the CA folder.
    pub generation: u32,
    /// End of validity of the active intermediate, RFC 3339.
    pub intermediate_not_after: String,
    /// Number of the etcd CRL served.
    pub crl_number: u64,
    /// nextUpdate of the etcd CRL served, RFC 3339.
    pub crl_next_update: String,
}

/// `GET /v1/ca`: the active intermediate. An agent checks it against its own root before it
/// checks a CRL with it; the service's word alone is not trusted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaInfo {
    /// The active generation.
    pub generation: u32,
    /// The active intermediate's certificate, PEM.
    pub intermediate_pem: String,
    /// The root CRL installed in the CA folder, PEM: signed by the root, so a service cannot
    /// forge it; agents keep the highest-numbered one they saw and refuse every intermediate
    /// it lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_crl_pem: Option<String>,
}
