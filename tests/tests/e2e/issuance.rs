//! `issuer issue` end to end, as an operator would check it: every role with every key
//! algorithm, judged by OpenSSL and by rustls-webpki against docs/profiles.md (exact extension set,
//! criticality, signature, key, serial, ledger row); CSR and cfssl JSON input; every bad input
//! refused and nothing changed on disk or in the ledger (the exact words of the CSR and
//! output-exists refusals are pinned by the case files in issuer/tests/cmd, the import
//! mismatch by a snapshot in tests/snapshots); `issuer import` refusals; `issuer verify`
//! failing each broken leaf.
//!
//! The fixture is the OpenSSL flow of scripts/openssl-reference-ca.sh (P-384 root and intermediate),
//! the intermediate imported with `intermediate-ca import` and unlocked by an age identity.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use e2e_tests::fixture::{fails_with, ok, run, OpensslCa};
use e2e_tests::openssl::{
    extensions, openssl, path_str, pem_blocks, pem_encode, rfc3339, try_openssl, x509_text, Ext,
};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use e2e_tests::state::State;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

const SERVER_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 1];
const CLIENT_AUTH: &[u8] = &[0x2b, 6, 1, 5, 5, 7, 3, 2];

/// Default leaf lifetime (docs/profiles.md) and the tools' clock-skew backdating.
const DEFAULT_DAYS: i64 = 90;
const BACKDATE_SECS: i64 = 5 * 60;

// ------------------------------------------------------------------------------------------
// helpers

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The DER of each CERTIFICATE block of a PEM file; panics on any other kind of block.
fn cert_ders(p: &Path) -> Vec<Vec<u8>> {
    pem_blocks(&read(p))
        .into_iter()
        .map(|(label, der)| {
            assert_eq!(
                label,
                "CERTIFICATE",
                "{}: unexpected PEM block",
                p.display()
            );
            der
        })
        .collect()
}

fn parse_cert(der: &[u8]) -> X509Certificate<'_> {
    let (rest, c) = X509Certificate::from_der(der).expect("a parsable certificate");
    assert!(rest.is_empty(), "trailing bytes after the certificate");
    c
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// rustls-webpki's verdict on `chain` (leaf first) under `root` for one EKU.
fn webpki_verify(root: &[u8], chain: &[Vec<u8>], eku: &'static [u8]) -> Result<(), String> {
    let root = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root).map_err(|e| format!("anchor: {e:?}"))?;
    let leaf = CertificateDer::from(chain[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("leaf: {e:?}"))?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::required_if_present(eku),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

/// rustls-webpki's verdict on the leaf's names.
fn webpki_name_ok(leaf: &[u8], name: &str) -> bool {
    let der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&der).expect("leaf");
    let server_name = match name.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(name.to_string()).expect("a DNS name"),
    };
    ee.verify_is_valid_for_subject_name(&server_name).is_ok()
}

/// `openssl verify -purpose P` of a chain file: (passed, output).
fn openssl_verify(dir: &Path, root: &Path, chain: &Path, purpose: &str) -> (bool, String) {
    let (ok, out, err) = try_openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            path_str(root),
            "-untrusted",
            path_str(chain),
            "-purpose",
            purpose,
            path_str(chain),
        ],
    );
    let passed = ok && out.trim_end().ends_with(": OK");
    (passed, format!("{out}{err}"))
}

/// The public key of a certificate, a CSR or a private key, as OpenSSL prints it (PEM SPKI).
fn pubkey_of(dir: &Path, kind: &str, file: &Path) -> String {
    match kind {
        "cert" => openssl(dir, &["x509", "-in", path_str(file), "-noout", "-pubkey"]),
        "csr" => openssl(dir, &["req", "-in", path_str(file), "-noout", "-pubkey"]),
        _ => openssl(dir, &["pkey", "-in", path_str(file), "-pubout"]),
    }
}

/// The ledger row of `serial` (lower-case hex), from `issuer list --json`.
fn ledger_row(ca: &OpensslCa, ca_dir: &Path, serial: &str) -> serde_json::Value {
    let rows: serde_json::Value = serde_json::from_str(&ok(ca.issuer(&[
        "list",
        "--ca",
        path_str(ca_dir),
        "--json",
    ])))
    .expect("list --json is JSON");
    rows.as_array()
        .expect("an array of rows")
        .iter()
        .find(|r| r["serial"] == serial)
        .unwrap_or_else(|| panic!("serial {serial} is not in the ledger:\n{rows:#}"))
        .clone()
}

fn ledger_len(ca: &OpensslCa) -> usize {
    let rows: serde_json::Value = serde_json::from_str(&ca.ledger()).expect("JSON");
    rows.as_array().expect("array").len()
}

