//! The expiry rule of the ledger's CRLs with an explicit clock: a revoked leaf is listed up to
//! and including its notAfter, then by exactly one more published CRL of each kind, then never.

use pki_core::ca::{direct_entries, Selection};
use pki_core::ca::{CrlKind, LeafRecord, Ledger};
use time::{Duration, OffsetDateTime};

fn leaf(serial: &str, not_after: OffsetDateTime) -> LeafRecord {
    LeafRecord {
        serial: serial.into(),
        generation: 1,
        profile: "client".into(),
        subject: format!("u{serial}"),
        dns: vec![],
        ips: vec![],
        key_alg: "p256".into(),
        key_source: "generated".into(),
        not_before: not_after - Duration::days(90),
        not_after,
        status: "active".into(),
        revocation_reason: None,
        cert_path: format!("/nowhere/{serial}/client.crt"),
        fingerprint: serial.into(),
    }
}

fn serials(s: &Selection) -> Vec<String> {
    s.entries
        .iter()
        .map(|e| e.serial.iter().map(|b| format!("{b:02X}")).collect())
        .collect()
}

#[test]
fn an_expired_entry_is_listed_by_one_published_crl_of_each_kind_then_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let t0 = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    ledger.record(&leaf("0A", t0), b"der-a").unwrap();
    ledger
        .record(&leaf("0B", t0 + Duration::days(30)), b"der-b")
        .unwrap();
    ledger.revoke("0A", "keyCompromise").unwrap();
    ledger.revoke("0B", "superseded").unwrap();

    // Up to and including notAfter the leaf is valid: listed, nothing to record.
    let s = direct_entries(&ledger, 1, t0).unwrap();
    assert_eq!(serials(&s), ["0A", "0B"]);
    assert!(s.listed_expired.is_empty());

    // One second later it expired: still listed, and this CRL is its last listing...
    let later = t0 + Duration::seconds(1);
    let s = direct_entries(&ledger, 1, later).unwrap();
    assert_eq!(serials(&s), ["0A", "0B"]);
    assert_eq!(s.listed_expired, ["0A"]);
    // ...but only once it is published: an unpublished CRL changes nothing.
    let again = direct_entries(&ledger, 1, later + Duration::days(1)).unwrap();
    assert_eq!(serials(&again), ["0A", "0B"]);
    s.published(&mut ledger, 5).unwrap();

    // The next direct CRL drops it; the etcd CRL has its own count and still owes it a listing.
    let s = direct_entries(&ledger, 1, later + Duration::days(1)).unwrap();
    assert_eq!(serials(&s), ["0B"]);
    assert!(s.listed_expired.is_empty());
    let r = ledger.revoked().unwrap();
    let a = r.iter().find(|r| r.serial == "0A").unwrap();
    assert_eq!(a.listed_expired(CrlKind::Direct), Some(5));
    assert_eq!(a.listed_expired(CrlKind::Etcd), None);

    // Publishing again never moves the first record.
    ledger
        .mark_listed_expired(CrlKind::Direct, &["0A".into()], 9)
        .unwrap();
    let r = ledger.revoked().unwrap();
    assert_eq!(
        r.iter()
            .find(|r| r.serial == "0A")
            .unwrap()
            .listed_expired(CrlKind::Direct),
        Some(5)
    );
}
