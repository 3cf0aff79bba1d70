//! Enrolment of the online intermediate across the air gap, end to end (docs/enrolment.md; journeys 2 and
//! 4, §3 `intermediate-ca`, §6 bundles): a root whose key lives in a real SoftHSM2 token, the
//! online side's `request` / `install` / `status`, leaves from `issuer` checked with the OpenSSL
//! CLI and rustls-webpki against the root alone, a rotation to a second generation, interop with
//! the stock `age` CLI in both directions, every bad bundle refused with its own message (the
//! main ones pinned as snapshots in tests/snapshots) and
//! without any change, and `softhsm/rehearse.sh` run twice.
//!
//! Each test has its own temp folder and its own token(s) (`softhsm/new-token.sh`);
//! SOFTHSM2_CONF and PKI_AGE_IDENTITY are given to child processes only, never set here.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use e2e_tests::fixture::{fails_with, ok, rehearsal, rehearse, run, sh, softhsm_token};
use e2e_tests::openssl::{
    base64_decode, cert_ders, cert_ders_of, openssl, path_str, rfc3339, try_openssl,
};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::Value;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// id-kp-serverAuth (1.3.6.1.5.5.7.3.1), DER contents.
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// ------------------------------------------------------------------------------ the world

/// One test's temp folder: roots (each in its own token), the online CA folder `ica/`, and the
/// online side's age identity `ica-identity.txt` (made by `intermediate-ca new-identity`).
struct World {
    _tmp: tempfile::TempDir,
    d: PathBuf,
    identity: PathBuf,
    recipient: String,
}

/// A root: its token in `<name>-token/`, its state folder `<name>/`.
struct Root {
    base: PathBuf,
    name: String,
    conf: PathBuf,
    pin: PathBuf,
    key_label: String,
}

/// What `intermediate-ca request` printed.
#[derive(Debug)]
struct Request {
    generation: u32,
    id: String,
    key_fp: String,
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let d = tmp.path().to_path_buf();
        let identity = d.join("ica-identity.txt");
        let out = ok(run(
            &d,
            "intermediate-ca",
            &["new-identity", path_str(&identity)],
            &[],
        ));
        let recipient = out
            .lines()
            .find_map(|l| l.strip_prefix("recipient: "))
            .unwrap_or_else(|| panic!("new-identity printed no recipient:\n{out}"))
            .trim()
            .to_string();
        assert!(recipient.starts_with("age1"), "{recipient}");
        World {
            _tmp: tmp,
            d,
            identity,
            recipient,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.d.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// `root-ca init` of a new root in a new token.
    fn root(&self, name: &str, cn: &str) -> Root {
        let conf = softhsm_token(&self.path(&format!("{name}-token")));
        let root = Root {
            base: self.d.clone(),
            name: name.to_string(),
            conf,
            pin: self.path(&format!("{name}-token/user.pin")),
            key_label: format!("{name}-key"),
        };
        let init = self.write(
            &format!("{name}-init.toml"),
            &format!(
                "allow-network = true\n\
                 [token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca\"\nkey-label = \"{}\"\n\
                 [key]\nalgorithm = \"p384\"\n\
                 [root]\ncommon-name = \"{cn}\"\ndays = 3653\n\
                 [output]\ndir = \"{name}\"\n",
                root.key_label
            ),
        );
        let out = ok(root.ceremony("init", &init));
        assert!(out.contains("transport recipient:"), "{out}");
        root
    }

    /// `intermediate-ca ARGS` with a clean environment (secrets passed as flags).
    fn ica(&self, args: &[&str]) -> Output {
        run(&self.d, "intermediate-ca", args, &[])
    }

    /// `intermediate-ca request` on `ica/` to `root`; the identity comes from `--identity`.
    fn request(&self, root: &Root, out: &str) -> Request {
        let stdout = ok(self.ica(&[
            "request",
            "--dir",
            "ica",
            "--to-file",
            &format!("{}/transport.recipient", root.name),
            "--out",
            out,
            "--identity",
            path_str(&self.identity),
        ]));
        parse_request(&stdout)
    }

    /// `intermediate-ca install` of `response` pinned to `root_fp`.
    fn install_with(&self, response: &str, root_fp: &str, identity: &Path) -> Output {
        self.ica(&[
            "install",
            "--dir",
            "ica",
            "--root-fingerprint",
            root_fp,
            response,
            "--identity",
            path_str(identity),
        ])
    }

    fn install(&self, response: &str, root_fp: &str) -> String {
        ok(self.install_with(response, root_fp, &self.identity))
    }

    fn status(&self) -> Value {
        let out = ok(self.ica(&["status", "--dir", "ica", "--json"]));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}\n{out}"))
    }

