//! A token is found by its label; two tokens under one label are refused instead of using
//! whichever the module lists first. Real SoftHSM2 tokens (this test binary sets
//! SOFTHSM2_CONF for its own process, so it holds this one test only).

use pki_core::error::TokenError;
use pki_core::keys::{default_module, Token, TokenConfig};
use zeroize::Zeroizing;

mod common;
use common::{init_token, softhsm_conf};

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
    let conf = softhsm_conf(dir.path());
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
