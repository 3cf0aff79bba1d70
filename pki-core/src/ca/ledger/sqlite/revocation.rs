//! Revocation and CRL bookkeeping in SQLite: revoking a leaf, the revoked list, CRL numbers,
//! and which expired entries a CRL has listed one last time.

use super::{exec, row};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use super::leaves;
use crate::ca::ledger::{CrlKind, LeafRecord, RevocationMark, RevokedLeaf};
use crate::error::{Error, Result};

pub(super) fn draw_crl_number(tx: &Transaction<'_>) -> rusqlite::Result<u64> {
    exec(
        tx,
        "INSERT INTO counters (name, value) VALUES ('crl_number', 1)
         ON CONFLICT(name) DO UPDATE SET value = value + 1",
        [],
    )?;
    row(
        tx,
        "SELECT value FROM counters WHERE name = 'crl_number'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
}

pub(super) fn last_crl_number(conn: &Connection) -> rusqlite::Result<u64> {
    row(
        conn,
        "SELECT value FROM counters WHERE name = 'crl_number'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|n| n.unwrap_or(0) as u64)
}

pub(super) fn revoked(conn: &Connection) -> rusqlite::Result<Vec<RevokedLeaf>> {
    let mut stmt = conn.prepare_cached(
        "SELECT serial, generation, revocation_reason, COALESCE(revoked_at, issued_at),
                not_after, direct_listed_expired, etcd_listed_expired
         FROM leaves WHERE status = 'revoked' ORDER BY generation, revoked_at",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(crate::ca::ledger::revoked_leaf(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;
    rows.collect()
}

pub(super) fn mark_listed_expired(
    tx: &Transaction<'_>,
    kind: CrlKind,
    serials: &[String],
    number: u64,
) -> rusqlite::Result<()> {
    let col = kind.column();
    let mut stmt = tx.prepare(&format!(
        "UPDATE leaves SET {col} = ?2 WHERE serial = ?1 AND {col} IS NULL"
    ))?;
    for s in serials {
        stmt.execute(params![s, number as i64])?;
    }
    Ok(())
}

/// Revokes an active or superseded leaf inside `tx`; the update skips a revoked row, so two
/// revocations cannot both succeed.
pub(super) fn revoke(
    tx: &Transaction<'_>,
    serial: &str,
    reason: &str,
    ledger: &str,
) -> Result<LeafRecord> {
    let err = |e: rusqlite::Error| Error::Ledger {
        ledger: ledger.to_string(),
        reason: e.to_string(),
    };
    let rec = leaves::get(tx, serial)
        .map_err(err)?
        .ok_or_else(|| Error::UnknownSerial {
            serial: serial.to_string(),
        })?;
    if rec.status == "revoked" {
        return Err(Error::AlreadyRevoked {
            serial: serial.to_string(),
            reason: rec.revocation_reason.clone().unwrap_or_default(),
        });
    }
    let changed = exec(
        tx,
        "UPDATE leaves SET status = 'revoked', revocation_reason = ?2, revoked_at = ?3
             WHERE serial = ?1 AND status != 'revoked'",
        params![serial, reason, OffsetDateTime::now_utc().unix_timestamp()],
    )
    .map_err(err)?;
    if changed != 1 {
        return Err(Error::AlreadyRevoked {
            serial: serial.to_string(),
            reason: "by another command, meanwhile".into(),
        });
    }
    Ok(rec)
}

pub(super) fn mark(conn: &Connection) -> rusqlite::Result<RevocationMark> {
    row(
        conn,
        "SELECT COUNT(*), COALESCE(MAX(revoked_at), 0) FROM leaves WHERE status = 'revoked'",
        [],
        |r| {
            Ok(RevocationMark {
                count: r.get::<_, i64>(0)? as u64,
                latest: r.get(1)?,
            })
        },
    )
}
