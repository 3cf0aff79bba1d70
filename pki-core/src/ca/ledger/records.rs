//! The rows the ledger keeps and hands out: leaves, revocations, enrolment grants, dumps.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// One issued leaf.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LeafRecord {
    /// The serial, lower-case hex: the ledger's key.
    pub serial: String,
    /// The CA folder generation that issued it.
    pub generation: u32,
    /// The leaf role: `server`, `peer` or `client`.
    pub profile: String,
    /// The subject CN.
    pub subject: String,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// IP subject alternative names, as text.
    pub ips: Vec<String>,
    /// The key algorithm, as `p256`, `rsa2048`, ...
    pub key_alg: String,
    /// `generated` or `csr`
    pub key_source: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// `active`, `revoked`, `superseded`, or `void` (recorded, but its files were never
    /// written: an interrupted issuance)
    pub status: String,
    /// The RFC 5280 reason name given when it was revoked.
    pub revocation_reason: Option<String>,
    /// Where the certificate file was written.
    pub cert_path: String,
    /// SHA-256 of the certificate's DER, upper-case hex with colons.
    pub fingerprint: String,
}

/// A revoked leaf, as the CRLs need it.
#[derive(Clone, Debug)]
pub struct RevokedLeaf {
    /// The serial, lower-case hex.
    pub serial: String,
    /// The generation that issued it.
    pub generation: u32,
    /// The RFC 5280 reason name given when it was revoked.
    pub reason: Option<String>,
    /// When it was revoked (its issue time for a row that recorded none).
    pub revoked_at: OffsetDateTime,
    /// End of the leaf's validity.
    pub not_after: OffsetDateTime,
    /// Number of the first direct CRL published after the leaf expired (it still listed it).
    pub direct_listed_expired: Option<u64>,
    /// Number of the first etcd CRL published after the leaf expired (it still listed it).
    pub etcd_listed_expired: Option<u64>,
}

impl RevokedLeaf {
    /// The CRL of `kind` that listed this leaf once after it expired, if one was published.
    pub fn listed_expired(&self, kind: CrlKind) -> Option<u64> {
        match kind {
            CrlKind::Direct => self.direct_listed_expired,
            CrlKind::Etcd => self.etcd_listed_expired,
        }
    }
}

/// A [`RevokedLeaf`] from a row's columns (times in Unix seconds).
pub(crate) fn revoked_leaf(
    serial: String,
    generation: u32,
    reason: Option<String>,
    revoked_at: i64,
    not_after: i64,
    direct_listed_expired: Option<i64>,
    etcd_listed_expired: Option<i64>,
) -> RevokedLeaf {
    RevokedLeaf {
        serial,
        generation,
        reason,
        revoked_at: OffsetDateTime::from_unix_timestamp(revoked_at)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        // An unreadable notAfter counts as unexpired: the entry then stays listed.
        not_after: OffsetDateTime::from_unix_timestamp(not_after)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 1000)),
        direct_listed_expired: direct_listed_expired.map(|n| n as u64),
        etcd_listed_expired: etcd_listed_expired.map(|n| n as u64),
    }
}

/// The two CRLs made from the ledger: the active intermediate's direct CRL and the etcd CRL.
/// Each keeps its own record of when an expired entry was last listed: they are published
/// apart, and a validator of one never sees the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrlKind {
    /// The active intermediate's own CRL: the leaves it issued.
    Direct,
    /// The indirect etcd CRL: revoked leaves of every generation, and the root's revocations.
    Etcd,
}

impl CrlKind {
    pub(crate) fn column(self) -> &'static str {
        match self {
            CrlKind::Direct => "direct_listed_expired",
            CrlKind::Etcd => "etcd_listed_expired",
        }
    }
}

/// An active leaf recorded under a folder, as a batch re-run needs it.
#[derive(Clone, Debug)]
pub struct RowUnder {
    /// The serial, lower-case hex.
    pub serial: String,
    /// The subject CN.
    pub subject: String,
    /// The leaf role.
    pub profile: String,
    /// Where the certificate file was recorded to be written.
    pub cert_path: String,
    /// SHA-256 of the certificate's DER, upper-case hex with colons.
    pub fingerprint: String,
    /// Made by a batch run into that same folder that never finished: the leaf may be voided
    /// when its file is missing or incomplete, because it never left the machine.
    pub interrupted: bool,
}

/// Filters for [`LedgerStore::list`].
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only leaves whose notAfter is before this instant.
    pub expiring_before: Option<OffsetDateTime>,
    /// Only `active` leaves.
    pub active_only: bool,
    /// Only leaves of this generation.
    pub generation: Option<u32>,
}

/// One leaf an enrolment token may obtain: exactly these names, whatever the CSR asks for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolLeaf {
    /// `server`, `peer` or `client`.
    pub role: String,
    /// The subject CN.
    pub subject: String,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// IP subject alternative names, as text.
    pub ips: Vec<String>,
}

