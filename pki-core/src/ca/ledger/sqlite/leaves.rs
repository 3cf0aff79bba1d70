//! Leaves and their certificates in SQLite: reserving serials, recording, reading, listing.

use std::path::Path;

use super::{exec, row};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use crate::ca::ledger::{LeafRecord, ListFilter};

/// Checks that no leaf has any of these serials. An SQLite ledger serves one host: the
/// leaves' primary key refuses a duplicate when the leaf is recorded, which is before its
/// certificate leaves the process, so no reservation row is written (it would cost one more
/// synced commit per leaf).
pub(super) fn reserve(conn: &Connection, serials: &[String]) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM leaves WHERE serial = ?1)
            AND NOT EXISTS (SELECT 1 FROM serials WHERE serial = ?1)",
    )?;
    for s in serials {
        if !stmt.query_row(params![s], |r| r.get::<_, bool>(0))? {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY),
                Some(format!("serial {s} is already recorded")),
            ));
        }
    }
    Ok(())
}

/// Inserts leaves and their certificates inside an open transaction.
pub(super) fn insert_rows(
    tx: &Transaction<'_>,
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

pub(super) fn supersede(conn: &Connection, serial: &str) -> rusqlite::Result<()> {
    exec(
        conn,
        "UPDATE leaves SET status = 'superseded' WHERE serial = ?1 AND status = 'active'",
        params![serial],
    )?;
    Ok(())
}

pub(super) fn set_cert_path(conn: &Connection, serial: &str, path: &Path) -> rusqlite::Result<()> {
    exec(
        conn,
        "UPDATE leaves SET cert_path = ?2 WHERE serial = ?1",
        params![serial, path.display().to_string()],
    )?;
    Ok(())
}

pub(super) fn cert_der(conn: &Connection, serial: &str) -> rusqlite::Result<Vec<u8>> {
    row(
        conn,
        "SELECT der FROM certs WHERE serial = ?1",
        params![serial],
        |r| r.get(0),
    )
}

pub(super) fn get(conn: &Connection, serial: &str) -> rusqlite::Result<Option<LeafRecord>> {
    row(
        conn,
        &format!("SELECT {COLUMNS} FROM leaves WHERE serial = ?1"),
        params![serial],
        row_to_record,
    )
    .optional()
}

pub(super) fn count(conn: &Connection) -> rusqlite::Result<u64> {
    row(conn, "SELECT COUNT(*) FROM leaves", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
}

pub(super) fn list(conn: &Connection, filter: &ListFilter) -> rusqlite::Result<Vec<LeafRecord>> {
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
    let mut stmt = conn.prepare(&sql)?;
    let rows = match filter.expiring_before {
        Some(t) => stmt.query_map(params![t.unix_timestamp()], row_to_record),
        None => stmt.query_map([], row_to_record),
    }?;
    rows.collect()
}

pub(super) const COLUMNS: &str =
    "serial, generation, profile, subject, dns, ips, key_alg, key_source, \
     not_before, not_after, status, revocation_reason, cert_path, fingerprint";

pub(super) fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeafRecord> {
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