/// The SHA-256 fingerprint OpenSSL computes, colon-separated upper-case hex.
fn openssl_fingerprint(dir: &Path, cert: &Path) -> String {
    let out = openssl(
        dir,
        &[
            "x509",
            "-in",
            path_str(cert),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    out.trim()
        .split_once('=')
        .expect("Fingerprint=...")
        .1
        .to_string()
}

/// The extension value OpenSSL shows for the Subject Key Identifier of `cert`.
fn ski_of(cert: &Path) -> String {
    extensions(&x509_text(cert))
        .into_iter()
        .find(|e| e.name == "X509v3 Subject Key Identifier")
        .expect("an SKI")
        .value
}

/// The extensions docs/profiles.md puts on a leaf, as OpenSSL names and prints them (sorted by name).
fn spec_extensions(role: &str, rsa: bool, san: Option<&str>, ski: &str, aki: &str) -> Vec<Ext> {
    let eku = if role == "client" {
        "TLS Web Client Authentication"
    } else {
        "TLS Web Server Authentication, TLS Web Client Authentication"
    };
    let ku = if rsa {
        "Digital Signature, Key Encipherment"
    } else {
        "Digital Signature"
    };
    let mut want = vec![
        Ext::new("X509v3 Authority Key Identifier", false, aki),
        Ext::new("X509v3 Basic Constraints", true, "CA:FALSE"),
        Ext::new("X509v3 Extended Key Usage", false, eku),
        Ext::new("X509v3 Key Usage", true, ku),
        Ext::new("X509v3 Subject Key Identifier", false, ski),
    ];
    if let Some(san) = san {
        want.push(Ext::new("X509v3 Subject Alternative Name", false, san));
    }
    want.sort();
    want
}

fn sorted(mut v: Vec<Ext>) -> Vec<Ext> {
    v.sort();
    v
}

/// What `openssl x509 -text` must say about the public key of each algorithm.
fn key_markers(alg: &str) -> &'static [&'static str] {
    match alg {
        "p256" => &[
            "Public Key Algorithm: id-ecPublicKey",
            "Public-Key: (256 bit)",
            "NIST CURVE: P-256",
        ],
        "p384" => &[
            "Public Key Algorithm: id-ecPublicKey",
            "Public-Key: (384 bit)",
            "NIST CURVE: P-384",
        ],
        "ed25519" => &["Public Key Algorithm: ED25519"],
        "rsa2048" => &[
            "Public Key Algorithm: rsaEncryption",
            "Public-Key: (2048 bit)",
        ],
        "rsa3072" => &[
            "Public Key Algorithm: rsaEncryption",
            "Public-Key: (3072 bit)",
        ],
        "rsa4096" => &[
            "Public Key Algorithm: rsaEncryption",
            "Public-Key: (4096 bit)",
        ],
        other => panic!("unknown algorithm {other}"),
    }
}

/// Checks that `serial` (DER INTEGER contents) is a serial as docs/profiles.md says and not seen before.
fn check_serial(raw: &[u8], seen: &mut HashSet<Vec<u8>>, what: &str) {
    assert!(
        (16..=20).contains(&raw.len()),
        "{what}: serial of {} octets ({}); at least 16 (128 random bits), at most 20",
        raw.len(),
        hex(raw)
    );
    assert_eq!(raw[0] & 0x80, 0, "{what}: negative serial {}", hex(raw));
    assert!(
        !(raw[0] == 0 && raw[1] & 0x80 == 0),
        "{what}: serial not minimally encoded: {}",
        hex(raw)
    );
    let magnitude: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    assert!(
        magnitude.len() >= 16,
        "{what}: fewer than 16 significant octets: {}",
        hex(raw)
    );
    assert!(
        seen.insert(raw.to_vec()),
        "{what}: serial {} repeats",
        hex(raw)
    );
}

/// A leaf issued with a generated key, and everything a reader of it would check.
fn issue_and_check(
    ca: &OpensslCa,
    role: &str,
    alg: &str,
    with_names: bool,
    serials: &mut HashSet<Vec<u8>>,
) {
    let what = format!(
        "{role}/{alg}{}",
        if with_names { "" } else { " (no names)" }
    );
    let cn = format!("{role}-{alg}-cn");
    let out = ca.dir.join(format!(
        "{role}-{alg}-{}",
        if with_names { "n" } else { "x" }
    ));
    let mut args = vec![
        "issue",
        role,
        "--ca",
        path_str(&ca.ca),
        "--out",
        path_str(&out),
        "--cn",
        &cn,
        "--key",
        alg,
    ];
    if with_names {
        args.extend(["--dns", "localhost", "--ip", "127.0.0.1"]);
    }
    let stdout = ok(ca.issuer(&args));
    let crt = out.join(format!("{role}.crt"));
    let key = out.join(format!("{role}.key"));

    // Exactly the two files etcd's flags name, the key private to its owner.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![format!("{role}.crt"), format!("{role}.key")],
        "{what}"
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{what}: key file mode {mode:o}");
    let crt_mode = std::fs::metadata(&crt).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        crt_mode & 0o022,
        0,
        "{what}: chain file writable by others ({crt_mode:o})"
    );

    // The key file: one unencrypted PKCS#8 block whose public key is the certificate's.
    let key_blocks = pem_blocks(&read(&key));
    assert_eq!(key_blocks.len(), 1, "{what}: one key block");
    assert_eq!(key_blocks[0].0, "PRIVATE KEY", "{what}: PKCS#8 key");
    assert_eq!(
        pubkey_of(&ca.dir, "key", &key),
        pubkey_of(&ca.dir, "cert", &crt),
        "{what}: the key file does not hold the certificate's key"
    );

    // The chain file: the leaf, then the intermediate byte for byte as the CA holds it.
    let chain = cert_ders(&crt);
    assert_eq!(
        chain.len(),
        2,
        "{what}: leaf then intermediate, nothing else"
    );
    let intermediate = cert_ders(&ca.reference.join("intermediate.crt")).remove(0);
    assert_eq!(
        chain[1], intermediate,
        "{what}: second certificate is not the intermediate"
    );
    assert_eq!(
        chain[1],
        cert_ders(&ca.ca.join("generations/1/intermediate.crt")).remove(0),
        "{what}: second certificate differs from the CA folder's"
    );
    let root_der = cert_ders(&ca.root).remove(0);

    // OpenSSL: every purpose of the role passes; a client certificate is no server.
    let purposes: &[&str] = if role == "client" {
        &["sslclient"]
    } else {
        &["sslserver", "sslclient"]
    };
    for p in purposes {
        let (passed, text) = openssl_verify(&ca.dir, &ca.root, &crt, p);
        assert!(passed, "{what}: openssl verify -purpose {p}:\n{text}");
    }
    if role == "client" {
        let (passed, text) = openssl_verify(&ca.dir, &ca.root, &crt, "sslserver");
        assert!(!passed, "{what}: a client leaf passed as a server:\n{text}");
    }

    // rustls-webpki, independently of OpenSSL.
    let ekus: &[&'static [u8]] = if role == "client" {
        &[CLIENT_AUTH]
    } else {
        &[SERVER_AUTH, CLIENT_AUTH]
    };
    for eku in ekus {
        webpki_verify(&root_der, &chain, eku)
            .unwrap_or_else(|e| panic!("{what}: webpki refused the chain: {e}"));
    }
    if role == "client" {
        assert!(
            webpki_verify(&root_der, &chain, SERVER_AUTH).is_err(),
            "{what}: webpki accepted a client leaf for serverAuth"
        );
    }
    assert!(
        webpki_verify(&root_der, &chain[..1], CLIENT_AUTH).is_err(),
        "{what}: webpki accepted the leaf without its intermediate"
    );
    if with_names {
        assert!(webpki_name_ok(&chain[0], "localhost"), "{what}: localhost");
        assert!(webpki_name_ok(&chain[0], "127.0.0.1"), "{what}: 127.0.0.1");
    }
    assert!(
        !webpki_name_ok(&chain[0], "etcd.example.com"),
        "{what}: valid for a name it was not given"
    );
    assert!(
        !webpki_name_ok(&chain[0], "127.0.0.2"),
        "{what}: valid for an IP it was not given"
    );

    // Extensions: exactly docs/profiles.md, criticality and values included.
    let text = x509_text(&crt);
    let got = sorted(extensions(&text));
    let aki = ski_of(&ca.reference.join("intermediate.crt"));
    let ski = got
        .iter()
        .find(|e| e.name == "X509v3 Subject Key Identifier")
        .map(|e| e.value.clone())
        .unwrap_or_default();
    assert!(
        ski.len() >= 20 * 3 - 1 && ski != aki,
        "{what}: odd SKI '{ski}'"
    );
    let san = with_names.then_some("DNS:localhost, IP Address:127.0.0.1");
    assert_eq!(
        got,
        spec_extensions(role, alg.starts_with("rsa"), san, &ski, &aki),
        "{what}: extensions differ from docs/profiles.md\n{text}"
    );

    // Signed by the P-384 intermediate, so ECDSA with SHA-384, in both places.
    let sig_lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Signature Algorithm:"))
        .collect();
    assert_eq!(
        sig_lines,
        vec!["Signature Algorithm: ecdsa-with-SHA384"; 2],
        "{what}"
    );
    for marker in key_markers(alg) {
        assert!(text.contains(marker), "{what}: '{marker}' missing\n{text}");
    }

    // Subject, issuer, validity, serial.
    let leaf = parse_cert(&chain[0]);
    let inter = parse_cert(&chain[1]);
    assert_eq!(leaf.subject().to_string(), format!("CN={cn}"), "{what}");
    assert_eq!(leaf.issuer().as_raw(), inter.subject().as_raw(), "{what}");
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    let span = na - nb;
    assert!(
        (DEFAULT_DAYS * 86_400..=DEFAULT_DAYS * 86_400 + BACKDATE_SECS).contains(&span),
        "{what}: lifetime {span} s is not the 90-day default"
    );
    assert!(na <= inter.validity().not_after.timestamp(), "{what}");
    assert!(nb >= inter.validity().not_before.timestamp(), "{what}");
    check_serial(leaf.raw_serial(), serials, &what);
    let serial = hex(leaf.raw_serial());
    assert!(stdout.contains(&serial), "{what}: stdout lacks the serial");

    // The ledger row describes this very certificate.
    let row = ledger_row(ca, &ca.ca, &serial);
    assert_eq!(row["profile"], role, "{what}");
    assert_eq!(row["subject"], cn.as_str(), "{what}");
    assert_eq!(row["key_alg"], alg, "{what}");
    assert_eq!(row["key_source"], "generated", "{what}");
    assert_eq!(row["status"], "active", "{what}");
    assert_eq!(row["generation"], 1, "{what}");
    let (dns, ips) = if with_names {
        (
            serde_json::json!(["localhost"]),
            serde_json::json!(["127.0.0.1"]),
        )
    } else {
        (serde_json::json!([]), serde_json::json!([]))
    };
    assert_eq!(row["dns"], dns, "{what}");
    assert_eq!(row["ips"], ips, "{what}");
    assert_eq!(
        row["fingerprint"].as_str().unwrap_or_default(),
        openssl_fingerprint(&ca.dir, &crt),
        "{what}"
    );
    assert_eq!(row["not_after"], rfc3339(na).as_str(), "{what}");
    let recorded = PathBuf::from(row["cert_path"].as_str().unwrap_or_default());
    assert_eq!(
        recorded.canonicalize().ok(),
        crt.canonicalize().ok(),
        "{what}: cert_path"
    );
}

