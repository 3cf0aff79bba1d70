//! Issue 3, beside root_ca.rs: name constraints that bind, the chain down to a leaf, and the
//! exact error messages of the root (snapshots in tests/snapshots).

use std::path::{Path, PathBuf};
use std::process::Output;

use e2e_tests::fixture::{changed_files, fails_with, ok, run, sh, snapshot_files, softhsm_token};
use e2e_tests::snapshot::{assert_snapshot, normalize};

/// A throwaway token and a folder to hold ceremony files.
struct Ceremony {
    dir: PathBuf,
    conf: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Ceremony {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let conf = softhsm_token(&tmp.path().join("tok"));
        Ceremony {
            dir: tmp.path().to_path_buf(),
            conf,
            _tmp: tmp,
        }
    }
    fn root_ca(&self, args: &[&str]) -> Output {
        run(&self.dir, "root-ca", args, &[("SOFTHSM2_CONF", &self.conf)])
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn init_file(&self, name: &str, label: &str, alg: &str, out: &str, days: u32) -> PathBuf {
        self.write(
            name,
            &format!(
                "allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"{label}\"\n[key]\nalgorithm = \"{alg}\"\n[root]\ncommon-name = \"Test Root {label}\"\ndays = {days}\n[output]\ndir = \"{out}\"\n"
            ),
        )
    }
    fn init(&self, label: &str, alg: &str, out: &str) -> String {
        let f = self.init_file(&format!("init-{label}.toml"), label, alg, out, 3653);
        ok(self.root_ca(&["init", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]))
    }
    // One parameter per line of the ceremony file it writes: clearer here than a struct.
    #[allow(clippy::too_many_arguments)]
    fn sign_file(
        &self,
        name: &str,
        label: &str,
        root: &str,
        csr: &str,
        fp: &str,
        out: &str,
        extra: &str,
    ) -> PathBuf {
        self.write(
            name,
            &format!(
                "allow-network = true\nroot-dir = \"{root}\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"{label}\"\n[request]\ncsr = \"{csr}\"\nkey-fingerprint = \"{fp}\"\n[certificate]\n{extra}\n[output]\ncertificate = \"{out}\"\n"
            ),
        )
    }
}

fn openssl_csr(dir: &Path, name: &str, keyargs: &[&str]) -> (PathBuf, String) {
    let mut a = vec!["genpkey"];
    a.extend(keyargs);
    let key = format!("{name}.key");
    a.extend(["-out", &key]);
    let (good, _, e) = sh(dir, "openssl", &a);
    assert!(good, "{e}");
    let csr = format!("{name}.csr");
    let (good, _, e) = sh(
        dir,
        "openssl",
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            &format!("/CN={name}"),
            "-out",
            &csr,
        ],
    );
    assert!(good, "{e}");
    // The key fingerprint as the runbook tells the requester to compute it.
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "openssl req -in {csr} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
        ))
        .current_dir(dir)
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (dir.join(csr), fp)
}

