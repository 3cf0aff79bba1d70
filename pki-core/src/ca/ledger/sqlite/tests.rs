//! The SQLite ledger's own tests: migrating an older file, and the service rows (the same
//! behaviours run against PostgreSQL in the e2e suite).

use std::path::Path;

use rusqlite::Connection;
use time::OffsetDateTime;

use super::SCHEMA;
use crate::ca::ledger::{CrlKind, EnrolLeaf, LeafRecord, Ledger, RevocationMark};

/// A ledger written by the release before batch runs were recorded opens, gains the
/// column, and keeps its rows (which no batch re-run may void: they have no run).
#[test]
fn an_older_ledger_is_migrated_and_its_rows_are_never_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        let old_schema = SCHEMA.replace(
                "CREATE TABLE IF NOT EXISTS batch_runs (\n    run_id      TEXT PRIMARY KEY,\n    out_dir     TEXT NOT NULL,\n    started_at  INTEGER NOT NULL,\n    finished_at INTEGER\n);",
                "",
            );
        // ...nor the CRL records of expired entries.
        let old_schema = old_schema.replace(
            "    direct_listed_expired INTEGER,\n    etcd_listed_expired   INTEGER,\n",
            "",
        );
        assert!(!old_schema.contains("batch_runs"));
        assert!(!old_schema.contains("listed_expired INTEGER"));
        conn.execute_batch(&old_schema).unwrap();
        conn.execute(
            "INSERT INTO leaves (serial, generation, profile, subject, dns, ips, key_alg,
                   key_source, not_before, not_after, issued_at, cert_path, fingerprint)
                 VALUES ('01', 1, 'client', 'u1', '[]', '[]', 'p256', 'generated', 0, 1, 0,
                   '/gone/out/u1/client.crt', 'AA')",
            [],
        )
        .unwrap();
    }
    let mut ledger = Ledger::open(&path).unwrap();
    let rows = ledger.active_under(Path::new("/gone/out")).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].interrupted);
    // A run into that folder that never finished: only its own rows are interrupted.
    let run = ledger.start_batch_run(Path::new("/gone/out")).unwrap();
    assert!(!ledger.active_under(Path::new("/gone/out")).unwrap()[0].interrupted);
    ledger
        .finish_batch_run(&run, Path::new("/gone/out"))
        .unwrap();
    assert_eq!(ledger.get("01").unwrap().unwrap().subject, "u1");
    // The CRL records work on the migrated ledger.
    ledger.revoke("01", "keyCompromise").unwrap();
    ledger
        .mark_listed_expired(CrlKind::Etcd, &["01".into()], 7)
        .unwrap();
    let r = &ledger.revoked().unwrap()[0];
    assert_eq!(
        (r.etcd_listed_expired, r.direct_listed_expired),
        (Some(7), None)
    );
    // Opening again (the column exists now) is a no-op.
    Ledger::open(&path).unwrap();
}

fn rec(serial: &str, not_after: i64) -> LeafRecord {
    LeafRecord {
        serial: serial.into(),
        generation: 1,
        profile: "client".into(),
        subject: "u1".into(),
        dns: vec![],
        ips: vec![],
        key_alg: "p256".into(),
        key_source: "csr".into(),
        not_before: OffsetDateTime::UNIX_EPOCH,
        not_after: OffsetDateTime::from_unix_timestamp(not_after).unwrap(),
        status: "active".into(),
        revocation_reason: None,
        cert_path: "agent:u1/client".into(),
        fingerprint: "AA".into(),
    }
}

#[test]
fn a_token_obtains_its_leaves_once_and_not_after_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
    let leaves = vec![EnrolLeaf {
        role: "client".into(),
        subject: "u1".into(),
        dns: vec![],
        ips: vec![],
    }];
    l.add_enrol_token("h1", "client u1", &leaves, t0 + time::Duration::hours(1))
        .unwrap();
    assert_eq!(l.enrol_grant("h1", t0).unwrap().unwrap().leaves, leaves);
    assert!(l.enrol_grant("h2", t0).unwrap().is_none());
    let late = t0 + time::Duration::hours(2);
    assert!(l.enrol_grant("h1", late).unwrap().is_none());
    assert!(!l
        .record_enrolment("h1", late, &[(rec("0a", 9), b"x")])
        .unwrap());
    assert!(l.get("0a").unwrap().is_none(), "nothing recorded");
    assert!(l
        .record_enrolment("h1", t0, &[(rec("0a", 9), b"x")])
        .unwrap());
    assert!(l.get("0a").unwrap().is_some());
    assert!(!l
        .record_enrolment("h1", t0, &[(rec("0b", 9), b"x")])
        .unwrap());
    assert!(
        l.get("0b").unwrap().is_none(),
        "a used token records nothing"
    );
    assert!(l.enrol_grant("h1", t0).unwrap().is_none());
}

