//! Issue 4: enrolment across the air gap with age bundles, on a real SoftHSM2 root; interop with
//! the stock `age` CLI both ways; every bad bundle refused with its message and no state change.

use std::path::PathBuf;
use std::process::{Command, Output};

use e2e_tests::fixture::{changed_files, fails_with, ok, run, sh, snapshot_files, softhsm_token};
use e2e_tests::openssl::cert_ders;
use e2e_tests::snapshot::{assert_snapshot, normalize};
use rustls_pki_types::{CertificateDer, UnixTime};

/// A root on a SoftHSM2 token plus an online CA folder, both in one temp dir.
struct Pki {
    d: PathBuf,
    conf: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let conf = softhsm_token(&d.join("tok"));
        let p = Pki { d, conf, _tmp: tmp };
        p.write(
            "init.toml",
            "allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p384\"\n[root]\ncommon-name = \"Enrolment Test Root\"\n[output]\ndir = \"root\"\n",
        );
        ok(p.root_ca(&["init", "init.toml", "--pin-file", "tok/user.pin"]));
        ok(run(
            &p.d,
            "intermediate-ca",
            &["new-identity", "id.txt"],
            &[],
        ));
        p
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let f = self.d.join(name);
        std::fs::write(&f, text).unwrap();
        f
    }
    fn root_ca(&self, args: &[&str]) -> Output {
        run(&self.d, "root-ca", args, &[("SOFTHSM2_CONF", &self.conf)])
    }
    fn ica(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "intermediate-ca",
            args,
            &[("PKI_AGE_IDENTITY", &self.d.join("id.txt"))],
        )
    }
    fn issuer(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "issuer",
            args,
            &[("PKI_AGE_IDENTITY", &self.d.join("id.txt"))],
        )
    }
    fn root_fp(&self) -> String {
        let (_, out, _) = sh(
            &self.d,
            "openssl",
            &[
                "x509",
                "-in",
                "root/root.crt",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        out.trim().split('=').nth(1).unwrap().to_string()
    }
    /// `intermediate-ca request`; returns the key fingerprint it printed.
    fn request(&self, out: &str) -> String {
        let o = ok(self.ica(&[
            "request",
            "--dir",
            "ica",
            "--to-file",
            "root/transport.recipient",
            "--out",
            out,
        ]));
        o.lines()
            .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
            .expect("fingerprint")
            .to_string()
    }
    fn sign_toml(&self, name: &str, bundle: &str, fp: &str, response: &str) -> PathBuf {
        self.write(
            name,
            &format!(
                "allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[request]\nbundle = \"{bundle}\"\nkey-fingerprint = \"{fp}\"\n[output]\nresponse = \"{response}\"\n"
            ),
        )
    }
    fn sign(&self, name: &str, bundle: &str, fp: &str, response: &str) {
        let f = self.sign_toml(name, bundle, fp, response);
        ok(self.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    }
    fn enrol(&self) {
        let fp = self.request("request.age");
        self.sign("sign.toml", "request.age", &fp, "response.age");
        ok(self.ica(&[
            "install",
            "--dir",
            "ica",
            "--root-fingerprint",
            &self.root_fp(),
            "response.age",
        ]));
    }
    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&ok(self.ica(&["status", "--dir", "ica", "--json"]))).unwrap()
    }
    fn ica_state(&self) -> Vec<(PathBuf, Vec<u8>)> {
        snapshot_files(&self.d.join("ica"))
    }
}

