//! Root rollover on SoftHSM2: root B beside root A, cross certificates both ways
//! (`root-ca cross-sign`), paths checked with `openssl verify`, and `issuer etcd`'s trust file
//! through the rollover (both roots, then the new one alone). docs/root-rollover.md.

use std::fs;
use std::path::Path;

use e2e_tests::fixture::{fails_with, ok, sh};
use e2e_tests::rollover::{subjects, Rollover};

const A: &str = "CN = Trust Root";
const B: &str = "CN = Trust Root B";

fn openssl_field(dir: &Path, cert: &str, args: &[&str]) -> String {
    let mut a = vec!["x509", "-in", cert, "-noout"];
    a.extend_from_slice(args);
    let (good, out, err) = sh(dir, "openssl", &a);
    assert!(good, "{err}");
    out
}

#[test]
fn cross_certificates_join_the_two_roots_both_ways() {
    let r = Rollover::new();
    let d = &r.pki.d;

    // A direction that does not match the roots' dates is refused before the token is opened.
    let wrong = r.cross_file("old-with-new", "");
    let wrong_text = fs::read_to_string(r.path(&wrong)).unwrap();
    fs::write(
        r.path("wrong.toml"),
        wrong_text
            .replace("signer-root-dir = \"root-b\"", "signer-root-dir = \"root\"")
            .replace(
                "subject-root-dir = \"root\"",
                "subject-root-dir = \"root-b\"",
            )
            .replace("key-label = \"root-b\"", "key-label = \"root\"")
            .replace("old-with-new.crt", "wrong.crt"),
    )
    .unwrap();
    fails_with(
        r.pki
            .root_ca(&["cross-sign", "wrong.toml", "--pin-file", "tok/user.pin"]),
        "direction = \"old-with-new\" but the subject root is the newer one",
    );
    // A lifetime past the roots is refused, naming the end.
    let long = r.cross_file("new-with-old", "days = 9000\n");
    fails_with(
        r.pki.root_ca(&["cross-sign", &long, "--dry-run"]),
        "a cross certificate never outlives either root",
    );

    // The dry run shows the plan and its pre-issuance check, and writes nothing.
    let f = r.cross_file("new-with-old", "");
    let log_before = fs::read(r.path("root/ceremony.log")).unwrap();
    let dry = ok(r.pki.root_ca(&["cross-sign", &f, "--dry-run"]));
    assert!(dry.contains("new-with-old cross certificate"), "{dry}");
    assert!(
        dry.contains("pre-issuance check: conforms to the root profile, same subject and key identifier as the certified root"),
        "{dry}"
    );
    assert!(!r.path("new-with-old.crt").exists());
    assert_eq!(fs::read(r.path("root/ceremony.log")).unwrap(), log_before);

    let out = r.cross_sign("new-with-old");
    assert!(
        out.contains("signed new-with-old cross certificate serial"),
        "{out}"
    );
    let out = r.cross_sign("old-with-new");
    assert!(
        out.contains("signed old-with-new cross certificate serial"),
        "{out}"
    );

    // Each cross certificate: the certified root's subject, key and key identifier; the
    // signer's name as issuer and its key identifier as authority.
    for (cross, subject_root, signer_root, signer_name) in [
        ("new-with-old.crt", "root-b/root.crt", "root/root.crt", A),
        ("old-with-new.crt", "root/root.crt", "root-b/root.crt", B),
    ] {
        let subj = |c: &str| openssl_field(d, c, &["-subject", "-nameopt", "oneline"]);
        assert_eq!(
            subj(cross).trim_start_matches("subject="),
            subj(subject_root).trim_start_matches("subject="),
            "{cross}"
        );
        let issuer = openssl_field(d, cross, &["-issuer", "-nameopt", "oneline"]);
        assert_eq!(issuer.trim(), format!("issuer={signer_name}"), "{cross}");
        assert_eq!(
            openssl_field(d, cross, &["-pubkey"]),
            openssl_field(d, subject_root, &["-pubkey"]),
            "{cross}"
        );
        let ext = |c: &str, e: &str| openssl_field(d, c, &["-ext", e]);
        let ski = |c: &str| {
            ext(c, "subjectKeyIdentifier")
                .lines()
                .nth(1)
                .unwrap_or("")
                .trim()
                .to_string()
        };
        assert_eq!(ski(cross), ski(subject_root), "{cross}");
        let aki = ext(cross, "authorityKeyIdentifier");
        assert!(aki.contains(&ski(signer_root)), "{cross}: {aki}");
        let bc = ext(cross, "basicConstraints");
        assert!(bc.contains("critical") && bc.contains("CA:TRUE"), "{bc}");
        // Signed by the signer's key: verifies with only the signer trusted.
        let (good, _, err) = sh(
            d,
            "openssl",
            &["verify", "-CAfile", signer_root, "-partial_chain", cross],
        );
        assert!(good, "{cross}: {err}");
    }

    // A second cross certificate for the same pair and direction needs allow-resign.
    fs::write(
        r.path("again.toml"),
        fs::read_to_string(r.path(&f))
            .unwrap()
            .replace("new-with-old.crt", "again.crt"),
    )
    .unwrap();
    fails_with(
        r.pki
            .root_ca(&["cross-sign", "again.toml", "--pin-file", "tok/user.pin"]),
        "a cross certificate",
    );
    assert!(!r.path("again.crt").exists());

    // Both ceremony logs are intact; the signer's index knows its cross certificate.
    ok(r.pki.root_ca(&["log", "verify", "root"]));
    ok(r.pki.root_ca(&["log", "verify", "root-b"]));
    let index = fs::read_to_string(r.path("root/index.toml")).unwrap();
    assert!(index.contains("kind = \"cross-certificate\""), "{index}");

    // Paths: a leaf under B's intermediate verifies with only A trusted plus new-with-old,
    // and a leaf under A's intermediate with only B trusted plus old-with-new; neither
    // without its cross certificate.
    r.enrol_b();
    let cluster = r.path("cluster.toml");
    fs::write(&cluster, cluster_toml("")).unwrap();
    ok(r.pki.issuer(&[
        "etcd",
        "--ca",
        "ica",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle-a",
        "--root",
        "root/root.crt",
    ]));
    ok(r.pki.issuer(&[
        "etcd",
        "--ca",
        "ica-b",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle-b",
        "--root",
        "root-b/root.crt",
    ]));
    let leaf_a = "bundle-a/nodes/etcd-1/server.crt";
    let leaf_b = "bundle-b/nodes/etcd-1/server.crt";
    let (good, out) = r.verify(
        "root/root.crt",
        &["intermediate-b.crt", "new-with-old.crt"],
        leaf_b,
    );
    assert!(good, "B's leaf, A trusted, new-with-old offered: {out}");
    let (good, out) = r.verify("root/root.crt", &["intermediate-b.crt"], leaf_b);
    assert!(
        !good,
        "B's leaf must not verify with only A trusted and no cross certificate: {out}"
    );
    let (good, out) = r.verify(
        "root-b/root.crt",
        &["intermediate-1.crt", "old-with-new.crt"],
        leaf_a,
    );
    assert!(good, "A's leaf, B trusted, old-with-new offered: {out}");
    let (good, out) = r.verify("root-b/root.crt", &["intermediate-1.crt"], leaf_a);
    assert!(
        !good,
        "A's leaf must not verify with only B trusted and no cross certificate: {out}"
    );
    // The wrong cross certificate does not help either.
    let (good, out) = r.verify(
        "root/root.crt",
        &["intermediate-b.crt", "old-with-new.crt"],
        leaf_b,
    );
    assert!(!good, "{out}");

    // The old root revokes its new-with-old certificate (the end of the rollover): the next
    // root CRL of A lists it, and the path through it is refused with that CRL.
    let serial = r.pki.serial_of("new-with-old.crt");
    r.pki.write("revoke-cross.toml", &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{serial}\"\nreason = \"superseded\"\n"));
    ok(r.pki.root_ca(&["revoke", "revoke-cross.toml"]));
    r.pki.root_crl("root-a-crl.pem");
    let crl = sh(
        d,
        "openssl",
        &["crl", "-in", "root-a-crl.pem", "-noout", "-text"],
    )
    .1;
    assert!(
        crl.to_ascii_lowercase()
            .contains(&serial.to_ascii_lowercase()),
        "{crl}"
    );
    let (good, out, err) = sh(
        d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-CRLfile",
            "root-a-crl.pem",
            "-crl_check",
            "new-with-old.crt",
        ],
    );
    assert!(
        !good,
        "the revoked cross certificate must be refused: {out}{err}"
    );
    assert!(format!("{out}{err}").contains("revoked"), "{out}{err}");
}

