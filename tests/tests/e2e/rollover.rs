//! Root rollover on SoftHSM2: root B beside root A, cross certificates both ways
//! (`root-ca cross-sign`), paths checked with `openssl verify`, and `issuer etcd`'s trust file
//! through the rollover (both roots, then the new one alone). docs/root-rollover.md.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_tests::etcd_cluster::{
    free_port_base, presented_issuer, EtcdCluster, EtcdVersion, Etcdctl,
};
use e2e_tests::fixture::{fails_with, ok, sh};
use e2e_tests::rollover::{install_file, restart_member, subjects, Rollover};
use e2e_tests::writer::{Attempt, Writer};

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
            c = 21900 + 2 * i,
            p = 21901 + 2 * i
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

/// The cluster file of the live drill: members installed in `live/nodes/<name>`, clients in
/// `live/clients/<name>`.
fn drill_cluster(live: &Path, data: &Path, base: u16, v: EtcdVersion, extra: &str) -> String {
    let mut s = format!(
        "name = \"rollover\"\netcd-version = \"{ver}\"\n{extra}\
         install-dir = \"{b}/nodes/{{name}}\"\nclient-install-dir = \"{b}/clients/{{name}}\"\n\
         data-dir = \"{d}/{{name}}\"\n",
        b = live.display(),
        d = data.display(),
        ver = v.minor()
    );
    for i in 1..=3u16 {
        s.push_str(&format!(
            "\n[[member]]\nname = \"etcd-{i}\"\nips = [\"127.0.0.1\"]\n\
             client-urls = [\"https://127.0.0.1:{}\"]\npeer-urls = [\"https://127.0.0.1:{}\"]\n",
            base + i,
            base + 10 + i
        ));
    }
    s.push_str("\n[[client]]\nname = \"root\"\n");
    s
}

/// One rolling restart: each member in turn is stopped and started again, and the next waits
/// until all three are healthy. Returns (member, start, healthy again) per restart.
fn rolling_restart(
    cluster: &mut EtcdCluster,
    ctl: &Etcdctl,
    live: &Path,
) -> Vec<(String, Instant, Instant)> {
    let mut out = Vec::new();
    for i in 0..cluster.members.len() {
        let name = cluster.members[i].name.clone();
        let env = live.join("nodes").join(&name).join("etcd.env");
        let t0 = Instant::now();
        restart_member(cluster, i, &env);
        let mut one = ctl.clone();
        one.endpoints = cluster.members[i].client_url.clone();
        one.wait_healthy(1, Duration::from_secs(60), cluster);
        ctl.wait_healthy(3, Duration::from_secs(60), cluster);
        out.push((name, t0, Instant::now()));
    }
    out
}

