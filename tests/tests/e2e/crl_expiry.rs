//! The expiry rule of the CRLs `issuer crl` writes (docs/crl.md, "Keeping the etcd CRL small"):
//! a revoked leaf is listed while it is valid and in exactly one CRL published after it expired,
//! then dropped; in the intermediate's direct CRL and in the etcd CRL alike, each on its own
//! count. Judged by `openssl crl -text`. Time is driven through the ledger (the leaf's recorded
//! notAfter set in the past with the sqlite3 CLI), never by sleeping.

use std::path::Path;

use e2e_tests::fixture::{ok, OpensslCa};
use e2e_tests::openssl::{openssl, path_str};

/// The serials `openssl crl -text` lists in a CRL file (PEM or DER), upper-case hex.
fn listed(dir: &Path, crl: &str) -> Vec<String> {
    let bytes = std::fs::read(dir.join(crl)).unwrap();
    let form = if bytes.starts_with(b"-----BEGIN") {
        "PEM"
    } else {
        "DER"
    };
    openssl(
        dir,
        &["crl", "-inform", form, "-in", crl, "-noout", "-text"],
    )
    .lines()
    .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
    .map(str::to_ascii_uppercase)
    .collect()
}

fn serial_of(ca: &OpensslCa, cn: &str) -> String {
    let rows: serde_json::Value = serde_json::from_str(&ca.ledger()).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["subject"] == cn)
        .unwrap_or_else(|| panic!("{cn} not in the ledger"))["serial"]
        .as_str()
        .unwrap()
        .to_ascii_uppercase()
}

fn sqlite(ledger: &Path, sql: &str) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(ledger)
        .arg(sql)
        .output()
        .expect("sqlite3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// One `issuer crl` writing both CRLs; returns its stdout.
fn crl(ca: &OpensslCa) -> String {
    ok(ca.issuer(&[
        "crl",
        "--ca",
        path_str(&ca.ca),
        "--out",
        "direct.pem",
        "--etcd-out",
        "etcd/crl.pem",
    ]))
}

/// The size report of one written CRL file: "N entries, B bytes" with B its size on disk.
fn assert_reports(stdout: &str, dir: &Path, file: &str, entries: usize) {
    let size = std::fs::metadata(dir.join(file)).unwrap().len();
    let want = format!("{entries} entries, {size} bytes");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(file) && l.contains(&want)),
        "no '{want}' for {file} in:\n{stdout}"
    );
}

#[test]
fn an_expired_revoked_leaf_is_listed_once_more_then_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    for cn in ["gone", "live"] {
        ok(ca.issuer(&[
            "issue",
            "client",
            "--ca",
            path_str(&ca.ca),
            "--out",
            cn,
            "--cn",
            cn,
            "--days",
            "1",
        ]));
    }
    let (gone, live) = (serial_of(&ca, "gone"), serial_of(&ca, "live"));
    for s in [&gone, &live] {
        ok(ca.issuer(&[
            "revoke",
            "--ca",
            path_str(&ca.ca),
            "--reason",
            "keyCompromise",
            s,
        ]));
    }
    let ledger = ca.ca.join("ledger.sqlite");

    // Both unexpired: both listed, and listing them records nothing.
    let out = crl(&ca);
    for f in ["direct.pem", "etcd/crl.pem"] {
        let l = listed(d, f);
        assert!(l.contains(&gone) && l.contains(&live), "{f}: {l:?}");
        assert_reports(&out, d, f, 2);
    }
    assert_eq!(
        sqlite(&ledger, "SELECT COUNT(*) FROM leaves WHERE direct_listed_expired IS NOT NULL OR etcd_listed_expired IS NOT NULL"),
        "0"
    );

    // `gone` expired an hour ago (its day went by): the next CRLs still list it, once.
    sqlite(
        &ledger,
        &format!(
            "UPDATE leaves SET not_after = strftime('%s','now') - 3600 WHERE upper(serial) = '{gone}'"
        ),
    );
    let out = crl(&ca);
    for f in ["direct.pem", "etcd/crl.pem"] {
        let l = listed(d, f);
        assert!(l.contains(&gone) && l.contains(&live), "{f}: {l:?}");
        assert_reports(&out, d, f, 2);
    }
    // Each CRL recorded its own number: the direct CRL is drawn first, the etcd CRL after.
    let numbers = sqlite(
        &ledger,
        &format!(
            "SELECT direct_listed_expired || ' ' || etcd_listed_expired FROM leaves WHERE upper(serial) = '{gone}'"
        ),
    );
    let n: Vec<u64> = numbers.split(' ').map(|x| x.parse().unwrap()).collect();
    assert_eq!(n[1], n[0] + 1, "{numbers}");
    let text = openssl(d, &["crl", "-in", "direct.pem", "-noout", "-crlnumber"]);
    assert!(
        text.contains(&format!("{:02X}", n[0])),
        "direct CRL number {text} vs ledger {numbers}"
    );

    // The CRL after that drops it, and so does every later one; the live leaf stays.
    for _ in 0..2 {
        let out = crl(&ca);
        for f in ["direct.pem", "etcd/crl.pem"] {
            let l = listed(d, f);
            assert_eq!(l, vec![live.clone()], "{f}");
            assert_reports(&out, d, f, 1);
        }
    }
    // The drop does not rewrite the record: it still names the CRL that listed it last.
    assert_eq!(
        sqlite(
            &ledger,
            &format!(
                "SELECT direct_listed_expired || ' ' || etcd_listed_expired FROM leaves WHERE upper(serial) = '{gone}'"
            ),
        ),
        numbers
    );
}

