//! The issuance ledger: every leaf is committed here (durably) *before* its file is written,
//! so no certificate can exist that the ledger does not know about. SQLite in WAL mode with a
//! busy timeout, so several issuer processes can share one CA folder.

mod revocation;
mod runs;
mod service;

pub use service::{EnrolGrant, EnrolLeaf, RevocationMark};

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
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
    fn column(self) -> &'static str {
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

/// Filters for [`Ledger::list`].
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Only leaves whose notAfter is before this instant.
    pub expiring_before: Option<OffsetDateTime>,
    /// Only `active` leaves.
    pub active_only: bool,
    /// Only leaves of this generation.
    pub generation: Option<u32>,
}

/// The issuance ledger of a CA folder (`ledger.sqlite`), open.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leaves (
    serial            TEXT PRIMARY KEY,
    generation        INTEGER NOT NULL,
    profile           TEXT NOT NULL,
    subject           TEXT NOT NULL,
    dns               TEXT NOT NULL,
    ips               TEXT NOT NULL,
    key_alg           TEXT NOT NULL,
    key_source        TEXT NOT NULL,
    not_before        INTEGER NOT NULL,
    not_after         INTEGER NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active',
    revocation_reason TEXT,
    revoked_at        INTEGER,
    -- CRL number of the first direct / etcd CRL published after the revoked leaf expired: the
    -- entry stays in that one CRL and leaves the next (RFC 5280 §3.3).
    direct_listed_expired INTEGER,
    etcd_listed_expired   INTEGER,
    issued_at         INTEGER NOT NULL,
    cert_path         TEXT NOT NULL,
    fingerprint       TEXT NOT NULL
);
-- The certificates themselves live apart, so that scans of the leaves table (list, expiring)
-- read small rows only.
CREATE TABLE IF NOT EXISTS certs (
    serial   TEXT PRIMARY KEY REFERENCES leaves(serial) ON DELETE CASCADE,
    der      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS leaves_status_not_after ON leaves(status, not_after);
-- One row per `issuer batch` run: a run that never reached `finished_at` was interrupted, and
-- only its rows may be voided by a later run (they never left the machine).
CREATE TABLE IF NOT EXISTS batch_runs (
    run_id      TEXT PRIMARY KEY,
    out_dir     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- One-time enrolment tokens of the online service, by the SHA-256 of the token (the token
-- itself is shown once to the operator and never stored); `leaves` is what it may obtain.
CREATE TABLE IF NOT EXISTS enrol_tokens (
    hash       TEXT PRIMARY KEY,
    entry      TEXT NOT NULL,
    leaves     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
-- A leaf renewed through the service and the leaf it replaces: the old one stays active until
-- the agent confirms it installed the new one (or until the old one expires).
CREATE TABLE IF NOT EXISTS renewals (
    new_serial   TEXT PRIMARY KEY REFERENCES leaves(serial),
    old_serial   TEXT NOT NULL REFERENCES leaves(serial),
    confirmed_at INTEGER
);
";

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        // FULL: a commit is on disk when the call returns, so "recorded before written" holds
        // across a power cut, not only across a crash of this process.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        // Reads through mmap: a scan of a large ledger then costs no read() per page.
        conn.pragma_update(None, "mmap_size", 1i64 << 30)
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        migrate(&conn).map_err(err)?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
        })
    }
    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Ledger {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
    /// Commits a leaf. Fails if the serial is already known (serials are unique PKI-wide).
    pub fn record(&mut self, rec: &LeafRecord, cert_der: &[u8]) -> Result<()> {
        self.record_many(&[(rec.clone(), cert_der)])
    }
    /// Marks a leaf superseded by a renewal or re-issue.
    pub fn supersede(&mut self, serial: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE leaves SET status = 'superseded' WHERE serial = ?1 AND status = 'active'",
                params![serial],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
    /// Records where a leaf's certificate file lives.
    pub fn set_cert_path(&mut self, serial: &str, path: &Path) -> Result<()> {
        self.conn
            .execute(
                "UPDATE leaves SET cert_path = ?2 WHERE serial = ?1",
                params![serial, path.display().to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
    /// The DER certificate of a leaf.
    pub fn cert_der(&self, serial: &str) -> Result<Vec<u8>> {
        self.conn
            .query_row(
                "SELECT der FROM certs WHERE serial = ?1",
                params![serial],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }
    /// Commits many leaves in one transaction (all or none).
    pub fn record_many(&mut self, recs: &[(LeafRecord, &[u8])]) -> Result<()> {
        self.record_many_in_run(recs, None)
    }
    /// The leaf with this serial (lower-case hex); None when the ledger does not know it.
    pub fn get(&self, serial: &str) -> Result<Option<LeafRecord>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM leaves WHERE serial = ?1"),
                params![serial],
                row_to_record,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
    /// How many leaves the ledger holds, whatever their status.
    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM leaves", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }
    /// Leaves in issuance order, filtered.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<LeafRecord>> {
        let mut sql = format!("SELECT {COLUMNS} FROM leaves WHERE 1=1");
        if filter.expiring_before.is_some() {
            sql.push_str(" AND not_after < ?1");
        }
        if filter.active_only {
            sql.push_str(" AND status = 'active'");
        }
        if let Some(g) = filter.generation {
            sql.push_str(&format!(" AND generation = {g}"));
        }
        // Expiry queries come out in expiry order, straight from the (status, not_after) index.
        sql.push_str(if filter.expiring_before.is_some() {
            " ORDER BY not_after"
        } else {
            " ORDER BY issued_at, rowid"
        });
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = match filter.expiring_before {
            Some(t) => stmt.query_map(params![t.unix_timestamp()], row_to_record),
            None => stmt.query_map([], row_to_record),
        }
        .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

/// Brings a ledger of an older release up to this schema: leaves gain the batch run that made
/// them (NULL for every older row, which therefore is never voided automatically), and the
/// CRLs that listed an expired revoked leaf (NULL: an expired entry of an older ledger is then
/// listed once more by each CRL, as the expiry rule asks, and dropped after).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (column, ty) in [
        ("run_id", "TEXT"),
        ("direct_listed_expired", "INTEGER"),
        ("etcd_listed_expired", "INTEGER"),
    ] {
        let has = conn
            .prepare("SELECT 1 FROM pragma_table_info('leaves') WHERE name = ?1")?
            .exists([column])?;
        if !has {
            match conn.execute_batch(&format!("ALTER TABLE leaves ADD COLUMN {column} {ty}")) {
                // Another process opening the same ledger added it first.
                Err(e) if e.to_string().contains("duplicate column name") => {}
                other => other?,
            }
        }
    }
    Ok(())
}

const COLUMNS: &str = "serial, generation, profile, subject, dns, ips, key_alg, key_source, \
                       not_before, not_after, status, revocation_reason, cert_path, fingerprint";

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeafRecord> {
    let ts = |i: usize| -> rusqlite::Result<OffsetDateTime> {
        let v: i64 = r.get(i)?;
        OffsetDateTime::from_unix_timestamp(v).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Integer, e.into())
        })
    };
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let v: String = r.get(i)?;
        serde_json::from_str(&v).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        })
    };
    Ok(LeafRecord {
        serial: r.get(0)?,
        generation: r.get(1)?,
        profile: r.get(2)?,
        subject: r.get(3)?,
        dns: list(4)?,
        ips: list(5)?,
        key_alg: r.get(6)?,
        key_source: r.get(7)?,
        not_before: ts(8)?,
        not_after: ts(9)?,
        status: r.get(10)?,
        revocation_reason: r.get(11)?,
        cert_path: r.get(12)?,
        fingerprint: r.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger written by the release before batch runs were recorded opens, gains the
    /// column, and keeps its rows (which no batch re-run may void: they have no run).
    #[test]
    fn an_older_ledger_is_migrated_and_its_rows_are_never_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            let old_schema = SCHEMA.replace(
                "CREATE TABLE IF NOT EXISTS batch_runs (\n    run_id      TEXT PRIMARY KEY,\n    out_dir     TEXT NOT NULL,\n    started_at  INTEGER NOT NULL,\n    finished_at INTEGER\n);",
                "",
            );
            // ...nor the CRL records of expired entries.
            let old_schema = old_schema.replace(
                "    direct_listed_expired INTEGER,\n    etcd_listed_expired   INTEGER,\n",
                "",
            );
            assert!(!old_schema.contains("batch_runs"));
            assert!(!old_schema.contains("listed_expired INTEGER"));
            conn.execute_batch(&old_schema).unwrap();
            conn.execute(
                "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
                   key_source, not_before, not_after, issued_at, cert_path, fingerprint)
                 VALUES ('01', 1, 'client', 'u1', '[]', '[]', 'p256', 'generated', 0, 1, 0,
                   '/gone/out/u1/client.crt', 'AA')",
                [],
            )
            .unwrap();
        }
        let mut ledger = Ledger::open(&path).unwrap();
        let rows = ledger.active_under(Path::new("/gone/out")).unwrap();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].interrupted);
        // A run into that folder that never finished: only its own rows are interrupted.
        let run = ledger.start_batch_run(Path::new("/gone/out")).unwrap();
        assert!(!ledger.active_under(Path::new("/gone/out")).unwrap()[0].interrupted);
        ledger
            .finish_batch_run(&run, Path::new("/gone/out"))
            .unwrap();
        assert_eq!(ledger.get("01").unwrap().unwrap().subject, "u1");
        // The CRL records work on the migrated ledger.
        ledger.revoke("01", "keyCompromise").unwrap();
        ledger
            .mark_listed_expired(CrlKind::Etcd, &["01".into()], 7)
            .unwrap();
        let r = &ledger.revoked().unwrap()[0];
        assert_eq!(
            (r.etcd_listed_expired, r.direct_listed_expired),
            (Some(7), None)
        );
        // Opening again (the column exists now) is a no-op.
        Ledger::open(&path).unwrap();
    }
}