// ------------------------------------------------------------------------------------------
// 1. every role x every algorithm

#[test]
fn ec_and_ed25519_leaves_of_every_role_meet_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    let mut serials = HashSet::new();
    for role in ["server", "peer", "client"] {
        for alg in ["p256", "p384", "ed25519"] {
            issue_and_check(&ca, role, alg, true, &mut serials);
        }
    }
    // A client certificate needs no names, and then carries no SAN at all.
    issue_and_check(&ca, "client", "p256", false, &mut serials);
    assert_eq!(ledger_len(&ca), 10);
}

/// RSA key generation is the slow part of a debug run, so the RSA leaves share one fixture.
#[test]
fn rsa_leaves_of_every_role_meet_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    let mut serials = HashSet::new();
    for role in ["server", "peer", "client"] {
        for alg in ["rsa2048", "rsa3072", "rsa4096"] {
            issue_and_check(&ca, role, alg, true, &mut serials);
        }
    }
    assert_eq!(ledger_len(&ca), 9);
}

/// The default leaf key is P-256 when `--key` is left out.
#[test]
fn default_key_is_p256() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    ok(ca.issuer(&[
        "issue", "peer", "--ca", "ca", "--out", "d", "--cn", "etcd-1", "--ip", "10.0.0.1",
    ]));
    let text = x509_text(&tmp.path().join("d/peer.crt"));
    for m in key_markers("p256") {
        assert!(text.contains(m), "{m}\n{text}");
    }
    assert!(text.contains("IP Address:10.0.0.1"));
}