#[test]
fn a_renewal_supersedes_its_predecessor_on_confirmation_or_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
    l.record(&rec("01", 2_000), b"1").unwrap();
    l.record(&rec("03", 2_000), b"3").unwrap();
    l.record_renewal("01", &rec("02", 9_000), b"2", None)
        .unwrap();
    l.record_renewal("03", &rec("04", 9_000), b"4", None)
        .unwrap();
    assert_eq!(l.successor("01").unwrap().as_deref(), Some("02"));
    assert_eq!(l.get("01").unwrap().unwrap().status, "active");
    assert_eq!(l.confirm_renewal("02", now).unwrap().as_deref(), Some("01"));
    assert_eq!(l.get("01").unwrap().unwrap().status, "superseded");
    assert_eq!(l.confirm_renewal("02", now).unwrap().as_deref(), Some("01"));
    assert_eq!(l.confirm_renewal("01", now).unwrap(), None);
    // 03 was never confirmed: superseded once it expires, not before.
    assert_eq!(l.sweep_renewed(now).unwrap(), 0);
    let later = OffsetDateTime::from_unix_timestamp(2_000).unwrap();
    assert_eq!(l.sweep_renewed(later).unwrap(), 1);
    assert_eq!(l.get("03").unwrap().unwrap().status, "superseded");
    assert_eq!(l.get("04").unwrap().unwrap().status, "active");
}

#[test]
fn renewing_again_revokes_the_unconfirmed_successor_and_revocation_follows_renewals() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
    l.record(&rec("01", 9_000), b"1").unwrap();
    l.record_renewal("01", &rec("02", 9_000), b"2", None)
        .unwrap();
    // 01 renews again before 02 was confirmed: 02 was never installed.
    l.record_renewal("01", &rec("03", 9_000), b"3", None)
        .unwrap();
    assert_eq!(l.get("02").unwrap().unwrap().status, "revoked");
    let at = |l: &Ledger, s: &str, t: i64| {
        l.chain_state(s, OffsetDateTime::from_unix_timestamp(t).unwrap())
            .unwrap()
    };
    let first = at(&l, "01", 1_000);
    assert_eq!(first.root, "01");
    assert!(!first.unconfirmed);
    assert_eq!(first.pending.as_deref(), Some("03"), "02 no longer pending");
    assert_eq!(first.replaced_listed, 1, "02 is listed until it expires");
    assert_eq!(at(&l, "01", 9_000).replaced_listed, 0, "02 expired");
    let pending = at(&l, "03", 1_000);
    assert_eq!(pending.root, "01");
    assert!(pending.unconfirmed);
    assert_eq!(pending.pending, None);
    assert_eq!(l.confirm_renewal("03", now).unwrap().as_deref(), Some("01"));
    assert!(!at(&l, "03", 1_000).unconfirmed);
    l.record_renewal("03", &rec("04", 9_000), b"4", None)
        .unwrap();
    let third = at(&l, "04", 1_000);
    assert_eq!((third.root.as_str(), third.unconfirmed), ("01", true));
    assert_eq!(third.replaced_listed, 1, "counted over the whole chain");
    assert_eq!(at(&l, "03", 1_000).pending.as_deref(), Some("04"));
    // Revoking 01 (its key stolen) revokes what was renewed from it, transitively.
    l.revoke("01", "keyCompromise").unwrap();
    let gone: Vec<String> = l
        .revoke_successors("01", "keyCompromise")
        .unwrap()
        .into_iter()
        .map(|r| r.serial)
        .collect();
    assert_eq!(gone.len(), 2, "{gone:?}");
    for s in ["03", "04"] {
        assert_eq!(l.get(s).unwrap().unwrap().status, "revoked", "{s}");
    }
}

#[test]
fn what_the_service_saw_of_an_agent_is_kept_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let seen = |action: &str, crl: Option<i64>, refused: Option<&str>| crate::ca::AgentSeen {
        subject: "etcd-1".into(),
        serial: "01".into(),
        action: action.into(),
        at: 50,
        crl_number: crl,
        refused: refused.map(String::from),
        ..Default::default()
    };
    l.note_seen(&[seen("GET /v1/crl/etcd", Some(4), None)])
        .unwrap();
    // A batch is applied in order (the service writes one a second).
    l.note_seen(&[
        seen("POST /v1/renew", None, Some("rate-limited")),
        seen("POST /v1/renew", None, Some("revoked")),
    ])
    .unwrap();
    let got = l.agents_seen().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].crl_number, got[0].crl_at), (Some(4), Some(50)));
    assert_eq!(
        (got[0].refusals, got[0].refused.as_deref()),
        (2, Some("revoked"))
    );
    l.note_seen(&[seen("GET /v1/ca", None, None)]).unwrap();
    assert_eq!(l.agents_seen().unwrap()[0].refusals, 0, "a request passed");
}

#[test]
fn the_revocation_mark_moves_with_every_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    l.record(&rec("01", 2_000), b"1").unwrap();
    let m0 = l.revocation_mark().unwrap();
    assert_eq!(m0, RevocationMark::default());
    l.revoke("01", "keyCompromise").unwrap();
    let m1 = l.revocation_mark().unwrap();
    assert_eq!(m1.count, 1);
    assert_ne!(m0, m1);
}
