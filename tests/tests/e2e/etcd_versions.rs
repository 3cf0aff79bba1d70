//! The etcd CRL file in a form every targeted etcd reads, and bundles that follow their
//! `etcd-version` (issue 13, items 1 and 3).
//!
//! etcd 3.6 hands the CRL file to Go's `x509.ParseRevocationList`, which takes exactly one DER
//! CertificateList: no PEM armour, nothing after it. No 3.6 binary can be had here, so the file
//! is held to that rule by our own strict parse and by `openssl crl -inform DER`, and a real
//! etcd 3.4 shows the same file refusing a revoked client.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::etcd_cluster::{etcd_log_serial, free_ports, EtcdCluster, EtcdVersion, Etcdctl};
use e2e_tests::fixture::{ok, sh, OpensslCa};
use e2e_tests::serial::exclusive;
use e2e_tests::trust_pki::{Limits, TrustPki};
use tempfile::TempDir;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// What `x509.ParseRevocationList` accepts, checked byte for byte: the file starts with a DER
/// SEQUENCE and is one CertificateList with no trailing byte. Returns the revoked serials
/// (lower-case hex, no leading zero octets) and whether the CRL is marked indirect.
#[track_caller]
fn strict_der_crl(path: &Path) -> (Vec<String>, bool) {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.first(),
        Some(&0x30),
        "{}: not DER (PEM armour or garbage first)",
        path.display()
    );
    assert!(
        !bytes.windows(5).any(|w| w == b"-----"),
        "{}: PEM armour",
        path.display()
    );
    let (rest, crl) = CertificateRevocationList::from_der(&bytes)
        .unwrap_or_else(|e| panic!("{}: not a DER CRL: {e}", path.display()));
    assert!(
        rest.is_empty(),
        "{}: {} bytes after the CertificateList",
        path.display(),
        rest.len()
    );
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| strip_zeros(&r.raw_serial_as_string().replace(':', "")))
        .collect();
    let indirect = crl.extensions().iter().any(|e| {
        matches!(
            e.parsed_extension(),
            x509_parser::extensions::ParsedExtension::IssuingDistributionPoint(idp)
                if idp.indirect_crl
        )
    });
    (serials, indirect)
}

/// `openssl crl -inform DER -noout -text` must read the file; returns its text.
#[track_caller]
fn openssl_der_text(path: &Path) -> String {
    let o = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl crl -inform DER {}: {}",
        path.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn strip_zeros(hex: &str) -> String {
    let mut h = hex.to_ascii_lowercase();
    while h.len() > 2 && h.starts_with("00") {
        h.drain(..2);
    }
    h
}

/// A cluster file with one member per port pair on 127.0.0.1, installed in place in `bundle`.
fn cluster_toml(version: &str, bundle: &Path, data: &Path, ports: &[(u16, u16)]) -> String {
    let mut s = format!(
        "name = \"ver\"\netcd-version = \"{version}\"\n\
         install-dir = \"{b}/nodes/{{name}}\"\n\
         client-install-dir = \"{b}/clients/{{name}}\"\n\
         data-dir = \"{d}/{{name}}\"\n",
        b = bundle.display(),
        d = data.display()
    );
    for (i, (c, p)) in ports.iter().enumerate() {
        s.push_str(&format!(
            "\n[[member]]\nname = \"etcd-{}\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\n\
             client-urls = [\"https://127.0.0.1:{c}\"]\npeer-urls = [\"https://127.0.0.1:{p}\"]\n",
            i + 1
        ));
    }
    s.push_str("\n[[client]]\nname = \"root\"\n\n[[client]]\nname = \"app-user\"\n");
    s
}

/// An OpenSSL-rooted CA and a bundle for `version` (ports never listened on unless `ports`).
fn openssl_bundle(t: &TempDir, version: &str, ports: &[(u16, u16)]) -> (OpensslCa, PathBuf) {
    let ca = OpensslCa::new(t.path());
    let b = t.path().join("bundle");
    let cluster = t.path().join("cluster.toml");
    fs::write(
        &cluster,
        cluster_toml(version, &b, &t.path().join("data"), ports),
    )
    .unwrap();
    ok(ca.issuer(&[
        "etcd",
        "--ca",
        ca.ca.to_str().unwrap(),
        "--cluster",
        cluster.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--root",
        ca.root.to_str().unwrap(),
    ]));
    (ca, b)
}

/// The `LEVEL check` lines of a check-etcd report that contain `needle`.
fn lines_with(out: &str, level: &str, check: &str, needle: &str) -> usize {
    out.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(level) && w.next() == Some(check) && l.contains(needle)
        })
        .count()
}

