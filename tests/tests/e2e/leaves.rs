//! Issue 2 ("Foundation"): every profile with every key algorithm, checked by OpenSSL and
//! rustls-webpki, extensions exactly as docs/profiles.md says; every bad input refused with its message,
//! leaving nothing new on disk and the ledger unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use e2e_tests::fixture::{fails_with, ok, sh, snapshot_files, OpensslCa};
use e2e_tests::openssl::cert_ders;
use e2e_tests::snapshot::{assert_snapshot, normalize};
use rustls_pki_types::{CertificateDer, UnixTime};

const ALGS: [&str; 6] = ["p256", "p384", "ed25519", "rsa2048", "rsa3072", "rsa4096"];

/// The extensions `openssl x509 -text` shows: name -> (critical, value lines joined).
fn openssl_extensions(cert: &Path) -> BTreeMap<String, (bool, String)> {
    let (okk, text, err) = sh(
        cert.parent().unwrap(),
        "openssl",
        &["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"],
    );
    assert!(okk, "{err}");
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_ext = false;
    for l in text.lines() {
        if l.trim() == "X509v3 extensions:" {
            in_ext = true;
            continue;
        }
        if !in_ext {
            continue;
        }
        if l.starts_with("    Signature Algorithm") || l.starts_with("Signature Algorithm") {
            break;
        }
        if l.starts_with("            ") && !l.starts_with("                ") {
            let h = l.trim();
            let (name, critical) = match h.strip_suffix(": critical") {
                Some(n) => (n.to_string(), true),
                None => (h.trim_end_matches(':').to_string(), false),
            };
            out.insert(name.clone(), (critical, String::new()));
            current = Some(name);
        } else if let Some(c) = &current {
            let e = out.get_mut(c).unwrap();
            if !e.1.is_empty() {
                e.1.push(' ');
            }
            e.1.push_str(l.trim());
        }
    }
    out
}

fn webpki_accepts(root: &[u8], chain: &[Vec<u8>], eku: &'static [u8]) -> Result<(), String> {
    let root = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root).map_err(|e| format!("{e:?}"))?;
    let leaf = CertificateDer::from(chain[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("{e:?}"))?;
    let inter: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &inter,
        UnixTime::now(),
        webpki::KeyUsage::required_if_present(eku),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

const SERVER_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 1];
const CLIENT_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 2];

