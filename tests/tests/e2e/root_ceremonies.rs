//! `root-ca` end to end on a real SoftHSM2 token: every ceremony (init, sign, revoke, crl, log
//! verify) checked from outside with the OpenSSL CLI, pkcs11-tool and rustls-webpki, and every
//! bad input refused with its message (pinned as a snapshot in tests/snapshots, or by a case
//! file in root-ca/tests/cmd when no token is needed to reach it) and without a change to the
//! token or the files; and the chain from the root down to a leaf, with name
//! constraints that bind and a revoked intermediate.
//!
//! Each test has its own temp folder and its own token (`softhsm/new-token.sh`); SOFTHSM2_CONF
//! is passed to the child processes only, never set in this process (tests run in parallel).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e_tests::fixture::{changed_files, fails_with, ok, run, sh, snapshot_files, softhsm_token};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

// ------------------------------------------------------------------------------ the bench

/// One test's world: a temp folder holding the ceremony files and outputs, and a token in
/// `tok/` (label `root-ca`, PIN in `tok/user.pin`).
struct Bench {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    conf: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let conf = softhsm_token(&dir.join("tok"));
        Bench {
            _tmp: tmp,
            dir,
            conf,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn pin(&self) -> String {
        self.read("tok/user.pin").trim().to_string()
    }

    fn pin_file(&self) -> String {
        self.path("tok/user.pin").display().to_string()
    }

    /// A pin file holding a PIN the token refuses.
    fn wrong_pin_file(&self) -> String {
        let p = self.path("wrong.pin");
        e2e_tests::secret::write_secret(&p, "00000000\n");
        p.display().to_string()
    }

    /// `root-ca ARGS` in the bench folder, with this bench's token.
    fn root_ca(&self, args: &[&str]) -> Output {
        run(&self.dir, "root-ca", args, &[("SOFTHSM2_CONF", &self.conf)])
    }

    /// `root-ca OP FILE --pin-file PIN_FILE`.
    fn ceremony(&self, op: &str, file: &Path, pin_file: &str) -> Output {
        self.root_ca(&[op, file.to_str().unwrap(), "--pin-file", pin_file])
    }

    fn init(&self, spec: &InitSpec) -> String {
        let f = self.write(&format!("init-{}.toml", spec.key_label), &spec.toml());
        ok(self.ceremony("init", &f, &self.pin_file()))
    }

    fn sign(&self, name: &str, spec: &SignSpec) -> String {
        let f = self.write(&format!("sign-{name}.toml"), &spec.toml());
        ok(self.ceremony("sign", &f, &self.pin_file()))
    }

    fn crl(&self, name: &str, spec: &CrlSpec) -> String {
        let f = self.write(&format!("crl-{name}.toml"), &spec.toml());
        ok(self.ceremony("crl", &f, &self.pin_file()))
    }

    fn revoke(&self, name: &str, root_dir: &str, serial: &str, reason: &str) -> String {
        let f = self.write(
            &format!("revoke-{name}.toml"),
            &revoke_toml(root_dir, serial, reason),
        );
        ok(self.ceremony("revoke", &f, &self.pin_file()))
    }

    /// Any program, in the bench folder, with this bench's token.
    fn cmd(&self, prog: &str, args: &[&str]) -> Output {
        Command::new(prog)
            .args(args)
            .current_dir(&self.dir)
            .env("SOFTHSM2_CONF", &self.conf)
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e}"))
    }

    /// Runs an external program that must succeed; returns stdout + stderr.
    fn tool_ok(&self, prog: &str, args: &[&str]) -> String {
        let o = self.cmd(prog, args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            o.status.success(),
            "{prog} {args:?} failed\n--- stdout\n{out}\n--- stderr\n{err}"
        );
        out + &err
    }

    /// The token's objects as pkcs11-tool lists them after a user login.
    fn objects(&self) -> Vec<Pkcs11Object> {
        let pin = self.pin();
        let text = self.tool_ok(
            "pkcs11-tool",
            &[
                "--module",
                MODULE,
                "--token-label",
                "root-ca",
                "--login",
                "--pin",
                &pin,
                "-O",
            ],
        );
        parse_pkcs11_objects(&text)
    }

    /// (kind, label) of every object in the token, for before/after comparisons.
    fn object_summary(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .objects()
            .iter()
            .map(|o| format!("{} / {}", o.kind, o.get("label").unwrap_or("-")))
            .collect();
        v.sort();
        v
    }

    /// Every file of the bench except the token's own store.
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        snapshot_files(&self.dir)
            .into_iter()
            .filter(|(p, _)| !p.starts_with("tok"))
            .collect()
    }

    /// A key and CSR made with OpenSSL; returns (CSR file name, key fingerprint as
    /// `openssl ... | sha256sum` prints it: lower-case hex, no colons).
    fn openssl_csr(&self, name: &str, alg: &str) -> (String, String) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let keyopts: &[&str] = match alg {
            "p384" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "p256" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "rsa3072" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
            other => panic!("no openssl key spec for {other}"),
        };
        let mut args = vec!["genpkey"];
        args.extend_from_slice(keyopts);
        args.extend_from_slice(&["-out", &key]);
        self.tool_ok("openssl", &args);
        self.tool_ok(
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
        let fp = self.csr_fingerprint(&csr);
        (csr, fp)
    }

    /// The requester's read-out: SHA-256 of the CSR's SubjectPublicKeyInfo, as the runbook
    /// computes it.
    fn csr_fingerprint(&self, csr: &str) -> String {
        let out = self.tool_ok(
            "bash",
            &[
                "-c",
                &format!(
                    "set -o pipefail; openssl req -in '{csr}' -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum"
                ),
            ],
        );
        let fp = out.split_whitespace().next().unwrap().to_string();
        assert_eq!(fp.len(), 64, "{out}");
        fp
    }

    /// The ceremony log of a root folder, one JSON value per line.
    fn log_records(&self, root_dir: &str) -> Vec<Value> {
        self.read(&format!("{root_dir}/ceremony.log"))
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line is JSON"))
            .collect()
    }

    fn log_ops(&self, root_dir: &str) -> Vec<String> {
        self.log_records(root_dir)
            .iter()
            .map(|r| r["op"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// The serial of a certificate as `openssl x509 -serial` prints it.
    fn serial(&self, cert: &str) -> String {
        let out = self.tool_ok("openssl", &["x509", "-in", cert, "-noout", "-serial"]);
        out.trim()
            .strip_prefix("serial=")
            .expect("serial=")
            .to_string()
    }

    fn der_blocks(&self, rel: &str, tag: &'static str) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        pki_core::x509::pem_blocks(rel, &bytes, tag).expect("PEM")
    }
}

// ------------------------------------------------------------------------------ ceremony files

struct InitSpec<'a> {
    allow_network: bool,
    module: &'a str,
    token_label: &'a str,
    key_label: &'a str,
    algorithm: &'a str,
    common_name: &'a str,
    days: u32,
    out: &'a str,
    /// Extra lines appended to the [root] table.
    extra_root: &'a str,
}

impl Default for InitSpec<'_> {
    fn default() -> Self {
        InitSpec {
            allow_network: true,
            module: MODULE,
            token_label: "root-ca",
            key_label: "root-key",
            algorithm: "p384",
            common_name: "Test Root CA",
            days: 3653,
            out: "root",
            extra_root: "",
        }
    }
}

