//! A CRL of 1,000,000 revoked entries signed by a P-384 intermediate: time and peak memory
//! (issue: <= 2 s, <= 250 MB). Run: cargo bench -p pki-core --bench crl

mod common;

use std::time::Instant;

use pki_core::keys::KeyAlgorithm;
use pki_core::x509::{CrlEntry, Reason};
use time::{Duration, OffsetDateTime};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::var("BENCH_CRL_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = common::bench_dir("crl");
    let (ca, secret, _) = common::make_ca(&dir, KeyAlgorithm::P384);
    let signer = common::open_signer(&ca, &secret);
    let before = vm_hwm_kib();
    let start = Instant::now();
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    // Entries as the ledger would hand them over: 16-byte random serials, a time, a reason.
    let entries: Vec<CrlEntry> = (0..n)
        .map(|i| CrlEntry {
            serial: pki_core::x509::Serial::random().as_bytes().to_vec(),
            revoked_at: now - Duration::seconds(i as i64),
            reason: Some(Reason::KeyCompromise),
            certificate_issuer: None,
        })
        .collect();
    let built = start.elapsed();
    let der = signer
        .sign_crl(&entries, 1, now, now + Duration::days(7), false)
        .unwrap();
    let total = start.elapsed();
    let peak = vm_hwm_kib();
    // Check what was made, outside the timing: it parses and lists every entry.
    let parsed = pki_core::x509::parse_crl_entries("bench CRL", &der).unwrap();
    assert_eq!(parsed.len(), n);
    std::fs::write(dir.join("crl.der"), &der).unwrap();
    println!(
        "CRL with {n} entries: {:.2} s total ({:.2} s preparing entries, {:.2} s encoding+signing), {:.1} MB DER, peak memory {:.0} MB (process VmHWM; {:.0} MB before)",
        total.as_secs_f64(),
        built.as_secs_f64(),
        (total - built).as_secs_f64(),
        der.len() as f64 / 1e6,
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    println!(
        "written to {} (check: openssl crl -inform DER -in it -noout -crlnumber)",
        dir.join("crl.der").display()
    );
}
