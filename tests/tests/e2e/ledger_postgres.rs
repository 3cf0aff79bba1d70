//! The server ledger on a real PostgreSQL (a throwaway cluster of its own, password auth on a
//! loopback port): the store behaves as SQLite does; every issuer command works on it; a
//! migration from SQLite is verified row by row and idempotent; a ledger restored from an
//! older backup is refused; two `issuer serve` instances on one database, one killed and the
//! database restarted under load, lose and duplicate nothing. `psql` and openssl check the
//! results independently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::fixture::{fails_with, ok, OpensslCa};
use e2e_tests::openssl::openssl;
use e2e_tests::postgres::Postgres;
use e2e_tests::service::Service;
use pki_core::ca::{CrlKind, EnrolLeaf, LeafRecord, Ledger, LedgerLocation, ListFilter};
use serde_json::Value;
use time::OffsetDateTime;

use crate::service::{csr_with, renew_body, try_call};

fn rec(serial: &str, not_after: i64) -> LeafRecord {
    LeafRecord {
        serial: serial.into(),
        generation: 1,
        profile: "client".into(),
        subject: format!("u-{serial}"),
        dns: vec!["a.example".into()],
        ips: vec!["127.0.0.1".into()],
        key_alg: "p256".into(),
        key_source: "csr".into(),
        not_before: OffsetDateTime::UNIX_EPOCH,
        not_after: OffsetDateTime::from_unix_timestamp(not_after).unwrap(),
        status: "active".into(),
        revocation_reason: None,
        cert_path: format!("agent:u-{serial}/client"),
        fingerprint: format!("FP:{serial}"),
    }
}

fn pg_ledger(pg: &Postgres, db: &str) -> Ledger {
    let url = pg.create_db(db);
    let loc = LedgerLocation::resolve(
        Path::new("test/ca.toml"),
        PathBuf::from("unused"),
        Some(&url),
        Some(&pg.password_file),
        None,
    )
    .unwrap();
    Ledger::connect(&loc, None).unwrap()
}

