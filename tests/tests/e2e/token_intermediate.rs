//! The intermediate's key in a PKCS#11 token (SoftHSM2): request → root sign → install →
//! issue, with the key never on disk; a wrong token PIN is refused with a clear message.

use std::path::Path;
use std::process::{Command, Output};

use e2e_tests::fixture::{self, ok, softhsm_token};

/// One of our tools with the test's SoftHSM2 configuration.
fn run(dir: &Path, conf: &Path, bin: &str, args: &[&str]) -> Output {
    fixture::run(dir, bin, args, &[("SOFTHSM2_CONF", conf)])
}

#[test]
fn intermediate_key_in_a_token_signs_leaves_and_never_touches_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let conf = softhsm_token(&d.join("tok"));
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
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(init.status.success());
    e2e_tests::secret::write_secret(d.join("int.pin"), "4711-int\n");
    e2e_tests::secret::write_secret(d.join("wrong.pin"), "0000-bad\n");

    let template = ok(run(d, &conf, "root-ca", &["template", "init"]));
    std::fs::write(
        d.join("init.toml"),
        template.replace("allow-network = false", "allow-network = true"),
    )
    .unwrap();
    ok(run(
        d,
        &conf,
        "root-ca",
        &["init", "init.toml", "--pin-file", "tok/user.pin"],
    ));
    ok(run(
        d,
        &conf,
        "intermediate-ca",
        &["new-identity", "id.txt"],
    ));
    let out = ok(run(
        d,
        &conf,
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
            "/usr/lib/softhsm/libsofthsm2.so",
            "--token",
            "intermediate",
            "--key-label",
            "int-1",
            "--pin-file",
            "int.pin",
        ],
    ));
    let fp = out
        .lines()
        .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
        .expect("fingerprint printed")
        .to_string();
    // No key file anywhere in the CA folder: the key is in the token.
    assert!(!d.join("ica/generations/1/intermediate.key.age").exists());
    let state = std::fs::read_to_string(d.join("ica/ca.toml")).unwrap();
    assert!(
        state.contains("key_protection = \"pkcs11\"") && state.contains("key_label = \"int-1\""),
        "{state}"
    );

    let sign = ok(run(d, &conf, "root-ca", &["template", "sign"]))
        .replace("allow-network = false", "allow-network = true")
        .replace("AB:CD:...", &fp);
    std::fs::write(d.join("sign.toml"), sign).unwrap();
    ok(run(
        d,
        &conf,
        "root-ca",
        &["sign", "sign.toml", "--pin-file", "tok/user.pin"],
    ));
    let root_fp = Command::new("openssl")
        .args([
            "x509",
            "-in",
            "root/root.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let root_fp = String::from_utf8_lossy(&root_fp.stdout)
        .trim()
        .split('=')
        .nth(1)
        .unwrap()
        .to_string();
    ok(run(
        d,
        &conf,
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
    ));

    // Issuing asks the token, not an age identity.
    ok(run(
        d,
        &conf,
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
            "--pin-file",
            "int.pin",
        ],
    ));
    let v = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            "n1/server.crt",
            "-purpose",
            "sslserver",
            "n1/server.crt",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // The token says the key cannot leave it.
    let objs = Command::new("pkcs11-tool")
        .args([
            "--module",
            "/usr/lib/softhsm/libsofthsm2.so",
            "--token-label",
            "intermediate",
            "--login",
            "--pin",
            "4711-int",
            "-O",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&objs.stdout);
    let private = listing
        .split("Private Key Object")
        .nth(1)
        .expect("a private key in the token");
    assert!(
        private.contains("never extractable") && private.contains("sensitive"),
        "{listing}"
    );

    // A wrong token PIN: clear error, nothing written, ledger unchanged.
    let before = ok(run(d, &conf, "issuer", &["list", "--ca", "ica", "--json"]));
    let bad = run(
        d,
        &conf,
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
            "--ip",
            "127.0.0.1",
            "--pin-file",
            "wrong.pin",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("refused the PIN"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(!d.join("n2").exists());
    assert_eq!(
        before,
        ok(run(d, &conf, "issuer", &["list", "--ca", "ica", "--json"]))
    );
}
