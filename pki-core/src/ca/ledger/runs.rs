//! Batch runs in the ledger: a run's rows recorded together, what an interrupted run left
//! behind, and voiding leaves whose files were never written.

use super::*;

impl Ledger {
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
        insert_rows(&tx, recs, run_id).map_err(err)?;
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
}

/// Inserts leaves and their certificates inside an open transaction.
pub(super) fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    recs: &[(LeafRecord, &[u8])],
    run_id: Option<&str>,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
           key_source, not_before, not_after, status, issued_at, cert_path, fingerprint,
           run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let mut certs = tx.prepare_cached("INSERT INTO certs (serial, der) VALUES (?1, ?2)")?;
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
        ])?;
        certs.execute(params![rec.serial, der])?;
    }
    Ok(())
}