/// The longest gap between acknowledged writes that overlaps [from, to].
fn gap_within(attempts: &[Attempt], from: Instant, to: Instant) -> Duration {
    let mut marks: Vec<Instant> = attempts
        .iter()
        .filter(|a| a.acked)
        .map(|a| a.done)
        .collect();
    marks.sort();
    marks
        .windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

/// A live 3-member cluster moved from root A to root B with a writer running: trust both and
/// a rolling restart, every leaf re-issued under B and installed without a restart, the old
/// root dropped and a second rolling restart; then a client chaining only to A is refused and
/// no acknowledged write is lost.
fn live_rollover(v: EtcdVersion, start_port: u16) {
    let _serial = e2e_tests::serial::exclusive();
    let r = Rollover::new();
    r.enrol_b();
    let d = r.pki.d.clone();
    let live = d.join("live");
    let data = d.join("data");
    let base = free_port_base(start_port, 3);
    let cluster_file = d.join("cluster.toml");
    let write_cluster = |extra: &str| {
        fs::write(&cluster_file, drill_cluster(&live, &data, base, v, extra)).unwrap()
    };
    let etcd = |ca: &str, root: &str, out: &Path| {
        ok(r.pki.issuer(&[
            "etcd",
            "--ca",
            ca,
            "--cluster",
            "cluster.toml",
            "--out",
            out.to_str().unwrap(),
            "--root",
            root,
        ]))
    };
    write_cluster("");
    etcd("ica", "root/root.crt", &live);
    // The old client, kept aside: at the end it must be refused.
    let old_client = d.join("old-client");
    fs::create_dir(&old_client).unwrap();
    for f in ["client.crt", "client.key", "ca.crt"] {
        install_file(&live.join("clients/root"), &old_client, f);
    }

    let mut cluster = EtcdCluster::start(&live, &d.join("logs"), v);
    let eps = cluster.endpoints();
    let ctl = Etcdctl::new(&live.join("clients/root"), &eps, v);
    ctl.wait_healthy(3, Duration::from_secs(60), &mut cluster);
    ctl.assert_release(3);
    let mut wctl = ctl.clone();
    wctl.dial_timeout = "1s";
    wctl.command_timeout = "2s";
    let writer = Writer::start(wctl);
    std::thread::sleep(Duration::from_secs(2));
    // The old client works under A (the control for its refusal at the end).
    let mut old = Etcdctl::new(&old_client, &eps, v);
    let (good, out) = old.try_run(&["put", "/old-root", "before"]);
    assert!(good, "the client under A works before the rollover: {out}");

    // Step 1: trust both roots (in place: `live` is where the members' files are installed),
    // then rolling restart 1.
    write_cluster("also-trust = [\"root-b/root.crt\"]\n");
    let out = etcd("ica", "root/root.crt", &live);
    assert!(out.contains("rewritten"), "{out}");
    let restart1 = rolling_restart(&mut cluster, &ctl, &live);

    // Step 2: every leaf under B, in a new bundle, installed on the running members (key
    // first, then certificate) and for the client; no restart.
    write_cluster("also-trust = [\"root/root.crt\"]\n");
    let next = d.join("bundle-b");
    etcd("ica-b", "root-b/root.crt", &next);
    for i in 1..=3 {
        let (from, to) = (
            next.join(format!("nodes/etcd-{i}")),
            live.join(format!("nodes/etcd-{i}")),
        );
        for f in [
            "server.key",
            "server.crt",
            "peer.key",
            "peer.crt",
            "crl.der",
            "ca.crt",
        ] {
            install_file(&from, &to, f);
        }
    }
    for f in ["client.key", "client.crt", "ca.crt"] {
        install_file(&next.join("clients/root"), &live.join("clients/root"), f);
    }
    // Each member presents its certificate under B at the next handshake.
    for m in &cluster.members {
        let hostport = m.client_url.trim_start_matches("https://").to_string();
        let ok_b = (0..20).any(|_| {
            let got = presented_issuer(&hostport, Some(&live.join("clients/root")));
            got == "CN = Trust Intermediate B" || {
                std::thread::sleep(Duration::from_millis(250));
                false
            }
        });
        assert!(ok_b, "{} serves its certificate under B", m.name);
    }
    ctl.wait_healthy(3, Duration::from_secs(30), &mut cluster);

    // Step 3: drop A, rolling restart 2.
    write_cluster("");
    let out = etcd("ica-b", "root-b/root.crt", &next);
    assert!(out.contains("rewritten"), "{out}");
    for i in 1..=3 {
        install_file(
            &next.join(format!("nodes/etcd-{i}")),
            &live.join(format!("nodes/etcd-{i}")),
            "ca.crt",
        );
    }
    install_file(
        &next.join("clients/root"),
        &live.join("clients/root"),
        "ca.crt",
    );
    assert_eq!(
        subjects(&d, &live.join("nodes/etcd-1/ca.crt")),
        vec![B.to_string()]
    );
    let restart2 = rolling_restart(&mut cluster, &ctl, &live);
    std::thread::sleep(Duration::from_secs(2));

    // Every member and the client on B; the old client (chaining only to A) is refused by
    // every member, even trusting the members' root.
    for i in 1..=3 {
        for f in ["server.crt", "peer.crt"] {
            let (good, out) = r.verify(
                "root-b/root.crt",
                &["intermediate-b.crt"],
                live.join(format!("nodes/etcd-{i}/{f}")).to_str().unwrap(),
            );
            assert!(good, "etcd-{i}/{f}: {out}");
        }
    }
    old.cacert = live.join("clients/root/ca.crt");
    let unknown_before = cluster.log_count("unknown authority");
    for m in &cluster.members {
        let mut one = old.clone();
        one.endpoints = m.client_url.clone();
        let (good, out) = one.try_run(&["put", "/old-root", "x"]);
        assert!(!good, "{}: a client under A must be refused: {out}", m.name);
    }
    // ...by the members' TLS check of its chain, as their logs say.
    let t = Instant::now();
    while cluster.log_count("unknown authority") <= unknown_before
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        cluster.log_count("unknown authority") > unknown_before,
        "the members log the old client's chain as unknown: {}",
        cluster.log_tails(5)
    );
    let (good, out) = ctl.try_run(&["put", "/new-root", "x"]);
    assert!(good, "the client under B works: {out}");
    let check = r.pki.issuer(&["check-etcd", next.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(cluster.exited().is_empty(), "{}", cluster.log_tails(10));

    // No acknowledged write lost; the unavailability the writer saw during each restart.
    let (attempts, _stopped) = writer.finish();
    let (good, out) = ctl.try_run(&["get", "/drill/", "--prefix", "--keys-only"]);
    assert!(good, "{out}");
    let stored: BTreeSet<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.acked).collect();
    assert!(acked.len() > 30, "the writer kept writing: {}", acked.len());
    let lost: Vec<u64> = acked
        .iter()
        .filter(|a| !stored.contains(format!("/drill/{}", a.n).as_str()))
        .map(|a| a.n)
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    let failed = attempts.len() - acked.len();
    let mut lines = Vec::new();
    for (round, restarts) in [(1, &restart1), (2, &restart2)] {
        for (name, t0, t1) in restarts.iter() {
            lines.push(format!(
                "restart {round} {name}: back and healthy in {:.1?}, longest writer gap {:.2?}",
                *t1 - *t0,
                gap_within(&attempts, *t0, *t1)
            ));
        }
    }
    println!(
        "{v} root rollover A -> B: writer {} acknowledged, {failed} failed, none lost\n  {}",
        acked.len(),
        lines.join("\n  ")
    );
    // A rolling restart of one member of three keeps the quorum: the writer must not stall.
    for (round, restarts) in [(1, &restart1), (2, &restart2)] {
        for (name, t0, t1) in restarts.iter() {
            let gap = gap_within(&attempts, *t0, *t1);
            assert!(
                gap < Duration::from_secs(10),
                "restart {round} {name}: writer stalled {gap:?}"
            );
        }
    }
}

#[test]
fn live_rollover_etcd_3_4() {
    live_rollover(EtcdVersion::V3_4, 23100);
}

#[test]
fn live_rollover_etcd_3_5() {
    live_rollover(EtcdVersion::V3_5, 23300);
}
