//! Signing through the token versus the raw `C_Sign` rate on SoftHSM2 (issue: <= 10% overhead),
//! for P-256 and P-384. Needs softhsm2 installed; makes its own throwaway token.
//! Run: cargo bench -p root-ca --bench pkcs11

use std::process::Command;
use std::time::Instant;

use pki_core::keys::KeyAlgorithm;
use pki_core::keys::{Token, TokenConfig};
use rcgen::SigningKey;
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

fn main() {
    let n: usize = std::env::var("BENCH_SIGNATURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let dir = std::env::temp_dir().join(format!("pkcs11-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../softhsm/new-token.sh");
    let ok = Command::new("bash")
        .arg(script)
        .arg(&dir)
        .arg("bench")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("SoftHSM2 not available (softhsm/new-token.sh failed): PKCS#11 benchmark skipped");
        return;
    }
    // This process is the bench: the variable is set before any thread or token exists.
    std::env::set_var("SOFTHSM2_CONF", dir.join("softhsm2.conf"));
    let pin = Zeroizing::new(
        std::fs::read_to_string(dir.join("user.pin"))
            .unwrap()
            .trim()
            .to_string(),
    );
    let msg = vec![0x42u8; 420];
    for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
        let cfg = TokenConfig {
            module: pki_core::keys::default_module().to_path_buf(),
            token_label: "bench".into(),
            key_label: format!("bench-{alg}"),
            key_id: None,
        };
        let token = Token::open(&cfg, &pin).unwrap();
        let (key, _) = token.generate(alg).unwrap();
        let digest: Vec<u8> = match alg {
            KeyAlgorithm::P256 => Sha256::digest(&msg).to_vec(),
            _ => Sha384::digest(&msg).to_vec(),
        };
        let iters = if alg == KeyAlgorithm::P384 { n / 4 } else { n };
        // Interleave rounds so drift in machine load hits both sides alike.
        let (mut raw_t, mut full_t) = (0.0, 0.0);
        for _ in 0..4 {
            let t = Instant::now();
            for _ in 0..iters / 4 {
                std::hint::black_box(key.raw_sign(&digest).unwrap());
            }
            raw_t += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for _ in 0..iters / 4 {
                std::hint::black_box(key.sign(&msg).unwrap());
            }
            full_t += t.elapsed().as_secs_f64();
        }
        let raw = (iters / 4 * 4) as f64 / raw_t;
        let full = (iters / 4 * 4) as f64 / full_t;
        println!(
            "PKCS#11 {alg}: raw C_Sign {raw:.0} /s, through the signer (hash + C_Sign + DER) {full:.0} /s, overhead {:.1}%",
            100.0 * (raw / full - 1.0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