fn edit(path: &Path, f: impl Fn(&str) -> String) {
    let t = fs::read_to_string(path).unwrap();
    fs::write(path, f(&t)).unwrap();
}

/// The file etcd loads passes 3.6's DER-only parse and `openssl crl -inform DER`: empty, then
/// with a revoked leaf and an intermediate the root revoked (the etcd CRL is indirect and
/// carries the root's revocations, docs/crl.md).
#[test]
fn etcd_crl_file_is_strict_der_empty_and_with_revoked_leaves_and_intermediate() {
    let p = TrustPki::new();
    p.enrol(1, Limits::default());
    let b = p.path("bundle");
    p.write(
        "cluster.toml",
        &cluster_toml(
            "3.6.5",
            &b,
            &p.path("data"),
            &[(21951, 21952), (21953, 21954)],
        ),
    );
    ok(p.issuer(&[
        "etcd",
        "--ca",
        "ica",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle",
    ]));
    assert!(!b.join("crl.pem").exists(), "a new bundle has no PEM CRL");
    let files = [
        b.join("crl.der"),
        b.join("nodes/etcd-1/crl.der"),
        b.join("nodes/etcd-2/crl.der"),
    ];
    for f in &files {
        let (serials, indirect) = strict_der_crl(f);
        assert!(serials.is_empty(), "{}: {serials:?}", f.display());
        assert!(indirect, "{}: the etcd CRL is indirect", f.display());
        let text = openssl_der_text(f);
        assert!(text.contains("No Revoked Certificates"), "{text}");
    }
    let env = fs::read_to_string(b.join("nodes/etcd-1/etcd.env")).unwrap();
    assert!(env.starts_with("# etcd 3.6.5 configuration"), "{env}");
    let nd = b.join("nodes/etcd-1");
    for var in ["ETCD_CLIENT_CRL_FILE", "ETCD_PEER_CRL_FILE"] {
        assert!(
            env.contains(&format!("{var}={}/crl.der\n", nd.display())),
            "{env}"
        );
    }
    let check = p.issuer(&["check-etcd", "bundle"]);
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{said}");
    assert!(!said.contains(" crl "), "{said}");

    // A revoked leaf (the app-user client) and an intermediate the root revoked.
    let leaf = p.serial_of("bundle/clients/app-user/client.crt");
    ok(p.issuer(&["revoke", &leaf, "--ca", "ica", "--reason", "keyCompromise"]));
    let r2 = p.request_and_sign(2, Limits::default());
    assert!(p.path(&r2).exists());
    let int2 = p.serial_of("intermediate-2.crt");
    p.root_revokes("intermediate-2.crt");
    p.root_crl("root-crl-2.pem");
    let out = ok(p.issuer(&[
        "crl",
        "--ca",
        "ica",
        "--etcd-bundle",
        "bundle",
        "--root-crl",
        "root-crl-2.pem",
    ]));
    assert!(out.contains("crl.der (DER"), "{out}");
    assert!(!out.contains("PEM"), "no PEM file in a new bundle: {out}");
    for f in &files {
        let (serials, indirect) = strict_der_crl(f);
        assert!(indirect);
        assert_eq!(serials.len(), 2, "{}: {serials:?}", f.display());
        for s in [&leaf, &int2] {
            assert!(
                serials.contains(&strip_zeros(s)),
                "{}: {s} missing from {serials:?}",
                f.display()
            );
        }
        let text = openssl_der_text(f).to_ascii_lowercase();
        assert!(text.contains(&strip_zeros(&leaf)), "{text}");
        assert!(text.contains(&strip_zeros(&int2)), "{text}");
        assert!(text.contains("certificate issuer"), "{text}");
    }
    // Signed by the issuing intermediate, in DER.
    let (good, o, e) = sh(
        &p.d,
        "openssl",
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "bundle/crl.der",
            "-CAfile",
            "ica/generations/1/intermediate.crt",
            "-verify",
            "-noout",
        ],
    );
    assert!(good && e.contains("verify OK"), "{o}{e}");
    let check = p.issuer(&["check-etcd", "bundle"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// check-etcd judges the CRL file against the member's etcd version and flags settings that do
/// not fit that version.
#[test]
fn check_etcd_flags_crl_format_and_settings_that_do_not_fit_the_version() {
    let t = TempDir::new().unwrap();
    let (ca, b) = openssl_bundle(&t, "3.6", &[(21961, 21962), (21963, 21964)]);
    let (passed, out) = ca.check_etcd(&b);
    assert!(passed, "{out}");

    // A PEM CRL named by a 3.6 member's etcd.env: every mTLS connection would fail.
    let m1 = b.join("nodes/etcd-1");
    let der = fs::read(m1.join("crl.der")).unwrap();
    fs::write(m1.join("crl.pem"), pki_core::x509::to_pem("X509 CRL", &der)).unwrap();
    edit(&m1.join("etcd.env"), |s| {
        s.replace("/crl.der\n", "/crl.pem\n")
    });
    let (passed, out) = ca.check_etcd(&b);
    assert!(!passed, "{out}");
    assert_eq!(
        lines_with(
            &out,
            "FAIL",
            "crl",
            "etcd 3.6 reads the CRL file as DER only"
        ),
        1,
        "{out}"
    );

    // The same file on a 3.4 member works today, but is reported with the way out.
    edit(&m1.join("etcd.env"), |s| {
        s.replace("# etcd 3.6 configuration", "# etcd 3.4 configuration")
    });
    let (_, out) = ca.check_etcd(&b);
    assert_eq!(
        lines_with(&out, "WARN", "crl", "PEM: etcd 3.4 reads it, 3.6 does not"),
        1,
        "{out}"
    );
    assert_eq!(
        lines_with(&out, "WARN", "crl", "names crl.pem, made before crl.der"),
        1,
        "{out}"
    );
    assert_eq!(lines_with(&out, "FAIL", "crl", ""), 0, "{out}");
    // Before upgrading that member to 3.6: --etcd-version judges it as 3.6 already.
    let o = ca.issuer(&["check-etcd", b.to_str().unwrap(), "--etcd-version", "3.6.5"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert_eq!(
        lines_with(
            &out,
            "FAIL",
            "crl",
            "etcd 3.6.5 reads the CRL file as DER only"
        ),
        1,
        "{out}"
    );
    let o = ca.issuer(&["check-etcd", b.to_str().unwrap(), "--etcd-version", "3.7"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("is not a supported etcd version"), "{err}");

    // Empty and unparsable CRL files: etcd refuses every connection.
    let m2 = b.join("nodes/etcd-2");
    fs::write(m2.join("crl.der"), b"").unwrap();
    let (passed, out) = ca.check_etcd(&b);
    assert!(!passed);
    assert_eq!(
        lines_with(&out, "FAIL", "crl", "crl.der: empty"),
        1,
        "{out}"
    );
    fs::write(m2.join("crl.der"), b"\x30\x03\x02\x01\x01").unwrap();
    let (_, out) = ca.check_etcd(&b);
    assert_eq!(
        lines_with(&out, "FAIL", "crl", "crl.der: not one DER CRL"),
        1,
        "{out}"
    );
    let mut trailing = der.clone();
    trailing.push(b'\n');
    fs::write(m2.join("crl.der"), &trailing).unwrap();
    let (_, out) = ca.check_etcd(&b);
    assert_eq!(
        lines_with(&out, "FAIL", "crl", "1 bytes follow the CertificateList"),
        1,
        "{out}"
    );
    fs::write(m2.join("crl.der"), &der).unwrap();

    // Peer-restriction lists: 3.5.15 and later only.
    let t2 = TempDir::new().unwrap();
    let (ca, b) = openssl_bundle(&t2, "3.5.1", &[(21971, 21972)]);
    let env = b.join("nodes/etcd-1/etcd.env");
    edit(&env, |s| {
        s.replace(
            "ETCD_PEER_CERT_ALLOWED_HOSTNAME=peers.ver.etcd\n",
            "ETCD_PEER_CERT_ALLOWED_HOSTNAME=peers.ver.etcd,localhost\n",
        )
    });
    let (passed, out) = ca.check_etcd(&b);
    assert!(!passed);
    assert_eq!(
        lines_with(
            &out,
            "FAIL",
            "peer-restriction",
            "etcd 3.5.1 takes one value and compares the whole string"
        ),
        1,
        "{out}"
    );
    edit(&env, |s| {
        s.replace("# etcd 3.5.1 configuration", "# etcd 3.5.15 configuration")
    });
    let (_, out) = ca.check_etcd(&b);
    assert_eq!(
        lines_with(&out, "FAIL", "peer-restriction", "takes one value"),
        0,
        "{out}"
    );

    // --listen-client-http-urls: not a 3.4 setting; on 3.5 before 3.5.32 the gRPC listener
    // does not enforce the CRL (GHSA-3wh4-j44w-pg92).
    edit(&env, |s| {
        format!("{s}ETCD_LISTEN_CLIENT_HTTP_URLS=https://127.0.0.1:21979\n")
    });
    for (version, level, needle) in [
        ("3.4", "FAIL", "is not an etcd 3.4 setting"),
        ("3.5.1", "WARN", "GHSA-3wh4-j44w-pg92"),
        ("3.5", "WARN", "GHSA-3wh4-j44w-pg92"),
        ("3.6.12", "WARN", "GHSA-3wh4-j44w-pg92"),
    ] {
        edit(&env, |s| {
            let (_, rest) = s.split_once(" configuration").unwrap();
            format!("# etcd {version} configuration{rest}")
        });
        let (_, out) = ca.check_etcd(&b);
        assert_eq!(
            lines_with(&out, level, "etcd-version", needle),
            1,
            "{version}: {out}"
        );
    }
    for fixed in ["3.5.32", "3.6.13"] {
        edit(&env, |s| {
            let (_, rest) = s.split_once(" configuration").unwrap();
            format!("# etcd {fixed} configuration{rest}")
        });
        let (_, out) = ca.check_etcd(&b);
        assert_eq!(lines_with(&out, "WARN", "etcd-version", ""), 0, "{out}");
        assert_eq!(lines_with(&out, "FAIL", "etcd-version", ""), 0, "{out}");
    }
}

/// A real etcd 3.4: a bundle from before crl.der (its etcd.env names crl.pem) keeps receiving
/// revocations through `issuer crl --etcd-bundle`; after the switch to crl.der, the DER file
/// refuses the revoked client too, and the other client still works.
#[test]
fn etcd_34_refuses_a_revoked_client_with_the_der_crl_and_after_migrating_from_pem() {
    let _serial = exclusive();
    let t = TempDir::new().unwrap();
    let ports = [free_ports()];
    let (ca, b) = openssl_bundle(&t, "3.4", &ports);
    let m = b.join("nodes/etcd-1");
    // What an older `issuer etcd` left: a PEM crl.pem named by etcd.env, no crl.der at all.
    let der = fs::read(m.join("crl.der")).unwrap();
    for dir in [&b, &m] {
        fs::write(
            dir.join("crl.pem"),
            pki_core::x509::to_pem("X509 CRL", &der),
        )
        .unwrap();
        fs::remove_file(dir.join("crl.der")).unwrap();
    }
    edit(&m.join("etcd.env"), |s| {
        s.replace("/crl.der\n", "/crl.pem\n")
    });

    let mut cluster = EtcdCluster::start(&b, &t.path().join("logs"), EtcdVersion::V3_4);
    let root = Etcdctl::new(
        &b.join("clients/root"),
        &cluster.endpoints(),
        EtcdVersion::V3_4,
    );
    let app = Etcdctl::new(
        &b.join("clients/app-user"),
        &cluster.endpoints(),
        EtcdVersion::V3_4,
    );
    root.wait_healthy(1, Duration::from_secs(30), &mut cluster);
    let (good, out) = app.try_run(&["put", "/k", "v"]);
    assert!(good, "app-user before revocation: {out}");

    let (_, o, _) = sh(
        &b,
        "openssl",
        &[
            "x509",
            "-noout",
            "-serial",
            "-in",
            "clients/app-user/client.crt",
        ],
    );
    let serial = o.trim().trim_start_matches("serial=").to_ascii_lowercase();
    ok(ca.issuer(&[
        "revoke",
        &serial,
        "--ca",
        ca.ca.to_str().unwrap(),
        "--reason",
        "keyCompromise",
    ]));
    let out = ok(ca.issuer(&[
        "crl",
        "--ca",
        ca.ca.to_str().unwrap(),
        "--etcd-bundle",
        b.to_str().unwrap(),
        "--root",
        ca.root.to_str().unwrap(),
    ]));
    // crl.der is written beside the legacy file, which is kept current in PEM.
    assert!(out.contains("nodes/etcd-1/crl.der (DER"), "{out}");
    assert!(out.contains("nodes/etcd-1/crl.pem (PEM"), "{out}");
    let (serials, _) = strict_der_crl(&m.join("crl.der"));
    assert!(serials.contains(&strip_zeros(&serial)), "{serials:?}");
    assert!(fs::read_to_string(m.join("crl.pem"))
        .unwrap()
        .starts_with("-----BEGIN X509 CRL-----"));
    let needle = format!("certificate serial {} revoked", etcd_log_serial(&serial));
    let (good, out) = app.try_run(&["get", "/k"]);
    assert!(!good, "refused through the legacy crl.pem: {out}");
    assert!(cluster.log_count(&needle) > 0, "{}", cluster.log_tails(10));
    let (_, report) = ca.check_etcd(&b);
    assert_eq!(
        lines_with(&report, "WARN", "crl", "names crl.pem, made before crl.der"),
        1,
        "{report}"
    );

    // The switch check-etcd asks for: etcd.env names crl.der, restart, delete crl.pem.
    drop(cluster);
    edit(&m.join("etcd.env"), |s| {
        s.replace("/crl.pem\n", "/crl.der\n")
    });
    fs::remove_file(m.join("crl.pem")).unwrap();
    fs::remove_file(b.join("crl.pem")).unwrap();
    let mut cluster = EtcdCluster::start(&b, &t.path().join("logs2"), EtcdVersion::V3_4);
    root.wait_healthy(1, Duration::from_secs(30), &mut cluster);
    let (good, out) = root.try_run(&["get", "/k", "--print-value-only"]);
    assert!(good && out.trim() == "v", "root after the switch: {out}");
    let (good, out) = app.try_run(&["get", "/k"]);
    assert!(!good, "refused through crl.der: {out}");
    assert!(cluster.log_count(&needle) > 0, "{}", cluster.log_tails(10));
    let (passed, report) = ca.check_etcd(&b);
    assert!(passed, "{report}");
    assert_eq!(lines_with(&report, "WARN", "crl", "PEM"), 0, "{report}");
}

/// `issuer etcd` run again on a bundle from before crl.der writes the DER file everywhere and
/// leaves the old crl.pem and every etcd.env as they are; check-etcd then names the members
/// still on crl.pem, and fails them on a 3.6 target.
#[test]
fn issuer_etcd_adds_crl_der_to_a_bundle_from_before_it() {
    let t = TempDir::new().unwrap();
    let (ca, b) = openssl_bundle(&t, "3.6", &[(21981, 21982), (21983, 21984)]);
    let der = fs::read(b.join("crl.der")).unwrap();
    let pem = pki_core::x509::to_pem("X509 CRL", &der);
    let dirs = [b.clone(), b.join("nodes/etcd-1"), b.join("nodes/etcd-2")];
    for d in &dirs {
        fs::write(d.join("crl.pem"), &pem).unwrap();
        fs::remove_file(d.join("crl.der")).unwrap();
    }
    for m in ["etcd-1", "etcd-2"] {
        edit(&b.join(format!("nodes/{m}/etcd.env")), |s| {
            s.replace("/crl.der\n", "/crl.pem\n")
        });
    }
    let envs_before: Vec<String> = ["etcd-1", "etcd-2"]
        .map(|m| fs::read_to_string(b.join(format!("nodes/{m}/etcd.env"))).unwrap())
        .to_vec();
    let (passed, out) = ca.check_etcd(&b);
    assert!(!passed);
    assert_eq!(
        lines_with(
            &out,
            "FAIL",
            "crl",
            "etcd 3.6 reads the CRL file as DER only"
        ),
        2,
        "{out}"
    );
    assert_eq!(
        lines_with(&out, "FAIL", "crl", "crl.der: missing"),
        1,
        "the bundle's own crl.der: {out}"
    );

    let cluster = t.path().join("cluster.toml");
    let out = ok(ca.issuer(&[
        "etcd",
        "--ca",
        ca.ca.to_str().unwrap(),
        "--cluster",
        cluster.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--root",
        ca.root.to_str().unwrap(),
    ]));
    assert!(out.contains("0 issued"), "{out}");
    for d in &dirs {
        strict_der_crl(&d.join("crl.der"));
        openssl_der_text(&d.join("crl.der"));
        assert_eq!(fs::read_to_string(d.join("crl.pem")).unwrap(), pem);
    }
    for (m, before) in ["etcd-1", "etcd-2"].iter().zip(&envs_before) {
        assert_eq!(
            &fs::read_to_string(b.join(format!("nodes/{m}/etcd.env"))).unwrap(),
            before
        );
    }
    let (passed, out) = ca.check_etcd(&b);
    assert!(!passed, "still PEM on a 3.6 target: {out}");
    assert_eq!(
        lines_with(&out, "WARN", "crl", "names crl.pem, made before crl.der"),
        2,
        "{out}"
    );
    assert_eq!(
        lines_with(&out, "FAIL", "crl", "crl.der: missing"),
        0,
        "{out}"
    );
}

/// The guard against replacing a CRL by an older one of the same issuer reads the DER file:
/// a CA folder copy that draws a lower CRL number cannot overwrite `crl.der`.
#[test]
fn an_older_crl_never_replaces_a_newer_crl_der() {
    let t = TempDir::new().unwrap();
    let (ca, b) = openssl_bundle(&t, "3.4", &[(21991, 21992)]);
    let stale_ca = t.path().join("ca-copy");
    let (good, _, e) = sh(
        t.path(),
        "cp",
        &["-a", ca.ca.to_str().unwrap(), stale_ca.to_str().unwrap()],
    );
    assert!(good, "{e}");
    let publish = |dir: &Path| {
        ca.issuer(&[
            "crl",
            "--ca",
            dir.to_str().unwrap(),
            "--etcd-bundle",
            b.to_str().unwrap(),
            "--root",
            ca.root.to_str().unwrap(),
        ])
    };
    // The copy's next number is the original's next; two publications put the original ahead.
    ok(publish(&ca.ca));
    ok(publish(&ca.ca));
    let newer = fs::read(b.join("crl.der")).unwrap();
    let o = publish(&stale_ca);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "an older CRL was published");
    assert!(err.contains("crl.der already holds CRL number"), "{err}");
    assert_eq!(fs::read(b.join("crl.der")).unwrap(), newer);
    strict_der_crl(&b.join("crl.der"));
}
