//! The embedded ledger: SQLite in the CA folder (`ledger.sqlite`), WAL mode with a busy
//! timeout so several processes on one host share it, `synchronous = FULL` so a commit is on
//! disk when it returns.

mod dump;
mod leaves;
mod revocation;
mod runs;
mod service;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use time::OffsetDateTime;

use super::{
    AgentSeen, ChainState, CrlKind, EnrolGrant, EnrolLeaf, LeafRecord, LedgerDump, LedgerStore,
    ListFilter, RevocationMark, RevokedLeaf, RowUnder,
};
use crate::error::{Error, Result};

/// An SQLite ledger, open.
pub struct SqliteLedger {
    conn: Connection,
    path: PathBuf,
    /// Deferred syncs of the write-ahead log (the service), and the connection's change
    /// count at the last ticket.
    deferred: Option<(std::sync::Arc<crate::group_sync::GroupSync>, u64)>,
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
CREATE INDEX IF NOT EXISTS renewals_old ON renewals(old_serial);
-- What the online service last saw of each agent (issuer fleet); telemetry.
CREATE TABLE IF NOT EXISTS agent_seen (
    subject    TEXT PRIMARY KEY,
    serial     TEXT NOT NULL,
    action     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    crl_number INTEGER,
    crl_at     INTEGER,
    refused    TEXT,
    refusals   INTEGER NOT NULL DEFAULT 0
);
-- Serials reserved before signing. Kept for a ledger moved here from PostgreSQL (where each
-- instance reserves its serials before it signs); on SQLite the leaves' key does that job.
CREATE TABLE IF NOT EXISTS serials (
    serial      TEXT PRIMARY KEY,
    reserved_at INTEGER NOT NULL
);
";

impl SqliteLedger {
    /// Opens (creating if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let err = |e: rusqlite::Error| Error::Ledger {
            ledger: path.display().to_string(),
            reason: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // The service runs the same few statements for every request: each is parsed once.
        conn.set_prepared_statement_cache_capacity(64);
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
        Ok(SqliteLedger {
            conn,
            path: path.to_path_buf(),
            deferred: None,
        })
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Ledger {
            ledger: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    fn immediate(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let ledger = self.path.display().to_string();
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Ledger {
                ledger,
                reason: e.to_string(),
            })
    }

