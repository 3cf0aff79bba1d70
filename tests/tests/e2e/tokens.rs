//! The root ceremonies on PKCS#11 tokens other than SoftHSM2 (whose suites are
//! `root_ceremonies`, `custody`, `rollover`, `token_intermediate`): a TPM 2.0 through
//! tpm2-pkcs11 on a software TPM, and opencryptoki's soft token. One test per token runs every
//! ceremony the capability check says it supports and checks that it refuses the others
//! before generating anything (the token's objects listed before and after); every
//! certificate and CRL is verified by openssl. Refusals that need a token without some
//! mechanism run on SoftHSM2 with mechanisms switched off in its configuration.

use std::path::{Path, PathBuf};
use std::process::Output;

use e2e_tests::fixture::{softhsm_token, tool};
use e2e_tests::tokens::TestToken;

struct Drill<'a> {
    t: &'a TestToken,
    d: PathBuf,
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "failed:\n{}", text(&o));
    text(&o)
}

#[track_caller]
fn refused(o: Output, needle: &str) -> String {
    let t = text(&o);
    assert!(
        !o.status.success(),
        "expected a refusal containing {needle:?}:\n{t}"
    );
    assert!(t.contains(needle), "expected {needle:?} in:\n{t}");
    t
}

impl<'a> Drill<'a> {
    fn path(&self, rel: &str) -> String {
        self.d.join(rel).display().to_string()
    }

    fn write(&self, rel: &str, body: &str) -> String {
        std::fs::write(self.d.join(rel), body).unwrap();
        rel.to_string()
    }

    fn token_section(&self, key_label: &str) -> String {
        format!(
            "[token]\nmodule = \"{}\"\ntoken-label = \"{}\"\nkey-label = \"{key_label}\"\n",
            self.t.module.display(),
            self.t.label
        )
    }

    fn run(&self, bin: &str, args: &[&str]) -> Output {
        let mut c = self.t.command(tool(bin));
        c.args(args)
            .current_dir(&self.d)
            .env("PKI_AGE_IDENTITY", self.d.join("id.txt"))
            .env("PKI_TOKEN_PIN_FILE", &self.t.pin_file);
        c.output().unwrap()
    }

    fn root_ca(&self, args: &[&str]) -> Output {
        self.run("root-ca", args)
    }

    fn pin(&self) -> String {
        self.t.pin_file.display().to_string()
    }

