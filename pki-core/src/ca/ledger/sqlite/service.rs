//! What the online issuing service keeps in SQLite: one-time enrolment tokens (by hash) and,
//! for each leaf renewed through it, the leaf it replaces until the agent confirms that the new
//! one is installed.

use super::{exec, row};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use time::OffsetDateTime;

use super::leaves::insert_rows;
use crate::ca::ledger::{ChainState, EnrolLeaf, GrantRow, LeafRecord};

pub(super) fn add_token(
    conn: &Connection,
    hash: &str,
    entry: &str,
    leaves: &[EnrolLeaf],
    expires_at: OffsetDateTime,
) -> rusqlite::Result<()> {
    exec(
        conn,
        "INSERT INTO enrol_tokens (hash, entry, leaves, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            hash,
            entry,
            serde_json::to_string(leaves).expect("json"),
            OffsetDateTime::now_utc().unix_timestamp(),
            expires_at.unix_timestamp()
        ],
    )?;
    Ok(())
}

pub(super) fn grant_row(
    conn: &Connection,
    hash: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<GrantRow>> {
    row(
        conn,
        "SELECT entry, leaves, expires_at FROM enrol_tokens
         WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![hash, now.unix_timestamp()],
        |r| {
            Ok(GrantRow {
                entry: r.get(0)?,
                leaves: r.get(1)?,
                expires_at: r.get(2)?,
            })
        },
    )
    .optional()
}

pub(super) fn record_enrolment(
    tx: &Transaction<'_>,
    hash: &str,
    now: OffsetDateTime,
    recs: &[(LeafRecord, &[u8])],
) -> rusqlite::Result<bool> {
    let used = exec(
        tx,
        "UPDATE enrol_tokens SET used_at = ?2
         WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
        params![hash, now.unix_timestamp()],
    )?;
    if used != 1 {
        return Ok(false);
    }
    insert_rows(tx, recs, None)?;
    Ok(true)
}

pub(super) fn record_renewal(
    tx: &Transaction<'_>,
    old_serial: &str,
    rec: &LeafRecord,
    der: &[u8],
) -> rusqlite::Result<()> {
    exec(
        tx,
        "UPDATE leaves SET status = 'revoked', revocation_reason = 'superseded', revoked_at = ?2
         WHERE status = 'active' AND serial IN
           (SELECT new_serial FROM renewals WHERE old_serial = ?1 AND confirmed_at IS NULL)",
        params![old_serial, OffsetDateTime::now_utc().unix_timestamp()],
    )?;
    insert_rows(tx, &[(rec.clone(), der)], None)?;
    exec(
        tx,
        "INSERT INTO renewals (new_serial, old_serial) VALUES (?1, ?2)",
        params![rec.serial, old_serial],
    )?;
    Ok(())
}

pub(super) fn renewed_from(conn: &Connection, serial: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT new_serial FROM renewals WHERE old_serial = ?1")?;
    let rows = stmt.query_map(params![serial], |r| r.get(0))?;
    rows.collect()
}

pub(super) fn confirm_renewal(
    tx: &Transaction<'_>,
    new_serial: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<Option<String>> {
    let old: Option<String> = row(
        tx,
        "SELECT old_serial FROM renewals WHERE new_serial = ?1",
        params![new_serial],
        |r| r.get(0),
    )
    .optional()?;
    if let Some(old) = &old {
        exec(
            tx,
            "UPDATE renewals SET confirmed_at = COALESCE(confirmed_at, ?2) WHERE new_serial = ?1",
            params![new_serial, now.unix_timestamp()],
        )?;
        exec(
            tx,
            "UPDATE leaves SET status = 'superseded' WHERE serial = ?1 AND status = 'active'",
            params![old],
        )?;
    }
    Ok(old)
}

pub(super) fn sweep_renewed(conn: &Connection, now: OffsetDateTime) -> rusqlite::Result<usize> {
    exec(
        conn,
        "UPDATE leaves SET status = 'superseded'
         WHERE status = 'active' AND not_after <= ?1
           AND serial IN (SELECT old_serial FROM renewals)",
        params![now.unix_timestamp()],
    )
}

pub(super) fn successor(conn: &Connection, serial: &str) -> rusqlite::Result<Option<String>> {
    row(
        conn,
        "SELECT new_serial FROM renewals WHERE old_serial = ?1 ORDER BY rowid DESC",
        params![serial],
        |r| r.get(0),
    )
    .optional()
}

/// The chain's first leaf, whether `serial` is an unconfirmed renewal, its own pending
/// successor, and the replaced successors of the whole chain still listed.
pub(super) fn chain_state(
    conn: &Connection,
    serial: &str,
    now: OffsetDateTime,
) -> rusqlite::Result<ChainState> {
    let root: String = row(
        conn,
        "WITH RECURSIVE up(s, d) AS (
             SELECT ?1, 0
             UNION ALL SELECT r.old_serial, up.d + 1 FROM renewals r JOIN up ON r.new_serial = up.s)
         SELECT s FROM up ORDER BY d DESC LIMIT 1",
        params![serial],
        |r| r.get(0),
    )?;
    let unconfirmed: bool = row(
        conn,
        "SELECT confirmed_at IS NULL FROM renewals WHERE new_serial = ?1",
        params![serial],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or(false);
    let pending: Option<String> = row(
        conn,
        "SELECT r.new_serial FROM renewals r JOIN leaves l ON l.serial = r.new_serial
             WHERE r.old_serial = ?1 AND r.confirmed_at IS NULL AND l.status = 'active'
             ORDER BY r.rowid DESC LIMIT 1",
        params![serial],
        |r| r.get(0),
    )
    .optional()?;
    let replaced_listed: u32 = row(
        conn,
        "WITH RECURSIVE down(s) AS (
             SELECT ?1
             UNION ALL SELECT r.new_serial FROM renewals r JOIN down ON r.old_serial = down.s)
         SELECT COUNT(*) FROM leaves l JOIN down ON l.serial = down.s
         WHERE l.status = 'revoked' AND l.revocation_reason = 'superseded' AND l.not_after > ?2",
        params![root, now.unix_timestamp()],
        |r| r.get(0),
    )?;
    Ok(ChainState {
        root,
        unconfirmed,
        pending,
        replaced_listed,
    })
}
