//! The server ledger: PostgreSQL, shared by every `issuer serve` instance and CLI command that
//! names it. The same semantics as SQLite, with what several hosts need: serials reserved
//! under a unique key before signing, CRL numbers from a sequence, row locks where two
//! instances could race. A lost connection fails the operation (nothing returned that was not
//! committed) and the next operation connects again.

mod rows;
mod schema;

use std::path::Path;
use std::sync::Mutex;

use postgres::Client;
use time::OffsetDateTime;

use super::location::PgTarget;
use super::{
    AgentSeen, ChainState, CrlKind, EnrolGrant, EnrolLeaf, LeafRecord, LedgerDump, LedgerStore,
    ListFilter, RevocationMark, RevokedLeaf, RowUnder,
};
use crate::error::{Error, Result};

/// A PostgreSQL ledger.
pub(crate) struct PgLedger {
    target: PgTarget,
    client: Mutex<Option<Client>>,
}

impl PgLedger {
    /// Connects, and brings the schema up to date.
    pub(crate) fn connect(target: &PgTarget) -> Result<Self> {
        let ledger = PgLedger {
            target: target.clone(),
            client: Mutex::new(None),
        };
        ledger
            .with(|c| {
                schema::migrate(c)?;
                let v: Option<i32> = c
                    .query_one("SELECT MAX(version) FROM schema_migrations", &[])?
                    .get(0);
                Ok(v.unwrap_or(0))
            })
            .and_then(|v| {
                if v > schema::latest() {
                    Err(ledger.fail(format!(
                    "the database's schema is version {v}, newer than this release knows ({}); \
                     upgrade this host's tools before it uses the database",
                    schema::latest()
                )))
                } else {
                    Ok(())
                }
            })?;
        Ok(ledger)
    }

    fn open_client(&self) -> std::result::Result<Client, postgres::Error> {
        match &self.target.tls_roots {
            None => self.target.config.connect(postgres::NoTls),
            Some(roots) => {
                let mut store = rustls::RootCertStore::empty();
                for r in roots {
                    // Unusable roots are skipped; none usable fails the handshake clearly.
                    let _ = store.add(r.clone());
                }
                let tls = rustls::ClientConfig::builder()
                    .with_root_certificates(store)
                    .with_no_client_auth();
                self.target
                    .config
                    .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        }
    }

    /// Runs `f` on the connection, connecting first when there is none or it was lost.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.open_client().map_err(|e| self.pg(e))?);
        }
        let client = slot.as_mut().expect("connected above");
        let out = f(client);
        if client.is_closed() {
            // Dropped now, so the next call connects again.
            let lost = slot.take();
            drop_off_runtime(lost);
        }
        out.map_err(|e| self.pg(e))
    }

    /// Runs `f` in a transaction and commits it.
    fn in_tx<T>(
        &self,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn pg(&self, e: postgres::Error) -> Error {
        let reason = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    s.push_str(&format!(": {inner}"));
                    src = inner.source();
                }
                format!("{s}; nothing was recorded; is the database up?")
            }
        };
        self.fail(reason)
    }

    fn fail(&self, reason: String) -> Error {
        Error::Ledger {
            ledger: self.target.url.clone(),
            reason,
        }
    }
}

impl Drop for PgLedger {
    fn drop(&mut self) {
        let client = self
            .client
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop_off_runtime(client);
    }
}

/// The blocking client owns a small runtime of its own, which may not be dropped inside an
/// async context (the service's): it is dropped on a thread of its own.
fn drop_off_runtime(client: Option<Client>) {
    if let Some(c) = client {
        let _ = std::thread::spawn(move || drop(c)).join();
    }
}