    fn openssl(&self, args: &[&str]) -> (bool, String) {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&self.d)
            .output()
            .unwrap();
        (o.status.success(), text(&o))
    }

    fn init_file(&self, name: &str, key_label: &str, alg: &str, dir: &str, backup: bool) -> String {
        self.write(
            name,
            &format!(
                "allow-network = true\n{}[key]\nalgorithm = \"{alg}\"\nbackup = {backup}\n[root]\ncommon-name = \"{} {alg} root {key_label}\"\npath-length = 2\n[output]\ndir = \"{dir}\"\n",
                self.token_section(key_label),
                self.t.name
            ),
        )
    }

    /// `root-ca init` of a root in `dir`; checks it with openssl and the log's attributes.
    fn init(&self, key_label: &str, alg: &str, dir: &str) -> String {
        let f = self.init_file(&format!("init-{dir}.toml"), key_label, alg, dir, false);
        let out = ok(self.root_ca(&["init", &f, "--pin-file", &self.pin()]));
        let cert = format!("{dir}/root.crt");
        let (good, v) = self.openssl(&["verify", "-x509_strict", "-CAfile", &cert, &cert]);
        assert!(good, "openssl verify of the {alg} root: {v}");
        let log = std::fs::read_to_string(self.d.join(dir).join("ceremony.log")).unwrap();
        let generated: serde_json::Value = log
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["op"] == "key-generated")
            .expect("key-generated record");
        let a = &generated["attributes"];
        assert_eq!(a["sensitive"], true, "{generated}");
        assert_eq!(a["never_extractable"], true, "{generated}");
        assert_eq!(a["extractable"], false, "{generated}");
        assert!(
            a["template"] == "strict" || a["template"] == "portable",
            "{generated}"
        );
        out
    }

    /// `intermediate-ca request` into `ica` (extra arguments: a token key) + `root-ca sign` of
    /// the request bundle + `intermediate-ca install`; returns the intermediate's file.
    fn intermediate(&self, ica: &str, extra: &[&str]) -> String {
        let req = format!("{ica}-request.age");
        let mut args = vec![
            "request",
            "--dir",
            ica,
            "--to-file",
            "root/transport.recipient",
            "--out",
            &req,
            "--cn",
        ];
        let cn = format!("{} intermediate {ica}", self.t.name);
        args.push(&cn);
        args.extend_from_slice(extra);
        let out = ok(self.run("intermediate-ca", &args));
        let fp = out
            .lines()
            .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
            .expect("fingerprint line")
            .to_string();
        let cert = format!("{ica}.crt");
        let sign = self.write(
            &format!("sign-{ica}.toml"),
            &format!(
                "allow-network = true\nroot-dir = \"root\"\n{}[request]\nbundle = \"{req}\"\nkey-fingerprint = \"{fp}\"\n[output]\nresponse = \"{ica}-response.age\"\ncertificate = \"{cert}\"\n",
                self.token_section("root")
            ),
        );
        ok(self.root_ca(&["sign", &sign, "--pin-file", &self.pin()]));
        let (_, fpr) = self.openssl(&[
            "x509",
            "-in",
            "root/root.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        let fpr = fpr.trim().split('=').nth(1).unwrap().to_string();
        let resp = format!("{ica}-response.age");
        ok(self.run(
            "intermediate-ca",
            &["install", "--dir", ica, "--root-fingerprint", &fpr, &resp],
        ));
        let (good, v) =
            self.openssl(&["verify", "-x509_strict", "-CAfile", "root/root.crt", &cert]);
        assert!(good, "openssl verify of {cert}: {v}");
        cert
    }

    fn crl(&self, out: &str) -> String {
        let f = self.write(
            &format!("crl-{out}.toml"),
            &format!(
                "allow-network = true\nroot-dir = \"root\"\n{}[output]\ncrl = \"{out}\"\n",
                self.token_section("root")
            ),
        );
        ok(self.root_ca(&["crl", &f, "--pin-file", &self.pin()]));
        let (good, v) = self.openssl(&[
            "crl",
            "-in",
            out,
            "-CAfile",
            "root/root.crt",
            "-noout",
            "-text",
        ]);
        assert!(good && v.contains("verify OK"), "openssl crl {out}: {v}");
        v
    }

    fn serial(&self, cert: &str) -> String {
        let (_, s) = self.openssl(&["x509", "-in", cert, "-noout", "-serial"]);
        s.trim().trim_start_matches("serial=").to_uppercase()
    }
}

/// Every ceremony on `t`: `algs` are the root key algorithms to init (the first is the root
/// the rest uses), `token_key` the intermediate key made in the token, `custody` whether the
/// token takes the custody PIN.
fn drill(t: &TestToken, d: &Path, algs: &[&str], token_key: &str, custody: bool) {
    let dr = Drill {
        t,
        d: d.to_path_buf(),
    };
    ok(dr.run("intermediate-ca", &["new-identity", "id.txt"]));

    // The capability check, before anything exists in the token.
    let before = t.objects();
    let check_file = dr.init_file("check.toml", "root", algs[0], "root", false);
    let table = ok(dr.root_ca(&["token", "check", &check_file, "--pin-file", &dr.pin()]));
    eprintln!("root-ca token check on {}:\n{table}", t.name);
    let row = |prefix: &str| {
        table
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix:?} in:\n{table}"))
            .to_string()
    };
    assert!(row("init: ").contains("  yes  "), "{table}");
    assert!(
        row("init: seal").contains("token-rsa-oaep-sha256+aes-256-gcm"),
        "{table}"
    );
    assert_eq!(row("custody split").contains("  yes  "), custody, "{table}");
    assert!(row("backup:").contains("  NO  "), "{table}");
    assert_eq!(
        t.objects(),
        before,
        "the capability check left objects in the token"
    );

    // A backup key is refused before anything is generated: the token has no trusted wrap.
    let bk = dr.init_file("init-backup.toml", "root-bk", algs[0], "root-bk", true);
    refused(
        dr.root_ca(&["init", &bk, "--pin-file", &dr.pin()]),
        "cannot hold a root key that can be backed up",
    );
    assert_eq!(
        t.objects(),
        before,
        "a refused backup init changed the token"
    );
    assert!(!d.join("root-bk").exists());

    // Roots: the first is the one the rest uses.
    dr.init("root", algs[0], "root");
    for (i, alg) in algs.iter().enumerate().skip(1) {
        dr.init(&format!("root-{alg}"), alg, &format!("root-{i}"));
    }
    // Intermediates: a file key, and a key generated in the token.
    let int1 = dr.intermediate("ica", &[]);
    let pin = dr.pin();
    let int2 = dr.intermediate(
        "ica-token",
        &[
            "--key",
            token_key,
            "--pkcs11-module",
            &t.module.display().to_string(),
            "--token",
            &t.label,
            "--key-label",
            "ica-key",
            "--pin-file",
            &pin,
        ],
    );
    // The token-held intermediate key signs a leaf that openssl verifies.
    ok(dr.run(
        "issuer",
        &[
            "issue",
            "client",
            "--ca",
            "ica-token",
            "--out",
            "leaf",
            "--cn",
            "app",
            "--pin-file",
            &pin,
        ],
    ));
    std::fs::write(
        d.join("chain.pem"),
        std::fs::read_to_string(d.join(&int2)).unwrap(),
    )
    .unwrap();
    let leaf = std::fs::read_dir(d.join("leaf"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "crt") && !p.ends_with("ca.crt"))
        .expect("leaf certificate");
    let (good, v) = dr.openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "root/root.crt",
        "-untrusted",
        "chain.pem",
        "-purpose",
        "sslclient",
        leaf.to_str().unwrap(),
    ]);
    assert!(
        good,
        "openssl verify of the leaf signed by the token-held intermediate: {v}"
    );

    // A seal changed on disk (one byte of its ciphertext) is refused by its root signature,
    // before the token decrypts anything; put back, it opens again.
    let sealed = d.join("root/transport.sealed");
    let good_seal = std::fs::read(&sealed).unwrap();
    let mut bad = good_seal.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(&sealed, &bad).unwrap();
    let out = ok(dr.run(
        "intermediate-ca",
        &[
            "request",
            "--dir",
            "ica-t",
            "--to-file",
            "root/transport.recipient",
            "--out",
            "t.age",
        ],
    ));
    let fp = out
        .lines()
        .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
        .unwrap()
        .to_string();
    let sign_t = dr.write(
        "sign-t.toml",
        &format!(
            "allow-network = true\nroot-dir = \"root\"\n{}[request]\nbundle = \"t.age\"\nkey-fingerprint = \"{fp}\"\n[output]\nresponse = \"t-response.age\"\n",
            dr.token_section("root")
        ),
    );
    refused(
        dr.root_ca(&["sign", &sign_t, "--pin-file", &dr.pin(), "--dry-run"]),
        "is not signed by this root's key",
    );
    std::fs::write(&sealed, &good_seal).unwrap();
    ok(dr.root_ca(&["sign", &sign_t, "--pin-file", &dr.pin(), "--dry-run"]));

    // CRL, revoke, CRL listing the serial; the log's chain.
    let first = dr.crl("crl-1.pem");
    let serial = dr.serial(&int1);
    assert!(!first.contains(&serial), "{first}");
    let revoke = dr.write(
        "revoke.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{serial}\"\nreason = \"keyCompromise\"\n"),
    );
    ok(dr.root_ca(&["revoke", &revoke]));
    let second = dr.crl("crl-2.pem");
    assert!(
        second.contains(&serial),
        "the CRL does not list {serial}:\n{second}"
    );
    ok(dr.root_ca(&["log", "verify", "root"]));

    // A second root, later than the first, and the cross certificate new-with-old.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    dr.init("root-b", algs[0], "root-b");
    let cross = dr.write(
        "cross.toml",
        &format!(
            "allow-network = true\ndirection = \"new-with-old\"\nsigner-root-dir = \"root\"\nsubject-root-dir = \"root-b\"\n{}[output]\ncertificate = \"cross.crt\"\n",
            dr.token_section("root")
        ),
    );
    ok(dr.root_ca(&["cross-sign", &cross, "--pin-file", &dr.pin()]));
    let (good, v) = dr.openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "root/root.crt",
        "cross.crt",
    ]);
    assert!(good, "openssl verify of the cross certificate: {v}");

    // Custody: split 2 of 3 where the token takes a 32-character PIN, then a CRL signed with
    // two custodians; refused before anything changes where it does not.
    let mut custody_file = format!(
        "allow-network = true\nroot-dir = \"root\"\nthreshold = 2\n{}",
        dr.token_section("root")
    );
    for n in ["alice", "bob", "carol"] {
        ok(dr.run("intermediate-ca", &["new-identity", &format!("{n}.id")]));
        let id = std::fs::read_to_string(d.join(format!("{n}.id"))).unwrap();
        let recipient = id
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("public key line")
            .to_string();
        custody_file.push_str(&format!(
            "[[custodian]]\nname = \"{n}\"\nrecipient = \"{recipient}\"\n"
        ));
    }
    let custody_file = dr.write("custody.toml", &custody_file);
    let objects = t.objects();
    if custody {
        ok(dr.root_ca(&["custody", "split", &custody_file, "--pin-file", &dr.pin()]));
        let f = dr.write(
            "crl-custody.toml",
            &format!(
                "allow-network = true\nroot-dir = \"root\"\n{}[output]\ncrl = \"crl-3.pem\"\n",
                dr.token_section("root")
            ),
        );
        let (a, b) = (dr.path("alice.id"), dr.path("carol.id"));
        ok(dr.root_ca(&[
            "crl",
            &f,
            "--custodian-identity",
            &a,
            "--custodian-identity",
            &b,
        ]));
        let (good, v) = dr.openssl(&[
            "crl",
            "-in",
            "crl-3.pem",
            "-CAfile",
            "root/root.crt",
            "-noout",
        ]);
        assert!(good, "{v}");
    } else {
        refused(
            dr.root_ca(&["custody", "split", &custody_file, "--pin-file", &dr.pin()]),
            "cannot hold a custody PIN",
        );
        assert_eq!(
            t.objects(),
            objects,
            "a refused custody split changed the token"
        );
        assert!(!d.join("root/custody").exists());
        // The PIN is unchanged: the next ceremony opens the token with it.
        dr.crl("crl-3.pem");
    }
}

