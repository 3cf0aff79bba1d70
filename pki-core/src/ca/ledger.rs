//! The issuance ledger: every leaf is committed here (durably) *before* its file is written,
//! so no certificate can exist that the ledger does not know about. SQLite in WAL mode with a
//! busy timeout, so several issuer processes can share one CA folder.

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

    /// The next CRL number: strictly increasing, shared by every process using this ledger.
    pub fn next_crl_number(&mut self) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Ledger {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('crl_number', 1)
             ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )
        .map_err(|e| Error::Ledger {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let n: i64 = tx
            .query_row(
                "SELECT value FROM counters WHERE name = 'crl_number'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| Error::Ledger {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        tx.commit().map_err(|e| Error::Ledger {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(n as u64)
    }

    /// Every revoked leaf.
    pub fn revoked(&self) -> Result<Vec<RevokedLeaf>> {
        let mut stmt = self
            .conn
            .prepare("SELECT serial, generation, revocation_reason, COALESCE(revoked_at, issued_at), not_after, direct_listed_expired, etcd_listed_expired FROM leaves WHERE status = 'revoked' ORDER BY generation, revoked_at")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let t: i64 = r.get(3)?;
                let not_after: i64 = r.get(4)?;
                Ok(RevokedLeaf {
                    serial: r.get(0)?,
                    generation: r.get(1)?,
                    reason: r.get(2)?,
                    revoked_at: OffsetDateTime::from_unix_timestamp(t)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    // An unreadable notAfter counts as unexpired: the entry then stays listed.
                    not_after: OffsetDateTime::from_unix_timestamp(not_after)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 1000)),
                    direct_listed_expired: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                    etcd_listed_expired: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Records that CRL `number` of `kind`, now published, listed these expired revoked leaves:
    /// the next CRL of that kind leaves them out. A leaf already recorded keeps its first number.
    pub fn mark_listed_expired(
        &mut self,
        kind: CrlKind,
        serials: &[String],
        number: u64,
    ) -> Result<()> {
        if serials.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let col = kind.column();
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare(&format!(
                    "UPDATE leaves SET {col} = ?2 WHERE serial = ?1 AND {col} IS NULL"
                ))
                .map_err(err)?;
            for s in serials {
                stmt.execute(params![s, number as i64]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Marks a leaf revoked: an active one, or a superseded one (renewed or re-issued, and
    /// still valid until it expires). Errors when it is unknown or already revoked; the
    /// update itself skips a revoked row, so two revocations cannot both succeed.
    pub fn revoke(&mut self, serial: &str, reason: &str) -> Result<LeafRecord> {
        let rec = self.get(serial)?.ok_or_else(|| Error::Ledger {
            path: self.path.clone(),
            reason: format!(
                "no leaf with serial {serial} was issued from this CA folder (see `issuer list`)"
            ),
        })?;
        if rec.status == "revoked" {
            return Err(Error::Policy(format!(
                "leaf {serial} is already revoked ({})",
                rec.revocation_reason.clone().unwrap_or_default()
            )));
        }
        let changed = self
            .conn
            .execute(
                "UPDATE leaves SET status = 'revoked', revocation_reason = ?2, revoked_at = ?3 WHERE serial = ?1 AND status != 'revoked'",
                params![serial, reason, OffsetDateTime::now_utc().unix_timestamp()],
            )
            .map_err(|e| self.err(e))?;
        if changed != 1 {
            return Err(Error::Policy(format!(
                "leaf {serial} was revoked meanwhile by another command"
            )));
        }
        Ok(rec)
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

    /// Commits many leaves of batch run `run_id` in one transaction (all or none).
    pub fn record_many_in_run(
        &mut self,
        recs: &[(LeafRecord, &[u8])],
        run_id: Option<&str>,
    ) -> Result<()> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
                       key_source, not_before, not_after, status, issued_at, cert_path, fingerprint,
                       run_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .map_err(err)?;
            let mut certs = tx
                .prepare_cached("INSERT INTO certs (serial, der) VALUES (?1, ?2)")
                .map_err(err)?;
            let now = OffsetDateTime::now_utc().unix_timestamp();
            for (rec, der) in recs {
                stmt.execute(params![
                    rec.serial,
                    rec.generation,
                    rec.profile,
                    rec.subject,
                    serde_json::to_string(&rec.dns).expect("json"),
                    serde_json::to_string(&rec.ips).expect("json"),
                    rec.key_alg,
                    rec.key_source,
                    rec.not_before.unix_timestamp(),
                    rec.not_after.unix_timestamp(),
                    rec.status,
                    now,
                    rec.cert_path,
                    rec.fingerprint,
                    run_id,
                ])
                .map_err(err)?;
                certs.execute(params![rec.serial, der]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// The active leaves recorded under `dir`, with the batch run that made each one.
    pub fn active_under(&self, dir: &Path) -> Result<Vec<RowUnder>> {
        // One trailing '/', however `dir` ends (a prefix of "/x/out//" would match nothing).
        let prefix = format!("{}/", dir.display().to_string().trim_end_matches('/'));
        let out_dir = dir.display().to_string();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT l.serial, l.subject, l.profile, l.cert_path, l.fingerprint,
                        r.run_id IS NOT NULL AND r.finished_at IS NULL AND r.out_dir = ?2
                 FROM leaves l LEFT JOIN batch_runs r ON l.run_id = r.run_id
                 WHERE l.status = 'active' AND substr(l.cert_path, 1, length(?1)) = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![prefix, out_dir], |r| {
                Ok(RowUnder {
                    serial: r.get(0)?,
                    subject: r.get(1)?,
                    profile: r.get(2)?,
                    cert_path: r.get(3)?,
                    fingerprint: r.get(4)?,
                    interrupted: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Marks `void` leaves that never left this machine (an interrupted batch run's rows
    /// without a complete file). Only active rows change.
    pub fn void(&mut self, serials: &[String]) -> Result<usize> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tx = self.conn.transaction().map_err(err)?;
        let mut n = 0;
        for serial in serials {
            n += tx
                .execute(
                    "UPDATE leaves SET status = 'void' WHERE serial = ?1 AND status = 'active'",
                    params![serial],
                )
                .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }

    /// Starts a batch run writing into `out_dir`; returns its id. Until
    /// [`Ledger::finish_batch_run`] the run counts as interrupted.
    pub fn start_batch_run(&mut self, out_dir: &Path) -> Result<String> {
        let run_id = format!("{:032x}", rand::random::<u128>());
        self.conn
            .execute(
                "INSERT INTO batch_runs (run_id, out_dir, started_at) VALUES (?1, ?2, ?3)",
                params![
                    run_id,
                    out_dir.display().to_string(),
                    OffsetDateTime::now_utc().unix_timestamp()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(run_id)
    }

    /// Marks a batch run finished once its files are durable, and with it every earlier
    /// interrupted run into the same folder: this run checked what they left (voided the rows
    /// without a complete file, kept the complete ones) and made it durable.
    pub fn finish_batch_run(&mut self, run_id: &str, out_dir: &Path) -> Result<()> {
        self.conn
            .execute(
                "UPDATE batch_runs SET finished_at = ?3
                 WHERE finished_at IS NULL AND (run_id = ?1 OR out_dir = ?2)",
                params![
                    run_id,
                    out_dir.display().to_string(),
                    OffsetDateTime::now_utc().unix_timestamp()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets a leaf whose file could not be written: it never left this machine.
    pub fn forget_unwritten(&mut self, serial: &str) -> Result<()> {
        for sql in [
            "DELETE FROM certs WHERE serial = ?1",
            "DELETE FROM leaves WHERE serial = ?1",
        ] {
            self.conn
                .execute(sql, params![serial])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
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