/// A CRL that was signed but never written records nothing: the expired entry is listed again
/// by the next CRL that does reach its file, so no validator misses its last listing.
#[test]
fn an_unpublished_crl_does_not_count_as_the_last_listing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    ok(ca.issuer(&[
        "issue",
        "client",
        "--ca",
        path_str(&ca.ca),
        "--out",
        "gone",
        "--cn",
        "gone",
    ]));
    let gone = serial_of(&ca, "gone");
    ok(ca.issuer(&[
        "revoke",
        "--ca",
        path_str(&ca.ca),
        "--reason",
        "superseded",
        &gone,
    ]));
    let ledger = ca.ca.join("ledger.sqlite");
    sqlite(
        &ledger,
        &format!("UPDATE leaves SET not_after = strftime('%s','now') - 60 WHERE upper(serial) = '{gone}'"),
    );
    // The target's folder is a file: nothing can be written there.
    std::fs::write(d.join("blocked"), b"not a folder").unwrap();
    let o = ca.issuer(&[
        "crl",
        "--ca",
        path_str(&ca.ca),
        "--etcd-out",
        "blocked/crl.pem",
    ]);
    assert!(!o.status.success());
    assert_eq!(
        sqlite(
            &ledger,
            "SELECT COUNT(*) FROM leaves WHERE etcd_listed_expired IS NOT NULL"
        ),
        "0"
    );
    crl(&ca);
    assert_eq!(listed(d, "etcd/crl.pem"), vec![gone.clone()]);
    crl(&ca);
    assert!(listed(d, "etcd/crl.pem").is_empty());
}