/// What every store must do, run on SQLite and on PostgreSQL alike.
fn behaviours(l: &mut Ledger, shared: bool) {
    let t0 = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
    // Serials: a recorded serial cannot be reserved; on PostgreSQL (several hosts) a reserved
    // one cannot be reserved again either, and a refused reservation reserves none.
    l.reserve_serials(&["0a".into(), "0b".into()]).unwrap();
    if shared {
        assert!(l.reserve_serials(&["0c".into(), "0a".into()]).is_err());
        l.reserve_serials(&["0c".into()])
            .expect("0c was not left reserved by the refusal");
    }
    l.record(&rec("01", 9_000), b"der-1").unwrap();
    assert!(
        l.reserve_serials(&["01".into()]).is_err(),
        "recorded serial"
    );
    assert!(
        l.record(&rec("01", 9_000), b"again").is_err(),
        "recorded twice"
    );
    assert_eq!(l.cert_der("01").unwrap(), b"der-1");
    // Tokens: once, and not after they expire.
    let leaves = vec![EnrolLeaf {
        role: "client".into(),
        subject: "u1".into(),
        dns: vec![],
        ips: vec![],
    }];
    l.add_enrol_token("h1", "client u1", &leaves, t0 + time::Duration::hours(1))
        .unwrap();
    assert_eq!(l.enrol_grant("h1", t0).unwrap().unwrap().leaves, leaves);
    let late = t0 + time::Duration::hours(2);
    assert!(!l
        .record_enrolment("h1", late, &[(rec("e1", 9), b"x")])
        .unwrap());
    assert!(l.get("e1").unwrap().is_none());
    assert!(l
        .record_enrolment("h1", t0, &[(rec("e1", 9), b"x")])
        .unwrap());
    assert!(!l
        .record_enrolment("h1", t0, &[(rec("e2", 9), b"x")])
        .unwrap());
    assert!(
        l.get("e2").unwrap().is_none(),
        "a used token records nothing"
    );
    // Renewals: superseded on confirmation; renewing again revokes the unconfirmed successor;
    // revoking a leaf revokes what was renewed from it.
    l.record_renewal("01", &rec("02", 9_000), b"2", None)
        .unwrap();
    l.record_renewal("01", &rec("03", 9_000), b"3", None)
        .unwrap();
    assert_eq!(l.get("02").unwrap().unwrap().status, "revoked");
    assert_eq!(l.successor("01").unwrap().as_deref(), Some("03"));
    let early = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
    let first = l.chain_state("01", early).unwrap();
    assert_eq!(first.root, "01");
    assert_eq!(first.pending.as_deref(), Some("03"));
    assert_eq!(first.replaced_listed, 1);
    assert!(l.chain_state("03", early).unwrap().unconfirmed);
    assert_eq!(l.confirm_renewal("03", t0).unwrap().as_deref(), Some("01"));
    assert_eq!(l.get("01").unwrap().unwrap().status, "superseded");
    l.record_renewal("03", &rec("04", 9_000), b"4", None)
        .unwrap();
    let third = l.chain_state("04", early).unwrap();
    assert_eq!((third.root.as_str(), third.unconfirmed), ("01", true));
    assert!(!l.chain_state("03", early).unwrap().unconfirmed);
    assert_eq!(
        l.chain_state("01", OffsetDateTime::from_unix_timestamp(9_000).unwrap())
            .unwrap()
            .replaced_listed,
        0,
        "expired"
    );
    l.revoke("01", "keyCompromise").unwrap();
    let gone = l.revoke_successors("01", "keyCompromise").unwrap();
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert!(matches!(
        l.revoke("04", "keyCompromise"),
        Err(pki_core::Error::AlreadyRevoked { .. })
    ));
    assert!(matches!(
        l.revoke("ff", "keyCompromise"),
        Err(pki_core::Error::UnknownSerial { .. })
    ));
    let revoked: BTreeSet<String> = l.revoked().unwrap().into_iter().map(|r| r.serial).collect();
    assert_eq!(
        revoked,
        ["01", "02", "03", "04"].map(String::from).into(),
        "revoked rows"
    );
    assert_eq!(l.revocation_mark().unwrap().count, 4);
    // What the service saw of agents: a CRL number kept until the next fetch, refusals
    // counted until a request passes.
    let seen = |action: &str, crl: Option<i64>, refused: Option<&str>| pki_core::ca::AgentSeen {
        subject: "app".into(),
        serial: "03".into(),
        action: action.into(),
        at: 100,
        crl_number: crl,
        refused: refused.map(String::from),
        ..Default::default()
    };
    // One batch, applied in order (as the service writes them once a second).
    l.note_seen(&[
        seen("GET /v1/crl/etcd", Some(7), None),
        seen("POST /v1/renew", None, Some("revoked")),
        seen("POST /v1/renew", None, Some("revoked")),
    ])
    .unwrap();
    let got = l.agents_seen().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].crl_number, got[0].crl_at), (Some(7), Some(100)));
    assert_eq!(
        (got[0].refusals, got[0].refused.as_deref()),
        (2, Some("revoked"))
    );
    l.note_seen(&[seen("GET /v1/ca", None, None)]).unwrap();
    assert_eq!(l.agents_seen().unwrap()[0].refusals, 0);
    l.mark_listed_expired(CrlKind::Etcd, &["01".into()], 7)
        .unwrap();
    l.mark_listed_expired(CrlKind::Etcd, &["01".into()], 9)
        .unwrap();
    let r01 = l
        .revoked()
        .unwrap()
        .into_iter()
        .find(|r| r.serial == "01")
        .unwrap();
    assert_eq!(
        r01.etcd_listed_expired,
        Some(7),
        "the first CRL number is kept"
    );
    // CRL numbers only grow.
    assert_eq!(l.last_crl_number().unwrap(), 0);
    let a = l.next_crl_number().unwrap();
    let b = l.next_crl_number().unwrap();
    assert!(b > a && l.last_crl_number().unwrap() == b);
    // Lists and batch runs.
    let run = l.start_batch_run(Path::new("/out")).unwrap();
    l.record_many_in_run(&[(rec("b1", 500), b"b".as_slice())], Some(&run))
        .unwrap();
    l.set_cert_path("b1", Path::new("/out/b1/client.crt"))
        .unwrap();
    let under = l.active_under(Path::new("/out")).unwrap();
    assert_eq!(under.len(), 1);
    assert!(under[0].interrupted);
    l.finish_batch_run(&run, Path::new("/out")).unwrap();
    assert!(!l.active_under(Path::new("/out")).unwrap()[0].interrupted);
    let expiring = l
        .list(&ListFilter {
            expiring_before: Some(OffsetDateTime::from_unix_timestamp(600).unwrap()),
            active_only: true,
            generation: Some(1),
        })
        .unwrap();
    let names: Vec<&str> = expiring.iter().map(|r| r.serial.as_str()).collect();
    assert_eq!(
        names,
        ["e1", "b1"],
        "active, expiring before 600, in expiry order"
    );
    assert_eq!(l.void(&["b1".into()]).unwrap(), 1);
    assert_eq!(l.count().unwrap(), 6);
}