impl InitSpec<'_> {
    fn toml(&self) -> String {
        format!(
            r#"# written by tests/tests/e2e/root_ceremonies.rs
allow-network = {}

[token]
module = "{}"
token-label = "{}"
key-label = "{}"

[key]
algorithm = "{}"

[root]
common-name = "{}"
days = {}
{}

[output]
dir = "{}"
"#,
            self.allow_network,
            self.module,
            self.token_label,
            self.key_label,
            self.algorithm,
            self.common_name,
            self.days,
            self.extra_root,
            self.out
        )
    }
}

struct SignSpec<'a> {
    allow_network: bool,
    module: &'a str,
    token_label: &'a str,
    key_label: &'a str,
    root_dir: &'a str,
    csr: &'a str,
    fingerprint: &'a str,
    days: Option<u32>,
    permitted_dns: &'a [&'a str],
    permitted_ips: &'a [&'a str],
    out: &'a str,
    /// Extra lines appended to the [certificate] table.
    extra_certificate: &'a str,
}

impl Default for SignSpec<'_> {
    fn default() -> Self {
        SignSpec {
            allow_network: true,
            module: MODULE,
            token_label: "root-ca",
            key_label: "root-key",
            root_dir: "root",
            csr: "int.csr",
            fingerprint: "",
            days: None,
            permitted_dns: &[],
            permitted_ips: &[],
            out: "intermediate.crt",
            extra_certificate: "",
        }
    }
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

impl SignSpec<'_> {
    fn toml(&self) -> String {
        let mut cert = String::new();
        if let Some(d) = self.days {
            cert.push_str(&format!("days = {d}\n"));
        }
        if !self.permitted_dns.is_empty() {
            cert.push_str(&format!(
                "permitted-dns = {}\n",
                toml_list(self.permitted_dns)
            ));
        }
        if !self.permitted_ips.is_empty() {
            cert.push_str(&format!(
                "permitted-ips = {}\n",
                toml_list(self.permitted_ips)
            ));
        }
        cert.push_str(self.extra_certificate);
        format!(
            r#"# written by tests/tests/e2e/root_ceremonies.rs
allow-network = {}
root-dir = "{}"

[token]
module = "{}"
token-label = "{}"
key-label = "{}"

[request]
csr = "{}"
key-fingerprint = "{}"

[certificate]
{}

[output]
certificate = "{}"
"#,
            self.allow_network,
            self.root_dir,
            self.module,
            self.token_label,
            self.key_label,
            self.csr,
            self.fingerprint,
            cert,
            self.out
        )
    }
}

struct CrlSpec<'a> {
    key_label: &'a str,
    root_dir: &'a str,
    next_update_days: u32,
    out: &'a str,
}

impl Default for CrlSpec<'_> {
    fn default() -> Self {
        CrlSpec {
            key_label: "root-key",
            root_dir: "root",
            next_update_days: 30,
            out: "crl.pem",
        }
    }
}

impl CrlSpec<'_> {
    fn toml(&self) -> String {
        format!(
            r#"allow-network = true
root-dir = "{}"
next-update-days = {}

[token]
module = "{MODULE}"
token-label = "root-ca"
key-label = "{}"

[output]
crl = "{}"
"#,
            self.root_dir, self.next_update_days, self.key_label, self.out
        )
    }
}

fn revoke_toml(root_dir: &str, serial: &str, reason: &str) -> String {
    format!(
        "allow-network = true\nroot-dir = \"{root_dir}\"\nserial = \"{serial}\"\nreason = \"{reason}\"\n"
    )
}

