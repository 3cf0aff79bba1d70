//! The PostgreSQL schema, as numbered migrations: each applied once, in order, in its own
//! transaction, under an advisory lock so instances starting together do not race; the
//! numbers applied are kept in `schema_migrations`.

use postgres::Client;

/// (version, SQL). Append only: an applied migration is never edited.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "
CREATE TABLE leaves (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    serial            TEXT PRIMARY KEY,
    generation        INTEGER NOT NULL,
    profile           TEXT NOT NULL,
    subject           TEXT NOT NULL,
    dns               TEXT NOT NULL,
    ips               TEXT NOT NULL,
    key_alg           TEXT NOT NULL,
    key_source        TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'active',
    revocation_reason TEXT,
    revoked_at        BIGINT,
    direct_listed_expired BIGINT,
    etcd_listed_expired   BIGINT,
    issued_at         BIGINT NOT NULL,
    cert_path         TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    run_id            TEXT
);
CREATE INDEX leaves_status_not_after ON leaves(status, not_after);
CREATE TABLE certs (
    serial TEXT PRIMARY KEY REFERENCES leaves(serial) ON DELETE CASCADE,
    der    BYTEA NOT NULL
);
CREATE TABLE batch_runs (
    run_id      TEXT PRIMARY KEY,
    out_dir     TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE TABLE enrol_tokens (
    hash       TEXT PRIMARY KEY,
    entry      TEXT NOT NULL,
    leaves     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE TABLE renewals (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    new_serial   TEXT PRIMARY KEY REFERENCES leaves(serial),
    old_serial   TEXT NOT NULL REFERENCES leaves(serial),
    confirmed_at BIGINT
);
CREATE INDEX renewals_old ON renewals(old_serial);
-- Serials are reserved here before anything is signed with them (Boulder's order): the
-- primary key makes a second reservation of a serial fail, on any instance.
CREATE TABLE serials (
    serial      TEXT PRIMARY KEY,
    reserved_at BIGINT NOT NULL
);
-- CRL numbers from a sequence: strictly increasing across every instance.
CREATE SEQUENCE crl_number START 1;
",
    ),
    (
        2,
        "
-- What the online service last saw of each agent (issuer fleet); telemetry.
CREATE TABLE agent_seen (
    subject    TEXT PRIMARY KEY,
    serial     TEXT NOT NULL,
    action     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    crl_number BIGINT,
    crl_at     BIGINT,
    refused    TEXT,
    refusals   BIGINT NOT NULL DEFAULT 0
);
",
    ),
];

/// Applies the migrations this database lacks; refuses a database newer than this release.
pub(super) fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    // One key for this toolkit's schema: instances starting at once apply it one at a time.
    tx.execute("SELECT pg_advisory_xact_lock(7262611455)", &[])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let applied: Option<i32> = tx
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])?
        .get(0);
    let applied = applied.unwrap_or(0);
    for (version, sql) in MIGRATIONS {
        if *version > applied {
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )?;
        }
    }
    tx.commit()
}

/// The newest schema version this release knows.
pub(super) fn latest() -> i32 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}
