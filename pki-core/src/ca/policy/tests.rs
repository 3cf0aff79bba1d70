//! The gate tested directly: constraint matching, CSR approval, and the checks `sign_leaf`
//! cannot be talked out of.

use crate::x509::X509Error;
use std::net::IpAddr;

use rcgen::{CertificateParams, CidrSubnet, GeneralSubtree, Issuer, NameConstraints};
use time::OffsetDateTime;

use super::name_constraints::{dns_matches, ip_matches};
use super::*;
use crate::ca::issuing::{IssuingCa, LeafKey, LeafRequest};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::signer::FileKey;
use crate::x509::certs::CertFacts;
use crate::x509::csr::CheckedCsr;
use crate::x509::profile::{LeafRole, NameLimits, Profile, Subject, SubjectNames};
use crate::x509::serial::Serial;
use crate::x509::validity::Validity;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An intermediate (P-256) signed by a throwaway root, with `nc` as its name constraints.
fn intermediate(nc: Option<NameConstraints>) -> (CertFacts, FileKey) {
    let now = OffsetDateTime::now_utc();
    let root_key = FileKey::generate(KeyAlgorithm::P256).unwrap();
    let v = Validity::within_issuer(3650, 9132, None, now).unwrap();
    let root = Profile::Root
        .params(
            &Subject::cn("gate root"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            KeyAlgorithm::P256,
            None,
        )
        .unwrap()
        .self_signed(&root_key)
        .unwrap();
    let key = FileKey::generate(KeyAlgorithm::P256).unwrap();
    let v = Validity::within_issuer(1800, 3653, None, now).unwrap();
    let mut p: CertificateParams = Profile::Intermediate
        .params(
            &Subject::cn("gate intermediate"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            KeyAlgorithm::P256,
            None,
        )
        .unwrap();
    p.name_constraints = nc;
    let issuer = Issuer::from_ca_cert_der(root.der(), &root_key).unwrap();
    let cert = p.signed_by(&key, &issuer).unwrap();
    (
        CertFacts::from_der("intermediate", cert.der()).unwrap(),
        key,
    )
}

fn etcd_limits() -> NameConstraints {
    NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::DnsName("etcd.example.internal".into()),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip("127.0.0.0"), 8)),
        ],
        excluded_subtrees: vec![],
    }
}

fn names(dns: &[&str], ips: &[&str]) -> SubjectNames {
    SubjectNames {
        dns: dns.iter().map(|s| s.to_string()).collect(),
        ips: ips.iter().map(|s| ip(s)).collect(),
    }
}

fn generated(role: LeafRole, cn: &str, n: SubjectNames) -> LeafRequest {
    LeafRequest {
        role,
        subject: Subject::cn(cn),
        names: n,
        days: None,
        key: LeafKey::Generate(KeyAlgorithm::P256),
    }
}

#[test]
fn dns_constraints_match_on_label_boundaries() {
    let c = "etcd.example.internal";
    assert!(dns_matches(c, "etcd.example.internal"));
    assert!(dns_matches(c, "a.etcd.example.internal"));
    assert!(dns_matches(c, "A.ETCD.Example.Internal"));
    assert!(dns_matches(c, "*.etcd.example.internal"));
    assert!(!dns_matches(c, "etcd.example.internal.evil.com"));
    assert!(!dns_matches(c, "xetcd.example.internal"));
    assert!(!dns_matches(c, "example.internal"));
    // A leading dot permits only names below it.
    assert!(dns_matches(
        ".etcd.example.internal",
        "a.etcd.example.internal"
    ));
    assert!(!dns_matches(
        ".etcd.example.internal",
        "etcd.example.internal"
    ));
    // The empty constraint matches every name.
    assert!(dns_matches("", "anything.example"));
}

#[test]
fn ip_constraints_are_address_and_mask_per_family() {
    let (a4, m4) = ([127, 0, 0, 0], [255, 0, 0, 0]);
    assert!(ip_matches(&a4, &m4, ip("127.1.2.3")));
    assert!(!ip_matches(&a4, &m4, ip("10.1.2.3")));
    assert!(!ip_matches(&a4, &m4, ip("::ffff:127.0.0.1")));
    assert!(!ip_matches(&a4, &m4, ip("::1")));
    let any6 = [0u8; 16];
    assert!(ip_matches(&any6, &any6, ip("2001:db8::1")));
    assert!(!ip_matches(&any6, &any6, ip("8.8.8.8")));
}