    /// Runs `f` in an immediate transaction and commits it.
    fn in_tx<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let ledger = self.path.display().to_string();
        let err = |e: rusqlite::Error| Error::Ledger {
            ledger: ledger.clone(),
            reason: e.to_string(),
        };
        let tx = self.immediate()?;
        let out = f(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(out)
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

impl LedgerStore for SqliteLedger {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    fn reserve_serials(&mut self, serials: &[String]) -> Result<()> {
        leaves::reserve(&self.conn, serials).map_err(|e| self.err(e))
    }
    fn record_many_in_run(
        &mut self,
        recs: &[(LeafRecord, &[u8])],
        run_id: Option<&str>,
    ) -> Result<()> {
        self.in_tx(|tx| leaves::insert_rows(tx, recs, run_id))
    }
    fn supersede(&mut self, serial: &str) -> Result<()> {
        leaves::supersede(&self.conn, serial).map_err(|e| self.err(e))
    }
    fn set_cert_path(&mut self, serial: &str, path: &Path) -> Result<()> {
        leaves::set_cert_path(&self.conn, serial, path).map_err(|e| self.err(e))
    }
    fn cert_der(&self, serial: &str) -> Result<Vec<u8>> {
        leaves::cert_der(&self.conn, serial).map_err(|e| self.err(e))
    }
    fn get(&self, serial: &str) -> Result<Option<LeafRecord>> {
        leaves::get(&self.conn, serial).map_err(|e| self.err(e))
    }
    fn count(&self) -> Result<u64> {
        leaves::count(&self.conn).map_err(|e| self.err(e))
    }
    fn list(&self, filter: &ListFilter) -> Result<Vec<LeafRecord>> {
        leaves::list(&self.conn, filter).map_err(|e| self.err(e))
    }
    fn active_under(&self, dir: &Path) -> Result<Vec<RowUnder>> {
        runs::active_under(&self.conn, dir).map_err(|e| self.err(e))
    }
    fn void(&mut self, serials: &[String]) -> Result<usize> {
        self.in_tx(|tx| runs::void(tx, serials))
    }
    fn start_batch_run(&mut self, out_dir: &Path) -> Result<String> {
        runs::start(&self.conn, out_dir).map_err(|e| self.err(e))
    }
    fn finish_batch_run(&mut self, run_id: &str, out_dir: &Path) -> Result<()> {
        runs::finish(&self.conn, run_id, out_dir).map_err(|e| self.err(e))
    }
    fn forget_unwritten(&mut self, serial: &str) -> Result<()> {
        self.in_tx(|tx| runs::forget(tx, serial))
    }
    fn draw_crl_number(&mut self) -> Result<u64> {
        self.in_tx(revocation::draw_crl_number)
    }
    fn last_crl_number(&self) -> Result<u64> {
        revocation::last_crl_number(&self.conn).map_err(|e| self.err(e))
    }
    fn revoked(&self) -> Result<Vec<RevokedLeaf>> {
        revocation::revoked(&self.conn).map_err(|e| self.err(e))
    }
    fn mark_listed_expired(
        &mut self,
        kind: CrlKind,
        serials: &[String],
        number: u64,
    ) -> Result<()> {
        self.in_tx(|tx| revocation::mark_listed_expired(tx, kind, serials, number))
    }
    fn revoke(&mut self, serial: &str, reason: &str) -> Result<LeafRecord> {
        let describe = self.describe();
        let tx = self.immediate()?;
        let rec = revocation::revoke(&tx, serial, reason, &describe)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(rec)
    }
    fn revocation_mark(&self) -> Result<RevocationMark> {
        revocation::mark(&self.conn).map_err(|e| self.err(e))
    }
    fn add_enrol_token(
        &mut self,
        hash: &str,
        entry: &str,
        leaves: &[EnrolLeaf],
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        service::add_token(&self.conn, hash, entry, leaves, expires_at).map_err(|e| self.err(e))
    }
    fn enrol_grant(&self, hash: &str, now: OffsetDateTime) -> Result<Option<EnrolGrant>> {
        let row = service::grant_row(&self.conn, hash, now).map_err(|e| self.err(e))?;
        row.map(|r| r.parse(&self.describe())).transpose()
    }
    fn record_enrolment(
        &mut self,
        hash: &str,
        now: OffsetDateTime,
        recs: &[(LeafRecord, &[u8])],
    ) -> Result<bool> {
        self.in_tx(|tx| service::record_enrolment(tx, hash, now, recs))
    }
    fn record_renewal(
        &mut self,
        old_serial: &str,
        rec: &LeafRecord,
        der: &[u8],
        confirm_old_at: Option<OffsetDateTime>,
    ) -> Result<()> {
        self.in_tx(|tx| {
            if let Some(now) = confirm_old_at {
                service::confirm_renewal(tx, old_serial, now)?;
            }
            service::record_renewal(tx, old_serial, rec, der)
        })
    }
    fn renewed_from(&self, serial: &str) -> Result<Vec<String>> {
        service::renewed_from(&self.conn, serial).map_err(|e| self.err(e))
    }
    fn confirm_renewal(&mut self, new_serial: &str, now: OffsetDateTime) -> Result<Option<String>> {
        self.in_tx(|tx| service::confirm_renewal(tx, new_serial, now))
    }
    fn sweep_renewed(&mut self, now: OffsetDateTime) -> Result<usize> {
        service::sweep_renewed(&self.conn, now).map_err(|e| self.err(e))
    }
    fn successor(&self, serial: &str) -> Result<Option<String>> {
        service::successor(&self.conn, serial).map_err(|e| self.err(e))
    }
    fn chain_state(&self, serial: &str, now: OffsetDateTime) -> Result<ChainState> {
        service::chain_state(&self.conn, serial, now).map_err(|e| self.err(e))
    }
    fn note_seen(&mut self, seen: &[AgentSeen]) -> Result<()> {
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            let sql = crate::ca::ledger::seen_upsert('?');
            for s in seen {
                let (crl_at, refusals) = crate::ca::ledger::seen_params(s);
                exec(
                    &tx,
                    &sql,
                    rusqlite::params![
                        s.subject,
                        s.serial,
                        s.action,
                        s.at,
                        s.crl_number,
                        crl_at,
                        s.refused,
                        refusals
                    ],
                )?;
            }
            tx.commit()
        };
        write(&mut self.conn).map_err(|e| self.err(e))
    }
    fn defer_sync(&mut self) -> Result<bool> {
        // The write-ahead log this connection appends to (it exists while a connection in WAL
        // mode is open; without it, commits stay synced one by one).
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        let Ok(file) = std::fs::File::open(&wal) else {
            return Ok(false);
        };
        // In WAL mode, NORMAL writes each commit without syncing it (a checkpoint still syncs
        // the log before it copies it): the caller syncs through the ticket before answering.
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        let sync = std::sync::Arc::new(crate::group_sync::GroupSync::new(file));
        self.deferred = Some((sync, self.conn.total_changes()));
        Ok(true)
    }
    fn sync_ticket(&mut self) -> Option<crate::group_sync::Ticket> {
        let changes = self.conn.total_changes();
        let (sync, seen) = self.deferred.as_mut()?;
        if changes == *seen {
            return None;
        }
        *seen = changes;
        Some(crate::group_sync::Ticket(sync.clone(), sync.written()))
    }
    fn agents_seen(&self) -> Result<Vec<AgentSeen>> {
        let read = || -> rusqlite::Result<Vec<AgentSeen>> {
            let mut st = self.conn.prepare(crate::ca::ledger::SEEN_SELECT)?;
            let rows = st.query_map([], |r| {
                Ok(AgentSeen {
                    subject: r.get(0)?,
                    serial: r.get(1)?,
                    action: r.get(2)?,
                    at: r.get(3)?,
                    crl_number: r.get(4)?,
                    crl_at: r.get(5)?,
                    refused: r.get(6)?,
                    refusals: r.get(7)?,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.err(e))
    }
    fn dump(&self) -> Result<LedgerDump> {
        dump::dump(&self.conn).map_err(|e| self.err(e))
    }
    fn load(&mut self, dump: &LedgerDump) -> Result<()> {
        self.in_tx(|tx| dump::load(tx, dump))
    }
}

#[cfg(test)]
mod tests;

/// `execute`, the statement prepared once per connection (rusqlite's statement cache).
pub(super) fn exec<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row`, the statement prepared once per connection.
pub(super) fn row<T, P: rusqlite::Params, F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: F,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}