impl LedgerStore for PgLedger {
    fn describe(&self) -> String {
        self.target.url.clone()
    }
    fn reserve_serials(&mut self, serials: &[String]) -> Result<()> {
        let want = serials.len() as u64;
        let n = self.with(|c| {
            let mut tx = c.transaction()?;
            // Visible to every other instance at commit, flushed with the next synced commit
            // (the leaf's, before any answer leaves): the reservation needs no fsync of its own.
            tx.batch_execute("SET LOCAL synchronous_commit TO OFF")?;
            let n = rows::reserve(&mut tx, serials)?;
            if n == want {
                tx.commit()?;
            }
            Ok(n)
        })?;
        if n != want {
            return Err(self.fail(format!(
                "{} of {want} serials were already reserved or recorded; none was reserved",
                want - n
            )));
        }
        Ok(())
    }
    fn record_many_in_run(
        &mut self,
        recs: &[(LeafRecord, &[u8])],
        run_id: Option<&str>,
    ) -> Result<()> {
        self.in_tx(|tx| rows::insert_rows(tx, recs, run_id))
    }
    fn supersede(&mut self, serial: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE leaves SET status = 'superseded' WHERE serial = $1 AND status = 'active'",
                &[&serial],
            )
            .map(drop)
        })
    }
    fn set_cert_path(&mut self, serial: &str, path: &Path) -> Result<()> {
        let p = path.display().to_string();
        self.with(|c| {
            c.execute(
                "UPDATE leaves SET cert_path = $2 WHERE serial = $1",
                &[&serial, &p],
            )
            .map(drop)
        })
    }
    fn cert_der(&self, serial: &str) -> Result<Vec<u8>> {
        let row =
            self.with(|c| c.query_opt("SELECT der FROM certs WHERE serial = $1", &[&serial]))?;
        row.map(|r| r.get(0)).ok_or_else(|| Error::UnknownSerial {
            serial: serial.to_string(),
        })
    }
    fn get(&self, serial: &str) -> Result<Option<LeafRecord>> {
        self.with(|c| rows::get(c, serial))
    }
    fn count(&self) -> Result<u64> {
        self.with(|c| {
            c.query_one("SELECT COUNT(*) FROM leaves", &[])
                .map(|r| r.get::<_, i64>(0) as u64)
        })
    }
    fn list(&self, filter: &ListFilter) -> Result<Vec<LeafRecord>> {
        self.with(|c| rows::list(c, filter))
    }
    fn active_under(&self, dir: &Path) -> Result<Vec<RowUnder>> {
        self.with(|c| rows::active_under(c, dir))
    }
    fn void(&mut self, serials: &[String]) -> Result<usize> {
        self.in_tx(|tx| {
            tx.execute(
                "UPDATE leaves SET status = 'void' WHERE serial = ANY($1) AND status = 'active'",
                &[&serials],
            )
            .map(|n| n as usize)
        })
    }
    fn start_batch_run(&mut self, out_dir: &Path) -> Result<String> {
        let run_id = format!("{:032x}", rand::random::<u128>());
        let dir = out_dir.display().to_string();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.with(|c| {
            c.execute(
                "INSERT INTO batch_runs (run_id, out_dir, started_at) VALUES ($1, $2, $3)",
                &[&run_id, &dir, &now],
            )
        })?;
        Ok(run_id)
    }
    fn finish_batch_run(&mut self, run_id: &str, out_dir: &Path) -> Result<()> {
        let dir = out_dir.display().to_string();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.with(|c| {
            c.execute(
                "UPDATE batch_runs SET finished_at = $3
                 WHERE finished_at IS NULL AND (run_id = $1 OR out_dir = $2)",
                &[&run_id, &dir, &now],
            )
            .map(drop)
        })
    }
    fn forget_unwritten(&mut self, serial: &str) -> Result<()> {
        self.in_tx(|tx| {
            tx.execute("DELETE FROM certs WHERE serial = $1", &[&serial])?;
            tx.execute("DELETE FROM leaves WHERE serial = $1", &[&serial])?;
            Ok(())
        })
    }
    fn draw_crl_number(&mut self) -> Result<u64> {
        self.with(|c| {
            c.query_one("SELECT nextval('crl_number')", &[])
                .map(|r| r.get::<_, i64>(0) as u64)
        })
    }
    fn last_crl_number(&self) -> Result<u64> {
        self.with(|c| {
            let r = c.query_one("SELECT last_value, is_called FROM crl_number", &[])?;
            Ok(if r.get::<_, bool>(1) {
                r.get::<_, i64>(0) as u64
            } else {
                0
            })
        })
    }
    fn revoked(&self) -> Result<Vec<RevokedLeaf>> {
        self.with(rows::revoked)
    }
    fn mark_listed_expired(
        &mut self,
        kind: CrlKind,
        serials: &[String],
        number: u64,
    ) -> Result<()> {
        let col = kind.column();
        let n = number as i64;
        self.in_tx(|tx| {
            tx.execute(
                &format!("UPDATE leaves SET {col} = $2 WHERE serial = ANY($1) AND {col} IS NULL"),
                &[&serials, &n],
            )
            .map(drop)
        })
    }
    fn revoke(&mut self, serial: &str, reason: &str) -> Result<LeafRecord> {
        let out = self.in_tx(|tx| rows::revoke(tx, serial, reason))?;
        match out {
            Ok(rec) => Ok(rec),
            Err(None) => Err(Error::UnknownSerial {
                serial: serial.to_string(),
            }),
            Err(Some(reason)) => Err(Error::AlreadyRevoked {
                serial: serial.to_string(),
                reason,
            }),
        }
    }
    fn revocation_mark(&self) -> Result<RevocationMark> {
        self.with(|c| {
            let r = c.query_one(
                "SELECT COUNT(*), COALESCE(MAX(revoked_at), 0) FROM leaves WHERE status = 'revoked'",
                &[],
            )?;
            Ok(RevocationMark {
                count: r.get::<_, i64>(0) as u64,
                latest: r.get(1),
            })
        })
    }
    fn add_enrol_token(
        &mut self,
        hash: &str,
        entry: &str,
        leaves: &[EnrolLeaf],
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let json = serde_json::to_string(leaves).expect("json");
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let exp = expires_at.unix_timestamp();
        self.with(|c| {
            c.execute(
                "INSERT INTO enrol_tokens (hash, entry, leaves, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&hash, &entry, &json, &now, &exp],
            )
            .map(drop)
        })
    }
    fn enrol_grant(&self, hash: &str, now: OffsetDateTime) -> Result<Option<EnrolGrant>> {
        let row = self.with(|c| rows::grant_row(c, hash, now))?;
        row.map(|r| r.parse(&self.describe())).transpose()
    }
    fn record_enrolment(
        &mut self,
        hash: &str,
        now: OffsetDateTime,
        recs: &[(LeafRecord, &[u8])],
    ) -> Result<bool> {
        let t = now.unix_timestamp();
        self.with(|c| {
            let mut tx = c.transaction()?;
            let used = tx.execute(
                "UPDATE enrol_tokens SET used_at = $2
                 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
                &[&hash, &t],
            )?;
            if used != 1 {
                return Ok(false);
            }
            rows::insert_rows(&mut tx, recs, None)?;
            tx.commit()?;
            Ok(true)
        })
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
                rows::confirm_renewal(tx, old_serial, now)?;
            }
            rows::record_renewal(tx, old_serial, rec, der)
        })
    }
    fn renewed_from(&self, serial: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let rows = c.query(
                "SELECT new_serial FROM renewals WHERE old_serial = $1 ORDER BY seq",
                &[&serial],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
    fn confirm_renewal(&mut self, new_serial: &str, now: OffsetDateTime) -> Result<Option<String>> {
        self.in_tx(|tx| rows::confirm_renewal(tx, new_serial, now))
    }
    fn sweep_renewed(&mut self, now: OffsetDateTime) -> Result<usize> {
        let t = now.unix_timestamp();
        self.with(|c| {
            c.execute(
                "UPDATE leaves SET status = 'superseded'
                 WHERE status = 'active' AND not_after <= $1
                   AND serial IN (SELECT old_serial FROM renewals)",
                &[&t],
            )
            .map(|n| n as usize)
        })
    }
    fn successor(&self, serial: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_opt(
                "SELECT new_serial FROM renewals WHERE old_serial = $1 ORDER BY seq DESC LIMIT 1",
                &[&serial],
            )
            .map(|r| r.map(|r| r.get(0)))
        })
    }
    fn chain_state(&self, serial: &str, now: OffsetDateTime) -> Result<ChainState> {
        self.with(|c| rows::chain_state(c, serial, now))
    }
    fn note_seen(&mut self, seen: &[AgentSeen]) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let upsert = tx.prepare(&crate::ca::ledger::seen_upsert('$'))?;
            for s in seen {
                let (crl_at, refusals) = crate::ca::ledger::seen_params(s);
                tx.execute(
                    &upsert,
                    &[
                        &s.subject,
                        &s.serial,
                        &s.action,
                        &s.at,
                        &s.crl_number,
                        &crl_at,
                        &s.refused,
                        &refusals,
                    ],
                )?;
            }
            tx.commit()
        })
    }
    fn agents_seen(&self) -> Result<Vec<AgentSeen>> {
        self.with(|c| {
            Ok(c.query(crate::ca::ledger::SEEN_SELECT, &[])?
                .iter()
                .map(|r| AgentSeen {
                    subject: r.get(0),
                    serial: r.get(1),
                    action: r.get(2),
                    at: r.get(3),
                    crl_number: r.get(4),
                    crl_at: r.get(5),
                    refused: r.get(6),
                    refusals: r.get(7),
                })
                .collect())
        })
    }
    fn dump(&self) -> Result<LedgerDump> {
        self.with(rows::dump)
    }
    fn load(&mut self, dump: &LedgerDump) -> Result<()> {
        self.in_tx(|tx| rows::load(tx, dump))
    }
}