// ------------------------------------------------------------------------------------------
// 2. CSR and cfssl JSON input

/// `openssl req -new -newkey ...` in `dir`: writes NAME.key and NAME.csr; returns the CSR path.
fn make_csr(dir: &Path, name: &str, newkey: &[&str], extra: &[&str]) -> PathBuf {
    let csr = dir.join(format!("{name}.csr"));
    let key = dir.join(format!("{name}.key"));
    let mut args = vec!["req", "-new", "-nodes"];
    args.extend(newkey);
    args.extend([
        "-keyout",
        path_str(&key),
        "-subj",
        "/CN=etcd-csr",
        "-out",
        path_str(&csr),
    ]);
    args.extend(extra);
    openssl(dir, &args);
    csr
}

fn csr_text(dir: &Path, csr: &Path) -> String {
    openssl(dir, &["req", "-in", path_str(csr), "-noout", "-text"])
}

#[test]
fn csr_keys_are_certified_as_requested_and_the_ca_decides_the_extensions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let root_der = cert_ders(&ca.root).remove(0);
    let aki = ski_of(&ca.reference.join("intermediate.crt"));

    // A P-384 key in a CSR signed with SHA-256: the key and the hash do not match in size.
    let csr = make_csr(
        d,
        "p384",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        &["-sha256"],
    );
    let t = csr_text(d, &csr);
    assert!(
        t.contains("Signature Algorithm: ecdsa-with-SHA256") && t.contains("NIST CURVE: P-384"),
        "precondition: a P-384 CSR signed with SHA-256\n{t}"
    );
    // The operator types the CN the CSR proposes (issue 12: a CSR's CN is never taken alone).
    let stdout = ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "c384",
        "--csr",
        path_str(&csr),
        "--cn",
        "etcd-csr",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]));
    let crt = d.join("c384/server.crt");
    assert!(
        !d.join("c384/server.key").exists(),
        "the requester keeps the key: none is written"
    );
    for p in ["sslserver", "sslclient"] {
        let (passed, text) = openssl_verify(d, &ca.root, &crt, p);
        assert!(passed, "P-384/SHA-256 CSR, -purpose {p}:\n{text}");
    }
    let chain = cert_ders(&crt);
    assert_eq!(chain.len(), 2);
    webpki_verify(&root_der, &chain, SERVER_AUTH).expect("webpki accepts the CSR-based leaf");
    assert_eq!(
        pubkey_of(d, "cert", &crt),
        pubkey_of(d, "csr", &csr),
        "the certificate must carry the CSR's key"
    );
    assert_eq!(
        pubkey_of(d, "cert", &crt),
        pubkey_of(d, "key", &d.join("p384.key")),
        "the requester's key must match the certificate"
    );
    let text = x509_text(&crt);
    assert!(text.contains("Subject: CN = etcd-csr"), "{text}");
    let ski = ski_of(&crt);
    assert_eq!(
        sorted(extensions(&text)),
        spec_extensions(
            "server",
            false,
            Some("DNS:localhost, IP Address:127.0.0.1"),
            &ski,
            &aki
        ),
        "{text}"
    );
    let serial = hex(parse_cert(&chain[0]).raw_serial());
    assert!(stdout.contains(&serial));
    let row = ledger_row(&ca, &ca.ca, &serial);
    assert_eq!(row["key_source"], "csr");
    assert_eq!(row["key_alg"], "p384");
    assert_eq!(row["subject"], "etcd-csr");

    // An RSA CSR (which also asks for SANs the operator approves): keyEncipherment follows the
    // key, and the requested key usages do not reach the certificate.
    let csr = make_csr(
        d,
        "rsa",
        &["-newkey", "rsa:2048"],
        &[
            "-addext",
            "subjectAltName=DNS:etcd-csr.example,IP:10.1.2.3",
            "-addext",
            "keyUsage=critical,digitalSignature,nonRepudiation,dataEncipherment",
        ],
    );
    ok(ca.issuer(&[
        "issue",
        "peer",
        "--ca",
        "ca",
        "--out",
        "crsa",
        "--csr",
        path_str(&csr),
        "--cn",
        "etcd-csr",
        "--dns",
        "etcd-csr.example",
        "--ip",
        "10.1.2.3",
    ]));
    let crt = d.join("crsa/peer.crt");
    let (passed, out) = openssl_verify(d, &ca.root, &crt, "sslserver");
    assert!(passed, "{out}");
    let text = x509_text(&crt);
    assert!(
        text.contains("Subject: CN = etcd-csr"),
        "--cn approved\n{text}"
    );
    assert_eq!(
        sorted(extensions(&text)),
        spec_extensions(
            "peer",
            true,
            Some("DNS:etcd-csr.example, IP Address:10.1.2.3"),
            &ski_of(&crt),
            &aki
        ),
        "{text}"
    );
    assert_eq!(pubkey_of(d, "cert", &crt), pubkey_of(d, "csr", &csr));

    // An Ed25519 CSR for a client.
    let csr = make_csr(d, "ed", &["-newkey", "ed25519"], &[]);
    ok(ca.issuer(&[
        "issue",
        "client",
        "--ca",
        "ca",
        "--out",
        "ced",
        "--csr",
        path_str(&csr),
        "--cn",
        "etcd-csr",
    ]));
    let crt = d.join("ced/client.crt");
    let (passed, out) = openssl_verify(d, &ca.root, &crt, "sslclient");
    assert!(passed, "{out}");
    assert_eq!(pubkey_of(d, "cert", &crt), pubkey_of(d, "csr", &csr));
    assert_eq!(ledger_len(&ca), 3);
}

