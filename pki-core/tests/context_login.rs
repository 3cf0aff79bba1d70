//! A key that demands a context-specific login before each signature (CKA_ALWAYS_AUTHENTICATE,
//! as some HSMs require for signing keys): the token key logs in again between C_SignInit and
//! C_Sign, and the signature verifies in software. A real SoftHSM2 token, whose key is made by
//! OpenSC's pkcs11-tool with --always-auth (this test binary sets SOFTHSM2_CONF for its own
//! process, so it holds this one test only).

use std::process::Command;

mod common;
use common::{init_token, softhsm_conf};

use pki_core::keys::{default_module, verify_signature, Token, TokenConfig};
use rcgen::SigningKey;
use zeroize::Zeroizing;

#[test]
fn a_key_with_always_authenticate_signs_after_a_context_specific_login() {
    let dir = tempfile::tempdir().unwrap();
    let conf = softhsm_conf(dir.path());
    let run = |prog: &str, args: &[&str]| {
        let o = Command::new(prog)
            .args(args)
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e} (apt-get install softhsm2 opensc)"));
        assert!(
            o.status.success(),
            "{prog} {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    init_token(&conf, "ctx");
    let module = default_module().display().to_string();
    run(
        "pkcs11-tool",
        &[
            "--module",
            &module,
            "--token-label",
            "ctx",
            "--login",
            "--pin",
            "1234-user",
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "signer",
            "--id",
            "01",
            "--always-auth",
            "--sensitive",
        ],
    );
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let config = TokenConfig {
        module: default_module().to_path_buf(),
        token_label: "ctx".into(),
        key_label: "signer".into(),
        key_id: None,
    };
    let token = Token::open(&config, &Zeroizing::new("1234-user".to_string())).unwrap();
    let key = token
        .key()
        .expect("the key opens (its pair is proven by a test signature)");
    assert!(
        key.always_authenticate(),
        "the key reports CKA_ALWAYS_AUTHENTICATE"
    );
    for msg in [&b"first"[..], b"second: each signature logs in again"] {
        let sig = key
            .sign(msg)
            .expect("signature after a context-specific login");
        verify_signature("1.2.840.10045.4.3.2", &key.spki_der(), msg, &sig)
            .expect("the signature verifies in software");
    }
}