    /// `issuer ARGS`, the identity from PKI_AGE_IDENTITY in the child's environment.
    fn issuer(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "issuer",
            args,
            &[("PKI_AGE_IDENTITY", &self.identity)],
        )
    }

    /// A server leaf for `cn` (DNS `<cn>.example.internal`, IP 127.0.0.1) into `out/`.
    fn issue_server(&self, cn: &str, out: &str) -> PathBuf {
        let dns = format!("{cn}.example.internal");
        ok(self.issuer(&[
            "issue",
            "server",
            "--ca",
            "ica",
            "--cn",
            cn,
            "--dns",
            &dns,
            "--ip",
            "127.0.0.1",
            "--out",
            out,
        ]));
        self.path(&format!("{out}/server.crt"))
    }

    /// The ledger row of the leaf whose subject is `cn`.
    fn ledger_row(&self, cn: &str) -> Value {
        let out = ok(self.issuer(&["list", "--ca", "ica", "--json"]));
        let rows: Value = serde_json::from_str(&out).expect("issuer list --json");
        rows.as_array()
            .expect("an array")
            .iter()
            .find(|r| r["subject"] == cn)
            .unwrap_or_else(|| panic!("no ledger row for {cn}:\n{out}"))
            .clone()
    }

    /// A P-384 key and CSR made by OpenSSL (its default digest): `<name>.key`, `<name>.csr`.
    fn openssl_csr(&self, name: &str, cn: &str) -> PathBuf {
        openssl(
            &self.d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={cn}"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        self.path(&format!("{name}.csr"))
    }

    /// `age -a -r RECIPIENT -o OUT IN` (the stock CLI), with `plaintext` written to `IN`.
    fn age_encrypt(&self, recipient: &str, plaintext: &str, input: &str, out: &str) -> PathBuf {
        self.write(input, plaintext);
        let (good, _, err) = sh(&self.d, "age", &["-a", "-r", recipient, "-o", out, input]);
        assert!(good, "age -a -r {recipient} -o {out} {input}: {err}");
        let sealed = self.read(out);
        assert!(
            sealed.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "{sealed}"
        );
        self.path(out)
    }

    /// `age -d -i IDENTITY FILE`: Ok(plaintext) or Err(stderr).
    fn age_decrypt(&self, identity: &Path, file: &str) -> Result<String, String> {
        let (good, out, err) = sh(&self.d, "age", &["-d", "-i", path_str(identity), file]);
        if good {
            Ok(out)
        } else {
            Err(err)
        }
    }
}

impl Root {
    fn dir(&self) -> PathBuf {
        self.base.join(&self.name)
    }

    fn cert(&self) -> PathBuf {
        self.dir().join("root.crt")
    }

    fn recipient(&self) -> String {
        std::fs::read_to_string(self.dir().join("transport.recipient"))
            .expect("transport.recipient")
            .trim()
            .to_string()
    }

    /// The fingerprint an operator would pin: `openssl x509 -fingerprint -sha256`.
    fn fingerprint(&self) -> String {
        openssl_fingerprint(&self.base, &self.cert())
    }

    /// `root-ca OP FILE --pin-file PIN` with this root's token.
    fn ceremony(&self, op: &str, file: &Path) -> Output {
        run(
            &self.base,
            "root-ca",
            &[op, path_str(file), "--pin-file", path_str(&self.pin)],
            &[("SOFTHSM2_CONF", &self.conf)],
        )
    }

    fn sign_file(&self, file: &str, request: &str, output: &str) -> PathBuf {
        let p = self.base.join(file);
        std::fs::write(
            &p,
            format!(
                "allow-network = true\nroot-dir = \"{}\"\n\
                 [token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca\"\nkey-label = \"{}\"\n\
                 [request]\n{request}\n\
                 [certificate]\ndays = 1826\n\
                 [output]\n{output}\n",
                self.name, self.key_label
            ),
        )
        .expect("write ceremony file");
        p
    }

    /// The sign ceremony on a request bundle, writing the response bundle.
    fn sign_bundle(&self, file: &str, bundle: &str, key_fp: &str, response: &str) -> Output {
        let f = self.sign_file(
            file,
            &format!("bundle = \"{bundle}\"\nkey-fingerprint = \"{key_fp}\""),
            &format!("response = \"{response}\""),
        );
        self.ceremony("sign", &f)
    }

    /// The sign ceremony on a plain CSR, writing the certificate.
    fn sign_csr(&self, file: &str, csr: &str, key_fp: &str, cert: &str) -> Output {
        let f = self.sign_file(
            file,
            &format!("csr = \"{csr}\"\nkey-fingerprint = \"{key_fp}\""),
            &format!("certificate = \"{cert}\""),
        );
        self.ceremony("sign", &f)
    }
}

// ------------------------------------------------------------------------------ helpers

fn parse_request(stdout: &str) -> Request {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("request bundle: "))
        .unwrap_or_else(|| panic!("no 'request bundle:' line:\n{stdout}"));
    let inner = line
        .split_once("(generation ")
        .and_then(|(_, r)| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    let (generation, id) = inner
        .split_once(", request ")
        .unwrap_or_else(|| panic!("{line}"));
    let key_fp = stdout
        .lines()
        .find(|l| l.starts_with("CSR key fingerprint"))
        .and_then(|l| l.rsplit_once(": "))
        .map(|(_, fp)| fp.trim().to_string())
        .unwrap_or_else(|| panic!("no CSR key fingerprint line:\n{stdout}"));
    assert!(is_colon_fingerprint(&key_fp), "{key_fp}");
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "request ID {id}"
    );
    Request {
        generation: generation.parse().expect("generation number"),
        id: id.to_string(),
        key_fp,
    }
}

/// `AB:CD:...`: 32 upper-case hex octets.
fn is_colon_fingerprint(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 32
        && parts.iter().all(|p| {
            p.len() == 2
                && p.chars()
                    .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        })
}

fn colon_hex(hex: &str) -> String {
    hex.trim()
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// `openssl x509 -fingerprint -sha256`, the part after `=`.
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
    let fp = out
        .trim()
        .split_once('=')
        .map(|(_, f)| f.to_string())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(is_colon_fingerprint(&fp), "{fp}");
    fp
}