#[test]
fn cfssl_json_of_etcd_tls_setup_is_read_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    std::fs::write(
        d.join("etcd1-csr.json"),
        r#"{"CN":"etcd1","hosts":["localhost","127.0.0.1"],"key":{"algo":"ecdsa","size":384},"names":[{"O":"autogenerated","OU":"etcd cluster","L":"the internet"}]}"#,
    )
    .unwrap();
    ok(ca.issuer(&[
        "issue",
        "peer",
        "--ca",
        "ca",
        "--out",
        "etcd1",
        "--cfssl-json",
        "etcd1-csr.json",
        "--cn",
        "etcd1",
    ]));
    let crt = d.join("etcd1/peer.crt");
    let key = d.join("etcd1/peer.key");
    for p in ["sslserver", "sslclient"] {
        let (passed, out) = openssl_verify(d, &ca.root, &crt, p);
        assert!(passed, "{p}: {out}");
    }
    let text = x509_text(&crt);
    for m in key_markers("p384") {
        assert!(text.contains(m), "{m}\n{text}");
    }
    let key_text = openssl(d, &["pkey", "-in", path_str(&key), "-noout", "-text"]);
    assert!(
        key_text.contains("NIST CURVE: P-384"),
        "the key file is P-384:\n{key_text}"
    );
    assert_eq!(pubkey_of(d, "key", &key), pubkey_of(d, "cert", &crt));
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let subject = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Subject:"))
        .unwrap();
    for part in [
        "CN = etcd1",
        "O = autogenerated",
        "OU = etcd cluster",
        "L = the internet",
    ] {
        assert!(subject.contains(part), "{part} in {subject}");
    }
    assert_eq!(
        sorted(extensions(&text)),
        spec_extensions(
            "peer",
            false,
            Some("DNS:localhost, IP Address:127.0.0.1"),
            &ski_of(&crt),
            &ski_of(&ca.reference.join("intermediate.crt"))
        ),
        "{text}"
    );
    let serial = hex(parse_cert(&cert_ders(&crt)[0]).raw_serial());
    let row = ledger_row(&ca, &ca.ca, &serial);
    assert_eq!(row["subject"], "etcd1");
    assert_eq!(row["key_alg"], "p384");
    assert_eq!(row["dns"], serde_json::json!(["localhost"]));
    assert_eq!(row["ips"], serde_json::json!(["127.0.0.1"]));
}

// ------------------------------------------------------------------------------------------
// 3. bad inputs: refused with their own message, nothing new on disk, the ledger unchanged

/// Takes the state, runs `issuer ARGS` (identity from the fixture, plus `env`), expects a
/// failure with `needle`, and checks the state is the same afterwards.
fn refuses(
    ca: &OpensslCa,
    ca_dirs: &[&Path],
    args: &[&str],
    env: &[(&str, &Path)],
    needle: &str,
) -> String {
    let before = State::capture(&ca.dir, ca_dirs);
    let mut envs: Vec<(&str, &Path)> = vec![("PKI_AGE_IDENTITY", &ca.identity)];
    envs.extend_from_slice(env);
    let err = fails_with(run(&ca.dir, "issuer", args, &envs), needle);
    before.assert_unchanged(
        &State::capture(&ca.dir, ca_dirs),
        &format!("issuer {}", args.join(" ")),
    );
    assert!(
        !err.contains("AGE-SECRET-KEY") && !err.contains("PRIVATE KEY"),
        "a secret in a message: {err}"
    );
    err
}

/// Pins a refusal's message as the snapshot `name` (tests/snapshots/NAME.txt).
fn pin_message(name: &str, err: &str, dir: &Path) {
    assert_snapshot(name, &normalize(err, &[dir]));
}

