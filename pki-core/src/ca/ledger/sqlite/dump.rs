//! Every row of an SQLite ledger out, and into an empty one: what `issuer ledger migrate`
//! moves.

use rusqlite::{params, Connection, Transaction};

use super::leaves::{row_to_record, COLUMNS};
use super::revocation::last_crl_number;
use crate::ca::ledger::{DumpLeaf, LedgerDump};

pub(super) fn dump(conn: &Connection) -> rusqlite::Result<LedgerDump> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS}, l.revoked_at, l.direct_listed_expired, l.etcd_listed_expired,
                l.issued_at, l.run_id, c.der
         FROM leaves l JOIN certs c USING (serial) ORDER BY l.issued_at, l.rowid"
    ))?;
    let leaves = stmt
        .query_map([], |r| {
            Ok(DumpLeaf {
                rec: row_to_record(r)?,
                revoked_at: r.get(14)?,
                direct_listed_expired: r.get(15)?,
                etcd_listed_expired: r.get(16)?,
                issued_at: r.get(17)?,
                run_id: r.get(18)?,
                der: r.get(19)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let batch_runs = conn
        .prepare("SELECT run_id, out_dir, started_at, finished_at FROM batch_runs ORDER BY run_id")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let enrol_tokens = conn
        .prepare(
            "SELECT hash, entry, leaves, created_at, expires_at, used_at
             FROM enrol_tokens ORDER BY hash",
        )?
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let renewals = conn
        .prepare("SELECT new_serial, old_serial, confirmed_at FROM renewals ORDER BY rowid")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(LedgerDump {
        leaves,
        batch_runs,
        enrol_tokens,
        renewals,
        crl_number: last_crl_number(conn)?,
    })
}

pub(super) fn load(tx: &Transaction<'_>, d: &LedgerDump) -> rusqlite::Result<()> {
    let mut leaf = tx.prepare(
        "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
           key_source, not_before, not_after, status, revocation_reason, cert_path, fingerprint,
           revoked_at, direct_listed_expired, etcd_listed_expired, issued_at, run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
           ?18, ?19)",
    )?;
    let mut cert = tx.prepare("INSERT INTO certs (serial, der) VALUES (?1, ?2)")?;
    for l in &d.leaves {
        let r = &l.rec;
        leaf.execute(params![
            r.serial,
            r.generation,
            r.profile,
            r.subject,
            serde_json::to_string(&r.dns).expect("json"),
            serde_json::to_string(&r.ips).expect("json"),
            r.key_alg,
            r.key_source,
            r.not_before.unix_timestamp(),
            r.not_after.unix_timestamp(),
            r.status,
            r.revocation_reason,
            r.cert_path,
            r.fingerprint,
            l.revoked_at,
            l.direct_listed_expired,
            l.etcd_listed_expired,
            l.issued_at,
            l.run_id,
        ])?;
        cert.execute(params![r.serial, l.der])?;
    }
    for (id, dir, start, end) in &d.batch_runs {
        tx.execute(
            "INSERT INTO batch_runs (run_id, out_dir, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![id, dir, start, end],
        )?;
    }
    for (hash, entry, leaves, created, expires, used) in &d.enrol_tokens {
        tx.execute(
            "INSERT INTO enrol_tokens (hash, entry, leaves, created_at, expires_at, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![hash, entry, leaves, created, expires, used],
        )?;
    }
    for (new, old, confirmed) in &d.renewals {
        tx.execute(
            "INSERT INTO renewals (new_serial, old_serial, confirmed_at) VALUES (?1, ?2, ?3)",
            params![new, old, confirmed],
        )?;
    }
    if d.crl_number > 0 {
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('crl_number', ?1)
             ON CONFLICT(name) DO UPDATE SET value = MAX(value, ?1)",
            params![d.crl_number as i64],
        )?;
    }
    Ok(())
}