/// `aa11bb..` -> `AA:11:BB:..`, the other way a fingerprint is read out.
fn colon_upper(hex: &str) -> String {
    hex.to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

// ------------------------------------------------------------------------------ parsers

/// One object of `pkcs11-tool -O`: its header line and its `key: value` lines.
#[derive(Debug)]
struct Pkcs11Object {
    kind: String,
    attrs: Vec<(String, String)>,
}

impl Pkcs11Object {
    fn get(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// The comma-separated items of the Access line.
    fn access(&self) -> Vec<String> {
        self.get("Access")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

fn parse_pkcs11_objects(text: &str) -> Vec<Pkcs11Object> {
    let mut objs: Vec<Pkcs11Object> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("warning:") {
            continue;
        }
        if !line.starts_with(' ') && line.contains("Object") {
            objs.push(Pkcs11Object {
                kind: line.split(';').next().unwrap().trim().to_string(),
                attrs: Vec::new(),
            });
        } else if let (Some(o), Some((k, v))) = (objs.last_mut(), line.split_once(':')) {
            o.attrs.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    objs
}

/// One extension as `openssl x509|crl -text` prints it.
#[derive(Debug, Clone)]
struct Ext {
    name: String,
    critical: bool,
    value: String,
}

/// The extensions listed under the line `header` ("X509v3 extensions:" for certificates,
/// "CRL extensions:" for CRLs) of OpenSSL's text dump.
fn openssl_extensions(text: &str, header: &str) -> Vec<Ext> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no '{header}' in\n{text}"));
    let base = indent(lines[start]);
    let mut exts: Vec<Ext> = Vec::new();
    let mut ext_indent = None;
    for l in &lines[start + 1..] {
        if l.trim().is_empty() {
            continue;
        }
        let i = indent(l);
        if i <= base {
            break;
        }
        let ei = *ext_indent.get_or_insert(i);
        if i == ei {
            let (name, rest) = l.trim().split_once(':').unwrap_or((l.trim(), ""));
            exts.push(Ext {
                name: name.trim().to_string(),
                critical: rest.trim() == "critical",
                value: String::new(),
            });
        } else if let Some(e) = exts.last_mut() {
            if !e.value.is_empty() {
                e.value.push('\n');
            }
            e.value.push_str(l.trim());
        }
    }
    exts
}

fn ext<'a>(exts: &'a [Ext], name: &str) -> &'a Ext {
    exts.iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no extension '{name}' in {exts:#?}"))
}

fn ext_names(exts: &[Ext]) -> BTreeSet<String> {
    exts.iter().map(|e| e.name.clone()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A key identifier as OpenSSL prints it, without the `keyid:` prefix older versions add.
fn key_id(value: &str) -> String {
    value
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_start_matches("keyid:")
        .to_ascii_uppercase()
}

fn stdout_field(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' line in\n{stdout}"))
        .trim()
        .to_string()
}

// ------------------------------------------------------------------------------ webpki

fn webpki_verify(
    root: &[u8],
    intermediate: &[u8],
    leaf: &[u8],
    revocation: Option<webpki::RevocationOptions<'_>>,
) -> Result<(), webpki::Error> {
    let root = CertificateDer::from(root.to_vec());
    let anchors = vec![webpki::anchor_from_trusted_cert(&root)
        .expect("anchor")
        .to_owned()];
    let intermediates = vec![CertificateDer::from(intermediate.to_vec())];
    let leaf = CertificateDer::from(leaf.to_vec());
    let ee = webpki::EndEntityCert::try_from(&leaf).expect("leaf parses");
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        revocation,
        None,
    )
    .map(|_| ())
}

// ------------------------------------------------------------------------------ 1. init

fn init_makes_a_strict_root(alg: &str, key_bits_line: &str) {
    let b = Bench::new();
    let stdout = b.init(&InitSpec {
        algorithm: alg,
        ..Default::default()
    });

    // The root verifies against itself under X.509 strict rules.
    let v = b.tool_ok(
        "openssl",
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "root/root.crt",
            "root/root.crt",
        ],
    );
    assert!(v.contains("root/root.crt: OK"), "{v}");

    // Exactly the root profile's extensions.
    let text = b.tool_ok(
        "openssl",
        &["x509", "-in", "root/root.crt", "-noout", "-text"],
    );
    assert!(
        text.contains(key_bits_line),
        "{alg}: expected '{key_bits_line}' in\n{text}"
    );
    let exts = openssl_extensions(&text, "X509v3 extensions:");
    assert_eq!(
        ext_names(&exts),
        set(&[
            "X509v3 Basic Constraints",
            "X509v3 Key Usage",
            "X509v3 Subject Key Identifier"
        ]),
        "{alg}: unexpected extension set\n{text}"
    );
    let bc = ext(&exts, "X509v3 Basic Constraints");
    assert!(bc.critical, "basicConstraints must be critical: {bc:?}");
    assert_eq!(bc.value, "CA:TRUE, pathlen:1");
    let ku = ext(&exts, "X509v3 Key Usage");
    assert!(ku.critical, "keyUsage must be critical: {ku:?}");
    assert_eq!(ku.value, "Certificate Sign, CRL Sign");
    let ski = ext(&exts, "X509v3 Subject Key Identifier");
    assert!(!ski.critical);
    assert!(key_id(&ski.value).len() >= 20, "{ski:?}");

    // The private key in the token: sensitive, never extractable, not extractable.
    let objects = b.objects();
    let private: Vec<&Pkcs11Object> = objects
        .iter()
        .filter(|o| o.kind.starts_with("Private Key Object"))
        .collect();
    assert_eq!(private.len(), 1, "{objects:#?}");
    let key = private[0];
    assert_eq!(key.get("label"), Some("root-key"), "{key:?}");
    let access = key.access();
    assert!(
        access.iter().any(|a| a == "sensitive"),
        "{alg}: not sensitive: {key:?}"
    );
    assert!(
        access.iter().any(|a| a == "never extractable"),
        "{alg}: not never-extractable: {key:?}"
    );
    assert!(
        !access.iter().any(|a| a == "extractable"),
        "{alg}: the private key is extractable: {key:?}"
    );
    assert!(key
        .get("Usage")
        .is_some_and(|u| u.split(',').any(|x| x.trim() == "sign")));

    // The ceremony log records what the token reported.
    let log = b.log_records("root");
    assert_eq!(log[0]["op"], "key-generated", "{log:#?}");
    let attrs = &log[0]["attributes"];
    assert_eq!(attrs["sensitive"], Value::Bool(true), "{attrs}");
    assert_eq!(attrs["extractable"], Value::Bool(false), "{attrs}");
    assert_eq!(attrs["never_extractable"], Value::Bool(true), "{attrs}");
    assert_eq!(attrs["label"], "root-key", "{attrs}");
    assert_eq!(attrs["algorithm"], alg, "{attrs}");

    // The transport recipient: written and printed.
    let recipient = b.read("root/transport.recipient").trim().to_string();
    assert!(
        recipient.starts_with("age1")
            && recipient.len() > 50
            && recipient
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "not an age recipient: {recipient:?}"
    );
    assert_eq!(stdout_field(&stdout, "transport recipient:"), recipient);

    // The printed fingerprint is OpenSSL's SHA-256 fingerprint of root.crt.
    let printed = stdout_field(&stdout, "root fingerprint:");
    let printed = printed.trim_start_matches("SHA256").trim();
    let fp = b.tool_ok(
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
    let openssl_fp = fp
        .trim()
        .split_once('=')
        .expect("Fingerprint=")
        .1
        .to_string();
    assert_eq!(printed, openssl_fp);
}

#[test]
fn init_p384_makes_a_strict_root_with_a_non_extractable_key() {
    init_makes_a_strict_root("p384", "NIST CURVE: P-384");
}

#[test]
fn init_p256_makes_a_strict_root_with_a_non_extractable_key() {
    init_makes_a_strict_root("p256", "NIST CURVE: P-256");
}

#[test]
fn init_rsa3072_makes_a_strict_root_with_a_non_extractable_key() {
    init_makes_a_strict_root("rsa3072", "Public-Key: (3072 bit)");
}

#[test]
fn init_rsa4096_makes_a_strict_root_with_a_non_extractable_key() {
    init_makes_a_strict_root("rsa4096", "Public-Key: (4096 bit)");
}

#[test]
fn init_ed25519_makes_a_strict_root_with_a_non_extractable_key() {
    init_makes_a_strict_root("ed25519", "Public Key Algorithm: ED25519");
}

// ------------------------------------------------------------------------------ 2. sign

/// Checks an intermediate signed by `root/root.crt` from outside; returns its extensions.
fn check_intermediate(b: &Bench, cert: &str, csr: &str) -> Vec<Ext> {
    let v = b.tool_ok(
        "openssl",
        &["verify", "-x509_strict", "-CAfile", "root/root.crt", cert],
    );
    assert!(v.contains(&format!("{cert}: OK")), "{v}");

    // The certified key is the CSR's.
    let cert_key = b.tool_ok("openssl", &["x509", "-in", cert, "-noout", "-pubkey"]);
    let csr_key = b.tool_ok("openssl", &["req", "-in", csr, "-noout", "-pubkey"]);
    assert_eq!(
        cert_key, csr_key,
        "{cert} does not certify the key of {csr}"
    );

    let root_text = b.tool_ok(
        "openssl",
        &["x509", "-in", "root/root.crt", "-noout", "-text"],
    );
    let root_ski = key_id(
        &ext(
            &openssl_extensions(&root_text, "X509v3 extensions:"),
            "X509v3 Subject Key Identifier",
        )
        .value,
    );

    let text = b.tool_ok("openssl", &["x509", "-in", cert, "-noout", "-text"]);
    let exts = openssl_extensions(&text, "X509v3 extensions:");
    let bc = ext(&exts, "X509v3 Basic Constraints");
    assert!(bc.critical, "{bc:?}");
    assert_eq!(bc.value, "CA:TRUE, pathlen:0");
    let ku = ext(&exts, "X509v3 Key Usage");
    assert!(ku.critical, "{ku:?}");
    assert_eq!(ku.value, "Certificate Sign, CRL Sign");
    let ski = ext(&exts, "X509v3 Subject Key Identifier");
    assert!(key_id(&ski.value).len() >= 20, "{ski:?}");
    let aki = ext(&exts, "X509v3 Authority Key Identifier");
    assert_eq!(key_id(&aki.value), root_ski, "AKI must be the root's SKI");
    assert!(
        !exts.iter().any(|e| e.name.contains("Extended Key Usage")),
        "an intermediate carries no EKU: {exts:#?}"
    );
    exts
}

#[test]
fn sign_openssl_csrs_gives_strict_intermediates_whose_leaves_chain_to_the_root() {
    let b = Bench::new();
    b.init(&InitSpec::default());

    // P-384 request, fingerprint as sha256sum prints it, with name constraints.
    let (csr384, fp384) = b.openssl_csr("int384", "p384");
    b.sign(
        "p384",
        &SignSpec {
            csr: &csr384,
            fingerprint: &fp384,
            permitted_dns: &["localhost", "etcd.example.internal"],
            permitted_ips: &["127.0.0.0/8", "10.0.0.0/8"],
            out: "int384.crt",
            ..Default::default()
        },
    );
    // RSA-3072 request, fingerprint in the AA:BB form, no name constraints.
    let (csr_rsa, fp_rsa) = b.openssl_csr("intrsa", "rsa3072");
    let fp_rsa = colon_upper(&fp_rsa);
    b.sign(
        "rsa",
        &SignSpec {
            csr: &csr_rsa,
            fingerprint: &fp_rsa,
            out: "intrsa.crt",
            ..Default::default()
        },
    );

    let exts = check_intermediate(&b, "int384.crt", &csr384);
    assert_eq!(
        ext_names(&exts),
        set(&[
            "X509v3 Basic Constraints",
            "X509v3 Key Usage",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
            "X509v3 Name Constraints",
        ]),
        "{exts:#?}"
    );
    let nc = ext(&exts, "X509v3 Name Constraints");
    for want in [
        "Permitted:",
        "DNS:localhost",
        "DNS:etcd.example.internal",
        "IP:127.0.0.0/255.0.0.0",
        "IP:10.0.0.0/255.0.0.0",
    ] {
        assert!(
            nc.value.lines().any(|l| l == want),
            "'{want}' missing from the name constraints:\n{}",
            nc.value
        );
    }
    assert!(!nc.value.contains("Excluded"), "{}", nc.value);

    let exts = check_intermediate(&b, "intrsa.crt", &csr_rsa);
    assert_eq!(
        ext_names(&exts),
        set(&[
            "X509v3 Basic Constraints",
            "X509v3 Key Usage",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
        ]),
        "{exts:#?}"
    );

    // The root's index and its copy of every intermediate.
    for cert in ["int384.crt", "intrsa.crt"] {
        let serial = b.serial(cert).to_ascii_lowercase();
        assert_eq!(
            b.read(&format!("root/intermediates/{serial}.crt")),
            b.read(cert)
        );
        assert!(b.read("root/index.toml").contains(&serial));
    }

    // Bring the P-384 intermediate under management and issue a leaf with it.
    let id = b.path("id.txt");
    ok(run(
        &b.dir,
        "intermediate-ca",
        &["new-identity", id.to_str().unwrap()],
        &[],
    ));
    ok(run(
        &b.dir,
        "intermediate-ca",
        &[
            "import",
            "--cert",
            "int384.crt",
            "--key",
            "int384.key",
            "--dir",
            "ica",
            "--identity",
            "id.txt",
        ],
        &[],
    ));
    ok(run(
        &b.dir,
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
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--identity",
            "id.txt",
        ],
        &[],
    ));
    let v = b.tool_ok(
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
    assert!(v.contains("n1/server.crt: OK"), "{v}");

    // rustls-webpki, root as the only anchor.
    let root = b.der_blocks("root/root.crt", "CERTIFICATE").remove(0);
    let chain = b.der_blocks("n1/server.crt", "CERTIFICATE");
    assert_eq!(chain.len(), 2, "server.crt is leaf then intermediate");
    let int384 = b.der_blocks("int384.crt", "CERTIFICATE").remove(0);
    assert_eq!(chain[1], int384);
    webpki_verify(&root, &chain[1], &chain[0], None).expect("webpki: leaf -> intermediate -> root");
    let leaf_der = CertificateDer::from(chain[0].clone());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    leaf.verify_is_valid_for_subject_name(&ServerName::try_from("localhost").unwrap())
        .expect("valid for localhost");
    leaf.verify_is_valid_for_subject_name(&ServerName::try_from("127.0.0.1").unwrap())
        .expect("valid for 127.0.0.1");
    // The control: through the wrong intermediate, webpki finds no path.
    let intrsa = b.der_blocks("intrsa.crt", "CERTIFICATE").remove(0);
    assert!(
        webpki_verify(&root, &intrsa, &chain[0], None).is_err(),
        "a leaf must not verify through an intermediate that did not sign it"
    );
}

// ------------------------------------------------------------------------------ 3. revoke + crl

/// Number, revoked serials with their reason, AKI of a CRL, from `openssl crl -text`.
struct CrlText {
    number: u64,
    aki: String,
    text: String,
}

fn crl_text(b: &Bench, file: &str) -> CrlText {
    let text = b.tool_ok("openssl", &["crl", "-in", file, "-noout", "-text"]);
    let exts = openssl_extensions(&text, "CRL extensions:");
    let number = ext(&exts, "X509v3 CRL Number")
        .value
        .trim()
        .parse()
        .expect("CRL number");
    let aki = key_id(&ext(&exts, "X509v3 Authority Key Identifier").value);
    CrlText { number, aki, text }
}

/// The reason OpenSSL prints for `serial` in a CRL's text, if it is listed.
fn revoked_reason(text: &str, serial: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("Serial Number: {serial}"))?;
    let mut reason = None;
    for (i, l) in lines.iter().enumerate().skip(at + 1) {
        let t = l.trim();
        if t.starts_with("Serial Number:") || t.starts_with("Signature Algorithm") {
            break;
        }
        if t.starts_with("X509v3 CRL Reason Code") {
            reason = lines.get(i + 1).map(|r| r.trim().to_string());
        }
    }
    Some(reason.unwrap_or_default())
}

#[test]
fn revoke_and_crl_are_accepted_by_openssl_and_webpki_refuses_the_leaf() {
    let b = Bench::new();
    b.init(&InitSpec::default());
    let (csr, fp) = b.openssl_csr("int", "p384");
    b.sign(
        "int",
        &SignSpec {
            csr: &csr,
            fingerprint: &fp,
            out: "int.crt",
            ..Default::default()
        },
    );
    let id = b.path("id.txt");
    ok(run(
        &b.dir,
        "intermediate-ca",
        &["new-identity", id.to_str().unwrap()],
        &[],
    ));
    ok(run(
        &b.dir,
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
        &b.dir,
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
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--identity",
            "id.txt",
        ],
        &[],
    ));
    let serial = b.serial("int.crt");

    // A CRL before the revocation: valid, lists nothing.
    b.crl(
        "before",
        &CrlSpec {
            next_update_days: 7,
            out: "crl-before.pem",
            ..Default::default()
        },
    );
    let before = crl_text(&b, "crl-before.pem");
    assert!(revoked_reason(&before.text, &serial).is_none());
    assert!(
        before.text.contains("No Revoked Certificates"),
        "{}",
        before.text
    );

    b.revoke("int", "root", &serial, "keyCompromise");
    let index = b.read("root/index.toml");
    assert!(index.contains("status = \"revoked\""), "{index}");

    b.crl(
        "after",
        &CrlSpec {
            next_update_days: 7,
            out: "crl.pem",
            ..Default::default()
        },
    );
    let v = b.tool_ok(
        "openssl",
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            "root/root.crt",
            "-verify",
            "-noout",
        ],
    );
    assert!(v.contains("verify OK"), "{v}");
    let after = crl_text(&b, "crl.pem");
    assert_eq!(
        revoked_reason(&after.text, &serial).as_deref(),
        Some("Key Compromise"),
        "serial {serial} with reason Key Compromise expected in\n{}",
        after.text
    );
    assert!(
        after.number > before.number,
        "CRL number must increase: {} then {}",
        before.number,
        after.number
    );
    let root_text = b.tool_ok(
        "openssl",
        &["x509", "-in", "root/root.crt", "-noout", "-text"],
    );
    let root_ski = key_id(
        &ext(
            &openssl_extensions(&root_text, "X509v3 extensions:"),
            "X509v3 Subject Key Identifier",
        )
        .value,
    );
    assert_eq!(after.aki, root_ski, "the CRL's AKI must be the root's SKI");
    // The root folder keeps the latest CRL.
    assert_eq!(b.read("root/crl.pem"), b.read("crl.pem"));

    // nextUpdate = thisUpdate + next-update-days; thisUpdate is now.
    let crl_der = b.der_blocks("crl.pem", "X509 CRL").remove(0);
    {
        use x509_parser::prelude::FromDer;
        let (_, parsed) =
            x509_parser::revocation_list::CertificateRevocationList::from_der(&crl_der)
                .expect("CRL parses");
        let this = parsed.last_update().timestamp();
        let next = parsed.next_update().expect("nextUpdate").timestamp();
        assert_eq!(next - this, 7 * 86_400, "nextUpdate must be 7 days later");
        let now = UnixTime::now().as_secs() as i64;
        assert!(
            (now - this).abs() < 600,
            "thisUpdate {this} is not now ({now})"
        );
    }

    // rustls-webpki: with the old CRL the leaf is fine; with the new one it is revoked.
    let root = b.der_blocks("root/root.crt", "CERTIFICATE").remove(0);
    let chain = b.der_blocks("n1/server.crt", "CERTIFICATE");
    let old_der = b.der_blocks("crl-before.pem", "X509 CRL").remove(0);
    let old = webpki::CertRevocationList::Borrowed(
        webpki::BorrowedCertRevocationList::from_der(&old_der).expect("webpki parses the CRL"),
    );
    let old_refs = [&old];
    let allow_unknown = webpki::RevocationOptionsBuilder::new(&old_refs)
        .unwrap()
        .with_status_policy(webpki::UnknownStatusPolicy::Allow)
        .build();
    webpki_verify(&root, &chain[1], &chain[0], Some(allow_unknown))
        .expect("before the revocation the leaf verifies");

    let owned = webpki::OwnedCertRevocationList::from_der(&crl_der).expect("webpki parses");
    let new = webpki::CertRevocationList::from(owned);
    let new_refs = [&new];
    let options = webpki::RevocationOptionsBuilder::new(&new_refs)
        .unwrap()
        .build();
    let err = webpki_verify(&root, &chain[1], &chain[0], Some(options))
        .expect_err("the leaf of a revoked intermediate must not verify");
    assert!(
        matches!(err, webpki::Error::CertRevoked),
        "expected CertRevoked, got {err:?}"
    );
}

// ------------------------------------------------------------------------------ 4. the log

/// Copies a root folder's log and index into `name`, applies `edit` to the log's lines.
fn tampered_copy(b: &Bench, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> String {
    let dir = b.path(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(b.path("root/index.toml"), dir.join("index.toml")).unwrap();
    let mut lines: Vec<String> = b
        .read("root/ceremony.log")
        .lines()
        .map(str::to_string)
        .collect();
    edit(&mut lines);
    std::fs::write(dir.join("ceremony.log"), lines.join("\n") + "\n").unwrap();
    name.to_string()
}

/// Changes one character of a log record in place: the first digit of its time value, so the
/// line stays valid JSON with the same keys.
fn edit_one_character(line: &mut String) {
    let at = line.find("\"time\":\"").expect("time field") + "\"time\":\"".len();
    let c = line.as_bytes()[at];
    let new = if c == b'9' { '8' } else { (c + 1) as char };
    line.replace_range(at..at + 1, &new.to_string());
}

#[test]
fn ceremony_log_has_one_record_per_operation_and_tampering_is_detected() {
    let b = Bench::new();
    let log_ok = |n: usize| {
        let out = ok(b.root_ca(&["log", "verify", "root"]));
        assert!(
            out.contains(&format!("{n} records, hash chain intact")),
            "{out}"
        );
    };

    b.init(&InitSpec::default());
    assert_eq!(
        b.log_ops("root"),
        ["key-generated", "root-signed", "transport-identity-created"]
    );
    log_ok(3);

    let (csr, fp) = b.openssl_csr("int", "p256");
    b.sign(
        "int",
        &SignSpec {
            csr: &csr,
            fingerprint: &fp,
            out: "int.crt",
            ..Default::default()
        },
    );
    assert_eq!(b.log_ops("root").len(), 4);
    assert_eq!(b.log_ops("root")[3], "intermediate-signed");
    log_ok(4);

    let serial = b.serial("int.crt");
    b.revoke("int", "root", &serial, "superseded");
    assert_eq!(b.log_ops("root").len(), 5);
    assert_eq!(b.log_ops("root")[4], "intermediate-revoked");
    log_ok(5);

    b.crl("one", &CrlSpec::default());
    assert_eq!(
        b.log_ops("root"),
        [
            "key-generated",
            "root-signed",
            "transport-identity-created",
            "intermediate-signed",
            "intermediate-revoked",
            "crl-signed"
        ]
    );
    log_ok(6);
    // Each record names its predecessor and carries its sequence number.
    for (i, r) in b.log_records("root").iter().enumerate() {
        assert_eq!(r["seq"], (i + 1) as u64);
        assert_eq!(r["prev"].as_str().map(str::len), Some(64));
    }

    // The control: an untouched copy verifies.
    let same = tampered_copy(&b, "t-same", |_| {});
    ok(b.root_ca(&["log", "verify", &same]));

    // Each message is pinned as a snapshot `error-root-ca-log-<kind>` too.
    let verify_fails = |dir: &str, needle: &str| {
        let err = fails_with(b.root_ca(&["log", "verify", dir]), needle);
        assert!(err.contains("ceremony log"), "{err}");
        let kind = dir.trim_start_matches("t-");
        assert_snapshot(
            &format!("error-root-ca-log-{kind}"),
            &normalize(&err, &[&b.dir]),
        );
    };
    let edited = tampered_copy(&b, "t-edited", |l| {
        let mid = l.len() / 2;
        edit_one_character(&mut l[mid]);
    });
    verify_fails(
        &edited,
        "its 'prev' hash does not match the record before it",
    );
    let removed = tampered_copy(&b, "t-removed", |l| {
        let mid = l.len() / 2;
        l.remove(mid);
    });
    verify_fails(&removed, "a record was removed or reordered");
    let reordered = tampered_copy(&b, "t-reordered", |l| l.swap(1, 2));
    verify_fails(&reordered, "a record was removed or reordered");
    let truncated = tampered_copy(&b, "t-truncated", |l| {
        l.pop();
    });
    verify_fails(&truncated, "but the root's index recorded");
}

// ------------------------------------------------------------------------------ 5. bad inputs

/// A bench with a P-384 root in `root/` (key `root-key`) and a fresh OpenSSL P-384 CSR
/// `int.csr`; returns its fingerprint.
fn bench_with_root() -> (Bench, String) {
    let b = Bench::new();
    b.init(&InitSpec::default());
    let (_, fp) = b.openssl_csr("int", "p384");
    (b, fp)
}

/// Asserts the bench's files and token are as in `before`.
fn assert_unchanged(
    b: &Bench,
    files_before: &[(PathBuf, Vec<u8>)],
    objects_before: &[String],
    what: &str,
) {
    let changed = changed_files(files_before, &b.files());
    assert!(changed.is_empty(), "{what} changed files: {changed:?}");
    assert_eq!(
        b.object_summary(),
        objects_before,
        "{what} changed the token"
    );
}

/// The init ceremony failed cleanly: no state folder, no object in the token.
fn assert_no_root_created(b: &Bench, out: &str) {
    assert!(!b.path(out).exists(), "{out} was created");
    assert!(
        b.objects().is_empty(),
        "the token holds objects: {:#?}",
        b.objects()
    );
}

#[test]
fn wrong_pin_is_refused() {
    let b = Bench::new();
    let f = b.write("init.toml", &InitSpec::default().toml());
    fails_with(
        b.ceremony("init", &f, &b.wrong_pin_file()),
        "token 'root-ca' refused the PIN",
    );
    assert_no_root_created(&b, "root");

    // On sign too: nothing written.
    b.init(&InitSpec::default());
    let (csr, fp) = b.openssl_csr("int", "p384");
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: &csr,
            fingerprint: &fp,
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(
        b.ceremony("sign", &f, &b.wrong_pin_file()),
        "refused the PIN",
    );
    assert_snapshot("error-root-ca-wrong-pin", &normalize(&err, &[&b.dir]));
    assert_unchanged(&b, &files, &objects, "sign with a wrong PIN");
}

#[test]
fn unknown_field_in_a_ceremony_file_is_refused() {
    let b = Bench::new();
    let f = b.write(
        "init.toml",
        &InitSpec {
            extra_root: "colour = \"blue\"",
            ..Default::default()
        }
        .toml(),
    );
    let err = fails_with(b.ceremony("init", &f, &b.pin_file()), "unknown field");
    assert!(err.contains("colour"), "{err}");
    assert_no_root_created(&b, "root");

    b.init(&InitSpec::default());
    let (csr, fp) = b.openssl_csr("int", "p384");
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: &csr,
            fingerprint: &fp,
            extra_certificate: "path-length = 3\n",
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(b.ceremony("sign", &f, &b.pin_file()), "unknown field");
    assert!(err.contains("path-length"), "{err}");
    assert_unchanged(&b, &files, &objects, "a sign file with an unknown field");
}

#[test]
fn existing_key_label_is_refused() {
    let b = Bench::new();
    b.init(&InitSpec::default());
    let f = b.write(
        "init-again.toml",
        &InitSpec {
            out: "root2",
            common_name: "Second Root",
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(
        b.ceremony("init", &f, &b.pin_file()),
        "already holds a key labelled 'root-key'",
    );
    assert_snapshot("error-root-ca-existing-label", &normalize(&err, &[&b.dir]));
    assert!(!b.path("root2").exists());
    assert_unchanged(
        &b,
        &files,
        &objects,
        "a second init with the same key label",
    );
}

#[test]
fn existing_output_certificate_is_refused_before_the_token_is_opened() {
    let (b, fp) = bench_with_root();
    b.write("taken.crt", "precious\n");
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: "int.csr",
            fingerprint: &fp,
            out: "taken.crt",
            ..Default::default()
        }
        .toml(),
    );
    b.wrong_pin_file();
    let (files, objects) = (b.files(), b.object_summary());
    // A wrong PIN: had the token been opened, the error would be about the PIN.
    let err = fails_with(
        b.ceremony("sign", &f, &b.wrong_pin_file()),
        "taken.crt: already exists; a ceremony never overwrites a file",
    );
    assert!(!err.contains("PIN"), "{err}");
    assert_snapshot("error-root-ca-existing-output", &normalize(&err, &[&b.dir]));
    assert_unchanged(&b, &files, &objects, "sign onto an existing certificate");
    assert_eq!(b.read("taken.crt"), "precious\n");
    assert_eq!(b.object_summary(), objects);
}

#[test]
fn existing_output_folder_is_refused_before_the_token_is_opened() {
    let b = Bench::new();
    std::fs::create_dir(b.path("root")).unwrap();
    b.write("root/keep.txt", "keep me\n");
    let f = b.write("init.toml", &InitSpec::default().toml());
    let err = fails_with(
        b.ceremony("init", &f, &b.wrong_pin_file()),
        "root: already exists; a ceremony never overwrites a file",
    );
    assert!(!err.contains("PIN"), "{err}");
    assert_snapshot(
        "error-root-ca-existing-root-dir",
        &normalize(&err, &[&b.dir]),
    );
    assert_eq!(
        std::fs::read_dir(b.path("root")).unwrap().count(),
        1,
        "init wrote into a non-empty folder"
    );
    assert_eq!(b.read("root/keep.txt"), "keep me\n");
    assert!(b.objects().is_empty(), "{:#?}", b.objects());
}

#[test]
fn csr_fingerprint_mismatch_is_refused() {
    let (b, fp) = bench_with_root();
    let (_, other_fp) = b.openssl_csr("other", "p384");
    assert_ne!(fp, other_fp);
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: "int.csr",
            fingerprint: &other_fp,
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(
        b.ceremony("sign", &f, &b.pin_file()),
        "the request's key fingerprint is",
    );
    assert!(err.contains(&colon_upper(&fp)), "{err}");
    assert!(err.contains(&colon_upper(&other_fp)), "{err}");
    assert_snapshot(
        "error-root-ca-fingerprint-mismatch",
        &normalize(&err, &[&b.dir]),
    );
    assert_unchanged(&b, &files, &objects, "a fingerprint mismatch");
}

#[test]
fn csr_with_a_bad_signature_is_refused() {
    let (b, fp) = bench_with_root();
    let mut der = b.der_blocks("int.csr", "CERTIFICATE REQUEST").remove(0);
    // The last byte lies in the signature value (ECDSA s); the structure stays valid DER.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    b.write(
        "tampered.csr",
        &pki_core::x509::to_pem("CERTIFICATE REQUEST", &der),
    );
    // The key, and so the fingerprint, is unchanged.
    assert_eq!(b.csr_fingerprint("tampered.csr"), fp);
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: "tampered.csr",
            fingerprint: &fp,
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(
        b.ceremony("sign", &f, &b.pin_file()),
        "signature does not verify",
    );
    assert_snapshot(
        "error-root-ca-csr-bad-signature",
        &normalize(&err, &[&b.dir]),
    );
    assert_unchanged(&b, &files, &objects, "a CSR with a bad signature");
}

fn date_in_days(days: u32) -> String {
    let o = Command::new("date")
        .args(["-u", "-d", &format!("+{days} days"), "+%Y-%m-%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn validity_past_the_root_is_refused_naming_both_dates() {
    let b = Bench::new();
    b.init(&InitSpec {
        days: 30,
        ..Default::default()
    });
    let (csr, fp) = b.openssl_csr("int", "p384");
    let root_end = b.log_records("root")[1]["not_after"]
        .as_str()
        .expect("not_after in the root-signed record")
        .to_string();
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: &csr,
            fingerprint: &fp,
            days: Some(60),
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let day_before = date_in_days(60);
    let err = fails_with(
        b.ceremony("sign", &f, &b.pin_file()),
        "a certificate never outlives its issuer",
    );
    let day_after = date_in_days(60);
    assert!(
        err.contains(&root_end),
        "root's end {root_end} not named: {err}"
    );
    assert!(
        err.contains(&format!("ends {day_before}T")) || err.contains(&format!("ends {day_after}T")),
        "requested end ({day_before}) not named: {err}"
    );
    assert_unchanged(&b, &files, &objects, "a validity past the root");
}

#[test]
fn token_key_that_is_not_the_root_certificate_key_is_refused() {
    let (b, fp) = bench_with_root();
    b.init(&InitSpec {
        key_label: "other-key",
        common_name: "Other Root",
        out: "other-root",
        ..Default::default()
    });
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: "int.csr",
            fingerprint: &fp,
            root_dir: "root",
            key_label: "other-key",
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(
        b.ceremony("sign", &f, &b.pin_file()),
        "the key 'other-key' in the token is not the key of the root certificate",
    );
    assert_snapshot(
        "error-root-ca-token-key-mismatch",
        &normalize(&err, &[&b.dir]),
    );
    assert_unchanged(&b, &files, &objects, "a token key that is not the root's");
}

/// Non-loopback interfaces that are up, read the way the air-gap guard reads them.
fn interfaces_up() -> Vec<String> {
    let mut up = Vec::new();
    for e in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let flags = std::fs::read_to_string(e.path().join("flags")).unwrap_or_default();
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & 0x1 != 0 && flags & 0x8 == 0 {
            up.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    up.sort();
    up
}

#[test]
fn network_up_without_allow_network_is_refused() {
    let up = interfaces_up();
    if up.is_empty() {
        eprintln!(
            "note: no non-loopback network interface is up; the air-gap refusal cannot be shown here"
        );
        return;
    }
    let b = Bench::new();
    let f = b.write(
        "init.toml",
        &InitSpec {
            allow_network: false,
            ..Default::default()
        }
        .toml(),
    );
    fails_with(
        b.ceremony("init", &f, &b.pin_file()),
        &format!("network interface '{}' is up", up[0]),
    );
    assert_no_root_created(&b, "root");

    b.init(&InitSpec::default());
    let (csr, fp) = b.openssl_csr("int", "p384");
    let f = b.write(
        "sign.toml",
        &SignSpec {
            allow_network: false,
            csr: &csr,
            fingerprint: &fp,
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    fails_with(b.ceremony("sign", &f, &b.pin_file()), "network interface");
    assert_unchanged(&b, &files, &objects, "sign with the network up");
}

#[test]
fn edited_ceremony_log_stops_every_later_ceremony() {
    let (b, fp) = bench_with_root();
    b.sign(
        "first",
        &SignSpec {
            csr: "int.csr",
            fingerprint: &fp,
            out: "first.crt",
            ..Default::default()
        },
    );
    let serial = b.serial("first.crt");
    let (csr2, fp2) = b.openssl_csr("int2", "p384");
    let sign = b.write(
        "sign2.toml",
        &SignSpec {
            csr: &csr2,
            fingerprint: &fp2,
            out: "second.crt",
            ..Default::default()
        }
        .toml(),
    );
    let revoke = b.write(
        "revoke.toml",
        &revoke_toml("root", &serial, "keyCompromise"),
    );
    let crl = b.write("crl.toml", &CrlSpec::default().toml());
    let good_log = b.read("root/ceremony.log");

    // One character edited in the middle record.
    let mut lines: Vec<String> = good_log.lines().map(str::to_string).collect();
    let mid = lines.len() / 2;
    edit_one_character(&mut lines[mid]);
    b.write("root/ceremony.log", &(lines.join("\n") + "\n"));
    let (files, objects) = (b.files(), b.object_summary());
    for (op, file) in [("sign", &sign), ("revoke", &revoke), ("crl", &crl)] {
        let err = fails_with(
            b.ceremony(op, file, &b.pin_file()),
            "its 'prev' hash does not match the record before it",
        );
        assert!(err.contains("ceremony log"), "{op}: {err}");
        assert_unchanged(&b, &files, &objects, &format!("{op} on an edited log"));
    }
    assert!(!b.path("second.crt").exists());
    assert!(!b.path("crl.pem").exists());

    // The last record removed: the chain is intact, but it no longer ends at the index's head.
    let mut lines: Vec<&str> = good_log.lines().collect();
    lines.pop();
    b.write("root/ceremony.log", &(lines.join("\n") + "\n"));
    let (files, objects) = (b.files(), b.object_summary());
    for (op, file) in [("sign", &sign), ("revoke", &revoke), ("crl", &crl)] {
        fails_with(
            b.ceremony(op, file, &b.pin_file()),
            "but the root's index recorded",
        );
        assert_unchanged(&b, &files, &objects, &format!("{op} on a truncated log"));
    }
}

#[test]
fn missing_module_is_refused() {
    let b = Bench::new();
    let f = b.write(
        "init.toml",
        &InitSpec {
            module: "/nonexistent/libpkcs11.so",
            ..Default::default()
        }
        .toml(),
    );
    fails_with(
        b.ceremony("init", &f, &b.pin_file()),
        "cannot load the PKCS#11 module /nonexistent/libpkcs11.so",
    );
    assert_no_root_created(&b, "root");
}

#[test]
fn missing_token_label_is_refused() {
    let b = Bench::new();
    let f = b.write(
        "init.toml",
        &InitSpec {
            token_label: "absent",
            ..Default::default()
        }
        .toml(),
    );
    let err = fails_with(
        b.ceremony("init", &f, &b.pin_file()),
        "no token labelled 'absent'",
    );
    assert!(
        err.contains("'root-ca'"),
        "the tokens found are named: {err}"
    );
    assert_snapshot("error-root-ca-missing-token", &normalize(&err, &[&b.dir]));
    assert_no_root_created(&b, "root");
}

#[test]
fn missing_key_label_on_sign_is_refused() {
    let (b, fp) = bench_with_root();
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: "int.csr",
            fingerprint: &fp,
            key_label: "absent",
            ..Default::default()
        }
        .toml(),
    );
    let (files, objects) = (b.files(), b.object_summary());
    let err = fails_with(
        b.ceremony("sign", &f, &b.pin_file()),
        "no private key labelled 'absent' in token 'root-ca'",
    );
    assert_snapshot("error-root-ca-missing-key", &normalize(&err, &[&b.dir]));
    assert_unchanged(&b, &files, &objects, "sign with a missing key label");
}

#[test]
fn dry_runs_leave_the_token_and_the_files_alone() {
    let b = Bench::new();
    let f = b.write("init.toml", &InitSpec::default().toml());
    let out = ok(b.root_ca(&[
        "init",
        f.to_str().unwrap(),
        "--dry-run",
        "--pin-file",
        &b.pin_file(),
    ]));
    assert!(out.contains("dry run"), "{out}");
    assert!(
        out.contains("CN=Test Root CA"),
        "the plan names the subject: {out}"
    );
    assert_no_root_created(&b, "root");

    b.init(&InitSpec::default());
    let (csr, fp) = b.openssl_csr("int", "p384");
    let f = b.write(
        "sign.toml",
        &SignSpec {
            csr: &csr,
            fingerprint: &fp,
            ..Default::default()
        }
        .toml(),
    );
    let crl = b.write("crl.toml", &CrlSpec::default().toml());
    let (files, objects) = (b.files(), b.object_summary());
    let out = ok(b.root_ca(&[
        "sign",
        f.to_str().unwrap(),
        "--dry-run",
        "--pin-file",
        &b.pin_file(),
    ]));
    assert!(out.contains("dry run"), "{out}");
    assert!(out.contains("CN=int"), "the plan names the subject: {out}");
    assert!(!b.path("intermediate.crt").exists());
    assert_unchanged(&b, &files, &objects, "sign --dry-run");
    let out = ok(b.root_ca(&[
        "crl",
        crl.to_str().unwrap(),
        "--dry-run",
        "--pin-file",
        &b.pin_file(),
    ]));
    assert!(out.contains("dry run"), "{out}");
    assert_unchanged(&b, &files, &objects, "crl --dry-run");

    // The same files without --dry-run do act (the dry runs were not refusals).
    ok(b.ceremony("sign", &f, &b.pin_file()));
    assert!(b.path("intermediate.crt").exists());
}

// ------------------------------------------------------------------------------ 6. no network

#[test]
fn root_ca_links_no_networking_or_tls_crate() {
    let o = Command::new(env!("CARGO"))
        .args(["tree", "-p", "root-ca", "-e", "normal"])
        .current_dir(e2e_tests::fixture::workspace())
        .output()
        .expect("cargo tree");
    let tree = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Crate names, one per line: "│   ├── name vX.Y.Z (...)".
    let crates: BTreeSet<String> = tree
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            let (name, rest) = l.split_once(' ')?;
            rest.starts_with('v').then(|| name.to_string())
        })
        .collect();
    // The tree is real: the crates root-ca is built on are there.
    for needed in ["root-ca", "cryptoki", "rcgen", "age"] {
        assert!(crates.contains(needed), "{needed} missing from\n{tree}");
    }
    let forbidden = [
        "hyper",
        "reqwest",
        "ureq",
        "tokio",
        "mio",
        "socket2",
        "h2",
        "rustls",
        "curl",
        "native-tls",
        "openssl-sys",
    ];
    let found: Vec<&str> = forbidden
        .iter()
        .copied()
        .filter(|f| crates.contains(*f))
        .collect();
    assert!(found.is_empty(), "root-ca depends on {found:?}:\n{tree}");
}

// ------------------------------------------------------------------------------ 6. root to leaf

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
    // signing (openssl would reject the certificate; trust/gate.rs compares the two).
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
