//! Bundle input: the plaintext parser, and decryption of arbitrary (armoured or binary) bytes.
#![no_main]
use std::str::FromStr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pki_core::bundle::{Bundle, BundleKind};

fn identity() -> &'static age::x25519::Identity {
    static ID: OnceLock<age::x25519::Identity> = OnceLock::new();
    // A fixed identity made for the fuzzer (it protects nothing); corpus/bundle/request.age is
    // encrypted to it, so mutations of a real bundle reach the parser behind the decryption.
    ID.get_or_init(|| {
        age::x25519::Identity::from_str(
            "AGE-SECRET-KEY-1NEHDMZ94NH2MHLWDNFQ7FT0MAWVCDSSJY8HRE9LPHEXD0EV5S4CQZAREWC",
        )
        .expect("valid test identity")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Bundle::from_text(text);
    }
    let _ = Bundle::open("fuzz", data, identity(), BundleKind::IntermediateRequest);
});
