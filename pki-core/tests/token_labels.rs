//! A token is found by its label; two tokens under one label are refused instead of using
//! whichever the module lists first. Real SoftHSM2 tokens (this test binary sets
//! SOFTHSM2_CONF for its own process, so it holds this one test only).

use std::path::Path;
use std::process::Command;

use pki_core::error::TokenError;
use pki_core::keys::{default_module, Token, TokenConfig};
use zeroize::Zeroizing;

fn init_token(conf: &Path, label: &str) {
    let o = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", "1234-user", "--so-pin", "1234-so"])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn config(label: &str) -> TokenConfig {
    TokenConfig {
        module: default_module().to_path_buf(),
        token_label: label.into(),
        key_label: "no-such-key".into(),
        key_id: None,
    }
}

#[test]
fn two_tokens_under_one_label_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    init_token(&conf, "twin");
    init_token(&conf, "twin");
    init_token(&conf, "single");
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let pin = Zeroizing::new("1234-user".to_string());

    // Control: a label held by one token opens it.
    assert!(Token::open(&config("single"), &pin).is_ok());
    match Token::open(&config("twin"), &pin) {
        Err(TokenError::AmbiguousToken { label, count, .. }) => {
            assert_eq!((label.as_str(), count), ("twin", 2));
        }
        Err(e) => panic!("expected AmbiguousToken, got: {e}"),
        Ok(_) => panic!("a label held by two tokens was opened"),
    }
}
