//! The PostgreSQL statements behind [`super::PgLedger`], each over a client or a transaction.

use std::path::Path;

use postgres::{Error, GenericClient, Row, Transaction};
use time::OffsetDateTime;

use crate::ca::ledger::{
    revoked_leaf, ChainState, DumpLeaf, GrantRow, LeafRecord, LedgerDump, ListFilter, RevokedLeaf,
    RowUnder,
};

type R<T> = std::result::Result<T, Error>;

const COLUMNS: &str = "serial, generation, profile, subject, dns, ips, key_alg, key_source, \
                       not_before, not_after, status, revocation_reason, cert_path, fingerprint";

fn record(r: &Row) -> LeafRecord {
    let ts = |i: usize| {
        OffsetDateTime::from_unix_timestamp(r.get::<_, i64>(i))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    };
    let list = |i: usize| serde_json::from_str(r.get::<_, &str>(i)).unwrap_or_default();
    LeafRecord {
        serial: r.get(0),
        generation: r.get::<_, i32>(1) as u32,
        profile: r.get(2),
        subject: r.get(3),
        dns: list(4),
        ips: list(5),
        key_alg: r.get(6),
        key_source: r.get(7),
        not_before: ts(8),
        not_after: ts(9),
        status: r.get(10),
        revocation_reason: r.get(11),
        cert_path: r.get(12),
        fingerprint: r.get(13),
    }
}

/// Reserves the serials new to both `serials` and `leaves`; returns how many. The caller
/// commits only when that is all of them.
pub(super) fn reserve(tx: &mut Transaction<'_>, serials: &[String]) -> R<u64> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    tx.execute(
        "INSERT INTO serials (serial, reserved_at)
         SELECT s, $2 FROM unnest($1::text[]) AS s
         WHERE NOT EXISTS (SELECT 1 FROM leaves l WHERE l.serial = s)
         ON CONFLICT (serial) DO NOTHING",
        &[&serials, &now],
    )
}

pub(super) fn insert_rows(
    tx: &mut Transaction<'_>,
    recs: &[(LeafRecord, &[u8])],
    run_id: Option<&str>,
) -> R<()> {
    let leaf = tx.prepare(
        "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
           key_source, not_before, not_after, status, issued_at, cert_path, fingerprint, run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )?;
    let cert = tx.prepare("INSERT INTO certs (serial, der) VALUES ($1, $2)")?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for (rec, der) in recs {
        tx.execute(
            &leaf,
            &[
                &rec.serial,
                &(rec.generation as i32),
                &rec.profile,
                &rec.subject,
                &serde_json::to_string(&rec.dns).expect("json"),
                &serde_json::to_string(&rec.ips).expect("json"),
                &rec.key_alg,
                &rec.key_source,
                &rec.not_before.unix_timestamp(),
                &rec.not_after.unix_timestamp(),
                &rec.status,
                &now,
                &rec.cert_path,
                &rec.fingerprint,
                &run_id,
            ],
        )?;
        tx.execute(&cert, &[&rec.serial, der])?;
    }
    Ok(())
}

pub(super) fn get(c: &mut impl GenericClient, serial: &str) -> R<Option<LeafRecord>> {
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM leaves WHERE serial = $1"),
        &[&serial],
    )?
    .map(|r| record(&r)))
}

pub(super) fn list(c: &mut impl GenericClient, filter: &ListFilter) -> R<Vec<LeafRecord>> {
    let mut sql =
        format!("SELECT {COLUMNS} FROM leaves WHERE ($1::BIGINT IS NULL OR not_after < $1)");
    if filter.active_only {
        sql.push_str(" AND status = 'active'");
    }
    sql.push_str(" AND ($2::INTEGER IS NULL OR generation = $2)");
    sql.push_str(if filter.expiring_before.is_some() {
        " ORDER BY not_after"
    } else {
        " ORDER BY issued_at, seq"
    });
    let before = filter.expiring_before.map(|t| t.unix_timestamp());
    let generation = filter.generation.map(|g| g as i32);
    Ok(c.query(&sql, &[&before, &generation])?
        .iter()
        .map(record)
        .collect())
}

pub(super) fn active_under(c: &mut impl GenericClient, dir: &Path) -> R<Vec<RowUnder>> {
    let prefix = format!("{}/", dir.display().to_string().trim_end_matches('/'));
    let out_dir = dir.display().to_string();
    let rows = c.query(
        "SELECT l.serial, l.subject, l.profile, l.cert_path, l.fingerprint,
                COALESCE(r.run_id IS NOT NULL AND r.finished_at IS NULL AND r.out_dir = $2, false)
         FROM leaves l LEFT JOIN batch_runs r ON l.run_id = r.run_id
         WHERE l.status = 'active' AND left(l.cert_path, length($1)) = $1",
        &[&prefix, &out_dir],
    )?;
    Ok(rows
        .iter()
        .map(|r| RowUnder {
            serial: r.get(0),
            subject: r.get(1),
            profile: r.get(2),
            cert_path: r.get(3),
            fingerprint: r.get(4),
            interrupted: r.get(5),
        })
        .collect())
}