/// SHA-256 of the public key (DER SPKI) of a certificate (`x509`) or CSR (`req`), computed by
/// OpenSSL alone, in the `AB:CD:..` form.
fn spki_fingerprint(dir: &Path, kind: &str, file: &Path) -> String {
    let script = format!(
        "set -o pipefail; openssl {kind} -in '{}' -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r",
        path_str(file)
    );
    let (good, out, err) = sh(dir, "bash", &["-c", &script]);
    assert!(good, "{script}: {err}");
    let hex = out.split_whitespace().next().expect("a digest");
    assert_eq!(hex.len(), 64, "{out}");
    colon_hex(hex)
}

fn one_cert(p: &Path) -> Vec<u8> {
    let mut v = cert_ders(p);
    assert_eq!(v.len(), 1, "{}: one certificate expected", p.display());
    v.remove(0)
}

/// (subjectKeyIdentifier, authorityKeyIdentifier) of a certificate.
fn key_ids(der: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (_, c) = X509Certificate::from_der(der).expect("a certificate");
    let (mut ski, mut aki) = (None, None);
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => {}
        }
    }
    (ski, aki)
}

/// `openssl verify -CAfile ROOT -untrusted UNTRUSTED -purpose sslserver LEAF`.
fn openssl_verify(dir: &Path, root: &Path, untrusted: &Path, leaf: &Path) -> (bool, String) {
    let (good, out, err) = try_openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            path_str(root),
            "-untrusted",
            path_str(untrusted),
            "-purpose",
            "sslserver",
            path_str(leaf),
        ],
    );
    (
        good && out.trim_end().ends_with(": OK"),
        format!("{out}{err}"),
    )
}

/// rustls-webpki: the leaf for serverAuth and `name`, the root as the only anchor,
/// `intermediates` as the untrusted pool. webpki applies the EKU policy to every certificate of
/// the path, and the intermediate rightly has no EKU, so the policy is "serverAuth if an EKU is
/// present"; the leaf's own EKU is then required to list serverAuth.
fn webpki_verify(
    root: &[u8],
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    name: &str,
) -> Result<(), String> {
    let root = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root).map_err(|e| format!("anchor: {e:?}"))?;
    let leaf = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf).map_err(|e| format!("leaf: {e:?}"))?;
    let pool: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &pool,
        UnixTime::now(),
        webpki::KeyUsage::required_if_present(SERVER_AUTH),
        None,
        None,
    )
    .map_err(|e| format!("chain: {e:?}"))?;
    let (_, parsed) = X509Certificate::from_der(&leaf).map_err(|e| format!("leaf: {e}"))?;
    let eku = parsed
        .extended_key_usage()
        .map_err(|e| format!("leaf EKU: {e}"))?
        .ok_or("the leaf has no extended key usage")?;
    if !eku.value.server_auth {
        return Err("the leaf's extended key usage lacks serverAuth".into());
    }
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| format!("{e:?}"))?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|e| format!("name {name}: {e:?}"))
}

/// A fresh 128-bit request ID as 32 hex digits (unique within the test process).
fn fresh_request_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = u128::from(N.fetch_add(1, Ordering::Relaxed));
    format!(
        "{:032x}",
        (nanos ^ (n << 100) ^ (u128::from(std::process::id()) << 64)) | (1 << 127)
    )
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    rfc3339(secs as i64)
}

/// A request document as `docs/bundle-format.md` describes it, written by hand.
fn request_plaintext(request_id: &str, reply_to: &str, cn: &str, csr_pem: &str) -> String {
    format!(
        "PKI-BUNDLE v1\nkind: intermediate-request\nrequest-id: {request_id}\ncreated: {}\nreply-to: {reply_to}\nsubject: CN={cn}\n\n{csr_pem}",
        now_rfc3339()
    )
}

/// A response document written by hand: the intermediate, then the root.
fn response_plaintext(request_id: &str, intermediate_pem: &str, root_pem: &str) -> String {
    format!(
        "PKI-BUNDLE v1\nkind: intermediate-response\nrequest-id: {request_id}\ncreated: {}\n\n{intermediate_pem}{root_pem}",
        now_rfc3339()
    )
}