#[test]
fn request_sign_install_issue_and_rotate() {
    let p = Pki::new();
    p.enrol();
    let st = p.status();
    assert_eq!(st["active"], 1);
    ok(p.issuer(&[
        "issue",
        "server",
        "--ca",
        "ica",
        "--out",
        "n1",
        "--cn",
        "etcd-1",
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
    ]));
    let (good, out, err) = sh(
        &p.d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            "n1/server.crt",
            "-purpose",
            "sslserver",
            "n1/server.crt",
        ],
    );
    assert!(good, "{out}{err}");
    // rustls-webpki with the root as the only anchor.
    let root = cert_ders(&p.d.join("root/root.crt")).remove(0);
    let chain = cert_ders(&p.d.join("n1/server.crt"));
    assert_eq!(chain.len(), 2);
    let root_der = CertificateDer::from(root.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der).unwrap()];
    let leaf = CertificateDer::from(chain[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let inter = [CertificateDer::from(chain[1].as_slice())];
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .expect("webpki accepts the leaf against the root alone");
    ee.verify_is_valid_for_subject_name(
        &rustls_pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();

    // Rotation: a second request stages generation 2; generation 1 keeps issuing.
    let fp2 = p.request("request-2.age");
    let st = p.status();
    assert_eq!(st["active"], 1);
    assert_eq!(st["generations"].as_array().unwrap().len(), 2);
    ok(p.issuer(&[
        "issue", "client", "--ca", "ica", "--out", "c1", "--cn", "root",
    ]));
    let (_, issuer1, _) = sh(
        &p.d,
        "openssl",
        &["x509", "-in", "c1/client.crt", "-noout", "-issuer"],
    );
    p.sign("sign-2.toml", "request-2.age", &fp2, "response-2.age");
    ok(p.ica(&[
        "install",
        "--dir",
        "ica",
        "--root-fingerprint",
        &p.root_fp(),
        "response-2.age",
    ]));
    assert_eq!(p.status()["active"], 2);
    ok(p.issuer(&[
        "issue", "client", "--ca", "ica", "--out", "c2", "--cn", "root",
    ]));
    let (_, aki1, _) = sh(
        &p.d,
        "openssl",
        &[
            "x509",
            "-in",
            "c1/client.crt",
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
    );
    let (_, aki2, _) = sh(
        &p.d,
        "openssl",
        &[
            "x509",
            "-in",
            "c2/client.crt",
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
    );
    assert_ne!(
        aki1, aki2,
        "the new leaf chains through the new intermediate"
    );
    assert!(!issuer1.is_empty());
    let (good, out, err) = sh(
        &p.d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            "c2/client.crt",
            "-purpose",
            "sslclient",
            "c2/client.crt",
        ],
    );
    assert!(good, "{out}{err}");
}

#[test]
fn the_age_cli_reads_our_bundles_and_we_read_its_bundles() {
    let p = Pki::new();
    let fp = p.request("request.age");
    p.sign("sign.toml", "request.age", &fp, "response.age");
    // age CLI decrypts our response with the online identity.
    let (good, plain, err) = sh(&p.d, "age", &["-d", "-i", "id.txt", "response.age"]);
    assert!(good, "{err}");
    assert!(
        plain.starts_with("PKI-BUNDLE v1\n") && plain.contains("kind: intermediate-response"),
        "{plain}"
    );
    // ...and re-encrypts it; we install what the age CLI wrote.
    p.write("response.txt", &plain);
    let recipient = std::fs::read_to_string(p.d.join("id.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let (good, _, err) = sh(
        &p.d,
        "age",
        &[
            "-a",
            "-r",
            &recipient,
            "-o",
            "response-cli.age",
            "response.txt",
        ],
    );
    assert!(good, "{err}");
    ok(p.ica(&[
        "install",
        "--dir",
        "ica",
        "--root-fingerprint",
        &p.root_fp(),
        "response-cli.age",
    ]));

    // A request written by hand and encrypted by the age CLI to the root is signed by root-ca,
    // and its response decrypts with the age CLI for the reply-to identity.
    let (good, _, err) = sh(&p.d, "age-keygen", &["-o", "other-id.txt"]);
    assert!(good, "{err}");
    let (_, other_recipient, _) = sh(&p.d, "age-keygen", &["-y", "other-id.txt"]);
    let (good, _, err) = sh(
        &p.d,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "h.key",
            "-subj",
            "/CN=hand made",
            "-out",
            "h.csr",
        ],
    );
    assert!(good, "{err}");
    let csr = std::fs::read_to_string(p.d.join("h.csr")).unwrap();
    p.write(
        "req.txt",
        &format!("PKI-BUNDLE v1\nkind: intermediate-request\nrequest-id: 00112233445566778899aabbccddeeff\ncreated: 2026-11-23T00:00:00Z\nreply-to: {}\nsubject: CN=hand made\n\n{csr}", other_recipient.trim()),
    );
    let root_recipient = std::fs::read_to_string(p.d.join("root/transport.recipient")).unwrap();
    let (good, _, err) = sh(
        &p.d,
        "age",
        &[
            "-a",
            "-r",
            root_recipient.trim(),
            "-o",
            "req-cli.age",
            "req.txt",
        ],
    );
    assert!(good, "{err}");
    let o = Command::new("bash")
        .arg("-c")
        .arg("openssl req -in h.csr -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1")
        .current_dir(&p.d)
        .output()
        .unwrap();
    let hfp = String::from_utf8_lossy(&o.stdout).trim().to_string();
    p.sign("sign-h.toml", "req-cli.age", &hfp, "resp-h.age");
    let (good, plain, err) = sh(&p.d, "age", &["-d", "-i", "other-id.txt", "resp-h.age"]);
    assert!(good, "{err}");
    assert!(
        plain.contains("request-id: 00112233445566778899aabbccddeeff")
            && plain.contains("BEGIN CERTIFICATE")
    );
}

/// A refused install: its message, no change to the CA folder.
fn refused_install(p: &Pki, name: &str, bundle: &str, needle: &str, extra: &[&str]) {
    let before = p.ica_state();
    let mut args = vec!["install", "--dir", "ica", "--root-fingerprint"];
    let fp = p.root_fp();
    args.push(&fp);
    args.push(bundle);
    args.extend(extra);
    let err = fails_with(p.ica(&args), needle);
    let changed = changed_files(&before, &p.ica_state());
    assert!(changed.is_empty(), "{name}: {changed:?}");
    assert_snapshot(
        &format!("error-intermediate-ca-install-{name}"),
        &normalize(&err, &[&p.d]),
    );
}

#[test]
fn bad_bundles_are_refused_with_their_messages() {
    let p = Pki::new();
    let fp = p.request("request.age");
    p.sign("sign.toml", "request.age", &fp, "response.age");
    let response = std::fs::read_to_string(p.d.join("response.age")).unwrap();

    // For another recipient: install with another identity.
    ok(run(
        &p.d,
        "intermediate-ca",
        &["new-identity", "stranger.txt"],
        &[],
    ));
    refused_install(
        &p,
        "other-recipient",
        "response.age",
        "another recipient",
        &["--identity", "stranger.txt"],
    );
    // Truncated.
    // Cut at a line boundary, as a short copy or an interrupted transfer would.
    let kept: Vec<&str> = response
        .lines()
        .take(response.lines().count() / 2)
        .collect();
    p.write("truncated.age", &(kept.join("\n") + "\n"));
    refused_install(&p, "truncated", "truncated.age", "truncated", &[]);
    // One flipped byte inside the armoured body.
    let lines: Vec<&str> = response.lines().collect();
    let mut flipped: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mid = lines.len() / 2;
    let mut chars: Vec<char> = flipped[mid].chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    flipped[mid] = chars.into_iter().collect();
    p.write("flipped.age", &(flipped.join("\n") + "\n"));
    refused_install(&p, "flipped-byte", "flipped.age", "tampered", &[]);
    // Not an age file at all.
    p.write("plain.txt", "hello, I am not a bundle\n");
    refused_install(
        &p,
        "not-age",
        "plain.txt",
        "not an age-encrypted bundle",
        &[],
    );
    // A request fed to install (encrypted by the age CLI to the online identity).
    let recipient = std::fs::read_to_string(p.d.join("id.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let (_, plain, _) = sh(&p.d, "age", &["-d", "-i", "id.txt", "response.age"]);
    p.write(
        "as-request.txt",
        &plain.replace("kind: intermediate-response", "kind: intermediate-request"),
    );
    let (good, _, err) = sh(
        &p.d,
        "age",
        &[
            "-a",
            "-r",
            &recipient,
            "-o",
            "as-request.age",
            "as-request.txt",
        ],
    );
    assert!(good, "{err}");
    refused_install(
        &p,
        "wrong-kind",
        "as-request.age",
        "intermediate-request bundle, but an intermediate-response",
        &[],
    );
    // A request ID that does not match the staged request.
    let other_id = plain
        .lines()
        .find_map(|l| l.strip_prefix("request-id: "))
        .unwrap();
    p.write(
        "other-id.txt",
        &plain.replace(other_id, "ffffffffffffffffffffffffffffffff"),
    );
    let (good, _, err) = sh(
        &p.d,
        "age",
        &["-a", "-r", &recipient, "-o", "other-id.age", "other-id.txt"],
    );
    assert!(good, "{err}");
    refused_install(&p, "request-id", "other-id.age", "staged request", &[]);
    // A certificate for another key: the root signs an unrelated CSR; wrap it with our request ID.
    let (good, _, err) = sh(
        &p.d,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-nodes",
            "-keyout",
            "x.key",
            "-subj",
            "/CN=x",
            "-out",
            "x.csr",
        ],
    );
    assert!(good, "{err}");
    let o = Command::new("bash").arg("-c").arg("openssl req -in x.csr -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1").current_dir(&p.d).output().unwrap();
    let xfp = String::from_utf8_lossy(&o.stdout).trim().to_string();
    p.write(
        "sign-x.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[request]\ncsr = \"x.csr\"\nkey-fingerprint = \"{xfp}\"\n[output]\ncertificate = \"x.crt\"\n"),
    );
    ok(p.root_ca(&["sign", "sign-x.toml", "--pin-file", "tok/user.pin"]));
    let xcert = std::fs::read_to_string(p.d.join("x.crt")).unwrap();
    let first_cert_end =
        plain.find("-----END CERTIFICATE-----\n").unwrap() + "-----END CERTIFICATE-----\n".len();
    let first_cert_start = plain.find("-----BEGIN CERTIFICATE-----").unwrap();
    let swapped = format!(
        "{}{}{}",
        &plain[..first_cert_start],
        xcert,
        &plain[first_cert_end..]
    );
    p.write("swapped.txt", &swapped);
    let (good, _, err) = sh(
        &p.d,
        "age",
        &["-a", "-r", &recipient, "-o", "swapped.age", "swapped.txt"],
    );
    assert!(good, "{err}");
    refused_install(&p, "another-key", "swapped.age", "another key", &[]);
    // Chaining to another root than the pinned one.
    let before = p.ica_state();
    let err = fails_with(
        p.ica(&[
            "install",
            "--dir",
            "ica",
            "--root-fingerprint",
            &"AB".repeat(32),
            "response.age",
        ]),
        "not the pinned",
    );
    assert!(changed_files(&before, &p.ica_state()).is_empty());
    assert_snapshot(
        "error-intermediate-ca-install-other-root",
        &normalize(&err, &[&p.d]),
    );
    // A response fed to root-ca sign (encrypted to the root's recipient by the age CLI).
    let root_recipient = std::fs::read_to_string(p.d.join("root/transport.recipient")).unwrap();
    let (good, _, err) = sh(
        &p.d,
        "age",
        &[
            "-a",
            "-r",
            root_recipient.trim(),
            "-o",
            "resp-to-root.age",
            "as-request.txt",
        ],
    );
    assert!(good, "{err}");
    p.write("resp-as-req.txt", &plain);
    let (good, _, err) = sh(
        &p.d,
        "age",
        &[
            "-a",
            "-r",
            root_recipient.trim(),
            "-o",
            "resp-to-root.age",
            "resp-as-req.txt",
        ],
    );
    assert!(good, "{err}");
    let f = p.sign_toml("sign-wrong.toml", "resp-to-root.age", &fp, "never.age");
    let before = snapshot_files(&p.d.join("root"));
    let err = fails_with(
        p.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]),
        "intermediate-response bundle, but an intermediate-request",
    );
    assert!(changed_files(&before, &snapshot_files(&p.d.join("root"))).is_empty());
    assert!(!p.d.join("never.age").exists());
    assert_snapshot("error-root-ca-sign-response-fed", &normalize(&err, &[&p.d]));

    // After all of that, the genuine response still installs.
    ok(p.ica(&[
        "install",
        "--dir",
        "ica",
        "--root-fingerprint",
        &p.root_fp(),
        "response.age",
    ]));
}

#[test]
fn rehearse_twice_gives_two_independent_pkis_that_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let script = e2e_tests::fixture::workspace().join("softhsm/rehearse.sh");
    for name in ["a", "b"] {
        let o = Command::new("bash")
            .arg(&script)
            .arg(tmp.path().join(name))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "rehearse.sh {name}:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let d = tmp.path();
    let fp = |n: &str| {
        sh(
            d,
            "openssl",
            &[
                "x509",
                "-in",
                &format!("{n}/root/root.crt"),
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        )
        .1
    };
    assert_ne!(fp("a"), fp("b"), "two independent roots");
    for n in ["a", "b"] {
        for m in 1..=3 {
            let crt = format!("{n}/etcd/nodes/etcd-{m}/server.crt");
            let (good, out, err) = sh(
                d,
                "openssl",
                &[
                    "verify",
                    "-CAfile",
                    &format!("{n}/root/root.crt"),
                    "-untrusted",
                    &crt,
                    "-purpose",
                    "sslserver",
                    &crt,
                ],
            );
            assert!(good, "{out}{err}");
        }
        // OUT/env lets the tools go on working on OUT.
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                ". {n}/env && issuer list --ca {n}/intermediate --json"
            ))
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("etcd-1"));
    }
    let crt = "a/etcd/nodes/etcd-1/server.crt";
    let (good, _, _) = sh(
        d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "b/root/root.crt",
            "-untrusted",
            crt,
            crt,
        ],
    );
    assert!(
        !good,
        "a leaf of one rehearsal must not verify against the other root"
    );
}