#[test]
fn every_root_ceremony_on_a_tpm_through_tpm2_pkcs11() {
    // swtpm takes two loopback ports.
    let _serial = e2e_tests::serial::exclusive();
    let d = tempfile::tempdir().unwrap();
    let t = TestToken::tpm2(d.path(), "root-tpm");
    drill(&t, d.path(), &["p256", "p384"], "p256", true);
}

#[test]
fn every_root_ceremony_on_opencryptoki_soft_token() {
    let d = tempfile::tempdir().unwrap();
    let t = TestToken::opencryptoki(d.path(), "root-ock");
    drill(&t, d.path(), &["rsa3072"], "rsa3072", false);
}

/// A SoftHSM2 token with `disabled` mechanisms switched off (SoftHSM2's `slots.mechanisms`;
/// its parser skips the first entry of a "-" list, hence the placeholder).
fn softhsm_without(dir: &Path, disabled: &[&str]) -> (PathBuf, String) {
    let conf = softhsm_token(&dir.join("tok"));
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "slots.mechanisms = -CKM_NONE,{}\n",
        disabled.join(",")
    ));
    std::fs::write(&conf, text).unwrap();
    (conf, dir.join("tok/user.pin").display().to_string())
}

fn softhsm_objects(conf: &Path, pin_file: &str) -> String {
    let pin = std::fs::read_to_string(pin_file).unwrap();
    let o = std::process::Command::new("pkcs11-tool")
        .args([
            "--module",
            "/usr/lib/softhsm/libsofthsm2.so",
            "--login",
            "--pin",
            pin.trim(),
            "--list-objects",
        ])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_token_that_cannot_seal_or_back_up_is_refused_before_any_key_is_generated() {
    let d = tempfile::tempdir().unwrap();
    let (conf, pin) = softhsm_without(
        d.path(),
        &["CKM_AES_GCM", "CKM_RSA_PKCS_OAEP", "CKM_AES_KEY_WRAP_PAD"],
    );
    let init = |backup: bool| {
        std::fs::write(
            d.path().join("init.toml"),
            format!("allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p256\"\nbackup = {backup}\n[root]\ncommon-name = \"No Seal Root\"\n[output]\ndir = \"root\"\n"),
        )
        .unwrap();
        std::process::Command::new(tool("root-ca"))
            .args(["init", "init.toml", "--pin-file", &pin])
            .current_dir(d.path())
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap()
    };
    let before = softhsm_objects(&conf, &pin);
    let t = refused(init(false), "cannot seal the root's transport identity");
    assert!(
        t.contains("CKM_RSA_PKCS_OAEP") && t.contains("CKM_AES_GCM"),
        "{t}"
    );
    let t = refused(init(true), "nor hold a root key that can be backed up");
    assert!(
        t.contains("cannot seal") && t.contains("CKM_AES_KEY_WRAP_PAD"),
        "{t}"
    );
    assert_eq!(
        softhsm_objects(&conf, &pin),
        before,
        "a refused init changed the token"
    );
    assert!(!d.path().join("root").exists());
    // The dry run prints the table and gives the same refusal.
    let o = std::process::Command::new(tool("root-ca"))
        .args(["init", "init.toml", "--dry-run", "--pin-file", &pin])
        .current_dir(d.path())
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let t = refused(o, "nor hold a root key that can be backed up");
    assert!(
        t.contains("capability check:") && t.contains("backup: root key wrapped"),
        "{t}"
    );
}