fn check_leaf(ca: &OpensslCa, role: &str, alg: &str) {
    let out = ca.dir.join(format!("{role}-{alg}"));
    let mut args = vec![
        "issue",
        role,
        "--ca",
        ca.ca.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cn",
        "etcd-1",
        "--key",
        alg,
    ];
    if role != "client" {
        args.extend(["--dns", "localhost", "--dns", "etcd-1", "--ip", "127.0.0.1"]);
    }
    ok(ca.issuer(&args));
    let crt = out.join(format!("{role}.crt"));
    let key = out.join(format!("{role}.key"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The chain file: leaf, then the intermediate exactly as the CA holds it.
    let chain = cert_ders(&crt);
    assert_eq!(chain.len(), 2, "{role}/{alg}: leaf then intermediate");
    assert_eq!(
        chain[1],
        cert_ders(&ca.reference.join("intermediate.crt"))[0]
    );

    // OpenSSL, for each purpose of the role.
    let purposes: &[&str] = match role {
        "client" => &["sslclient"],
        _ => &["sslserver", "sslclient"],
    };
    for p in purposes {
        let (good, stdout, stderr) = sh(
            &ca.dir,
            "openssl",
            &[
                "verify",
                "-CAfile",
                ca.root.to_str().unwrap(),
                "-untrusted",
                crt.to_str().unwrap(),
                "-purpose",
                p,
                crt.to_str().unwrap(),
            ],
        );
        assert!(
            good && stdout.contains(": OK"),
            "{role}/{alg} openssl -purpose {p}: {stdout}{stderr}"
        );
    }
    // rustls-webpki, independently.
    let root = cert_ders(&ca.root).remove(0);
    let ekus: &[&'static [u8]] = if role == "client" {
        &[CLIENT_AUTH]
    } else {
        &[SERVER_AUTH, CLIENT_AUTH]
    };
    for eku in ekus {
        webpki_accepts(&root, &chain, eku).unwrap_or_else(|e| panic!("{role}/{alg}: webpki: {e}"));
    }

    // Extensions exactly as docs/profiles.md (critical flags included), nothing else.
    let ext = openssl_extensions(&crt);
    let names: Vec<&str> = ext.keys().map(String::as_str).collect();
    let mut want = vec![
        "X509v3 Authority Key Identifier",
        "X509v3 Basic Constraints",
        "X509v3 Extended Key Usage",
        "X509v3 Key Usage",
        "X509v3 Subject Key Identifier",
    ];
    if role != "client" {
        want.push("X509v3 Subject Alternative Name");
    }
    want.sort();
    assert_eq!(names, want, "{role}/{alg}: extension set");
    assert_eq!(
        ext["X509v3 Basic Constraints"],
        (true, "CA:FALSE".to_string())
    );
    let ku = if alg.starts_with("rsa") {
        "Digital Signature, Key Encipherment"
    } else {
        "Digital Signature"
    };
    assert_eq!(
        ext["X509v3 Key Usage"],
        (true, ku.to_string()),
        "{role}/{alg}"
    );
    let eku = if role == "client" {
        "TLS Web Client Authentication"
    } else {
        "TLS Web Server Authentication, TLS Web Client Authentication"
    };
    assert_eq!(
        ext["X509v3 Extended Key Usage"],
        (false, eku.to_string()),
        "{role}/{alg}"
    );
    assert!(!ext["X509v3 Subject Key Identifier"].0 && !ext["X509v3 Authority Key Identifier"].0);
    if role != "client" {
        let san = &ext["X509v3 Subject Alternative Name"];
        assert!(!san.0);
        assert!(
            san.1.contains("DNS:localhost")
                && san.1.contains("DNS:etcd-1")
                && san.1.contains("IP Address:127.0.0.1"),
            "{san:?}"
        );
    }
    // Signature by the P-384 reference intermediate; serial random, positive, >= 16 bytes.
    let (_, text, _) = sh(
        &ca.dir,
        "openssl",
        &[
            "x509",
            "-in",
            crt.to_str().unwrap(),
            "-noout",
            "-text",
            "-serial",
        ],
    );
    assert!(text.contains("Signature Algorithm: ecdsa-with-SHA384"));
    let serial = text
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        serial.len() >= 32
            && !serial.starts_with('8')
            && u8::from_str_radix(&serial[..2], 16).unwrap() < 0x80,
        "{serial}"
    );
    assert!(
        ca.ledger().contains(&serial),
        "serial {serial} not in the ledger"
    );
}

#[test]
fn every_profile_with_every_algorithm_verifies_and_matches_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    for role in ["server", "peer", "client"] {
        for alg in ALGS {
            check_leaf(&ca, role, alg);
        }
    }
    let rows: serde_json::Value = serde_json::from_str(&ca.ledger()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 18);
}

fn openssl_csr(dir: &Path, name: &str, keyargs: &[&str], extra: &[&str]) -> std::path::PathBuf {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let mut a = vec!["genpkey"];
    a.extend(keyargs);
    a.extend(["-out", key.to_str().unwrap()]);
    let (good, _, err) = sh(dir, "openssl", &a);
    assert!(good, "{err}");
    let mut r = vec![
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=etcd-9",
        "-out",
        csr.to_str().unwrap(),
    ];
    r.extend(extra);
    let (good, _, err) = sh(dir, "openssl", &r);
    assert!(good, "{err}");
    csr
}