pub(super) fn revoked(c: &mut postgres::Client) -> R<Vec<RevokedLeaf>> {
    let rows = c.query(
        "SELECT serial, generation, revocation_reason, COALESCE(revoked_at, issued_at),
                not_after, direct_listed_expired, etcd_listed_expired
         FROM leaves WHERE status = 'revoked' ORDER BY generation, revoked_at",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            revoked_leaf(
                r.get(0),
                r.get::<_, i32>(1) as u32,
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect())
}

/// Ok(record) when revoked now; Err(None) when unknown; Err(Some(reason)) when it already was.
pub(super) fn revoke(
    tx: &mut Transaction<'_>,
    serial: &str,
    reason: &str,
) -> R<std::result::Result<LeafRecord, Option<String>>> {
    // The row lock orders two instances revoking the same leaf.
    let Some(row) = tx.query_opt(
        &format!("SELECT {COLUMNS} FROM leaves WHERE serial = $1 FOR UPDATE"),
        &[&serial],
    )?
    else {
        return Ok(Err(None));
    };
    let rec = record(&row);
    if rec.status == "revoked" {
        return Ok(Err(Some(rec.revocation_reason.unwrap_or_default())));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    tx.execute(
        "UPDATE leaves SET status = 'revoked', revocation_reason = $2, revoked_at = $3
         WHERE serial = $1",
        &[&serial, &reason, &now],
    )?;
    Ok(Ok(rec))
}

pub(super) fn grant_row(
    c: &mut postgres::Client,
    hash: &str,
    now: OffsetDateTime,
) -> R<Option<GrantRow>> {
    let t = now.unix_timestamp();
    Ok(c.query_opt(
        "SELECT entry, leaves, expires_at FROM enrol_tokens
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $2",
        &[&hash, &t],
    )?
    .map(|r| GrantRow {
        entry: r.get(0),
        leaves: r.get(1),
        expires_at: r.get(2),
    }))
}

pub(super) fn record_renewal(
    tx: &mut Transaction<'_>,
    old_serial: &str,
    rec: &LeafRecord,
    der: &[u8],
) -> R<()> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // Two instances renewing the same leaf at once take turns on its row.
    tx.execute(
        "SELECT 1 FROM leaves WHERE serial = $1 FOR UPDATE",
        &[&old_serial],
    )?;
    tx.execute(
        "UPDATE leaves SET status = 'revoked', revocation_reason = 'superseded', revoked_at = $2
         WHERE status = 'active' AND serial IN
           (SELECT new_serial FROM renewals WHERE old_serial = $1 AND confirmed_at IS NULL)",
        &[&old_serial, &now],
    )?;
    insert_rows(tx, &[(rec.clone(), der)], None)?;
    tx.execute(
        "INSERT INTO renewals (new_serial, old_serial) VALUES ($1, $2)",
        &[&rec.serial, &old_serial],
    )?;
    Ok(())
}

pub(super) fn confirm_renewal(
    tx: &mut Transaction<'_>,
    new_serial: &str,
    now: OffsetDateTime,
) -> R<Option<String>> {
    let t = now.unix_timestamp();
    let old: Option<String> = tx
        .query_opt(
            "SELECT old_serial FROM renewals WHERE new_serial = $1",
            &[&new_serial],
        )?
        .map(|r| r.get(0));
    if let Some(old) = &old {
        tx.execute(
            "UPDATE renewals SET confirmed_at = COALESCE(confirmed_at, $2) WHERE new_serial = $1",
            &[&new_serial, &t],
        )?;
        tx.execute(
            "UPDATE leaves SET status = 'superseded' WHERE serial = $1 AND status = 'active'",
            &[old],
        )?;
    }
    Ok(old)
}