/// `issuer etcd` writes a new bundle's first etcd CRL under the same rule (a revoked leaf whose
/// last listing after expiry is past stays out), records its own last listings, and reports
/// the CRL's entries and size as written.
#[test]
fn a_new_bundle_s_crl_follows_the_rule_and_reports_its_size() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    for cn in ["gone", "expiring", "live"] {
        ok(ca.issuer(&[
            "issue",
            "client",
            "--ca",
            path_str(&ca.ca),
            "--out",
            cn,
            "--cn",
            cn,
        ]));
        let s = serial_of(&ca, cn);
        ok(ca.issuer(&[
            "revoke",
            "--ca",
            path_str(&ca.ca),
            "--reason",
            "keyCompromise",
            &s,
        ]));
    }
    let [gone, expiring, live] = ["gone", "expiring", "live"].map(|cn| serial_of(&ca, cn));
    let ledger = ca.ca.join("ledger.sqlite");
    // `gone` expired and an etcd CRL already listed it after that; `expiring` expired and was
    // not listed since.
    sqlite(
        &ledger,
        &format!(
            "UPDATE leaves SET not_after = strftime('%s','now') - 60 WHERE upper(serial) IN ('{gone}', '{expiring}');
             UPDATE leaves SET etcd_listed_expired = 1 WHERE upper(serial) = '{gone}'"
        ),
    );
    let d_s = d.display();
    std::fs::write(
        d.join("cluster.toml"),
        format!(
            "name = \"c\"\netcd-version = \"3.4\"\ninstall-dir = \"{d_s}/etcd/nodes/{{name}}\"\n\
             client-install-dir = \"{d_s}/etcd/clients/{{name}}\"\ndata-dir = \"{d_s}/data/{{name}}\"\n\
             \n[[member]]\nname = \"etcd-1\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\n\
             client-urls = [\"https://127.0.0.1:2379\"]\npeer-urls = [\"https://127.0.0.1:2380\"]\n\
             \n[[client]]\nname = \"root\"\n"
        ),
    )
    .unwrap();
    let out = ok(ca.issuer(&[
        "etcd",
        "--ca",
        path_str(&ca.ca),
        "--root",
        path_str(&ca.root),
        "--cluster",
        "cluster.toml",
        "--out",
        "etcd",
    ]));
    let crl = std::fs::read_dir(d.join("etcd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|n| n.starts_with("crl."))
        .expect("the bundle's CRL file");
    let mut l = listed(&d.join("etcd"), &crl);
    l.sort();
    let mut want = vec![expiring.clone(), live.clone()];
    want.sort();
    assert_eq!(l, want);
    let size = std::fs::metadata(d.join("etcd").join(&crl)).unwrap().len();
    assert!(
        out.lines().any(|line| line.starts_with("etcd CRL ")
            && line.ends_with(&format!(": 2 entries, {size} bytes"))),
        "{out}"
    );
    assert_ne!(
        sqlite(
            &ledger,
            &format!("SELECT etcd_listed_expired FROM leaves WHERE upper(serial) = '{expiring}'")
        ),
        ""
    );
}

/// `issuer check-etcd` warns (`crl-size`) once the etcd CRL holds more entries than the
/// threshold of docs/crl.md, and not at the threshold.
#[test]
fn check_etcd_warns_about_a_crl_past_the_size_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let threshold = pki_core::etcd::CRL_WARN_ENTRIES;
    let mut batch = String::new();
    for i in 0..=threshold {
        batch.push_str(&format!(
            "[[leaf]]\nprofile = \"client\"\ncn = \"u{i}\"\n\n"
        ));
    }
    std::fs::write(d.join("batch.toml"), batch).unwrap();
    ok(ca.issuer(&[
        "batch",
        "--ca",
        path_str(&ca.ca),
        "--out",
        "leaves",
        "batch.toml",
    ]));
    let ledger = ca.ca.join("ledger.sqlite");
    let revoke = |n: usize| {
        // Revoked through the ledger as `issuer revoke` records it; n leaves, oldest first.
        sqlite(
            &ledger,
            &format!(
                "UPDATE leaves SET status = 'revoked', revocation_reason = 'keyCompromise',
                   revoked_at = strftime('%s','now')
                 WHERE rowid IN (SELECT rowid FROM leaves ORDER BY rowid LIMIT {n})"
            ),
        );
    };
    let check = || {
        let o = ca.issuer(&["check-etcd", "crl"]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    for (n, warned) in [(threshold, false), (threshold + 1, true)] {
        revoke(n);
        let out = ok(ca.issuer(&["crl", "--ca", path_str(&ca.ca), "--etcd-out", "crl/crl.pem"]));
        assert!(out.contains(&format!("{n} entries")), "{out}");
        let report = check();
        let line = report.lines().find(|l| l.contains("crl-size"));
        assert_eq!(line.is_some(), warned, "{n} entries:\n{report}");
        if let Some(l) = line {
            assert!(
                l.contains(&format!("{n} entries")) && l.contains("revoke the intermediate"),
                "{l}"
            );
        }
    }
}