#[test]
fn csr_and_cfssl_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    let d = tmp.path();
    // A P-384 key in a CSR signed with SHA-256 (rcgen alone would corrupt this one).
    let csr = openssl_csr(
        d,
        "p384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        &["-sha256"],
    );
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "c1",
        "--csr",
        csr.to_str().unwrap(),
        "--cn",
        "etcd-9",
        "--dns",
        "etcd-9",
        "--ip",
        "127.0.0.1",
    ]));
    assert!(
        !d.join("c1/server.key").exists(),
        "no key is written for a CSR"
    );
    let (good, out, err) = sh(
        d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.root.to_str().unwrap(),
            "-untrusted",
            "c1/server.crt",
            "-purpose",
            "sslserver",
            "c1/server.crt",
        ],
    );
    assert!(good, "{out}{err}");
    let (_, certkey, _) = sh(
        d,
        "openssl",
        &["x509", "-in", "c1/server.crt", "-noout", "-pubkey"],
    );
    let (_, csrkey, _) = sh(
        d,
        "openssl",
        &["req", "-in", csr.to_str().unwrap(), "-noout", "-pubkey"],
    );
    assert_eq!(certkey, csrkey, "the certificate carries the CSR's key");

    // cfssl CSR JSON of etcd's hack/tls-setup.
    std::fs::write(
        d.join("req-csr.json"),
        r#"{"CN":"etcd1","hosts":["localhost","127.0.0.1"],"key":{"algo":"ecdsa","size":384},"names":[{"O":"autogenerated","OU":"etcd cluster","L":"the internet"}]}"#,
    )
    .unwrap();
    ok(ca.issuer(&[
        "issue",
        "peer",
        "--ca",
        "ca",
        "--out",
        "cf",
        "--cfssl-json",
        "req-csr.json",
        "--cn",
        "etcd1",
    ]));
    let (_, text, _) = sh(
        d,
        "openssl",
        &["x509", "-in", "cf/peer.crt", "-noout", "-text"],
    );
    assert!(
        text.contains("NIST CURVE: P-384") || text.contains("secp384r1"),
        "{text}"
    );
    assert!(text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"));
    assert!(text.contains("CN = etcd1") && text.contains("O = autogenerated"));
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs a failing issuance and checks: the message, nothing new on disk, the ledger unchanged.
fn refused(ca: &OpensslCa, name: &str, args: &[&str], needle: &str) {
    let before_files = snapshot_files(&ca.dir);
    let before_ledger = ca.ledger();
    let err = fails_with(ca.issuer(args), needle);
    assert_eq!(
        snapshot_files(&ca.dir),
        before_files,
        "{name}: files changed"
    );
    assert_eq!(ca.ledger(), before_ledger, "{name}: ledger changed");
    assert_snapshot(
        &format!("error-issuer-{name}"),
        &normalize(&err, &[&ca.dir]),
    );
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    let d = tmp.path();
    let issue_csr = |csr: &str| -> Vec<String> {
        [
            "issue",
            "server",
            "--ca",
            "ca",
            "--out",
            "out",
            "--csr",
            csr,
            "--cn",
            "etcd-9",
            "--dns",
            "etcd-9",
            "--ip",
            "127.0.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // Malformed PEM.
    std::fs::write(
        d.join("bad.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 !!\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    refused(
        &ca,
        "malformed-pem",
        &args(&issue_csr("bad.csr")),
        "not valid PEM",
    );

    // A CSR whose signature was altered.
    let good = openssl_csr(
        d,
        "ok",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[],
    );
    let (_, der, _) = sh(
        d,
        "openssl",
        &[
            "req",
            "-in",
            good.to_str().unwrap(),
            "-outform",
            "DER",
            "-out",
            "ok.der",
        ],
    );
    let _ = der;
    let mut bytes = std::fs::read(d.join("ok.der")).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    std::fs::write(d.join("broken.der"), &bytes).unwrap();
    let (okk, _, e) = sh(
        d,
        "openssl",
        &[
            "req",
            "-inform",
            "DER",
            "-in",
            "broken.der",
            "-out",
            "broken.csr",
        ],
    );
    assert!(okk, "{e}");
    std::fs::remove_file(d.join("broken.der")).unwrap();
    std::fs::remove_file(d.join("ok.der")).unwrap();
    refused(
        &ca,
        "csr-bad-signature",
        &args(&issue_csr("broken.csr")),
        "signature does not verify",
    );

    // SHA-1.
    let sha1 = openssl_csr(
        d,
        "sha1",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-sha1"],
    );
    refused(
        &ca,
        "csr-sha1",
        &args(&issue_csr(sha1.to_str().unwrap())),
        "SHA-1",
    );

    // RSA-1024.
    let rsa = openssl_csr(
        d,
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        &[],
    );
    refused(
        &ca,
        "csr-rsa1024",
        &args(&issue_csr(rsa.to_str().unwrap())),
        "at least 2048 bits",
    );

    // CA:TRUE requested: refused unless acknowledged, and then still a plain leaf.
    let catrue = openssl_csr(
        d,
        "catrue",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    refused(
        &ca,
        "csr-ca-true",
        &args(&issue_csr(catrue.to_str().unwrap())),
        "CA:TRUE",
    );
    let mut ack = issue_csr(catrue.to_str().unwrap());
    ack.push("--ignore-requested-ca".into());
    ack[5] = "leafout".into();
    ok(ca.issuer(&args(&ack)));
    let (_, text, _) = sh(
        d,
        "openssl",
        &["x509", "-in", "leafout/server.crt", "-noout", "-text"],
    );
    assert!(
        text.contains("CA:FALSE") && !text.contains("Certificate Sign"),
        "{text}"
    );

    // Validity past the intermediate: a 10-day intermediate under the reference root.
    let r = &ca.reference;
    let (okk, _, e) = sh(
        d,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "short.key",
        ],
    );
    assert!(okk, "{e}");
    std::fs::write(d.join("short.ext"), "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n").unwrap();
    let (okk, _, e) = sh(
        d,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            "short.key",
            "-subj",
            "/CN=short-lived intermediate",
            "-out",
            "short.csr",
        ],
    );
    assert!(okk, "{e}");
    let (okk, _, e) = sh(
        d,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "short.csr",
            "-CA",
            r.join("ca.crt").to_str().unwrap(),
            "-CAkey",
            r.join("ca-private/root.key").to_str().unwrap(),
            "-days",
            "10",
            "-extfile",
            "short.ext",
            "-set_serial",
            "0x1234567890abcdef1234567890abcdef",
            "-out",
            "short.crt",
        ],
    );
    assert!(okk, "{e}");
    ok(e2e_tests::fixture::run(
        d,
        "intermediate-ca",
        &[
            "import",
            "--cert",
            "short.crt",
            "--key",
            "short.key",
            "--dir",
            "short-ca",
            "--identity",
            ca.identity.to_str().unwrap(),
        ],
        &[],
    ));
    let err = refused_dir(
        &ca,
        "short-ca",
        &[
            "issue", "client", "--ca", "short-ca", "--out", "out", "--cn", "x", "--days", "30",
        ],
        "never outlives its issuer",
    );
    let dates: Vec<&str> = err.matches("20").collect();
    assert!(dates.len() >= 2, "names both dates: {err}");

    // Output already there: untouched, and no key appears beside it.
    std::fs::create_dir_all(d.join("exists")).unwrap();
    std::fs::write(d.join("exists/server.crt"), "keep me").unwrap();
    refused(
        &ca,
        "output-exists",
        &[
            "issue",
            "server",
            "--ca",
            "ca",
            "--out",
            "exists",
            "--cn",
            "etcd-1",
            "--ip",
            "127.0.0.1",
        ],
        "already exists",
    );
    assert_eq!(
        std::fs::read(d.join("exists/server.crt")).unwrap(),
        b"keep me"
    );
    assert!(!d.join("exists/server.key").exists());

    // The wrong identity for the key at rest.
    ok(e2e_tests::fixture::run(
        d,
        "intermediate-ca",
        &["new-identity", "other.txt"],
        &[],
    ));
    let before = snapshot_files(d);
    let o = e2e_tests::fixture::run(
        d,
        "issuer",
        &[
            "issue",
            "client",
            "--ca",
            "ca",
            "--out",
            "o2",
            "--cn",
            "x",
            "--identity",
            "other.txt",
        ],
        &[],
    );
    let err = fails_with(o, "is not the one this key was encrypted to");
    assert!(!err.contains("AGE-SECRET-KEY"), "no secret in messages");
    assert_eq!(snapshot_files(d), before);
}

/// Like `refused`, for a CA folder other than the fixture's.
fn refused_dir(ca: &OpensslCa, dir: &str, args: &[&str], needle: &str) -> String {
    let before = snapshot_files(&ca.dir);
    let ledger = |d: &str| ok(ca.issuer(&["list", "--ca", d, "--json"]));
    let before_ledger = ledger(dir);
    let err = fails_with(ca.issuer(args), needle);
    assert_eq!(snapshot_files(&ca.dir), before);
    assert_eq!(ledger(dir), before_ledger);
    err
}

#[test]
fn import_refuses_mismatched_pairs_non_cas_and_wrong_passphrases() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    let d = tmp.path();
    let r = &ca.reference;
    let run = |args: &[&str]| e2e_tests::fixture::run(d, "intermediate-ca", args, &[]);
    // Intermediate certificate with the root's key.
    let err = fails_with(
        run(&[
            "import",
            "--cert",
            r.join("intermediate.crt").to_str().unwrap(),
            "--key",
            r.join("ca-private/root.key").to_str().unwrap(),
            "--dir",
            "mismatch",
            "--identity",
            "identity.txt",
        ]),
        "does not match the certificate",
    );
    assert!(!d.join("mismatch").exists(), "nothing created");
    assert_snapshot(
        "error-intermediate-ca-import-mismatch",
        &normalize(&err, &[d]),
    );
    // A leaf is not a CA.
    fails_with(
        run(&[
            "import",
            "--cert",
            r.join("nodes/etcd-1/server.crt").to_str().unwrap(),
            "--key",
            r.join("nodes/etcd-1/server.key").to_str().unwrap(),
            "--dir",
            "leafca",
            "--identity",
            "identity.txt",
        ]),
        "not a CA certificate",
    );
    assert!(!d.join("leafca").exists());
    // Passphrase at rest; the wrong passphrase is refused, nothing is issued.
    e2e_tests::secret::write_secret(d.join("pass.txt"), "correct horse battery staple\n");
    e2e_tests::secret::write_secret(d.join("wrong.txt"), "incorrect horse battery\n");
    ok(run(&[
        "import",
        "--cert",
        r.join("intermediate.crt").to_str().unwrap(),
        "--key",
        r.join("ca-private/intermediate.key").to_str().unwrap(),
        "--dir",
        "pca",
        "--passphrase-file",
        "pass.txt",
    ]));
    let iss = |args: &[&str]| e2e_tests::fixture::run(d, "issuer", args, &[]);
    fails_with(
        iss(&[
            "issue",
            "client",
            "--ca",
            "pca",
            "--out",
            "p1",
            "--cn",
            "x",
            "--passphrase-file",
            "wrong.txt",
        ]),
        "wrong passphrase",
    );
    assert!(!d.join("p1").exists());
    ok(iss(&[
        "issue",
        "client",
        "--ca",
        "pca",
        "--out",
        "p2",
        "--cn",
        "x",
        "--passphrase-file",
        "pass.txt",
    ]));
}

#[test]
fn verify_reports_each_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    let d = tmp.path();
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "n",
        "--cn",
        "etcd-1",
        "--ip",
        "127.0.0.1",
    ]));
    ok(ca.issuer(&[
        "issue", "client", "--ca", "ca", "--out", "c", "--cn", "root",
    ]));
    let root = ca.root.to_str().unwrap();
    let good = ok(ca.issuer(&[
        "verify",
        "--root",
        root,
        "--role",
        "server",
        "--key",
        "n/server.key",
        "n/server.crt",
    ]));
    assert!(good.contains("PASSED"));
    let fail = |args: &[&str], needle: &str| {
        let o = ca.issuer(args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains("FAIL") && out.contains(needle),
            "'{needle}' in\n{out}"
        );
    };
    // Another root (openssl's rogue root of the fixture has the same subject).
    let (okk, _, e) = sh(
        d,
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-subj",
            "/CN=rogue",
            "-days",
            "10",
            "-out",
            "rogue.crt",
        ],
    );
    assert!(okk, "{e}");
    fail(
        &["verify", "--root", "rogue.crt", "n/server.crt"],
        "does not verify to the root",
    );
    fail(
        &["verify", "--root", root, "--role", "client", "n/server.crt"],
        "extendedKeyUsage",
    );
    fail(
        &[
            "verify",
            "--root",
            root,
            "--key",
            "c/client.key",
            "n/server.crt",
        ],
        "does NOT match",
    );
    let leaf_only: String = std::fs::read_to_string(d.join("n/server.crt"))
        .unwrap()
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(d.join("leafonly.crt"), leaf_only).unwrap();
    fail(&["verify", "--root", root, "leafonly.crt"], "only the leaf");
}