/// See the SQLite ledger's `chain_state`: the same four facts, in one statement (one round
/// trip on the renewal path instead of four).
pub(super) fn chain_state(
    c: &mut postgres::Client,
    serial: &str,
    now: OffsetDateTime,
) -> R<ChainState> {
    let row = c.query_one(
        "WITH RECURSIVE up(s, d) AS (
             SELECT $1::text, 0
             UNION ALL SELECT r.old_serial, up.d + 1 FROM renewals r JOIN up ON r.new_serial = up.s),
         root AS (SELECT s FROM up ORDER BY d DESC LIMIT 1),
         down(s) AS (
             SELECT s FROM root
             UNION ALL SELECT r.new_serial FROM renewals r JOIN down ON r.old_serial = down.s)
         SELECT
           (SELECT s FROM root),
           COALESCE((SELECT confirmed_at IS NULL FROM renewals WHERE new_serial = $1), false),
           (SELECT r.new_serial FROM renewals r JOIN leaves l ON l.serial = r.new_serial
             WHERE r.old_serial = $1 AND r.confirmed_at IS NULL AND l.status = 'active'
             ORDER BY r.seq DESC LIMIT 1),
           (SELECT COUNT(*) FROM leaves l JOIN down ON l.serial = down.s
             WHERE l.status = 'revoked' AND l.revocation_reason = 'superseded'
               AND l.not_after > $2)",
        &[&serial, &now.unix_timestamp()],
    )?;
    let replaced: i64 = row.get(3);
    Ok(ChainState {
        root: row.get(0),
        unconfirmed: row.get(1),
        pending: row.get(2),
        replaced_listed: replaced as u32,
    })
}

pub(super) fn dump(c: &mut postgres::Client) -> R<LedgerDump> {
    let leaves = c
        .query(
            &format!(
                "SELECT {COLUMNS}, l.revoked_at, l.direct_listed_expired, l.etcd_listed_expired,
                        l.issued_at, l.run_id, c.der
                 FROM leaves l JOIN certs c USING (serial) ORDER BY l.issued_at, l.seq"
            ),
            &[],
        )?
        .iter()
        .map(|r| DumpLeaf {
            rec: record(r),
            revoked_at: r.get(14),
            direct_listed_expired: r.get(15),
            etcd_listed_expired: r.get(16),
            issued_at: r.get(17),
            run_id: r.get(18),
            der: r.get(19),
        })
        .collect();
    let batch_runs = c
        .query(
            "SELECT run_id, out_dir, started_at, finished_at FROM batch_runs ORDER BY run_id",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let enrol_tokens = c
        .query(
            "SELECT hash, entry, leaves, created_at, expires_at, used_at
             FROM enrol_tokens ORDER BY hash",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    let renewals = c
        .query(
            "SELECT new_serial, old_serial, confirmed_at FROM renewals ORDER BY seq",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let r = c.query_one("SELECT last_value, is_called FROM crl_number", &[])?;
    let crl_number = if r.get::<_, bool>(1) {
        r.get::<_, i64>(0) as u64
    } else {
        0
    };
    Ok(LedgerDump {
        leaves,
        batch_runs,
        enrol_tokens,
        renewals,
        crl_number,
    })
}

pub(super) fn load(tx: &mut Transaction<'_>, d: &LedgerDump) -> R<()> {
    let leaf = tx.prepare(
        "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
           key_source, not_before, not_after, status, revocation_reason, cert_path, fingerprint,
           revoked_at, direct_listed_expired, etcd_listed_expired, issued_at, run_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
           $18, $19)",
    )?;
    let cert = tx.prepare("INSERT INTO certs (serial, der) VALUES ($1, $2)")?;
    for l in &d.leaves {
        let r = &l.rec;
        tx.execute(
            &leaf,
            &[
                &r.serial,
                &(r.generation as i32),
                &r.profile,
                &r.subject,
                &serde_json::to_string(&r.dns).expect("json"),
                &serde_json::to_string(&r.ips).expect("json"),
                &r.key_alg,
                &r.key_source,
                &r.not_before.unix_timestamp(),
                &r.not_after.unix_timestamp(),
                &r.status,
                &r.revocation_reason,
                &r.cert_path,
                &r.fingerprint,
                &l.revoked_at,
                &l.direct_listed_expired,
                &l.etcd_listed_expired,
                &l.issued_at,
                &l.run_id,
            ],
        )?;
        tx.execute(&cert, &[&r.serial, &l.der])?;
    }
    for (id, dir, start, end) in &d.batch_runs {
        tx.execute(
            "INSERT INTO batch_runs (run_id, out_dir, started_at, finished_at)
             VALUES ($1, $2, $3, $4)",
            &[id, dir, start, end],
        )?;
    }
    for (hash, entry, leaves, created, expires, used) in &d.enrol_tokens {
        tx.execute(
            "INSERT INTO enrol_tokens (hash, entry, leaves, created_at, expires_at, used_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[hash, entry, leaves, created, expires, used],
        )?;
    }
    for (new, old, confirmed) in &d.renewals {
        tx.execute(
            "INSERT INTO renewals (new_serial, old_serial, confirmed_at) VALUES ($1, $2, $3)",
            &[new, old, confirmed],
        )?;
    }
    if d.crl_number > 0 {
        let n = d.crl_number as i64;
        tx.execute(
            "SELECT setval('crl_number', GREATEST($1, (SELECT last_value FROM crl_number)))",
            &[&n],
        )?;
    }
    Ok(())
}