fn issue_csr_args(csr: &Path) -> Vec<String> {
    [
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "out",
        "--csr",
        path_str(csr),
        "--cn",
        "etcd-csr",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn bad_csrs_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let cas: &[&Path] = &[&ca.ca];
    // Every input file is made before the first refusal, so the snapshots only see the tool.
    std::fs::write(
        d.join("malformed.csr"),
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB%%%%this is not base64%%%%\n-----END CERTIFICATE REQUEST-----\n",
    )
    .unwrap();
    std::fs::write(d.join("empty.csr"), "").unwrap();

    // A valid CSR, then the same bytes with one bit of the signature flipped.
    let good = make_csr(
        d,
        "good",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[],
    );
    let der = pem_blocks(&read(&good)).remove(0).1;
    let sig = {
        let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
            .expect("a CSR");
        req.signature_value.as_ref().to_vec()
    };
    let at = der
        .windows(sig.len())
        .rposition(|w| w == sig.as_slice())
        .expect("the signature inside the DER");
    let mut broken = der.clone();
    broken[at + sig.len() - 2] ^= 0x01; // inside s, the last INTEGER of the ECDSA signature
    std::fs::write(
        d.join("broken.csr"),
        pem_encode("CERTIFICATE REQUEST", &broken),
    )
    .unwrap();
    // (OpenSSL 3.0 `req -verify` exits 0 either way; its message tells.)
    let (_, o, e) = try_openssl(d, &["req", "-in", path_str(&good), "-noout", "-verify"]);
    assert!(format!("{o}{e}").contains("verify OK"), "{o}{e}");
    let (_, o, e) = try_openssl(d, &["req", "-in", "broken.csr", "-noout", "-verify"]);
    assert!(
        format!("{o}{e}").contains("verify failure"),
        "precondition: OpenSSL also rejects the altered CSR: {o}{e}"
    );

    let sha1 = make_csr(
        d,
        "sha1",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-sha1"],
    );
    assert!(csr_text(d, &sha1).contains("ecdsa-with-SHA1"));
    let sha1_rsa = make_csr(d, "sha1rsa", &["-newkey", "rsa:2048"], &["-sha1"]);
    assert!(csr_text(d, &sha1_rsa).contains("sha1WithRSAEncryption"));
    let rsa1024 = make_csr(d, "rsa1024", &["-newkey", "rsa:1024"], &["-sha256"]);
    assert!(csr_text(d, &rsa1024).contains("Public-Key: (1024 bit)"));
    let ca_true = make_csr(
        d,
        "catrue",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    assert!(csr_text(d, &ca_true).contains("CA:TRUE"));
    let extra_names = make_csr(
        d,
        "names",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        &["-addext", "subjectAltName=DNS:evil.example,DNS:localhost"],
    );
    let p521 = make_csr(
        d,
        "p521",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        &[],
    );

    refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&d.join("malformed.csr"))),
        &[],
        "not valid PEM",
    );
    refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&d.join("empty.csr"))),
        &[],
        "CERTIFICATE REQUEST",
    );
    refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&d.join("broken.csr"))),
        &[],
        "its signature does not verify",
    );
    let err = refuses(&ca, cas, &strs(&issue_csr_args(&sha1)), &[], "SHA-1");
    assert!(
        err.contains("ecdsa-with-SHA1"),
        "names the algorithm: {err}"
    );
    let err = refuses(&ca, cas, &strs(&issue_csr_args(&sha1_rsa)), &[], "SHA-1");
    assert!(err.contains("sha1WithRSA"), "names the algorithm: {err}");
    let err = refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&rsa1024)),
        &[],
        "at least 2048 bits",
    );
    assert!(err.contains("1024"), "names the size: {err}");
    refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&p521)),
        &[],
        "use P-256 or P-384",
    );
    let err = refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&ca_true)),
        &[],
        "it asks for CA:TRUE",
    );
    assert!(
        err.contains("--ignore-requested-ca"),
        "says how to proceed: {err}"
    );
    let err = refuses(
        &ca,
        cas,
        &strs(&issue_csr_args(&extra_names)),
        &[],
        "names you did not approve",
    );
    assert!(
        err.contains("DNS:evil.example") && !err.contains("DNS:localhost"),
        "{err}"
    );

    // Acknowledged CA:TRUE: a plain leaf, exactly the server profile.
    let mut args = issue_csr_args(&ca_true);
    args[5] = "acked".into();
    args.push("--ignore-requested-ca".into());
    ok(ca.issuer(&strs(&args)));
    let crt = d.join("acked/server.crt");
    let text = x509_text(&crt);
    assert_eq!(
        sorted(extensions(&text)),
        spec_extensions(
            "server",
            false,
            Some("DNS:localhost, IP Address:127.0.0.1"),
            &ski_of(&crt),
            &ski_of(&ca.reference.join("intermediate.crt"))
        ),
        "{text}"
    );
    let (passed, out) = openssl_verify(d, &ca.root, &crt, "sslserver");
    assert!(passed, "{out}");
    assert!(
        !d.join("out").exists(),
        "no refused command created the output folder"
    );
    assert_eq!(ledger_len(&ca), 1, "only the acknowledged leaf is recorded");
}

/// A CA folder holding an intermediate that ends in `days` days, signed by the fixture's root.
fn short_lived_ca(ca: &OpensslCa, name: &str, days: u32) -> PathBuf {
    let d = &ca.dir;
    let key = d.join(format!("{name}.key"));
    let csr = d.join(format!("{name}.csr"));
    let crt = d.join(format!("{name}.crt"));
    let ext = d.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-keyout",
            path_str(&key),
            "-subj",
            &format!("/CN={name} intermediate"),
            "-out",
            path_str(&csr),
        ],
    );
    let days = days.to_string();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            path_str(&csr),
            "-CA",
            path_str(&ca.root),
            "-CAkey",
            path_str(&ca.reference.join("ca-private/root.key")),
            "-days",
            &days,
            "-sha384",
            "-extfile",
            path_str(&ext),
            "-set_serial",
            "0x3a1b2c3d4e5f60718293a4b5c6d7e8f9",
            "-out",
            path_str(&crt),
        ],
    );
    let dir = d.join(format!("{name}-ca"));
    ok(run(
        d,
        "intermediate-ca",
        &[
            "import",
            "--cert",
            path_str(&crt),
            "--key",
            path_str(&key),
            "--dir",
            path_str(&dir),
            "--identity",
            path_str(&ca.identity),
        ],
        &[],
    ));
    dir
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

