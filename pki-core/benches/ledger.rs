//! `issuer list --expiring-within 30d` over 1,000,000 issued leaves (issue: <= 200 ms).
//! Builds a CA folder whose ledger holds a million leaves with notAfter spread over two years,
//! then times the library query; scripts/bench.sh times the CLI on the same folder.

mod common;

use std::time::Instant;

use pki_core::ca::{LeafRecord, ListFilter};
use pki_core::keys::KeyAlgorithm;
use time::{Duration, OffsetDateTime};

fn main() {
    let n: usize = std::env::var("BENCH_LEDGER_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = common::bench_dir("ledger");
    let (ca, _, _) = common::make_ca(&dir, KeyAlgorithm::P256);
    let mut ledger = ca.ledger().unwrap();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let fake_der = vec![0u8; 600]; // about the size of a P-256 leaf
    let fill = Instant::now();
    for chunk in 0..n.div_ceil(10_000) {
        let recs: Vec<(LeafRecord, &[u8])> = (0..10_000.min(n - chunk * 10_000))
            .map(|i| {
                let k = chunk * 10_000 + i;
                let not_after = now + Duration::minutes((k as i64 * 1051) % (730 * 24 * 60));
                (
                    LeafRecord {
                        serial: pki_core::x509::Serial::random().to_hex(),
                        generation: 1,
                        profile: "client".into(),
                        subject: format!("user-{k}"),
                        dns: vec![],
                        ips: vec![],
                        key_alg: "p256".into(),
                        key_source: "generated".into(),
                        not_before: not_after - Duration::days(90),
                        not_after,
                        status: "active".into(),
                        revocation_reason: None,
                        cert_path: format!("/srv/leaves/user-{k}/client.crt"),
                        fingerprint: "00".repeat(32),
                    },
                    fake_der.as_slice(),
                )
            })
            .collect();
        ledger.record_many(&recs).unwrap();
    }
    println!(
        "ledger filled with {n} leaves in {:.1} s",
        fill.elapsed().as_secs_f64()
    );
    let filter = ListFilter {
        expiring_before: Some(now + Duration::days(30)),
        active_only: true,
        generation: None,
    };
    let mut best = f64::MAX;
    let mut rows = 0;
    for _ in 0..5 {
        let t = Instant::now();
        rows = ledger.list(&filter).unwrap().len();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!("list --expiring-within 30d over {n} leaves: {rows} rows in {:.0} ms (best of 5, library call)", best * 1000.0);
    println!("CA folder for the CLI timing: {}", ca.path.display());
}
