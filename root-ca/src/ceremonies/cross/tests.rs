//! Unit tests of the cross-sign ceremony: the pair check, the validity, the planned certificate.

use super::*;
use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
use time::Duration;

/// A self-signed root named `cn`, valid from `start` for `days`, and its key.
fn root(cn: &str, start: OffsetDateTime, days: i64) -> (CertFacts, KeyPair) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CountryName,
        DnValue::PrintableString("GB".try_into().unwrap()),
    );
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(2));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p.not_before = start;
    p.not_after = start + Duration::days(days);
    let der = p.self_signed(&key).unwrap().der().to_vec();
    (CertFacts::from_der(cn, &der).unwrap(), key)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

#[test]
fn check_pair_table() {
    let t = now();
    let (a, _) = root("Root A", t - Duration::days(400), 3000);
    let (b, _) = root("Root B", t - Duration::days(1), 3000);
    let (a_again, _) = root("Root A", t - Duration::days(1), 3000);
    let err = |r: Result<()>| r.err().map(|e| e.to_string());
    let table: &[(&str, &CertFacts, &CertFacts, CrossDirection, Option<&str>)] = &[
        (
            "A signs B: new-with-old",
            &a,
            &b,
            CrossDirection::NewWithOld,
            None,
        ),
        (
            "B signs A: old-with-new",
            &b,
            &a,
            CrossDirection::OldWithNew,
            None,
        ),
        (
            "A signs B called old-with-new",
            &a,
            &b,
            CrossDirection::OldWithNew,
            Some("but the subject root is the newer one"),
        ),
        (
            "B signs A called new-with-old",
            &b,
            &a,
            CrossDirection::NewWithOld,
            Some("but the signer root is the newer one"),
        ),
        (
            "one root twice",
            &a,
            &a,
            CrossDirection::NewWithOld,
            Some("both folders hold the same root key"),
        ),
        (
            "two roots of one name",
            &a,
            &a_again,
            CrossDirection::NewWithOld,
            Some("both roots are named"),
        ),
    ];
    for (name, signer, subject, dir, want) in table {
        let got = err(check_pair(signer, subject, *dir));
        match (want, &got) {
            (None, None) => {}
            (Some(w), Some(g)) if g.contains(w) => {}
            _ => panic!("{name}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn cross_validity_stays_inside_both_roots() {
    let t = now();
    let (a, _) = root("Root A", t - Duration::days(400), 1000);
    let (b, _) = root("Root B", t - Duration::days(1), 3000);
    // Default: until the earlier root (A) ends.
    let v = cross_validity(None, &a, &b, t).unwrap();
    assert_eq!(v.not_after, a.not_after);
    assert!(v.not_before <= t);
    // A given lifetime inside both.
    let v = cross_validity(Some(30), &a, &b, t).unwrap();
    assert_eq!(v.not_after, t + Duration::days(30));
    // Past the signer: refused, naming it.
    let e = cross_validity(Some(900), &a, &b, t)
        .unwrap_err()
        .to_string();
    assert!(e.contains("when the signing root expires"), "{e}");
    // Past the certified root (B signing A): refused, naming it.
    let e = cross_validity(Some(900), &b, &a, t)
        .unwrap_err()
        .to_string();
    assert!(e.contains("when the certified root expires"), "{e}");
    // A certified root not yet valid.
    let (c, _) = root("Root C", t + Duration::days(5), 100);
    let e = cross_validity(None, &a, &c, t).unwrap_err().to_string();
    assert!(e.contains("the certified root is not valid now"), "{e}");
}

#[test]
fn planned_cross_certificate_has_the_certified_roots_name_key_and_ski() {
    let t = now();
    let (a, a_key) = root("Root A", t - Duration::days(400), 3000);
    let (b, _) = root("Root B", t - Duration::days(1), 3000);
    let v = cross_validity(None, &a, &b, t).unwrap();
    let params = cross_params(&b, &v, &Serial::random()).unwrap();
    let spki = SubjectPublicKeyInfo::from_der(&b.spki_der).unwrap();
    let issuer = Issuer::from_ca_cert_der(&a.der.clone().into(), &a_key).unwrap();
    let der = params.signed_by(&spki, &issuer).unwrap().der().to_vec();
    let cross = CertFacts::from_der("cross", &der).unwrap();
    assert_eq!(cross_problems(&cross, &a, &b), Vec::<String>::new());
    assert!(pki_core::x509::ca_conformance(Profile::Root, &der).is_empty());
    pki_core::keys::verify_certificate(&der, &a.spki_der).unwrap();
    // The checks name what differs: the same certificate judged against the wrong roots.
    let problems = cross_problems(&cross, &b, &a).join("; ");
    for want in [
        "is not the certified root's name",
        "the key is not the certified root's key",
        "subjectKeyIdentifier differs",
        "is not the signer",
    ] {
        assert!(problems.contains(want), "{want}: {problems}");
    }
}
