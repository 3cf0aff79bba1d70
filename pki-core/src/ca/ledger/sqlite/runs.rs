//! Batch runs in SQLite: a run's rows, what an interrupted run left behind, and voiding
//! leaves whose files were never written.

use std::path::Path;

use rusqlite::{params, Connection, Transaction};
use time::OffsetDateTime;

use crate::ca::ledger::RowUnder;

pub(super) fn active_under(conn: &Connection, dir: &Path) -> rusqlite::Result<Vec<RowUnder>> {
    // One trailing '/', however `dir` ends (a prefix of "/x/out//" would match nothing).
    let prefix = format!("{}/", dir.display().to_string().trim_end_matches('/'));
    let out_dir = dir.display().to_string();
    let mut stmt = conn.prepare(
        "SELECT l.serial, l.subject, l.profile, l.cert_path, l.fingerprint,
                r.run_id IS NOT NULL AND r.finished_at IS NULL AND r.out_dir = ?2
         FROM leaves l LEFT JOIN batch_runs r ON l.run_id = r.run_id
         WHERE l.status = 'active' AND substr(l.cert_path, 1, length(?1)) = ?1",
    )?;
    let rows = stmt.query_map(params![prefix, out_dir], |r| {
        Ok(RowUnder {
            serial: r.get(0)?,
            subject: r.get(1)?,
            profile: r.get(2)?,
            cert_path: r.get(3)?,
            fingerprint: r.get(4)?,
            interrupted: r.get(5)?,
        })
    })?;
    rows.collect()
}

pub(super) fn void(tx: &Transaction<'_>, serials: &[String]) -> rusqlite::Result<usize> {
    let mut n = 0;
    for serial in serials {
        n += tx.execute(
            "UPDATE leaves SET status = 'void' WHERE serial = ?1 AND status = 'active'",
            params![serial],
        )?;
    }
    Ok(n)
}

pub(super) fn start(conn: &Connection, out_dir: &Path) -> rusqlite::Result<String> {
    let run_id = format!("{:032x}", rand::random::<u128>());
    conn.execute(
        "INSERT INTO batch_runs (run_id, out_dir, started_at) VALUES (?1, ?2, ?3)",
        params![
            run_id,
            out_dir.display().to_string(),
            OffsetDateTime::now_utc().unix_timestamp()
        ],
    )?;
    Ok(run_id)
}

pub(super) fn finish(conn: &Connection, run_id: &str, out_dir: &Path) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE batch_runs SET finished_at = ?3
         WHERE finished_at IS NULL AND (run_id = ?1 OR out_dir = ?2)",
        params![
            run_id,
            out_dir.display().to_string(),
            OffsetDateTime::now_utc().unix_timestamp()
        ],
    )?;
    Ok(())
}

pub(super) fn forget(tx: &Transaction<'_>, serial: &str) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM certs WHERE serial = ?1",
        "DELETE FROM leaves WHERE serial = ?1",
    ] {
        tx.execute(sql, params![serial])?;
    }
    Ok(())
}