#[test]
fn sign_revoke_crl_and_the_chain_down_to_a_leaf() {
    let c = Ceremony::new();
    c.init("root-1", "p384", "root");
    let (csr, fp) = openssl_csr(
        &c.dir,
        "int",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let f = c.sign_file("sign.toml", "root-1", "root", csr.to_str().unwrap(), &fp, "int.crt", "days = 1000\npermitted-dns = [\"etcd.test\", \"localhost\"]\npermitted-ips = [\"127.0.0.0/8\"]");
    let dry = ok(c.root_ca(&["sign", f.to_str().unwrap(), "--dry-run"]));
    assert!(
        dry.contains("conforms to the intermediate profile") && !c.dir.join("int.crt").exists()
    );
    ok(c.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let (good, v, e) = sh(
        &c.dir,
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root/root.crt",
            "int.crt",
        ],
    );
    assert!(good, "{v}{e}");
    let (_, text, _) = sh(
        &c.dir,
        "openssl",
        &["x509", "-in", "int.crt", "-noout", "-text"],
    );
    assert!(text.contains("CA:TRUE, pathlen:0") && text.contains("Certificate Sign, CRL Sign"));
    assert!(
        text.contains("X509v3 Authority Key Identifier") && !text.contains("Extended Key Usage")
    );
    assert!(
        text.contains("X509v3 Name Constraints: critical")
            && text.contains("DNS:etcd.test")
            && text.contains("IP:127.0.0.0/255.0.0.0"),
        "{text}"
    );

    // A leaf issued under it by `issuer` verifies through to the root.
    ok(run(
        &c.dir,
        "intermediate-ca",
        &["new-identity", "id.txt"],
        &[],
    ));
    ok(run(
        &c.dir,
        "intermediate-ca",
        &[
            "import",
            "--cert",
            "int.crt",
            "--key",
            "int.key",
            "--dir",
            "ica",
            "--identity",
            "id.txt",
        ],
        &[],
    ));
    ok(run(
        &c.dir,
        "issuer",
        &[
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
            "--identity",
            "id.txt",
        ],
        &[],
    ));
    let (good, v, e) = sh(
        &c.dir,
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
    assert!(good, "{v}{e}");
    // The intermediate's name constraints bind: the issuer refuses a name outside them before
    // signing (openssl would reject the certificate; tests/tests/e2e/trust/gate.rs compares the two).
    fails_with(
        run(
            &c.dir,
            "issuer",
            &[
                "issue",
                "server",
                "--ca",
                "ica",
                "--out",
                "n2",
                "--cn",
                "etcd-2",
                "--dns",
                "evil.example",
                "--identity",
                "id.txt",
            ],
            &[],
        ),
        "DNS:evil.example is outside the name constraints",
    );
    assert!(!c.dir.join("n2/server.crt").exists());

    // Revoke the intermediate and sign two CRLs.
    let (_, serial, _) = sh(
        &c.dir,
        "openssl",
        &["x509", "-in", "int.crt", "-noout", "-serial"],
    );
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let rv = c.write("revoke.toml", &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{serial}\"\nreason = \"keyCompromise\"\n"));
    ok(c.root_ca(&["revoke", rv.to_str().unwrap()]));
    let crl_toml = |out: &str, days: u32| {
        format!("allow-network = true\nroot-dir = \"root\"\nnext-update-days = {days}\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root-1\"\n[output]\ncrl = \"{out}\"\n")
    };
    let c1 = c.write("crl1.toml", &crl_toml("crl1.pem", 30));
    ok(c.root_ca(&["crl", c1.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let c2 = c.write("crl2.toml", &crl_toml("crl2.pem", 180));
    ok(c.root_ca(&["crl", c2.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    for (f, n) in [("crl1.pem", "1"), ("crl2.pem", "2")] {
        let (good, out, err) = sh(
            &c.dir,
            "openssl",
            &[
                "crl",
                "-in",
                f,
                "-CAfile",
                "root/root.crt",
                "-verify",
                "-noout",
                "-text",
            ],
        );
        assert!(good && err.contains("verify OK"), "{out}{err}");
        assert!(
            out.contains(&serial.to_ascii_uppercase()) && out.contains("Key Compromise"),
            "{out}"
        );
        assert!(
            out.contains("X509v3 CRL Number") && out.contains(&format!("                {n}\n")),
            "{out}"
        );
        assert!(out.contains("X509v3 Authority Key Identifier"));
    }
    // rustls-webpki: the leaf under the revoked intermediate is revoked (root CRL, chain depth).
    let der = |p: &str| -> Vec<u8> {
        let (_, _, _) = sh(
            &c.dir,
            "openssl",
            &[
                "crl",
                "-in",
                p,
                "-outform",
                "DER",
                "-out",
                &format!("{p}.der"),
            ],
        );
        std::fs::read(c.dir.join(format!("{p}.der"))).unwrap()
    };
    let crl_der = der("crl2.pem");
    let certs = |p: &str| -> Vec<Vec<u8>> {
        let text = std::fs::read_to_string(c.dir.join(p)).unwrap();
        text.split("-----END CERTIFICATE-----")
            .filter(|b| b.contains("BEGIN"))
            .map(|b| {
                let b64: String = b
                    .lines()
                    .filter(|l| !l.starts_with("-----") && !l.is_empty())
                    .collect();
                let (_, out, _) = {
                    std::fs::write(c.dir.join("tmp.b64"), &b64).unwrap();
                    sh(&c.dir, "bash", &["-c", "base64 -d tmp.b64 > tmp.der"])
                };
                let _ = out;
                std::fs::read(c.dir.join("tmp.der")).unwrap()
            })
            .collect()
    };
    let chain = certs("n1/server.crt");
    let root = certs("root/root.crt").remove(0);
    let crl = webpki::BorrowedCertRevocationList::from_der(&crl_der).unwrap();
    let crls = [&webpki::CertRevocationList::Borrowed(crl)];
    let opts = webpki::RevocationOptionsBuilder::new(&crls)
        .unwrap()
        .with_depth(webpki::RevocationCheckDepth::Chain)
        .with_status_policy(webpki::UnknownStatusPolicy::Allow)
        .build();
    let root_der = rustls_pki_types::CertificateDer::from(root.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der).unwrap()];
    let leaf = rustls_pki_types::CertificateDer::from(chain[0].as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    let inter = [rustls_pki_types::CertificateDer::from(chain[1].as_slice())];
    let r = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        Some(opts),
        None,
    );
    assert!(
        matches!(r, Err(webpki::Error::CertRevoked)),
        "{:?}",
        r.err()
    );

    // One record per operation: 3 (init) + sign + revoke + 2 CRLs; the chain verifies.
    let log = std::fs::read_to_string(c.dir.join("root/ceremony.log")).unwrap();
    let ops: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["op"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ops,
        [
            "key-generated",
            "root-signed",
            "transport-identity-created",
            "intermediate-signed",
            "intermediate-revoked",
            "crl-signed",
            "crl-signed"
        ]
    );
    ok(c.root_ca(&["log", "verify", "root"]));
}

#[test]
fn ceremony_log_tampering_is_detected() {
    let c = Ceremony::new();
    c.init("root-1", "p256", "root");
    let (csr, fp) = openssl_csr(
        &c.dir,
        "int",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let f = c.sign_file(
        "sign.toml",
        "root-1",
        "root",
        csr.to_str().unwrap(),
        &fp,
        "int.crt",
        "",
    );
    ok(c.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let log = c.dir.join("root/ceremony.log");
    let original = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert_eq!(lines.len(), 4);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "edited",
            original.replacen("Test Root", "Test Raot", 1),
            "edited",
        ),
        (
            "removed",
            format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]),
            "removed",
        ),
        (
            "reordered",
            format!("{}\n{}\n{}\n{}\n", lines[0], lines[2], lines[1], lines[3]),
            "reordered",
        ),
        (
            "truncated",
            format!("{}\n{}\n{}\n", lines[0], lines[1], lines[2]),
            "removed from the end",
        ),
    ];
    for (name, text, needle) in cases {
        std::fs::write(&log, text).unwrap();
        let err = fails_with(c.root_ca(&["log", "verify", "root"]), needle);
        assert_snapshot(
            &format!("error-root-ca-log-{name}"),
            &normalize(&err, &[&c.dir]),
        );
    }
    std::fs::write(&log, &original).unwrap();
    ok(c.root_ca(&["log", "verify", "root"]));
}

/// The ceremony folder's files, without the token's own store (a failed login updates it).
fn files(c: &Ceremony) -> Vec<(PathBuf, Vec<u8>)> {
    snapshot_files(&c.dir)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("tok"))
        .collect()
}

/// A refused ceremony: its message, and no file changed anywhere in the ceremony folder.
fn refused(c: &Ceremony, name: &str, args: &[&str], needle: &str) {
    let before = files(c);
    let err = fails_with(c.root_ca(args), needle);
    let changed = changed_files(&before, &files(c));
    assert!(changed.is_empty(), "{name}: {changed:?}");
    assert_snapshot(
        &format!("error-root-ca-{name}"),
        &normalize(&err, &[&c.dir]),
    );
}

#[test]
fn bad_inputs_are_refused_with_their_messages() {
    let c = Ceremony::new();
    c.init("root-1", "p384", "root");
    e2e_tests::secret::write_secret(c.dir.join("wrong.pin"), "0000000000\n");
    let (csr, fp) = openssl_csr(
        &c.dir,
        "int",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );

    // Wrong PIN.
    let f = c.sign_file(
        "sign.toml",
        "root-1",
        "root",
        csr.to_str().unwrap(),
        &fp,
        "int.crt",
        "",
    );
    refused(
        &c,
        "wrong-pin",
        &["sign", f.to_str().unwrap(), "--pin-file", "wrong.pin"],
        "refused the PIN",
    );
    // Unknown field in a ceremony file.
    let bad = c.write(
        "unknown.toml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("[certificate]", "[certificate]\ncolour = \"blue\""),
    );
    refused(
        &c,
        "unknown-field",
        &["sign", bad.to_str().unwrap(), "--pin-file", "tok/user.pin"],
        "unknown field",
    );
    // Existing key label.
    let again = c.init_file("again.toml", "root-1", "p384", "root-again", 3653);
    refused(
        &c,
        "existing-label",
        &[
            "init",
            again.to_str().unwrap(),
            "--pin-file",
            "tok/user.pin",
        ],
        "already holds a key labelled 'root-1'",
    );
    // Existing outputs, checked before the token is opened (a wrong PIN is never tried).
    std::fs::write(c.dir.join("taken.crt"), "x").unwrap();
    let taken = c.sign_file(
        "taken.toml",
        "root-1",
        "root",
        csr.to_str().unwrap(),
        &fp,
        "taken.crt",
        "",
    );
    refused(
        &c,
        "existing-output",
        &["sign", taken.to_str().unwrap(), "--pin-file", "wrong.pin"],
        "already exists",
    );
    let init_taken = c.init_file("init-taken.toml", "root-new", "p384", "root", 3653);
    refused(
        &c,
        "existing-root-dir",
        &[
            "init",
            init_taken.to_str().unwrap(),
            "--pin-file",
            "wrong.pin",
        ],
        "already exists",
    );
    // Fingerprint mismatch.
    let mism = c.sign_file(
        "fp.toml",
        "root-1",
        "root",
        csr.to_str().unwrap(),
        &"ab".repeat(32),
        "int.crt",
        "",
    );
    refused(
        &c,
        "fingerprint-mismatch",
        &["sign", mism.to_str().unwrap(), "--pin-file", "tok/user.pin"],
        "key fingerprint",
    );
    // CSR with a bad signature.
    let (good, _, e) = sh(
        &c.dir,
        "openssl",
        &[
            "req", "-in", "int.csr", "-outform", "DER", "-out", "int.der",
        ],
    );
    assert!(good, "{e}");
    let mut b = std::fs::read(c.dir.join("int.der")).unwrap();
    let n = b.len();
    b[n - 5] ^= 0x40;
    std::fs::write(c.dir.join("int.der"), b).unwrap();
    let (good, _, e) = sh(
        &c.dir,
        "openssl",
        &[
            "req",
            "-inform",
            "DER",
            "-in",
            "int.der",
            "-out",
            "tampered.csr",
        ],
    );
    assert!(good, "{e}");
    let tam = c.sign_file(
        "tam.toml",
        "root-1",
        "root",
        "tampered.csr",
        &fp,
        "int.crt",
        "",
    );
    refused(
        &c,
        "csr-bad-signature",
        &["sign", tam.to_str().unwrap(), "--pin-file", "tok/user.pin"],
        "signature does not verify",
    );
    // Validity past the root: a 30-day root, a 60-day request.
    let short = c.init_file("short.toml", "short-root", "p256", "short", 30);
    ok(c.root_ca(&[
        "init",
        short.to_str().unwrap(),
        "--pin-file",
        "tok/user.pin",
    ]));
    let past = c.sign_file(
        "past.toml",
        "short-root",
        "short",
        csr.to_str().unwrap(),
        &fp,
        "int.crt",
        "days = 60",
    );
    let before = files(&c);
    let err = fails_with(
        c.root_ca(&["sign", past.to_str().unwrap(), "--pin-file", "tok/user.pin"]),
        "never outlives its issuer",
    );
    assert!(
        err.matches("Z,").count() + err.matches("Z;").count() + err.matches("Z ").count() >= 2
            || err.matches("20").count() >= 2,
        "both dates: {err}"
    );
    assert!(changed_files(&before, &files(&c)).is_empty());
    // Token key != root certificate key: root folder of root-1, key of short-root.
    let swapped = c.sign_file(
        "swap.toml",
        "short-root",
        "root",
        csr.to_str().unwrap(),
        &fp,
        "int.crt",
        "",
    );
    refused(
        &c,
        "token-key-mismatch",
        &[
            "sign",
            swapped.to_str().unwrap(),
            "--pin-file",
            "tok/user.pin",
        ],
        "is not the key of the root certificate",
    );
    // Missing module, token and key.
    let nomod = c.write(
        "nomod.toml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("[token]", "[token]\nmodule = \"/nonexistent/libpkcs11.so\""),
    );
    refused(
        &c,
        "missing-module",
        &[
            "sign",
            nomod.to_str().unwrap(),
            "--pin-file",
            "tok/user.pin",
        ],
        "cannot load the PKCS#11 module",
    );
    let notok = c.write(
        "notok.toml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("token-label = \"root-ca\"", "token-label = \"absent\""),
    );
    refused(
        &c,
        "missing-token",
        &[
            "sign",
            notok.to_str().unwrap(),
            "--pin-file",
            "tok/user.pin",
        ],
        "no token labelled 'absent'",
    );
    let nokey = c.write(
        "nokey.toml",
        &std::fs::read_to_string(&f)
            .unwrap()
            .replace("key-label = \"root-1\"", "key-label = \"absent\""),
    );
    refused(
        &c,
        "missing-key",
        &[
            "sign",
            nokey.to_str().unwrap(),
            "--pin-file",
            "tok/user.pin",
        ],
        "no private key labelled 'absent'",
    );
    // Network up without allow-network (this machine normally has an interface up).
    let up = std::fs::read_dir("/sys/class/net")
        .map(|r| {
            r.flatten().any(|e| {
                let flags = std::fs::read_to_string(e.path().join("flags")).unwrap_or_default();
                let v = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
                v & 1 != 0 && v & 8 == 0
            })
        })
        .unwrap_or(false);
    if up {
        let net = c.write(
            "net.toml",
            &std::fs::read_to_string(&f)
                .unwrap()
                .replace("allow-network = true", "allow-network = false"),
        );
        let before = files(&c);
        fails_with(
            c.root_ca(&["sign", net.to_str().unwrap(), "--pin-file", "tok/user.pin"]),
            "network interface",
        );
        assert!(changed_files(&before, &files(&c)).is_empty());
    } else {
        eprintln!("no network interface is up here: the air-gap refusal is not exercised");
    }
    // Dry runs create nothing and no key.
    let dry = c.init_file("dry.toml", "dry-root", "p256", "dry", 3653);
    let out = ok(c.root_ca(&["init", dry.to_str().unwrap(), "--dry-run"]));
    assert!(out.contains("dry run") && !c.dir.join("dry").exists());
    ok(c.root_ca(&["init", dry.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
}
