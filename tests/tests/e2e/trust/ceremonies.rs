//! Review findings: ceremonies (items 2, 5, 6, 10, 13, 15, 16 and root-ca's output-exists
//! message of 19). Real SoftHSM2 tokens, the openssl CLI, pkcs11-tool and rustls-webpki.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e_tests::fixture::{changed_files, ok, run, sh, snapshot_files, softhsm_token, tool};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::Value;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A throwaway token, a root `root/` made by `root-ca init` (key label `root-1`, P-256) and an
/// OpenSSL-made intermediate key and CSR (`int.key`, `int.csr`).
struct Bench {
    dir: PathBuf,
    conf: PathBuf,
    fp: String,
    _tmp: tempfile::TempDir,
}

impl Bench {
    fn bare() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let conf = softhsm_token(&tmp.path().join("tok"));
        Bench {
            dir: tmp.path().to_path_buf(),
            conf,
            fp: String::new(),
            _tmp: tmp,
        }
    }

    fn new() -> Self {
        let mut b = Bench::bare();
        b.write("init.toml", &init_toml("root-1"));
        ok(b.root_ca(&["init", "init.toml", "--pin-file", "tok/user.pin"]));
        b.fp = b.openssl_csr("int");
        b
    }

    fn root_ca(&self, args: &[&str]) -> Output {
        run(&self.dir, "root-ca", args, &[("SOFTHSM2_CONF", &self.conf)])
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }

    fn pin(&self) -> String {
        self.read("tok/user.pin").trim().to_string()
    }

    /// An OpenSSL P-256 key and CSR; returns the key fingerprint as the runbook computes it.
    fn openssl_csr(&self, name: &str) -> String {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        openssl_ok(
            &self.dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &key,
            ],
        );
        openssl_ok(
            &self.dir,
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
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "openssl req -in {csr} -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
            ))
            .current_dir(&self.dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    /// A sign ceremony for `int.csr` writing `out`, with extra `[certificate]` lines.
    fn sign_file(&self, name: &str, out: &str, certificate: &str, top: &str) -> PathBuf {
        self.write(
            name,
            &format!(
                "allow-network = true\n{top}root-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root-1\"\n[request]\ncsr = \"int.csr\"\nkey-fingerprint = \"{}\"\n[certificate]\n{certificate}\n[output]\ncertificate = \"{out}\"\n",
                self.fp
            ),
        )
    }

    fn crl_file(&self, name: &str, out: &str) -> PathBuf {
        self.write(
            name,
            &format!("allow-network = true\nroot-dir = \"root\"\nnext-update-days = 30\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root-1\"\n[output]\ncrl = \"{out}\"\n"),
        )
    }

    fn pkcs11_tool(&self, args: &[&str]) -> String {
        let pin = self.pin();
        let mut a = vec![
            "--module",
            MODULE,
            "--token-label",
            "root-ca",
            "--login",
            "--pin",
            &pin,
        ];
        a.extend(args);
        let o = Command::new("pkcs11-tool")
            .args(&a)
            .env("SOFTHSM2_CONF", &self.conf)
            .current_dir(&self.dir)
            .output()
            .expect("pkcs11-tool");
        assert!(
            o.status.success(),
            "pkcs11-tool {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn log_records(&self) -> Vec<Value> {
        self.read("root/ceremony.log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every file but the token's: SoftHSM2 rewrites its token file on every login.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        snapshot_files(&self.dir)
            .into_iter()
            .filter(|(p, _)| !p.starts_with("tok"))
            .collect()
    }

    /// Runs `root-ca ARGS --pin-file FIFO`; when root-ca has passed its checks and blocks
    /// reading the PIN, `meanwhile` runs (the injected failure), then the PIN is given.
    fn root_ca_with_fifo(&self, args: &[&str], meanwhile: impl FnOnce()) -> Output {
        let fifo = self.dir.join("pin.fifo");
        let (good, _, e) = sh(&self.dir, "mkfifo", &["-m", "600", "pin.fifo"]);
        assert!(good, "{e}");
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--pin-file", "pin.fifo"]);
        let child = Command::new(tool("root-ca"))
            .args(&a)
            .current_dir(&self.dir)
            .env("SOFTHSM2_CONF", &self.conf)
            .env_remove("ROOT_CA_PIN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Opening the FIFO for writing returns once root-ca opened it to read the PIN.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        meanwhile();
        writeln!(w, "{}", self.pin()).unwrap();
        drop(w);
        let o = child.wait_with_output().unwrap();
        std::fs::remove_file(&fifo).unwrap();
        o
    }
}

fn init_toml(label: &str) -> String {
    format!("allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"{label}\"\n[key]\nalgorithm = \"p256\"\n[root]\ncommon-name = \"Test Root\"\n[output]\ndir = \"root\"\n")
}

fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let (good, out, err) = sh(dir, "openssl", args);
    assert!(good, "openssl {args:?}: {err}");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a refusal and pins its message.
fn refused(b: &Bench, o: Output, snapshot: &str) -> String {
    assert!(
        !o.status.success(),
        "expected a refusal, got success:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = stderr(&o);
    assert_snapshot(snapshot, &normalize(&err, &[&b.dir]));
    err
}

fn serial_of(dir: &Path, cert: &str) -> String {
    openssl_ok(dir, &["x509", "-in", cert, "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

fn pem_der(text: &str) -> Vec<u8> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).expect("PEM");
    pem.contents
}

/// An OpenSSL-made server leaf for `sans`, signed by `int.key` under `int_cert`.
fn openssl_leaf(dir: &Path, name: &str, int_cert: &str, sans: &str) -> String {
    let key = format!("{name}.key");
    openssl_ok(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &key,
        ],
    );
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    let csr = format!("{name}.csr");
    openssl_ok(
        dir,
        &[
            "req", "-new", "-key", &key, "-subj", "/CN=leaf", "-out", &csr,
        ],
    );
    let crt = format!("{name}.crt");
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            int_cert,
            "-CAkey",
            "int.key",
            "-set_serial",
            "7",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    crt
}

/// (openssl verify accepts, rustls-webpki accepts) for leaf -> intermediate -> root.
fn verifies(dir: &Path, int_cert: &str, leaf: &str) -> (bool, bool) {
    let (by_openssl, _, _) = sh(
        dir,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            int_cert,
            leaf,
        ],
    );
    let read = |p: &str| pem_der(&std::fs::read_to_string(dir.join(p)).unwrap());
    let root = CertificateDer::from(read("root/root.crt"));
    let anchors = vec![webpki::anchor_from_trusted_cert(&root).unwrap().to_owned()];
    let inter = vec![CertificateDer::from(read(int_cert))];
    let leaf_der = CertificateDer::from(read(leaf));
    let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    let by_webpki = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok();
    (by_openssl, by_webpki)
}

// ------------------------------------------------------------------------------ item 2

#[test]
fn item2_a_dns_only_constraint_closes_every_ip_address_and_an_ip_only_one_every_dns_name() {
    let b = Bench::new();
    let f = b.sign_file(
        "sign-dns.toml",
        "int-dns.crt",
        "permitted-dns = [\"etcd.test\"]",
        "",
    );
    let dry = ok(b.root_ca(&["sign", f.to_str().unwrap(), "--dry-run"]));
    assert!(
        dry.contains("permitted DNS: etcd.test") && dry.contains("excluded IP:   0.0.0.0/0, ::/0"),
        "the dry run shows the effective constraints:\n{dry}"
    );
    ok(b.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let text = openssl_ok(
        &b.dir,
        &[
            "x509",
            "-in",
            "int-dns.crt",
            "-noout",
            "-ext",
            "nameConstraints",
        ],
    );
    assert!(
        text.contains("Excluded:") && text.contains("IP:0.0.0.0/0.0.0.0"),
        "{text}"
    );
    let good = openssl_leaf(&b.dir, "dns-ok", "int-dns.crt", "DNS:etcd.test");
    assert_eq!(verifies(&b.dir, "int-dns.crt", &good), (true, true));
    // The review's reproduction: IP:8.8.8.8 under a DNS-only intermediate validated.
    for (name, sans) in [
        ("ip4", "IP:8.8.8.8"),
        ("ip6", "IP:2001:db8::1"),
        ("mixed", "DNS:etcd.test,IP:8.8.8.8"),
    ] {
        let leaf = openssl_leaf(&b.dir, name, "int-dns.crt", sans);
        assert_eq!(
            verifies(&b.dir, "int-dns.crt", &leaf),
            (false, false),
            "{sans} must not verify under a DNS-only intermediate"
        );
    }

    // The converse: IP ranges only exclude every DNS name (an empty excluded dNSName).
    let f = b.sign_file(
        "sign-ip.toml",
        "int-ip.crt",
        "permitted-ips = [\"127.0.0.0/8\"]",
        "allow-resign = true\n",
    );
    let dry = ok(b.root_ca(&["sign", f.to_str().unwrap(), "--dry-run"]));
    assert!(dry.contains("excluded DNS:  every DNS name"), "{dry}");
    ok(b.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let good = openssl_leaf(&b.dir, "ip-ok", "int-ip.crt", "IP:127.0.0.1");
    assert_eq!(verifies(&b.dir, "int-ip.crt", &good), (true, true));
    for (name, sans) in [
        ("dns", "DNS:evil.example.com"),
        ("local", "DNS:localhost,IP:127.0.0.1"),
    ] {
        let leaf = openssl_leaf(&b.dir, name, "int-ip.crt", sans);
        assert_eq!(
            verifies(&b.dir, "int-ip.crt", &leaf),
            (false, false),
            "{sans} must not verify under an IP-only intermediate"
        );
    }
}

// ------------------------------------------------------------------------------ item 5

#[test]
fn item5_a_second_key_with_the_root_key_label_is_never_used() {
    let b = Bench::new();
    // A planted key pair under the same label, another CKA_ID: the recorded ID picks the root's.
    b.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "root-1",
        "--id",
        "0bad",
    ]);
    b.crl_file("crl1.toml", "crl1.pem");
    ok(b.root_ca(&["crl", "crl1.toml", "--pin-file", "tok/user.pin"]));
    openssl_ok(
        &b.dir,
        &[
            "crl",
            "-in",
            "crl1.pem",
            "-CAfile",
            "root/root.crt",
            "-noout",
        ],
    );

    // A planted pair with the same label and the same CKA_ID: refused, not guessed.
    let index = b.read("root/index.toml");
    let id = index
        .lines()
        .find_map(|l| l.strip_prefix("key-id = "))
        .expect("init records the key's CKA_ID")
        .trim_matches('"')
        .to_string();
    b.pkcs11_tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "root-1",
        "--id",
        &id,
    ]);
    b.crl_file("crl2.toml", "crl2.pem");
    let before = b.files();
    refused(
        &b,
        b.root_ca(&["crl", "crl2.toml", "--pin-file", "tok/user.pin"]),
        "trust-5-two-keys-same-id",
    );
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
}

// ------------------------------------------------------------------------------ item 6

#[test]
fn item6_an_output_in_a_missing_folder_is_refused_before_the_token_is_opened() {
    let b = Bench::new();
    let f = b.sign_file("sign.toml", "missing/int.crt", "", "");
    let before = b.files();
    // No PIN anywhere: had the token been opened, the error would be about the PIN.
    refused(
        &b,
        b.root_ca(&["sign", f.to_str().unwrap()]),
        "trust-6-missing-folder",
    );
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
}

#[test]
fn item6_a_failure_after_signing_leaves_the_intermediate_recorded_and_revocable() {
    let b = Bench::new();
    let f = b.sign_file("sign.toml", "int.crt", "", "");
    // The output appears after the checks passed, while root-ca waits for the PIN: writing
    // it fails after the token signed.
    let o = b.root_ca_with_fifo(&["sign", f.to_str().unwrap()], || {
        std::fs::write(b.dir.join("int.crt"), "in the way\n").unwrap();
    });
    refused(&b, o, "trust-6-undelivered");
    assert_eq!(b.read("int.crt"), "in the way\n");
    let signed: Vec<Value> = b
        .log_records()
        .into_iter()
        .filter(|r| r["op"] == "intermediate-signed")
        .collect();
    assert_eq!(signed.len(), 1, "the log records the signature");
    let serial = signed[0]["serial"].as_str().unwrap().to_string();
    assert!(b.read("root/index.toml").contains(&serial));
    let kept = format!("root/intermediates/{serial}.crt");
    assert_eq!(
        serial_of(&b.dir, &kept).to_lowercase(),
        serial.to_lowercase()
    );
    openssl_ok(&b.dir, &["verify", "-CAfile", "root/root.crt", &kept]);

    // A re-run does not sign a second intermediate for the same request.
    std::fs::remove_file(b.dir.join("int.crt")).unwrap();
    let before = b.files();
    refused(
        &b,
        b.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]),
        "trust-6-already-signed",
    );
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
    // A row from before key fingerprints were recorded: the kept certificate still tells.
    let index = b.read("root/index.toml");
    let old_row: String = index
        .lines()
        .filter(|l| !l.starts_with("key-fingerprint"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(old_row, index);
    b.write("root/index.toml", &old_row);
    refused(
        &b,
        b.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]),
        "trust-6-already-signed",
    );

    // ...and the recorded intermediate can be revoked.
    b.write(
        "revoke.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{serial}\"\nreason = \"superseded\"\n"),
    );
    ok(b.root_ca(&["revoke", "revoke.toml"]));
    b.crl_file("crl.toml", "crl.pem");
    ok(b.root_ca(&["crl", "crl.toml", "--pin-file", "tok/user.pin"]));
    let crl = openssl_ok(&b.dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(crl.to_lowercase().contains(&serial.to_lowercase()), "{crl}");

    // allow-resign says so explicitly, and the log records it.
    let f2 = b.sign_file("resign.toml", "int2.crt", "", "allow-resign = true\n");
    ok(b.root_ca(&["sign", f2.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let last = b.log_records().pop().unwrap();
    assert_eq!(last["op"], "intermediate-signed");
    assert_eq!(last["ceremony"]["allow_resign"], true);
}

// ------------------------------------------------------------------------------ item 10

#[test]
fn item10_the_crl_number_is_recorded_before_the_crl_is_written() {
    let b = Bench::new();
    b.crl_file("crl1.toml", "crl1.pem");
    let o = b.root_ca_with_fifo(&["crl", "crl1.toml"], || {
        std::fs::write(b.dir.join("crl1.pem"), "in the way\n").unwrap();
    });
    refused(&b, o, "trust-10-crl-undelivered");
    assert!(b.read("root/index.toml").contains("crl-number = 1"));
    let last = b.log_records().pop().unwrap();
    assert_eq!(
        (last["op"].as_str(), last["crl_number"].as_u64()),
        (Some("crl-signed"), Some(1))
    );
    // The next CRL gets a higher number: two CRLs never share one.
    b.crl_file("crl2.toml", "crl2.pem");
    ok(b.root_ca(&["crl", "crl2.toml", "--pin-file", "tok/user.pin"]));
    let text = openssl_ok(&b.dir, &["crl", "-in", "crl2.pem", "-noout", "-crlnumber"]);
    assert_eq!(text.trim(), "crlNumber=0x02");
}

// ------------------------------------------------------------------------------ item 13

#[test]
fn item13_log_verify_fails_closed_without_a_readable_index() {
    let b = Bench::new();
    let f = b.sign_file("sign.toml", "int.crt", "", "");
    ok(b.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    // Truncate the log by its last record and corrupt the index.
    let log = b.read("root/ceremony.log");
    let mut lines: Vec<&str> = log.lines().collect();
    lines.pop();
    b.write("root/ceremony.log", &format!("{}\n", lines.join("\n")));
    b.write("root/index.toml", "this is not toml [\n");
    refused(
        &b,
        b.root_ca(&["log", "verify", "root"]),
        "trust-13-log-verify-no-index",
    );
    std::fs::remove_file(b.dir.join("root/index.toml")).unwrap();
    refused(
        &b,
        b.root_ca(&["log", "verify", "root"]),
        "trust-13-log-verify-index-missing",
    );
}

#[test]
fn item13_the_log_records_the_ceremony_file_allow_network_and_the_constraints() {
    let b = Bench::new();
    let f = b.sign_file(
        "sign.toml",
        "int.crt",
        "permitted-dns = [\"etcd.test\"]",
        "",
    );
    ok(b.root_ca(&["sign", f.to_str().unwrap(), "--pin-file", "tok/user.pin"]));
    let (_, sum, _) = sh(&b.dir, "sha256sum", &["sign.toml"]);
    let sum = sum.split_whitespace().next().unwrap();
    let rec = b.log_records().pop().unwrap();
    assert_eq!(rec["ceremony"]["sha256"], sum);
    assert_eq!(rec["ceremony"]["allow_network"], true);
    assert_eq!(
        rec["name_constraints"],
        serde_json::json!({ "permitted_dns": ["etcd.test"], "permitted_ips": [],
                            "excluded_dns": [], "excluded_ips": ["0.0.0.0/0", "::/0"] })
    );
    let (_, init_sum, _) = sh(&b.dir, "sha256sum", &["init.toml"]);
    let first = b.log_records().remove(0);
    assert_eq!(
        first["ceremony"]["sha256"],
        init_sum.split_whitespace().next().unwrap()
    );
}

// ------------------------------------------------------------------------------ item 15

#[test]
fn item15_dry_run_help_is_true_and_the_preview_says_what_is_drawn_at_signing() {
    let b = Bench::new();
    let help = ok(b.root_ca(&["sign", "--help"]));
    assert!(
        help.contains("request bundle") && help.contains("transport identity"),
        "--help says a bundle's dry run opens the token:\n{help}"
    );
    let f = b.sign_file("sign.toml", "int.crt", "", "");
    let dry = ok(b.root_ca(&["sign", f.to_str().unwrap(), "--dry-run"]));
    assert!(
        dry.contains("drawn at signing time") && dry.contains("the token was not opened"),
        "{dry}"
    );
    assert!(!b.dir.join("int.crt").exists());
}

// ------------------------------------------------------------------------------ item 16

#[test]
fn item16_a_transport_key_that_left_the_token_is_not_reused() {
    let b = Bench::bare();
    // A leftover AES key under the transport key's label, extractable and not sensitive.
    b.pkcs11_tool(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        "root-1-transport",
        "--extractable",
        "--private",
    ]);
    b.write("init.toml", &init_toml("root-1"));
    let before = b.files();
    refused(
        &b,
        b.root_ca(&["init", "init.toml", "--pin-file", "tok/user.pin"]),
        "trust-16-weak-transport-key",
    );
    let objects = b.pkcs11_tool(&["--list-objects"]);
    assert!(
        !objects.contains("label:      root-1\n"),
        "no root key was generated:\n{objects}"
    );
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
}

#[test]
fn item16_a_root_key_imported_into_the_token_is_refused() {
    let b = Bench::bare();
    // A root whose key was made outside the token and imported: sensitive now, but it was not
    // always, and a copy may exist anywhere.
    openssl_ok(
        &b.dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-outform",
            "DER",
            "-out",
            "imp.der",
        ],
    );
    openssl_ok(
        &b.dir,
        &[
            "pkey",
            "-in",
            "imp.der",
            "-inform",
            "DER",
            "-pubout",
            "-outform",
            "DER",
            "-out",
            "imp.pub.der",
        ],
    );
    for (file, kind) in [("imp.der", "privkey"), ("imp.pub.der", "pubkey")] {
        b.pkcs11_tool(&[
            "--write-object",
            file,
            "--type",
            kind,
            "--label",
            "root-1",
            "--id",
            "01",
            "--private",
            "--sensitive",
        ]);
    }
    std::fs::create_dir(b.dir.join("root")).unwrap();
    openssl_ok(
        &b.dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "imp.der",
            "-keyform",
            "DER",
            "-subj",
            "/CN=Imported Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:1",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root/root.crt",
        ],
    );
    b.write("root/ceremony.log", "");
    b.write(
        "root/index.toml",
        &format!(
            "token-label = \"root-ca\"\nkey-label = \"root-1\"\nkey-id = \"01\"\ncrl-number = 0\nlog-head = \"{}\"\n",
            "0".repeat(64)
        ),
    );
    b.crl_file("crl.toml", "crl.pem");
    let before = b.files();
    refused(
        &b,
        b.root_ca(&["crl", "crl.toml", "--pin-file", "tok/user.pin"]),
        "trust-16-imported-root-key",
    );
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
}

// ------------------------------------------------------------------------------ item 19

#[test]
fn item19_an_existing_ceremony_output_names_the_ceremonys_next_step() {
    let b = Bench::new();
    b.write("int.crt", "already here\n");
    let f = b.sign_file("sign.toml", "int.crt", "", "");
    let before = b.files();
    let err = refused(
        &b,
        b.root_ca(&["sign", f.to_str().unwrap()]),
        "trust-19-root-output-exists",
    );
    assert!(!err.contains("--force"), "{err}");
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
}

/// `root-ca init` + a second token `intermediate` whose key `int-1` is made by
/// `intermediate-ca request --token`, signed by the root and installed in `ica/`.
fn token_intermediate(b: &Bench) {
    let init = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "intermediate",
            "--pin",
            "4711-int",
            "--so-pin",
            "so-4711-int",
        ])
        .env("SOFTHSM2_CONF", &b.conf)
        .output()
        .unwrap();
    assert!(init.status.success());
    e2e_tests::secret::write_secret(b.dir.join("int.pin"), "4711-int\n");
    let env = [("SOFTHSM2_CONF", b.conf.as_path())];
    ok(run(
        &b.dir,
        "intermediate-ca",
        &["new-identity", "id.txt"],
        &env,
    ));
    let out = ok(run(
        &b.dir,
        "intermediate-ca",
        &[
            "request",
            "--dir",
            "ica",
            "--to-file",
            "root/transport.recipient",
            "--out",
            "request.age",
            "--identity",
            "id.txt",
            "--pkcs11-module",
            MODULE,
            "--token",
            "intermediate",
            "--key-label",
            "int-1",
            "--pin-file",
            "int.pin",
        ],
        &env,
    ));
    let fp = out
        .lines()
        .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
        .expect("fingerprint printed")
        .to_string();
    b.write(
        "sign-bundle.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root-1\"\n[request]\nbundle = \"request.age\"\nkey-fingerprint = \"{fp}\"\n[output]\nresponse = \"response.age\"\n"),
    );
    ok(b.root_ca(&["sign", "sign-bundle.toml", "--pin-file", "tok/user.pin"]));
    let root_fp = openssl_ok(
        &b.dir,
        &[
            "x509",
            "-in",
            "root/root.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let root_fp = root_fp.trim().split('=').nth(1).unwrap().to_string();
    ok(run(
        &b.dir,
        "intermediate-ca",
        &[
            "install",
            "--dir",
            "ica",
            "--root-fingerprint",
            &root_fp,
            "response.age",
            "--identity",
            "id.txt",
        ],
        &env,
    ));
}

fn issue_with_token(b: &Bench, out: &str) -> Output {
    run(
        &b.dir,
        "issuer",
        &[
            "issue",
            "server",
            "--ca",
            "ica",
            "--out",
            out,
            "--cn",
            "etcd-1",
            "--ip",
            "127.0.0.1",
            "--pin-file",
            "int.pin",
        ],
        &[("SOFTHSM2_CONF", b.conf.as_path())],
    )
}

#[test]
fn item5_the_intermediates_token_key_is_found_by_its_recorded_cka_id() {
    let b = Bench::new();
    token_intermediate(&b);
    let state = b.read("ica/ca.toml");
    let id = state
        .lines()
        .find_map(|l| l.strip_prefix("key_id = "))
        .expect("request records the key's CKA_ID in ca.toml")
        .trim_matches('"')
        .to_string();
    let plant = |id: &str| {
        let o = Command::new("pkcs11-tool")
            .args([
                "--module",
                MODULE,
                "--token-label",
                "intermediate",
                "--login",
                "--pin",
                "4711-int",
                "--keypairgen",
                "--key-type",
                "EC:secp384r1",
                "--label",
                "int-1",
                "--id",
                id,
            ])
            .env("SOFTHSM2_CONF", &b.conf)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    };
    // Another pair under the same label: the recorded ID picks the right one, and the leaf
    // verifies up to the root.
    plant("0bad");
    ok(issue_with_token(&b, "n1"));
    openssl_ok(
        &b.dir,
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            "ica/generations/1/intermediate.crt",
            "n1/server.crt",
        ],
    );
    // Another pair with the same label and ID: refused, nothing written.
    plant(&id);
    let before = b.files();
    let ledger = ok(run(
        &b.dir,
        "issuer",
        &["list", "--ca", "ica", "--json"],
        &[],
    ));
    refused(
        &b,
        issue_with_token(&b, "n2"),
        "trust-5-intermediate-two-keys",
    );
    assert_eq!(changed_files(&before, &b.files()), Vec::<String>::new());
    assert_eq!(
        ok(run(
            &b.dir,
            "issuer",
            &["list", "--ca", "ica", "--json"],
            &[]
        )),
        ledger
    );
}