#[test]
fn permitted_subtrees_refuse_names_outside_them_naming_both() {
    let (cert, _) = intermediate(Some(etcd_limits()));
    let gate = Gate::for_certificate(&cert).unwrap();
    let ok = names(
        &["etcd.example.internal", "m1.etcd.example.internal"],
        &["127.0.0.1"],
    );
    gate.check(LeafRole::Server, &Subject::cn("m1"), &ok)
        .unwrap();
    for (bad, name) in [
        (names(&["evil.example.com"], &[]), "DNS:evil.example.com"),
        (
            names(&["etcd.example.internal.evil.com"], &[]),
            "DNS:etcd.example.internal.evil.com",
        ),
        (
            names(&["xetcd.example.internal"], &[]),
            "DNS:xetcd.example.internal",
        ),
        (
            names(&["etcd.example.internal"], &["10.1.2.3"]),
            "IP:10.1.2.3",
        ),
        (names(&["etcd.example.internal"], &["::1"]), "IP:::1"),
    ] {
        let e = gate
            .check(LeafRole::Server, &Subject::cn("m1"), &bad)
            .unwrap_err();
        assert!(
            matches!(e, crate::Error::X509(X509Error::NameNotPermitted { .. })),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{name} is outside")), "{msg}");
        assert!(msg.contains("CN=gate intermediate"), "{msg}");
        if name.starts_with("IP") {
            assert!(msg.contains("it permits only IP:127.0.0.0/8"), "{msg}");
        } else {
            assert!(
                msg.contains("it permits only DNS:etcd.example.internal"),
                "{msg}"
            );
        }
    }
}

#[test]
fn a_type_without_permitted_subtrees_stays_open_as_rfc5280_says() {
    // What validators do with a DNS-only constraint: IPs are not limited (closing them is
    // root-ca's job when it signs, issue 12 item 2).
    let (cert, _) = intermediate(Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("etcd.example.internal".into())],
        excluded_subtrees: vec![],
    }));
    let gate = Gate::for_certificate(&cert).unwrap();
    gate.check(
        LeafRole::Server,
        &Subject::cn("m"),
        &names(&["etcd.example.internal"], &["8.8.8.8"]),
    )
    .unwrap();
}

#[test]
fn excluded_subtrees_refuse_even_permitted_names() {
    let (cert, _) = intermediate(Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName("example.internal".into())],
        excluded_subtrees: vec![
            GeneralSubtree::DnsName("secret.example.internal".into()),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip("0.0.0.0"), 0)),
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip("::"), 0)),
        ],
    }));
    let gate = Gate::for_certificate(&cert).unwrap();
    let s = Subject::cn("m");
    gate.check(LeafRole::Server, &s, &names(&["a.example.internal"], &[]))
        .unwrap();
    let e = gate
        .check(
            LeafRole::Server,
            &s,
            &names(&["db.secret.example.internal"], &[]),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("it excludes DNS:secret.example.internal"),
        "{e}"
    );
    let e = gate
        .check(
            LeafRole::Server,
            &s,
            &names(&["a.example.internal"], &["127.0.0.1"]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("it excludes IP:0.0.0.0/0"), "{e}");
    let e = gate
        .check(
            LeafRole::Server,
            &s,
            &names(&["a.example.internal"], &["::1"]),
        )
        .unwrap_err();
    assert!(e.to_string().contains("it excludes IP:::/0"), "{e}");
}

#[test]
fn a_dotted_cn_without_dns_sans_is_checked_as_openssl_does() {
    let (cert, _) = intermediate(Some(etcd_limits()));
    let gate = Gate::for_certificate(&cert).unwrap();
    let none = SubjectNames::default();
    // Plain user names are not host names.
    for cn in ["root", "app-user", "etcd-1", "a..b", "-x.y"] {
        gate.check(LeafRole::Client, &Subject::cn(cn), &none)
            .unwrap();
    }
    gate.check(
        LeafRole::Client,
        &Subject::cn("app.etcd.example.internal"),
        &none,
    )
    .unwrap();
    let e = gate
        .check(LeafRole::Client, &Subject::cn("app.evil.com"), &none)
        .unwrap_err();
    assert!(
        e.to_string().starts_with("DNS:app.evil.com is outside"),
        "{e}"
    );
    // With a DNS SAN, OpenSSL ignores the CN, and so do we.
    gate.check(
        LeafRole::Server,
        &Subject::cn("m.evil.com"),
        &names(&["etcd.example.internal"], &[]),
    )
    .unwrap();
}

#[test]
fn sign_leaf_cannot_skip_the_gate() {
    let (cert, key) = intermediate(Some(etcd_limits()));
    let ca = IssuingCa::new(1, cert, key).unwrap();
    let now = OffsetDateTime::now_utc();
    let e = ca
        .sign_leaf(
            generated(LeafRole::Server, "m1", names(&["evil.example.com"], &[])),
            now,
        )
        .err()
        .expect("refused");
    assert!(
        matches!(e, crate::Error::X509(X509Error::NameNotPermitted { .. })),
        "{e}"
    );
    ca.sign_leaf(
        generated(
            LeafRole::Server,
            "m1",
            names(&["etcd.example.internal"], &["127.0.0.1"]),
        ),
        now,
    )
    .unwrap();
}