#[test]
fn validity_is_capped_by_the_profile_and_the_intermediate() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let short = short_lived_ca(&ca, "short", 10);
    let cas: &[&Path] = &[&ca.ca, &short];

    refuses(
        &ca,
        cas,
        &[
            "issue",
            "server",
            "--ca",
            "ca",
            "--out",
            "long",
            "--cn",
            "etcd-1",
            "--dns",
            "localhost",
            "--days",
            "5000",
        ],
        &[],
        "5000 days is longer than this profile allows (825 days)",
    );
    refuses(
        &ca,
        cas,
        &[
            "issue", "client", "--ca", "ca", "--out", "zero", "--cn", "u", "--days", "0",
        ],
        &[],
        "at least 1",
    );

    // 30 days under a 10-day intermediate: the message names both ends.
    let inter = cert_ders(&d.join("short.crt")).remove(0);
    let inter_end = rfc3339(parse_cert(&inter).validity().not_after.timestamp());
    let t0 = now_unix();
    let err = refuses(
        &ca,
        cas,
        &[
            "issue", "client", "--ca", "short-ca", "--out", "s30", "--cn", "u", "--days", "30",
        ],
        &[],
        "never outlives its issuer",
    );
    let t1 = now_unix();
    assert!(
        err.contains(&format!("the issuer's certificate ends {inter_end}")),
        "names the intermediate's end {inter_end}: {err}"
    );
    let requested_ok = (t0..=t1 + 1).any(|t| {
        err.contains(&format!(
            "the requested validity ends {}",
            rfc3339(t + 30 * 86_400)
        ))
    });
    assert!(requested_ok, "names the requested end (now + 30 d): {err}");

    // The same folder issues what fits, and never past its intermediate.
    ok(ca.issuer(&[
        "issue", "client", "--ca", "short-ca", "--out", "s5", "--cn", "u", "--days", "5",
    ]));
    let leaf = cert_ders(&d.join("s5/client.crt"));
    assert_eq!(leaf[1], inter, "chain carries the short-lived intermediate");
    let leaf_end = parse_cert(&leaf[0]).validity().not_after.timestamp();
    assert!(leaf_end <= parse_cert(&inter).validity().not_after.timestamp());
    assert!(
        (leaf_end - now_unix() - 5 * 86_400).abs() < 120,
        "5 days asked"
    );
    let (passed, out) = openssl_verify(d, &ca.root, &d.join("s5/client.crt"), "sslclient");
    assert!(passed, "{out}");
}

#[test]
fn existing_outputs_are_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let cas: &[&Path] = &[&ca.ca];

    std::fs::create_dir(d.join("o1")).unwrap();
    std::fs::write(d.join("o1/server.crt"), "operator's certificate\n").unwrap();
    let err = refuses(
        &ca,
        cas,
        &[
            "issue",
            "server",
            "--ca",
            "ca",
            "--out",
            "o1",
            "--cn",
            "etcd-1",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
        ],
        &[],
        "already exists",
    );
    assert!(
        err.contains("server.crt") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read(&d.join("o1/server.crt")), "operator's certificate\n");
    assert!(!d.join("o1/server.key").exists(), "no key beside it");

    // Only the key is there: the certificate must not appear either.
    std::fs::create_dir(d.join("o2")).unwrap();
    std::fs::write(d.join("o2/peer.key"), "operator's key\n").unwrap();
    let err = refuses(
        &ca,
        cas,
        &[
            "issue",
            "peer",
            "--ca",
            "ca",
            "--out",
            "o2",
            "--cn",
            "etcd-1",
            "--ip",
            "127.0.0.1",
        ],
        &[],
        "already exists",
    );
    assert!(err.contains("peer.key"), "{err}");
    assert!(!d.join("o2/peer.crt").exists());

    // --force replaces both, and only then; the snapshot sees the change (so it can fail).
    let before = State::capture(d, cas);
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "o1",
        "--cn",
        "etcd-1",
        "--dns",
        "localhost",
        "--force",
    ]));
    assert_eq!(cert_ders(&d.join("o1/server.crt")).len(), 2);
    assert_eq!(ledger_len(&ca), 1);
    let mut changes = State::capture(d, cas).changes_since(&before);
    changes.sort();
    assert_eq!(
        changes,
        vec![
            "added o1/server.key".to_string(),
            "changed content of o1/server.crt".to_string(),
            format!("ledger of {} changed", ca.ca.display()),
        ]
    );
}

#[test]
fn wrong_secrets_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let other = d.join("other-identity.txt");
    ok(run(
        d,
        "intermediate-ca",
        &["new-identity", path_str(&other)],
        &[],
    ));
    let pass = d.join("pass.txt");
    let wrong = d.join("wrong-pass.txt");
    e2e_tests::secret::write_secret(&pass, "a long enough passphrase\n");
    e2e_tests::secret::write_secret(&wrong, "another long passphrase\n");
    let r = &ca.reference;
    ok(run(
        d,
        "intermediate-ca",
        &[
            "import",
            "--cert",
            path_str(&r.join("intermediate.crt")),
            "--key",
            path_str(&r.join("ca-private/intermediate.key")),
            "--dir",
            "pca",
            "--passphrase-file",
            path_str(&pass),
        ],
        &[],
    ));
    let pca = d.join("pca");
    let cas: &[&Path] = &[&ca.ca, &pca];
    let issue = |ca_dir: &'static str, out: &'static str| {
        vec![
            "issue", "client", "--ca", ca_dir, "--out", out, "--cn", "user",
        ]
    };

    // Another identity, through the environment as scripts pass it.
    let err = refuses(
        &ca,
        cas,
        &issue("ca", "w1"),
        &[("PKI_AGE_IDENTITY", &other)],
        "is not the one this key was encrypted to",
    );
    assert!(!err.contains(&read(&other)), "no secret in the message");
    // ... and through the flag.
    let mut args = issue("ca", "w2");
    args.extend(["--identity", path_str(&other)]);
    refuses(
        &ca,
        cas,
        &args,
        &[],
        "is not the one this key was encrypted to",
    );

    // A passphrase-protected key: the wrong passphrase is named as such.
    let mut args = issue("pca", "w3");
    args.extend(["--passphrase-file", path_str(&wrong)]);
    let err = refuses(&ca, cas, &args, &[], "wrong passphrase");
    assert!(
        !err.contains("another long passphrase"),
        "no secret in the message"
    );
    // An identity for a passphrase-protected key, and no secret at all.
    let mut args = issue("pca", "w4");
    args.extend(["--identity", path_str(&ca.identity)]);
    let err = refuses(&ca, cas, &args, &[], "protected by a passphrase");
    assert!(
        err.contains("--passphrase-file"),
        "says what to pass: {err}"
    );
    let before = State::capture(d, cas);
    fails_with(
        run(d, "issuer", &issue("ca", "w5"), &[]),
        "no way to unlock the key at rest",
    );
    before.assert_unchanged(&State::capture(d, cas), "no secret");

    // The right passphrase works.
    let mut args = issue("pca", "w6");
    args.extend(["--passphrase-file", path_str(&pass)]);
    ok(run(d, "issuer", &args, &[]));
    let (passed, out) = openssl_verify(d, &ca.root, &d.join("w6/client.crt"), "sslclient");
    assert!(passed, "{out}");
}