impl EnrolLeaf {
    /// The request this grant stands for: role, subject and names, parsed.
    pub fn request(
        &self,
    ) -> Result<(
        crate::x509::profile::LeafRole,
        crate::x509::profile::Subject,
        crate::x509::profile::SubjectNames,
    )> {
        let ips = self
            .ips
            .iter()
            .map(|i| i.parse().map_err(|_| Error::LedgerIp { value: i.clone() }))
            .collect::<Result<_>>()?;
        Ok((
            self.role.parse()?,
            crate::x509::profile::Subject::cn(self.subject.clone()),
            crate::x509::profile::SubjectNames {
                dns: self.dns.clone(),
                ips,
            },
        ))
    }
}

/// An unused, unexpired enrolment token's grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolGrant {
    /// The cluster-file entry it was made for (`member etcd-4`, `client backup`).
    pub entry: String,
    /// The leaves it may obtain, one per role.
    pub leaves: Vec<EnrolLeaf>,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// An enrolment token's row as a store reads it, before its grant is parsed.
pub(crate) struct GrantRow {
    pub(crate) entry: String,
    pub(crate) leaves: String,
    pub(crate) expires_at: i64,
}

impl GrantRow {
    pub(crate) fn parse(self, ledger: &str) -> Result<EnrolGrant> {
        let leaves = serde_json::from_str(&self.leaves).map_err(|e| Error::Ledger {
            ledger: ledger.to_string(),
            reason: format!("enrolment token of {}: {e}", self.entry),
        })?;
        Ok(EnrolGrant {
            entry: self.entry,
            leaves,
            expires_at: OffsetDateTime::from_unix_timestamp(self.expires_at)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        })
    }
}

/// Where a leaf stands in its renewal chain, as the service decides a renewal by it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainState {
    /// The chain's first leaf (enrolled, or issued by the CLI): what the service limits.
    pub root: String,
    /// The leaf is itself a renewal not yet confirmed.
    pub unconfirmed: bool,
    /// Its own successor, active and not yet confirmed.
    pub pending: Option<String>,
    /// Successors in the whole chain replaced before they were confirmed, revoked as
    /// `superseded` and unexpired: the entries the chain adds to the etcd CRL.
    pub replaced_listed: u32,
}

/// What the online service last saw of one agent (by the CN of the leaf it presented), for
/// `issuer fleet`. Telemetry: not moved by `issuer ledger migrate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgentSeen {
    /// The presented leaf's CN: the cluster file's member or client name.
    pub subject: String,
    /// The presented leaf's serial.
    pub serial: String,
    /// The last request: method and path.
    pub action: String,
    /// When, Unix seconds.
    pub at: i64,
    /// The number of the last etcd CRL it fetched.
    pub crl_number: Option<i64>,
    /// When it fetched it, Unix seconds.
    pub crl_at: Option<i64>,
    /// The code of the last refusal, when the last request was refused.
    pub refused: Option<String>,
    /// Refusals in a row.
    pub refusals: i64,
}

/// What changes whenever a leaf is revoked: the number of revoked rows and the latest
/// revocation time. A CRL signer that sees it change publishes at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationMark {
    /// Revoked rows.
    pub count: u64,
    /// The latest revocation, Unix seconds (0 when none).
    pub latest: i64,
}

/// Every row of a ledger, as [`copy_ledger`] moves it between stores: each table in its
/// own order, every column (including the ones only the store itself reads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerDump {
    /// `leaves` with their certificates.
    pub leaves: Vec<DumpLeaf>,
    /// `batch_runs`: id, output folder, start, end.
    pub batch_runs: Vec<(String, String, i64, Option<i64>)>,
    /// `enrol_tokens`: hash, entry, leaves (JSON), created, expires, used.
    pub enrol_tokens: Vec<(String, String, String, i64, i64, Option<i64>)>,
    /// `renewals`: new serial, old serial, confirmed.
    pub renewals: Vec<(String, String, Option<i64>)>,
    /// The last CRL number handed out (0 when none).
    pub crl_number: u64,
}

/// One `leaves` row with every column and its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpLeaf {
    /// The columns the commands read.
    pub rec: LeafRecord,
    /// When it was revoked, Unix seconds.
    pub revoked_at: Option<i64>,
    /// See [`RevokedLeaf::direct_listed_expired`].
    pub direct_listed_expired: Option<i64>,
    /// See [`RevokedLeaf::etcd_listed_expired`].
    pub etcd_listed_expired: Option<i64>,
    /// When it was recorded, Unix seconds.
    pub issued_at: i64,
    /// The batch run that made it.
    pub run_id: Option<String>,
    /// The certificate, DER.
    pub der: Vec<u8>,
}
