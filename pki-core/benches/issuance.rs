//! Batch issuance against the raw crypto limit (issue: >= 5,000 leaves/s, >= 50% of raw).
//! Run: cargo bench -p pki-core --bench issuance   (BENCH_LEAVES, BENCH_DIR to override)

mod common;

use std::time::Instant;

use pki_core::ca::{run_batch, BatchFile, BatchLeaf};
use pki_core::keys::KeyAlgorithm;
use rcgen::SigningKey;
use time::OffsetDateTime;

fn raw_rate(threads: usize, n: usize) -> f64 {
    // In-process P-256 key generation plus one P-256 signature over a TBS-sized message:
    // the crypto work of one leaf, nothing else.
    let signer = KeyAlgorithm::P256.generate().unwrap();
    let msg = vec![0x5au8; 420];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n / threads {
                    let k = KeyAlgorithm::P256.generate().unwrap();
                    std::hint::black_box(&k);
                    std::hint::black_box(signer.sign(&msg).unwrap());
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn batch_rate(alg: KeyAlgorithm, leaves: usize, threads: usize) -> f64 {
    let dir = common::bench_dir(&format!("issuance-{alg}"));
    let (ca, secret, _) = common::make_ca(&dir, alg);
    let signer = common::open_signer(&ca, &secret);
    let mut ledger = ca.ledger().unwrap();
    let file = BatchFile {
        leaves: (0..leaves)
            .map(|i| BatchLeaf {
                profile: "client".into(),
                cn: format!("user-{i}"),
                dns: vec![],
                ip: vec![],
                key: Some("p256".into()),
                days: None,
            })
            .collect(),
    };
    let out = dir.join("out");
    let start = Instant::now();
    let r = run_batch(
        &signer,
        &mut ledger,
        &file,
        &out,
        threads,
        OffsetDateTime::now_utc(),
        |_, _| {},
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r.issued, leaves);
    assert_eq!(ledger.count().unwrap() as usize, leaves);
    let _ = std::fs::remove_dir_all(&dir);
    leaves as f64 / secs
}

fn main() {
    let leaves: usize = std::env::var("BENCH_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let raw = raw_rate(threads, 20_000);
    println!("raw in-process P-256 keygen+sign ({threads} threads): {raw:.0} /s");
    for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
        let rate = batch_rate(alg, leaves, threads);
        println!(
            "issuer batch, {leaves} P-256 leaves, {alg} intermediate, files + ledger + syncfs: {rate:.0} leaves/s ({:.0}% of raw)",
            100.0 * rate / raw
        );
    }
}