#[test]
fn the_postgres_store_behaves_as_sqlite_and_survives_a_restart() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let mut sqlite = Ledger::open(&tmp.path().join("l.sqlite")).unwrap();
    behaviours(&mut sqlite, false);
    let pg = Postgres::start();
    let mut l = pg_ledger(&pg, "conformance");
    behaviours(&mut l, true);
    // The same rows, whichever store holds them.
    let (a, b) = (sqlite.dump().unwrap(), l.dump().unwrap());
    let strip = |d: &pki_core::ca::LedgerDump| -> Vec<(String, String, Vec<u8>)> {
        let mut v: Vec<_> = d
            .leaves
            .iter()
            .map(|x| (x.rec.serial.clone(), x.rec.status.clone(), x.der.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(&a), strip(&b));
    // An independent client sees the rows and the unique key.
    assert_eq!(
        pg.psql("conformance", "SELECT count(*) FROM leaves").trim(),
        "6"
    );
    // The database goes away: the operation fails cleanly, records nothing; it comes back and
    // the same ledger object carries on.
    pg.stop("fast");
    let e = l.record(&rec("d1", 9_000), b"d").unwrap_err().to_string();
    assert!(e.contains("nothing was recorded"), "{e}");
    pg.restart();
    l.record(&rec("d1", 9_000), b"d").unwrap();
    assert!(l.get("d1").unwrap().is_some());
    // A wrong password is refused with the database's reason, and never shows the password.
    let bad = tmp.path().join("bad.pass");
    std::fs::write(&bad, "wrong-password\n").unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let loc = LedgerLocation::resolve(
        Path::new("t/ca.toml"),
        "x".into(),
        Some(&pg.url("conformance")),
        Some(&bad),
        None,
    )
    .unwrap();
    let e = Ledger::connect(&loc, None)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("wrong-password"), "{e}");
}