#[test]
fn import_refuses_mismatched_keys_and_non_ca_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let r = &ca.reference;
    let import = |cert: &Path, key: &Path, dir: &str| {
        run(
            d,
            "intermediate-ca",
            &[
                "import",
                "--cert",
                path_str(cert),
                "--key",
                path_str(key),
                "--dir",
                dir,
                "--identity",
                path_str(&ca.identity),
            ],
            &[],
        )
    };
    let cases: [(&str, PathBuf, PathBuf, &str); 3] = [
        (
            "intermediate certificate with the root's key",
            r.join("intermediate.crt"),
            r.join("ca-private/root.key"),
            "does not match the certificate",
        ),
        (
            "intermediate certificate with a leaf's key",
            r.join("intermediate.crt"),
            r.join("nodes/etcd-1/server.key"),
            "does not match the certificate",
        ),
        (
            "a leaf with its own key",
            r.join("nodes/etcd-1/server.crt"),
            r.join("nodes/etcd-1/server.key"),
            "not a CA certificate",
        ),
    ];
    for (i, (what, cert, key, needle)) in cases.iter().enumerate() {
        let dir = format!("refused-{i}");
        let before = State::capture(d, &[&ca.ca]);
        let err = fails_with(import(cert, key, &dir), needle);
        if i == 0 {
            pin_message("error-intermediate-ca-import-mismatch", &err, d);
        }
        assert!(!d.join(&dir).exists(), "{what}: a CA folder was created");
        before.assert_unchanged(&State::capture(d, &[&ca.ca]), what);
    }
    // An existing CA folder is not imported over.
    let before = State::capture(d, &[&ca.ca]);
    fails_with(
        import(
            &r.join("intermediate.crt"),
            &r.join("ca-private/intermediate.key"),
            "ca",
        ),
        "already",
    );
    before.assert_unchanged(&State::capture(d, &[&ca.ca]), "import over ca/");
}

// ------------------------------------------------------------------------------------------
// 4. issuer verify

/// `issuer verify ARGS`: exit code 1 and a FAIL line of `check` containing `needle`.
fn verify_fails(ca: &OpensslCa, args: &[&str], check: &str, needle: &str) {
    let o = ca.issuer(args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status.code(),
        Some(1),
        "verify {args:?} must exit 1:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let hit = out.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.next() == Some("FAIL") && words.next() == Some(check) && l.contains(needle)
    });
    assert!(
        hit,
        "verify {args:?}: no 'FAIL {check} ...{needle}...' line in\n{out}"
    );
}

#[test]
fn verify_reports_a_fail_line_for_each_broken_leaf() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "n",
        "--cn",
        "etcd-1",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]));
    ok(ca.issuer(&[
        "issue", "client", "--ca", "ca", "--out", "c", "--cn", "root",
    ]));
    let root = path_str(&ca.root);

    // The good case passes with every check, so each failure below is the one change.
    for (role, file, key) in [
        ("server", "n/server.crt", "n/server.key"),
        ("client", "c/client.crt", "c/client.key"),
    ] {
        let o = ca.issuer(&["verify", "--root", root, "--role", role, "--key", key, file]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success() && !out.contains("FAIL"), "{role}: {out}");
    }

    // A rogue root with the same subject as the real one (the fixture's), and an unrelated one.
    verify_fails(
        &ca,
        &[
            "verify",
            "--root",
            path_str(&ca.reference.join("negative/rogue-ca/ca.crt")),
            "n/server.crt",
        ],
        "chain",
        "does not verify to the root",
    );
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-keyout",
            "rogue.key",
            "-subj",
            "/CN=rogue root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "rogue.crt",
        ],
    );
    verify_fails(
        &ca,
        &[
            "verify",
            "--root",
            "rogue.crt",
            "--role",
            "client",
            "c/client.crt",
        ],
        "chain",
        "does not verify to the root",
    );

    // Wrong role, both ways.
    verify_fails(
        &ca,
        &["verify", "--root", root, "--role", "client", "n/server.crt"],
        "profile",
        "extendedKeyUsage",
    );
    verify_fails(
        &ca,
        &["verify", "--root", root, "--role", "server", "c/client.crt"],
        "profile",
        "extendedKeyUsage",
    );
    verify_fails(
        &ca,
        &["verify", "--root", root, "--role", "peer", "c/client.crt"],
        "profile",
        "extendedKeyUsage",
    );

    // A key that belongs to another certificate.
    verify_fails(
        &ca,
        &[
            "verify",
            "--root",
            root,
            "--key",
            "c/client.key",
            "n/server.crt",
        ],
        "key",
        "does NOT match",
    );

    // The chain file without its intermediate.
    let leaf_only = pem_encode("CERTIFICATE", &cert_ders(&d.join("n/server.crt"))[0]);
    std::fs::write(d.join("leaf-only.crt"), leaf_only).unwrap();
    verify_fails(
        &ca,
        &["verify", "--root", root, "leaf-only.crt"],
        "chain",
        "only the leaf",
    );

    // --json carries the same verdict.
    let o = ca.issuer(&[
        "verify",
        "--root",
        root,
        "--key",
        "c/client.key",
        "--json",
        "n/server.crt",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let text = v.to_string();
    assert!(
        text.contains("\"fail\"") && text.contains("does NOT match"),
        "{v:#}"
    );
}