/// Every file and folder under `d` (path -> mode, content), the tokens left out (a login
/// rewrites SoftHSM's token file) and the ledger's SQLite files too (compared through
/// `intermediate-ca status --json`, which counts the leaves).
fn snapshot(d: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            if name.starts_with("ledger.sqlite") || (dir == base && name.ends_with("-token")) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                out.insert(rel, (meta.permissions().mode(), b"<dir>".to_vec()));
                walk(base, &path, out);
            } else {
                out.insert(
                    rel,
                    (
                        meta.permissions().mode(),
                        std::fs::read(&path).expect("read"),
                    ),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(d, d, &mut out);
    out
}

fn differences(
    before: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
    after: &BTreeMap<PathBuf, (u32, Vec<u8>)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (p, v) in after {
        match before.get(p) {
            None => out.push(format!("added {}", p.display())),
            Some(old) if old != v => out.push(format!("changed {}", p.display())),
            _ => {}
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push(format!("removed {}", p.display()));
    }
    out
}

/// Runs a command that must be refused: non-zero exit, stderr naming the problem (one of
/// `any_of`, plus every one of `all_of`), and no change at all under the test folder or in
/// `intermediate-ca status`.
fn refused(
    w: &World,
    what: &str,
    any_of: &[&str],
    all_of: &[&str],
    cmd: impl FnOnce() -> Output,
) -> String {
    let before = snapshot(&w.d);
    let status_before = w.status();
    let o = cmd();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "{what}: accepted, expected a refusal\n--- stdout\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        any_of.iter().any(|n| err.contains(n)),
        "{what}: stderr says none of {any_of:?}:\n{err}"
    );
    for n in all_of {
        assert!(err.contains(n), "{what}: stderr lacks '{n}':\n{err}");
    }
    let changes = differences(&before, &snapshot(&w.d));
    assert!(
        changes.is_empty(),
        "{what}: the refusal changed files:\n  {}",
        changes.join("\n  ")
    );
    assert_eq!(
        status_before,
        w.status(),
        "{what}: intermediate-ca status changed"
    );
    err
}

/// Pins a refusal's message as the snapshot `name` (tests/snapshots/NAME.txt).
fn pin_message(w: &World, name: &str, err: &str) {
    assert_snapshot(name, &normalize(err, &[&w.d]));
}

/// An armoured age file with one base64 character of its payload (past the header and the
/// nonce) replaced by another valid base64 character; `frac` picks where in the payload.
fn flip_payload_char(armoured: &str, frac: f64) -> String {
    let lines: Vec<&str> = armoured.lines().collect();
    assert_eq!(lines[0], "-----BEGIN AGE ENCRYPTED FILE-----");
    assert_eq!(*lines.last().unwrap(), "-----END AGE ENCRYPTED FILE-----");
    let body: String = lines[1..lines.len() - 1].concat();
    let bin = base64_decode(&body);
    assert!(bin.starts_with(b"age-encryption.org/v1\n"));
    let mac = bin
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("header MAC line");
    let header_end = mac + 1 + bin[mac + 1..].iter().position(|b| *b == b'\n').unwrap() + 1;
    let payload = header_end + 16; // after the STREAM nonce
    let off = payload + ((bin.len() - payload - 1) as f64 * frac) as usize;
    // The first character of the 4-character group holding byte `off` carries 6 of its bits.
    let ci = off / 3 * 4;
    let (li, col) = (1 + ci / 64, ci % 64);
    let mut chars: Vec<u8> = lines[li].as_bytes().to_vec();
    let pos = B64.iter().position(|c| *c == chars[col]).expect("base64");
    chars[col] = B64[(pos + 17) % 64];
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    out[li] = String::from_utf8(chars).unwrap();
    out.join("\n") + "\n"
}

fn generation(status: &Value, id: u64) -> &Value {
    status["generations"]
        .as_array()
        .expect("generations")
        .iter()
        .find(|g| g["generation"] == id)
        .unwrap_or_else(|| panic!("no generation {id} in {status}"))
}

// ------------------------------------------------------------------------------ 1. journey

/// request -> root sign ceremony -> install pinned to the root -> issue -> OpenSSL and webpki
/// accept the leaf against the root alone; then a rotation: generation 2 is staged while
/// generation 1 keeps issuing, and after its install new leaves chain through it.
#[test]
fn enrol_issue_and_rotate_against_a_softhsm_root() {
    let w = World::new();
    let root = w.root("root", "Enrolment Test Root");
    let root_fp = root.fingerprint();
    let root_der = one_cert(&root.cert());

    // The online side asks; the request is for the root only.
    let req1 = w.request(&root, "request-1.age");
    assert_eq!(req1.generation, 1);
    assert!(w
        .read("request-1.age")
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
    let err = w
        .age_decrypt(&w.identity, "request-1.age")
        .expect_err("the request is encrypted to the root, not to the requester");
    assert!(err.contains("no identity matched"), "{err}");
    // The fingerprint read out is the SHA-256 of the staged CSR's public key.
    assert_eq!(
        req1.key_fp,
        spki_fingerprint(&w.d, "req", &w.path("ica/generations/1/request.csr"))
    );
    let st = w.status();
    assert_eq!(st["active"], Value::Null, "{st}");
    assert_eq!(generation(&st, 1)["active"], false);
    assert!(!w.path("ica/generations/1/intermediate.crt").exists());

    // Root ceremony 2, then the install pinned to the fingerprint OpenSSL computes.
    let out = ok(root.sign_bundle(
        "sign-1.toml",
        "request-1.age",
        &req1.key_fp,
        "response-1.age",
    ));
    assert!(out.contains(&req1.id), "{out}");
    let out = w.install("response-1.age", &root_fp);
    assert!(out.contains("installed generation 1"), "{out}");

    let st = w.status();
    assert_eq!(st["active"], 1, "{st}");
    let g1 = generation(&st, 1);
    assert_eq!(g1["active"], true, "{st}");
    let gen1_crt = w.path("ica/generations/1/intermediate.crt");
    assert_eq!(g1["fingerprint"], openssl_fingerprint(&w.d, &gen1_crt));
    assert_eq!(
        spki_fingerprint(&w.d, "x509", &gen1_crt),
        req1.key_fp,
        "the installed certificate is for the key read out at the ceremony"
    );
    assert_eq!(
        one_cert(&w.path("ica/root.crt")),
        root_der,
        "the pinned root is the root"
    );
    let gen1_der = one_cert(&gen1_crt);

    // A server leaf: OpenSSL and rustls-webpki, anchored at the root alone.
    let leaf1 = w.issue_server("etcd-1", "leaf-1");
    let (good, msg) = openssl_verify(&w.d, &root.cert(), &leaf1, &leaf1);
    assert!(good, "openssl verify: {msg}");
    let chain1 = cert_ders(&leaf1);
    assert_eq!(chain1.len(), 2, "leaf then intermediate");
    assert_eq!(chain1[1], gen1_der);
    webpki_verify(
        &root_der,
        &chain1[0],
        &chain1[1..],
        "etcd-1.example.internal",
    )
    .expect("webpki accepts the leaf with the root as the only anchor");
    assert!(
        webpki_verify(&root_der, &chain1[0], &[], "etcd-1.example.internal").is_err(),
        "without the intermediate the leaf does not chain to the root"
    );

    // Rotation: a second request stages generation 2 and disturbs nothing of generation 1.
    let gen1_files: Vec<_> = ["intermediate.crt", "intermediate.key.age", "request.csr"]
        .iter()
        .map(|f| std::fs::read(w.path(&format!("ica/generations/1/{f}"))).unwrap())
        .collect();
    let stdout = ok(w.ica(&[
        "request",
        "--dir",
        "ica",
        "--to-file",
        "root/transport.recipient",
        "--out",
        "request-2.age",
        "--identity",
        path_str(&w.identity),
    ]));
    assert!(stdout.contains("generation 1 stays active"), "{stdout}");
    let req2 = parse_request(&stdout);
    assert_eq!(req2.generation, 2);
    assert_ne!(req2.id, req1.id);
    assert_ne!(req2.key_fp, req1.key_fp, "a rotation makes a new key");
    let st = w.status();
    assert_eq!(st["active"], 1, "{st}");
    assert_eq!(generation(&st, 1)["active"], true);
    assert_eq!(generation(&st, 2)["active"], false);
    assert_eq!(generation(&st, 2)["fingerprint"], Value::Null, "{st}");
    assert!(w.path("ica/generations/2/request.csr").exists());
    assert!(!w.path("ica/generations/2/intermediate.crt").exists());
    let gen1_after: Vec<_> = ["intermediate.crt", "intermediate.key.age", "request.csr"]
        .iter()
        .map(|f| std::fs::read(w.path(&format!("ica/generations/1/{f}"))).unwrap())
        .collect();
    assert_eq!(gen1_files, gen1_after, "staging touched generation 1");

    // While generation 2 waits, generation 1 keeps issuing.
    let staged_leaf = w.issue_server("etcd-2", "leaf-staged");
    let staged_chain = cert_ders(&staged_leaf);
    assert_eq!(
        staged_chain[1], gen1_der,
        "issued by generation 1's certificate"
    );
    assert_eq!(key_ids(&staged_chain[0]).1, key_ids(&gen1_der).0);
    assert_eq!(w.ledger_row("etcd-2")["generation"], 1);
    let (good, msg) = openssl_verify(&w.d, &root.cert(), &gen1_crt, &staged_leaf);
    assert!(good, "{msg}");

    // Sign and install generation 2: it becomes the active one.
    ok(root.sign_bundle(
        "sign-2.toml",
        "request-2.age",
        &req2.key_fp,
        "response-2.age",
    ));
    let out = w.install("response-2.age", &root_fp);
    assert!(out.contains("installed generation 2"), "{out}");
    let st = w.status();
    assert_eq!(st["active"], 2, "{st}");
    assert_eq!(generation(&st, 1)["active"], false);
    assert_eq!(generation(&st, 2)["active"], true);
    let gen2_crt = w.path("ica/generations/2/intermediate.crt");
    let gen2_der = one_cert(&gen2_crt);
    assert_ne!(gen2_der, gen1_der);
    assert_eq!(
        generation(&st, 2)["fingerprint"],
        openssl_fingerprint(&w.d, &gen2_crt)
    );
    assert_eq!(spki_fingerprint(&w.d, "x509", &gen2_crt), req2.key_fp);

    // New leaves chain through the new intermediate, and only through it.
    let leaf2 = w.issue_server("etcd-3", "leaf-2");
    let chain2 = cert_ders(&leaf2);
    assert_eq!(chain2.len(), 2);
    assert_eq!(chain2[1], gen2_der);
    assert_eq!(key_ids(&chain2[0]).1, key_ids(&gen2_der).0);
    assert_eq!(w.ledger_row("etcd-3")["generation"], 2);
    let (good, msg) = openssl_verify(&w.d, &root.cert(), &leaf2, &leaf2);
    assert!(good, "{msg}");
    let (good, _) = openssl_verify(&w.d, &root.cert(), &gen1_crt, &leaf2);
    assert!(
        !good,
        "a generation 2 leaf must not verify through generation 1"
    );
    webpki_verify(
        &root_der,
        &chain2[0],
        &chain2[1..],
        "etcd-3.example.internal",
    )
    .expect("webpki accepts the generation 2 leaf");
    assert!(webpki_verify(
        &root_der,
        &chain2[0],
        std::slice::from_ref(&gen1_der),
        "etcd-3.example.internal"
    )
    .is_err());
    // Nothing was revoked: the older leaves still verify.
    let (good, msg) = openssl_verify(&w.d, &root.cert(), &leaf1, &leaf1);
    assert!(good, "{msg}");
    assert_eq!(
        cert_ders(&w.path("ica/root.crt")),
        vec![root_der],
        "same pinned root"
    );
}

// ------------------------------------------------------------------------------ 2. age CLI

/// Our bundles open with `age -d`, and bundles written by the `age` CLI open with our tools:
/// a response re-encrypted by the CLI installs, and a hand-written request encrypted by the
/// CLI to the root's transport recipient is signed, its response readable by `age -d` with the
/// identity (from `age-keygen`) behind its reply-to recipient.
#[test]
fn bundles_interoperate_with_the_age_cli() {
    let w = World::new();
    let root = w.root("root", "Interop Root");
    let root_fp = root.fingerprint();
    let root_der = one_cert(&root.cert());

    // The identity file of `new-identity` is one the age tools read.
    let (good, out, err) = sh(&w.d, "age-keygen", &["-y", path_str(&w.identity)]);
    assert!(good, "{err}");
    assert_eq!(out.trim(), w.recipient);

    let req = w.request(&root, "request.age");
    ok(root.sign_bundle("sign.toml", "request.age", &req.key_fp, "response.age"));

    // (a) the stock CLI decrypts our response.
    let plain = w
        .age_decrypt(&w.identity, "response.age")
        .expect("age -d reads the response bundle");
    assert!(plain.starts_with("PKI-BUNDLE v1\n"), "{plain}");
    assert!(plain.contains("\nkind: intermediate-response\n"), "{plain}");
    assert!(
        plain.contains(&format!("\nrequest-id: {}\n", req.id)),
        "{plain}"
    );
    let certs = cert_ders_of(&plain);
    assert_eq!(certs.len(), 2, "intermediate and root: {plain}");
    assert_eq!(certs[1], root_der);

    // (b) the same document, re-encrypted by the CLI, is what we install.
    w.age_encrypt(&w.recipient, &plain, "response.txt", "response-cli.age");
    assert_ne!(w.read("response-cli.age"), w.read("response.age"));
    let out = w.install("response-cli.age", &root_fp);
    assert!(out.contains("installed generation 1"), "{out}");
    assert_eq!(w.status()["active"], 1);
    assert_eq!(
        one_cert(&w.path("ica/generations/1/intermediate.crt")),
        certs[0],
        "the certificate installed is the one in the CLI-encrypted bundle"
    );
    let leaf = w.issue_server("etcd-1", "leaf");
    let (good, msg) = openssl_verify(&w.d, &root.cert(), &leaf, &leaf);
    assert!(good, "{msg}");

    // (c) a request written by hand around an OpenSSL CSR, encrypted by the CLI to the root.
    let (good, _, err) = sh(&w.d, "age-keygen", &["-o", "requester-identity.txt"]);
    assert!(good, "{err}");
    let (good, reply_to, err) = sh(&w.d, "age-keygen", &["-y", "requester-identity.txt"]);
    assert!(good, "{err}");
    let reply_to = reply_to.trim().to_string();
    let csr = w.openssl_csr("hand", "Hand-made Intermediate CA");
    let csr_pem = std::fs::read_to_string(&csr).unwrap();
    let hand_id = fresh_request_id();
    w.age_encrypt(
        &root.recipient(),
        &request_plaintext(&hand_id, &reply_to, "Hand-made Intermediate CA", &csr_pem),
        "hand-request.txt",
        "hand-request.age",
    );
    let hand_fp = spki_fingerprint(&w.d, "req", &csr);
    let out = ok(root.sign_bundle(
        "sign-hand.toml",
        "hand-request.age",
        &hand_fp,
        "hand-response.age",
    ));
    assert!(out.contains(&hand_id), "{out}");
    assert!(out.contains(&reply_to), "{out}");

    // The response goes to the reply-to recipient only.
    assert!(w.age_decrypt(&w.identity, "hand-response.age").is_err());
    let plain = w
        .age_decrypt(&w.path("requester-identity.txt"), "hand-response.age")
        .expect("age -d with the reply-to identity");
    assert!(plain.starts_with("PKI-BUNDLE v1\n"), "{plain}");
    assert!(plain.contains("\nkind: intermediate-response\n"), "{plain}");
    assert!(
        plain.contains(&format!("\nrequest-id: {hand_id}\n")),
        "{plain}"
    );
    let certs = cert_ders_of(&plain);
    assert_eq!(certs.len(), 2, "{plain}");
    assert_eq!(certs[1], root_der);
    let int = w.write(
        "hand-intermediate.crt",
        &e2e_tests::openssl::pem_encode("CERTIFICATE", &certs[0]),
    );
    assert_eq!(spki_fingerprint(&w.d, "x509", &int), hand_fp);
    let subject = openssl(
        &w.d,
        &["x509", "-in", "hand-intermediate.crt", "-noout", "-subject"],
    );
    assert!(subject.contains("Hand-made Intermediate CA"), "{subject}");
    let (good, out, err) = try_openssl(
        &w.d,
        &[
            "verify",
            "-CAfile",
            path_str(&root.cert()),
            "hand-intermediate.crt",
        ],
    );
    assert!(good, "{out}{err}");
}

// ------------------------------------------------------------------------------ 3. bad input

/// Every kind of bad bundle is refused, says what is wrong, and changes nothing: not the CA
/// folder (ca.toml, generations, their files), not the root folder, no output file. The
/// folder has generation 1 active and generation 2 staged, as during a rotation; after all
/// the refusals the genuine response still installs.
#[test]
fn bad_bundles_are_refused_with_their_reason_and_change_nothing() {
    let w = World::new();
    let root = w.root("root", "Pinned Root");
    let other = w.root("other-root", "Some Other Root");
    let root_fp = root.fingerprint();
    let other_fp = other.fingerprint();
    assert_ne!(root_fp, other_fp);
    let root_pem = w.read("root/root.crt");
    let other_pem = w.read("other-root/root.crt");

    let req1 = w.request(&root, "request-1.age");
    ok(root.sign_bundle(
        "sign-1.toml",
        "request-1.age",
        &req1.key_fp,
        "response-1.age",
    ));
    w.install("response-1.age", &root_fp);
    let req2 = w.request(&root, "request-2.age");
    ok(root.sign_bundle(
        "sign-2.toml",
        "request-2.age",
        &req2.key_fp,
        "response-2.age",
    ));
    let response = w.read("response-2.age");
    let plain = w
        .age_decrypt(&w.identity, "response-2.age")
        .expect("age -d");
    let staged_csr = w.read("ica/generations/2/request.csr");
    let wr: &World = &w;
    let install = move |file: &str, fp: &str| {
        let (file, fp) = (file.to_string(), fp.to_string());
        move || wr.install_with(&file, &fp, &wr.identity)
    };

    // Addressed to another recipient: install with a different identity.
    ok(w.ica(&["new-identity", "stranger-identity.txt"]));
    let stranger = w.path("stranger-identity.txt");
    let err = refused(&w, "other recipient", &["another recipient"], &[], || {
        w.install_with("response-2.age", &root_fp, &stranger)
    });
    pin_message(&w, "error-intermediate-ca-install-other-recipient", &err);

    // Truncated: cut in half, cut at a line boundary, the end marker lost, and a binary
    // (unarmoured) age file cut in half.
    w.write("half.age", &response[..response.len() / 2]);
    let lines: Vec<&str> = response.lines().collect();
    w.write(
        "half-lines.age",
        &(lines[..lines.len() / 2].join("\n") + "\n"),
    );
    w.write("no-end.age", &(lines[..lines.len() - 1].join("\n") + "\n"));
    for f in ["half.age", "half-lines.age", "no-end.age"] {
        let err = refused(&w, f, &["truncated", "damaged"], &[], install(f, &root_fp));
        if f == "half-lines.age" {
            pin_message(&w, "error-intermediate-ca-install-truncated", &err);
        }
    }
    w.write("plain-2.txt", &plain);
    let (good, _, err) = sh(
        &w.d,
        "age",
        &["-r", &w.recipient, "-o", "binary.age", "plain-2.txt"],
    );
    assert!(good, "{err}");
    let bin = std::fs::read(w.path("binary.age")).unwrap();
    std::fs::write(w.path("binary-half.age"), &bin[..bin.len() / 2]).unwrap();
    refused(
        &w,
        "binary cut in half",
        &["truncated", "damaged"],
        &[],
        install("binary-half.age", &root_fp),
    );

    // One base64 character of the armoured payload changed to another valid one.
    for (i, frac) in [0.0, 0.3, 0.5, 0.9, 1.0].into_iter().enumerate() {
        let f = format!("flipped-{i}.age");
        let flipped = flip_payload_char(&response, frac);
        assert_eq!(flipped.len(), response.len());
        assert_eq!(
            flipped
                .bytes()
                .zip(response.bytes())
                .filter(|(a, b)| a != b)
                .count(),
            1
        );
        w.write(&f, &flipped);
        let before = snapshot(&w.d);
        let o = w.install_with(&f, &root_fp, &w.identity);
        let err = fails_with(o, "ask for it again");
        assert!(
            err.contains("tampered") || err.contains("damaged"),
            "{f}: {err}"
        );
        assert!(
            !err.contains("another recipient") && !err.contains("truncated"),
            "{f}: a flipped payload byte is neither mis-addressed nor truncated: {err}"
        );
        assert!(differences(&before, &snapshot(&w.d)).is_empty(), "{f}");
        if i == 2 {
            pin_message(&w, "error-intermediate-ca-install-flipped-byte", &err);
        }
    }
    // Data appended after the end marker: damaged, not truncated.
    w.write(
        "trailing.age",
        &format!("{response}appended by a mail client\n"),
    );
    refused(
        &w,
        "trailing data",
        &["damaged"],
        &[],
        install("trailing.age", &root_fp),
    );
    let o = w.install_with("trailing.age", &root_fp, &w.identity);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("truncated"), "{err}");

    // Not age at all: a certificate, a text file.
    w.write("notes.txt", "the response will follow by post\n");
    for f in ["root/root.crt", "notes.txt"] {
        let err = refused(
            &w,
            f,
            &["not an age-encrypted bundle"],
            &[],
            install(f, &root_fp),
        );
        if f == "notes.txt" {
            pin_message(&w, "error-intermediate-ca-install-not-age", &err);
        }
    }

    // A response fed to the root's sign ceremony (encrypted to the root by the age CLI, so
    // the root can open it and see its kind).
    w.age_encrypt(
        &root.recipient(),
        &plain,
        "resp-for-root.txt",
        "resp-for-root.age",
    );
    let sign_wrong = root.sign_file(
        "sign-wrong-kind.toml",
        &format!(
            "bundle = \"resp-for-root.age\"\nkey-fingerprint = \"{}\"",
            req2.key_fp
        ),
        "response = \"never-written.age\"",
    );
    let err = refused(
        &w,
        "response fed to root-ca sign",
        &["this is an intermediate-response bundle, but an intermediate-request bundle is needed"],
        &[],
        || root.ceremony("sign", &sign_wrong),
    );
    pin_message(&w, "error-root-ca-sign-response-fed", &err);
    assert!(!w.path("never-written.age").exists());

    // A request fed to install (encrypted to the online identity by the age CLI).
    w.age_encrypt(
        &w.recipient,
        &request_plaintext(&req2.id, &w.recipient, "etcd intermediate CA", &staged_csr),
        "req-for-ica.txt",
        "req-for-ica.age",
    );
    let err = refused(
        &w,
        "request fed to install",
        &["this is an intermediate-request bundle, but an intermediate-response bundle is needed"],
        &[],
        install("req-for-ica.age", &root_fp),
    );
    pin_message(&w, "error-intermediate-ca-install-wrong-kind", &err);

    // A certificate for another key: the root signs an unrelated CSR, and it comes back in a
    // response carrying the staged request's ID.
    let csr = w.openssl_csr("unrelated", "etcd intermediate CA");
    let unrelated_fp = spki_fingerprint(&w.d, "req", &csr);
    ok(root.sign_csr(
        "sign-unrelated.toml",
        "unrelated.csr",
        &unrelated_fp,
        "unrelated.crt",
    ));
    w.age_encrypt(
        &w.recipient,
        &response_plaintext(&req2.id, &w.read("unrelated.crt"), &root_pem),
        "another-key.txt",
        "another-key.age",
    );
    let err = refused(
        &w,
        "certificate for another key",
        &["another key"],
        &[],
        install("another-key.age", &root_fp),
    );
    pin_message(&w, "error-intermediate-ca-install-another-key", &err);

    // Another root: a second root (own token, own folder) signs the staged CSR itself.
    ok(other.sign_csr(
        "sign-other-root.toml",
        "ica/generations/2/request.csr",
        &req2.key_fp,
        "other-root-intermediate.crt",
    ));
    w.age_encrypt(
        &w.recipient,
        &response_plaintext(&req2.id, &w.read("other-root-intermediate.crt"), &other_pem),
        "other-root.txt",
        "other-root.age",
    );
    refused(
        &w,
        "response from another root",
        &["not the pinned"],
        &[&other_fp, &root_fp],
        install("other-root.age", &root_fp),
    );
    // Pinning the other root's fingerprint does not help: the folder is pinned already.
    refused(
        &w,
        "response from another root, its own fingerprint given",
        &["pinned to root"],
        &[],
        install("other-root.age", &other_fp),
    );
    // The genuine response with a wrong pin.
    let err = refused(
        &w,
        "genuine response, wrong pin",
        &["not the pinned"],
        &[],
        install("response-2.age", &other_fp),
    );
    pin_message(&w, "error-intermediate-ca-install-other-root", &err);

    // A response to another request: the previous generation's response replayed, and the
    // current one with its request ID changed.
    refused(
        &w,
        "replayed response of generation 1",
        &["another request"],
        &["staged request", &req2.id, &req1.id],
        install("response-1.age", &root_fp),
    );
    let foreign_id = fresh_request_id();
    w.age_encrypt(
        &w.recipient,
        &plain.replace(&req2.id, &foreign_id),
        "foreign-id.txt",
        "foreign-id.age",
    );
    let err = refused(
        &w,
        "response with another request ID",
        &["another request"],
        &["staged request", &foreign_id],
        install("foreign-id.age", &root_fp),
    );
    pin_message(&w, "error-intermediate-ca-install-request-id", &err);

    // None of that disturbed the staged request: the genuine response installs.
    let out = w.install("response-2.age", &root_fp);
    assert!(out.contains("installed generation 2"), "{out}");
    let st = w.status();
    assert_eq!(st["active"], 2, "{st}");
    let leaf = w.issue_server("etcd-1", "leaf");
    let (good, msg) = openssl_verify(&w.d, &root.cert(), &leaf, &leaf);
    assert!(good, "{msg}");
    // ...and, once installed, cannot be installed again.
    refused(
        &w,
        "response installed twice",
        &["no request is waiting"],
        &[],
        install("response-2.age", &root_fp),
    );
}

// ------------------------------------------------------------------------------ 4. rehearsal

/// `softhsm/rehearse.sh` twice into fresh folders: two independent PKIs, each verifying with
/// OpenSSL against its own root only, and each OUT/env enough to go on working.
#[test]
fn rehearse_twice_gives_two_independent_pkis() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let d = tmp.path();
    // The first is the process's shared rehearsal (read only here), the second a fresh one.
    let first = rehearsal().to_str().unwrap().to_string();
    let second = d.join("second").to_str().unwrap().to_string();
    rehearse(Path::new(&second));
    let (first, second) = (first.as_str(), second.as_str());
    let root = |n: &str| d.join(n).join("root/root.crt");
    assert_ne!(
        openssl_fingerprint(d, &root(first)),
        openssl_fingerprint(d, &root(second)),
        "two rehearsals, two roots"
    );
    let recipient =
        |n: &str| std::fs::read_to_string(d.join(n).join("root/transport.recipient")).unwrap();
    assert_ne!(recipient(first), recipient(second));

    let leaves = |n: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d.join(n).join("etcd/nodes"))
            .expect("etcd/nodes")
            .flatten()
            .map(|e| e.path().join("server.crt"))
            .collect();
        v.sort();
        v
    };
    for (own, foreign) in [(first, second), (second, first)] {
        let mine = leaves(own);
        assert_eq!(mine.len(), 3, "{mine:?}");
        for leaf in &mine {
            let (good, msg) = openssl_verify(d, &root(own), leaf, leaf);
            assert!(good, "{}: {msg}", leaf.display());
            let (good, _) = openssl_verify(d, &root(foreign), leaf, leaf);
            assert!(
                !good,
                "{} verifies against the other rehearsal's root",
                leaf.display()
            );
        }
        // OUT/env is all it takes to go on working on OUT.
        let (good, out, err) = sh(
            d,
            "bash",
            &[
                "-c",
                &format!(". {own}/env && issuer list --ca {own}/intermediate"),
            ],
        );
        assert!(good, "issuer list via {own}/env: {err}");
        for member in ["etcd-1", "etcd-2", "etcd-3"] {
            assert!(out.contains(member), "{out}");
        }
        let (good, out, err) = sh(
            d,
            "bash",
            &[
                "-c",
                &format!(". {own}/env && intermediate-ca status --dir {own}/intermediate --json"),
            ],
        );
        assert!(good, "{err}");
        let st: Value = serde_json::from_str(&out).expect("status json");
        assert_eq!(st["active"], 1, "{st}");
    }
}