fn list_json(ca: &OpensslCa) -> Vec<Value> {
    serde_json::from_str::<Value>(&ca.ledger())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn issue_client(ca: &OpensslCa, cn: &str) -> String {
    ok(ca.issuer(&["issue", "client", "--ca", "ca", "--out", cn, "--cn", cn]));
    crl_serial_of(&ca.dir.join(cn).join("client.crt"))
}

fn crl_serial_of(cert: &Path) -> String {
    openssl(
        Path::new("."),
        &["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()],
    )
    .trim()
    .trim_start_matches("serial=")
    .to_ascii_uppercase()
}

/// Serials and number of a CRL file, as openssl reads it.
fn crl_facts(file: &Path, inform: &str) -> (BTreeSet<String>, u64) {
    let text = openssl(
        Path::new("."),
        &[
            "crl",
            "-noout",
            "-text",
            "-inform",
            inform,
            "-in",
            file.to_str().unwrap(),
        ],
    );
    let serials = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    let number = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number"))
        .nth(1)
        .map(|l| l.trim().parse().unwrap_or(0))
        .unwrap();
    (serials, number)
}

#[test]
fn commands_migration_and_a_restored_backup() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    // Life on SQLite first.
    let s1 = issue_client(&ca, "c1");
    let _s2 = issue_client(&ca, "c2");
    ok(ca.issuer(&["revoke", &s1, "--ca", "ca", "--reason", "keyCompromise"]));
    ok(ca.issuer(&["crl", "--ca", "ca", "--out", "before.crl"]));
    let (_, n_before) = crl_facts(&d.join("before.crl"), "PEM");
    let pg = Postgres::start();
    let url = pg.create_db("pki");
    let pw = pg.password_file.to_str().unwrap();
    let migrate = [
        "ledger",
        "migrate",
        "--ca",
        "ca",
        "--to",
        &url,
        "--password-file",
        pw,
    ];
    let out = ok(ca.issuer(&migrate));
    assert!(out.contains("copied 2 leaves (1 revoked)"), "{out}");
    assert!(out.contains("read back equal"), "{out}");
    let toml = std::fs::read_to_string(ca.ca.join("ca.toml")).unwrap();
    assert!(toml.contains(&format!("ledger = \"{url}\"")), "{toml}");
    assert!(!toml.contains("pw-"), "no password in ca.toml");
    // psql, not our code, sees the rows.
    assert_eq!(pg.psql("pki", "SELECT count(*) FROM leaves").trim(), "2");
    assert_eq!(
        pg.psql(
            "pki",
            "SELECT count(*) FROM leaves WHERE status = 'revoked'"
        )
        .trim(),
        "1"
    );
    // A second run finds the same rows: nothing copied.
    let again = ok(ca.issuer(&migrate));
    assert!(again.contains("nothing copied"), "{again}");
    // Every command on PostgreSQL now.
    let s3 = issue_client(&ca, "c3");
    assert_eq!(list_json(&ca).len(), 3);
    assert_eq!(pg.psql("pki", "SELECT count(*) FROM leaves").trim(), "3");
    ok(ca.issuer(&["revoke", &s3, "--ca", "ca", "--reason", "superseded"]));
    ok(ca.issuer(&["crl", "--ca", "ca", "--out", "after.crl"]));
    let (listed, n_after) = crl_facts(&d.join("after.crl"), "PEM");
    assert!(
        n_after > n_before,
        "CRL numbers go on from SQLite's: {n_before} then {n_after}"
    );
    for s in [&s1, &s3] {
        assert!(listed.contains(s.as_str()), "{s} not in {listed:?}");
    }
    ok(ca.issuer(&[
        "verify",
        "--root",
        ca.root.to_str().unwrap(),
        "c3/client.crt",
    ]));
    // The database now holds rows SQLite never had: migrating again is refused.
    let e = fails_with(ca.issuer(&migrate), "differs from");
    assert!(e.contains("nothing was copied"), "{e}");
    assert_eq!(pg.psql("pki", "SELECT count(*) FROM leaves").trim(), "3");

    // A backup (pg_dump) after s4 was issued, then s4 revoked and a CRL published, then the
    // backup restored into a new database and named in ca.toml: refused, because a CRL signed
    // from it would drop s4.
    let s4 = issue_client(&ca, "c4");
    let backup = d.join("pki.sql");
    pg.pg_dump("pki", &backup);
    ok(ca.issuer(&["revoke", &s4, "--ca", "ca", "--reason", "keyCompromise"]));
    ok(ca.issuer(&["crl", "--ca", "ca", "--out", "latest.crl"]));
    let (_, n_latest) = crl_facts(&d.join("latest.crl"), "PEM");
    let restored = pg.create_db("restored");
    pg.psql_file("restored", &backup);
    let toml = std::fs::read_to_string(ca.ca.join("ca.toml")).unwrap();
    std::fs::write(ca.ca.join("ca.toml"), toml.replace(&url, &restored)).unwrap();
    let e = fails_with(
        ca.issuer(&["list", "--ca", "ca"]),
        "behind what this host saw",
    );
    assert!(e.contains("older backup"), "{e}");
    fails_with(
        ca.issuer(&["ledger", "accept-restore", "--ca", "ca"]),
        "--revocations-replayed",
    );
    // The operator revokes s4 again (the last CRL lists it), then accepts the ledger.
    fails_with(
        ca.issuer(&["revoke", &s4, "--ca", "ca", "--reason", "keyCompromise"]),
        "behind what this host saw",
    );
    ok(ca.issuer(&[
        "ledger",
        "accept-restore",
        "--ca",
        "ca",
        "--revocations-replayed",
    ]));
    ok(ca.issuer(&["revoke", &s4, "--ca", "ca", "--reason", "keyCompromise"]));
    ok(ca.issuer(&["crl", "--ca", "ca", "--out", "restored.crl"]));
    let (listed, n_restored) = crl_facts(&d.join("restored.crl"), "PEM");
    assert!(
        n_restored > n_latest,
        "numbers go on: {n_latest} then {n_restored}"
    );
    assert!(listed.contains(s4.as_str()) && listed.contains(s1.as_str()));
}

/// 1,000 is the benchmark's figure (scripts/bench-serve.sh); the test runs fewer agents for
/// longer than one pass, so that each instance serves many while the other is killed and the
/// database restarts.
const AGENTS: usize = 120;

#[test]
fn two_instances_on_one_database_lose_and_duplicate_nothing() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let pg = Postgres::start();
    pg.create_db("pki");
    pg.point_ca_at(&ca.ca, "pki");
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "svc",
        "--cn",
        "pki-service",
        "--ip",
        "127.0.0.1",
    ]));
    let batch: String = (0..AGENTS)
        .map(|i| format!("[[leaf]]\nprofile = \"client\"\ncn = \"agent-{i:03}\"\n\n"))
        .collect();
    std::fs::write(d.join("agents.toml"), batch).unwrap();
    ok(ca.issuer(&["batch", "--ca", "ca", "--out", "agents", "agents.toml"]));
    let serve = |name: &str| {
        Service::start(
            ca.issuer_command(&[
                "serve",
                "--ca",
                "ca",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "svc/server.crt",
                "--tls-key",
                "svc/server.key",
                "--root",
                ca.root.to_str().unwrap(),
                "--rate-burst",
                "100000",
                "--rate-per-minute",
                "1000000",
            ]),
            &d.join(format!("{name}.log")),
        )
    };
    let a = serve("a");
    let b = serve("b");
    let ports = Arc::new(Mutex::new(vec![a.port, b.port]));
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (ports, received, failed, stop) = (
                ports.clone(),
                received.clone(),
                failed.clone(),
                stop.clone(),
            );
            let (root, dir) = (ca.root.clone(), d.to_path_buf());
            std::thread::spawn(move || {
                let work = dir.join(format!("w{w}"));
                std::fs::create_dir_all(&work).unwrap();
                let mut i = w;
                // This worker's agents (i = w mod 8, and 8 divides AGENTS), each renewing
                // from the leaf it got last, as a real agent does.
                let mut current = std::collections::HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let agent = format!("agent-{:03}", i % AGENTS);
                    i += 8;
                    let a = dir.join("agents").join(&agent);
                    let csr = csr_with(&work, &format!("k{i}"), &format!("/CN={agent}"), &[]);
                    let body = renew_body(&csr);
                    let (cert, key) = current
                        .get(&agent)
                        .cloned()
                        .unwrap_or((a.join("client.crt"), a.join("client.key")));
                    let mine = Some((cert.as_path(), key.as_path()));
                    // An agent tries the instances in turn until one answers.
                    let list = ports.lock().unwrap().clone();
                    let mut got = false;
                    for k in 0..list.len() {
                        let port = list[(i + k) % list.len()];
                        if let Ok(ans) =
                            try_call(port, &root, mine, "POST", "/v1/renew", None, Some(&body))
                        {
                            if ans.status == 200 {
                                let is: pki_service::protocol::Issued =
                                    serde_json::from_slice(&ans.body).unwrap();
                                let crt = work.join(format!("k{i}.crt"));
                                std::fs::write(&crt, &is.chain_pem).unwrap();
                                current
                                    .insert(agent.clone(), (crt, work.join(format!("k{i}.key"))));
                                received.lock().unwrap().push(is.serial);
                                got = true;
                                break;
                            }
                        }
                    }
                    if !got {
                        *failed.lock().unwrap() += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    let wait_for = |n: usize, what: &str| {
        let t = Instant::now();
        while received.lock().unwrap().len() < n {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "stuck before {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(150, "the kill");
    // kill -9 of instance a under load: agents go on with b.
    a.signal("KILL");
    let after_kill = received.lock().unwrap().len();
    wait_for(after_kill + 100, "renewals on b after the kill");
    // The database restarts under load (as after a crash): requests fail meanwhile, and
    // succeed again after it.
    pg.stop("immediate");
    std::thread::sleep(Duration::from_millis(1500));
    pg.restart();
    let after_restart = received.lock().unwrap().len();
    wait_for(after_restart + 100, "renewals after the database restart");
    // A revocation from the command line while b runs, and a new instance c.
    let c = serve("c");
    ports.lock().unwrap().push(c.port);
    let with_c = received.lock().unwrap().len();
    wait_for(with_c + 50, "renewals with c");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let got = received.lock().unwrap().clone();
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a serial was returned twice");
    let in_db: BTreeSet<String> = pg
        .psql("pki", "SELECT serial FROM leaves")
        .lines()
        .map(str::to_string)
        .collect();
    for s in &got {
        assert!(
            in_db.contains(s),
            "certificate {s} was returned but is not in the ledger"
        );
    }
    let dupes = pg.psql(
        "pki",
        "SELECT count(*) - count(DISTINCT serial) FROM serials",
    );
    assert_eq!(dupes.trim(), "0");
    // Revocations from the CLI: every instance's next CRL lists every one, numbers increase.
    let some: Vec<&String> = got.iter().rev().take(3).collect();
    for s in &some {
        let o = ca.issuer(&["revoke", s, "--ca", "ca", "--reason", "keyCompromise"]);
        // A later successor may have revoked it already ('superseded'): both are fine.
        let t = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success() || t.contains("already revoked"), "{t}");
    }
    let revoked: BTreeSet<String> = pg
        .psql(
            "pki",
            "SELECT upper(serial) FROM leaves WHERE status = 'revoked'",
        )
        .lines()
        .map(str::to_string)
        .collect();
    let mut numbers = Vec::new();
    for (name, svc) in [("b", &b), ("c", &c)] {
        let t = Instant::now();
        loop {
            let ans =
                try_call(svc.port, &ca.root, None, "GET", "/v1/crl/etcd", None, None).unwrap();
            let file = d.join(format!("{name}.crl"));
            std::fs::write(&file, &ans.body).unwrap();
            let (listed, number) = crl_facts(&file, "DER");
            let norm: BTreeSet<String> = listed
                .iter()
                .map(|s| s.trim_start_matches('0').to_string())
                .collect();
            let missing: Vec<&String> = revoked
                .iter()
                .filter(|s| !norm.contains(s.trim_start_matches('0')))
                .collect();
            if missing.is_empty() {
                numbers.push(number);
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "instance {name}'s CRL lacks {missing:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert_ne!(
        numbers[0], numbers[1],
        "two instances never share a CRL number"
    );
    let seq = pg.psql("pki", "SELECT last_value FROM crl_number");
    let last: u64 = seq.trim().parse().unwrap();
    assert!(
        numbers.iter().all(|n| *n <= last),
        "{numbers:?} vs sequence {last}"
    );
    println!(
        "two instances on PostgreSQL: {} renewals returned, all distinct and in the ledger; \
         {} tries found no instance (a killed, database restarting); CRL numbers {numbers:?}",
        got.len(),
        failed.lock().unwrap()
    );
}

/// A PostgreSQL ledger restored from an older backup under a running `issuer serve` (the
/// network review's item 2): after a keyCompromise revocation the service published, the
/// database is restored from a dump taken before it. The first request after the restore is
/// refused, no CRL is signed (the number served stays), the revoked leaf renews nothing, and
/// health turns degraded; `issuer ledger accept-restore --revocations-replayed` after the
/// revocation is replayed is the way out, and the next CRL's number is higher than any served.
#[test]
fn a_ledger_restored_under_a_running_service_is_refused() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let pg = Postgres::start();
    let url = pg.create_db("pki");
    ok(ca.issuer(&[
        "ledger",
        "migrate",
        "--ca",
        "ca",
        "--to",
        &url,
        "--password-file",
        pg.password_file.to_str().unwrap(),
    ]));
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "svc",
        "--cn",
        "pki-service",
        "--ip",
        "127.0.0.1",
    ]));
    let s1 = issue_client(&ca, "c1");
    let svc = Service::start(
        ca.issuer_command(&[
            "serve",
            "--ca",
            "ca",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "svc/server.crt",
            "--tls-key",
            "svc/server.key",
            "--root",
            ca.root.to_str().unwrap(),
        ]),
        &d.join("serve.log"),
    );
    // The CRL served now (anonymous requests share one rate bucket: a 429 is waited out).
    let served = |name: &str| loop {
        let ans = try_call(svc.port, &ca.root, None, "GET", "/v1/crl/etcd", None, None).unwrap();
        if ans.status == 429 {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        assert_eq!(ans.status, 200, "{}", String::from_utf8_lossy(&ans.body));
        let file = d.join(format!("{name}.crl"));
        std::fs::write(&file, &ans.body).unwrap();
        break crl_facts(&file, "DER");
    };
    let backup = d.join("before.sql");
    pg.pg_dump("pki", &backup);
    ok(ca.issuer(&["revoke", &s1, "--ca", "ca", "--reason", "keyCompromise"]));
    let t = Instant::now();
    let (listed, published) = loop {
        let (listed, n) = served("after-revoke");
        if listed.contains(&s1) {
            break (listed, n);
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the service never listed {s1}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(listed.contains(&s1));

    // The restore, under the running service (same database, its connection kept).
    pg.psql("pki", "DROP SCHEMA public CASCADE; CREATE SCHEMA public;");
    pg.psql_file("pki", &backup);
    assert_eq!(
        pg.psql(
            "pki",
            "SELECT count(*) FROM leaves WHERE status = 'revoked'"
        )
        .trim(),
        "0",
        "the restored ledger forgot the revocation"
    );
    let c1 = (d.join("c1/client.crt"), d.join("c1/client.key"));
    let body = renew_body(&csr_with(d, "c1-next", "/CN=c1", &[]));
    let a = try_call(
        svc.port,
        &ca.root,
        Some((&c1.0, &c1.1)),
        "POST",
        "/v1/renew",
        None,
        Some(&body),
    )
    .unwrap();
    assert_eq!(a.status, 503, "{}", String::from_utf8_lossy(&a.body));
    std::thread::sleep(Duration::from_secs(3));
    let (still, n) = served("after-restore");
    assert_eq!(n, published, "no CRL was signed from the restored ledger");
    assert!(still.contains(&s1), "the CRL served still lists {s1}");
    let h = try_call(svc.port, &ca.root, None, "GET", "/v1/health", None, None).unwrap();
    assert!(String::from_utf8_lossy(&h.body).contains("degraded"));
    assert!(
        svc.log_text().contains("behind what this host saw"),
        "{}",
        svc.log_text()
    );

    // The way out: replay the revocation, accept the ledger; the service signs again, higher.
    ok(ca.issuer(&[
        "ledger",
        "accept-restore",
        "--ca",
        "ca",
        "--revocations-replayed",
    ]));
    ok(ca.issuer(&["revoke", &s1, "--ca", "ca", "--reason", "keyCompromise"]));
    let t = Instant::now();
    loop {
        let (listed, n) = served("recovered");
        if n > published && listed.contains(&s1) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no new CRL after accept-restore"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