#[test]
fn a_key_that_is_not_the_certificates_never_yields_a_leaf() {
    let (cert, _) = intermediate(None);
    let wrong = FileKey::generate(KeyAlgorithm::P256).unwrap();
    let ca = IssuingCa::new(1, cert, wrong).unwrap();
    let now = OffsetDateTime::now_utc();
    let e = ca
        .sign_leaf(
            generated(LeafRole::Client, "app", SubjectNames::default()),
            now,
        )
        .err()
        .expect("refused");
    assert!(
        matches!(
            e,
            crate::Error::X509(X509Error::SignatureCheckFailed { .. })
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("Nothing was recorded or written"),
        "{e}"
    );
    let t = now.replace_nanosecond(0).unwrap();
    let e = ca
        .sign_crl(&[], 1, t, t + time::Duration::days(1), false)
        .unwrap_err();
    assert!(
        matches!(
            e,
            crate::Error::X509(X509Error::SignatureCheckFailed { .. })
        ),
        "{e}"
    );
}

fn csr(cn: Option<&str>, dns: &[&str]) -> CheckedCsr {
    let key = FileKey::generate(KeyAlgorithm::P256).unwrap();
    let mut p =
        CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    }
    let req = p.serialize_request(&key).unwrap();
    CheckedCsr::from_der("req.csr", req.der()).unwrap()
}

#[test]
fn a_csr_cn_needs_the_operators_cn() {
    let none = SubjectNames::default();
    let approval = |cn| Approval {
        cn,
        names: &none,
        ignore_requested_ca: false,
    };
    let root = csr(Some("root"), &[]);
    let e = approve_csr("evil.csr", &root, &approval(None)).unwrap_err();
    assert!(
        matches!(e, crate::Error::X509(X509Error::CnRequired { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("CN=root"), "{e}");
    let e = approve_csr("evil.csr", &root, &approval(Some("app"))).unwrap_err();
    assert!(
        matches!(e, crate::Error::X509(X509Error::CnMismatch { .. })),
        "{e}"
    );
    assert_eq!(
        approve_csr("evil.csr", &root, &approval(Some("root"))).unwrap(),
        Some("root".into())
    );
    let anonymous = csr(None, &[]);
    assert_eq!(
        approve_csr("a.csr", &anonymous, &approval(Some("app"))).unwrap(),
        Some("app".into())
    );
    let e = approve_cn("req.json", Some("root"), None).unwrap_err();
    assert!(
        matches!(e, crate::Error::X509(X509Error::CnRequired { .. })),
        "{e}"
    );
}

#[test]
fn a_csr_request_that_was_not_approved_is_refused_at_signing() {
    let (cert, key) = intermediate(None);
    let ca = IssuingCa::new(1, cert, key).unwrap();
    let now = OffsetDateTime::now_utc();
    // A path that forgot approve_csr: the CSR's CN and names still cannot slip through.
    let c = csr(Some("root"), &["evil.example.com"]);
    let mut req = LeafRequest {
        role: LeafRole::Client,
        subject: Subject::cn("app"),
        names: SubjectNames::default(),
        days: None,
        key: LeafKey::Csr(Box::new(c.clone())),
    };
    let e = ca.sign_leaf(req, now).err().expect("refused");
    assert!(e.to_string().contains("DNS:evil.example.com"), "{e}");
    req = LeafRequest {
        role: LeafRole::Client,
        subject: Subject::cn("app"),
        names: names(&["evil.example.com"], &[]),
        days: None,
        key: LeafKey::Csr(Box::new(c)),
    };
    let e = ca.sign_leaf(req, now).err().expect("refused");
    assert!(
        matches!(e, crate::Error::X509(X509Error::CnMismatch { .. })),
        "{e}"
    );
}

#[test]
fn constraints_made_by_our_own_profile_are_read_back() {
    let limits = NameLimits {
        permitted_dns: vec!["etcd.example.internal".into()],
        permitted_ips: vec![(ip("10.0.0.0"), 8)],
    };
    let now = OffsetDateTime::now_utc();
    let key = FileKey::generate(KeyAlgorithm::P256).unwrap();
    let v = Validity::within_issuer(30, 3653, None, now).unwrap();
    let cert = Profile::Intermediate
        .params(
            &Subject::cn("int"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            KeyAlgorithm::P256,
            Some(&limits),
        )
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let c = Constraints::of_certificate("int", cert.der())
        .unwrap()
        .unwrap();
    assert_eq!(
        c.permitted,
        vec![
            Subtree::Dns("etcd.example.internal".into()),
            Subtree::Ip {
                addr: vec![10, 0, 0, 0],
                mask: vec![255, 0, 0, 0]
            }
        ]
    );
    assert!(c.excluded.is_empty() && c.uncheckable.is_empty());
}