fn cluster_toml(extra: &str) -> String {
    let mut s = format!("name = \"roll\"\netcd-version = \"3.4\"\n{extra}");
    for i in 1..=3 {
        s.push_str(&format!(
            "\n[[member]]\nname = \"etcd-{i}\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\n\
             client-urls = [\"https://127.0.0.1:{c}\"]\npeer-urls = [\"https://127.0.0.1:{p}\"]\n",
            c = 41900 + 2 * i,
            p = 41901 + 2 * i
        ));
    }
    s.push_str("\n[[client]]\nname = \"root\"\n");
    s
}

#[test]
fn issuer_etcd_trust_file_through_the_rollover() {
    // Roots as the root profile makes them by default (pathlen:1).
    let r = Rollover::with_path_length(1);
    let d = &r.pki.d;
    r.enrol_b();
    let out = r.cross_sign("new-with-old");
    assert!(
        out.contains("warning: the signing root CN=Trust Root has pathlen:1"),
        "{out}"
    );
    let cluster = r.path("cluster.toml");
    let etcd = |ca: &str, root: &str, out: &str| {
        r.pki.issuer(&[
            "etcd",
            "--ca",
            ca,
            "--cluster",
            "cluster.toml",
            "--out",
            out,
            "--root",
            root,
        ])
    };
    let trust_files = |b: &str| {
        vec![
            r.path(&format!("{b}/ca.crt")),
            r.path(&format!("{b}/nodes/etcd-1/ca.crt")),
            r.path(&format!("{b}/nodes/etcd-3/ca.crt")),
            r.path(&format!("{b}/clients/root/ca.crt")),
        ]
    };
    let roots_of =
        |b: &str| -> Vec<Vec<String>> { trust_files(b).iter().map(|t| subjects(d, t)).collect() };

    // Before: root A alone.
    fs::write(&cluster, cluster_toml("")).unwrap();
    ok(etcd("ica", "root/root.crt", "bundle-a"));
    assert!(
        roots_of("bundle-a")
            .iter()
            .all(|s| *s == vec![A.to_string()]),
        "{:?}",
        roots_of("bundle-a")
    );
    let leaf_a = fs::read(r.path("bundle-a/nodes/etcd-1/server.crt")).unwrap();

    // also-trust must name a root: a cross certificate (or anything not self-signed) is refused.
    fs::write(
        &cluster,
        cluster_toml("also-trust = [\"new-with-old.crt\"]\n"),
    )
    .unwrap();
    fails_with(
        etcd("ica", "root/root.crt", "bundle-a"),
        "is not a self-signed root CA certificate",
    );
    fs::write(&cluster, cluster_toml("also-trust = [\"root/root.crt\"]\n")).unwrap();
    fails_with(
        etcd("ica", "root/root.crt", "bundle-a"),
        "is already trusted",
    );

    // Step 1: trust both. Every trust file of the old bundle is rewritten to A then B; the
    // leaves stay as they are.
    fs::write(
        &cluster,
        cluster_toml("also-trust = [\"root-b/root.crt\"]\n"),
    )
    .unwrap();
    let out = ok(etcd("ica", "root/root.crt", "bundle-a"));
    assert!(
        out.contains("rewritten: the roots it holds changed (root rollover)"),
        "{out}"
    );
    for s in roots_of("bundle-a") {
        assert_eq!(s, vec![A.to_string(), B.to_string()]);
    }
    assert_eq!(
        fs::read(r.path("bundle-a/nodes/etcd-1/server.crt")).unwrap(),
        leaf_a
    );
    // A second run changes nothing.
    let again = ok(etcd("ica", "root/root.crt", "bundle-a"));
    assert!(!again.contains("rewritten"), "{again}");
    // check-etcd passes the transition, warning about the two roots.
    let check = r.pki.issuer(&["check-etcd", "bundle-a"]);
    let text = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{text}");
    assert!(text.contains("holds 2 roots"), "{text}");

    // Step 2: the new chain, in a new bundle: leaves under B, trust B then A.
    fs::write(&cluster, cluster_toml("also-trust = [\"root/root.crt\"]\n")).unwrap();
    ok(etcd("ica-b", "root-b/root.crt", "bundle-b"));
    for s in roots_of("bundle-b") {
        assert_eq!(s, vec![B.to_string(), A.to_string()]);
    }
    let (good, out) = r.verify(
        "root-b/root.crt",
        &["intermediate-b.crt"],
        "bundle-b/nodes/etcd-2/peer.crt",
    );
    assert!(good, "{out}");
    // With pathlen:1 roots the cross certificate cannot carry a path to a leaf: OpenSSL holds
    // the anchor to its path length. Trusting both roots (this test) is what works.
    let (good, out) = r.verify(
        "root/root.crt",
        &["intermediate-b.crt", "new-with-old.crt"],
        "bundle-b/nodes/etcd-2/peer.crt",
    );
    assert!(
        !good && out.contains("path length constraint exceeded"),
        "{out}"
    );

    // Dropping A from the old bundle (whose leaves chain to A) is refused, and changes nothing.
    fs::write(&cluster, cluster_toml("")).unwrap();
    let before = e2e_tests::fixture::snapshot_files(&r.path("bundle-a"));
    fails_with(
        etcd("ica-b", "root-b/root.crt", "bundle-a"),
        "would stop trusting CN=Trust Root",
    );
    assert_eq!(
        e2e_tests::fixture::snapshot_files(&r.path("bundle-a")),
        before
    );

    // Step 3: drop A from the new bundle: B alone everywhere.
    let out = ok(etcd("ica-b", "root-b/root.crt", "bundle-b"));
    assert!(out.contains("rewritten"), "{out}");
    for s in roots_of("bundle-b") {
        assert_eq!(s, vec![B.to_string()]);
    }
    let check = r.pki.issuer(&["check-etcd", "bundle-b"]);
    let text = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.status.success(), "{text}");
    assert!(!text.contains("holds 2 roots"), "{text}");
}
