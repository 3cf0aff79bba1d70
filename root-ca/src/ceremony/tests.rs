//! Table-driven tests of the ceremony files' own checks: each case mutates a valid file and
//! says which error (by substring) it must get, or None for a file that must pass.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::*;

const INIT: &str = r#"
[token]
token-label = "root-ca"
key-label = "root-2026"
[key]
algorithm = "p384"
[root]
common-name = "Test Root"
[output]
dir = "root"
"#;

const SIGN: &str = r#"
root-dir = "root"
[token]
token-label = "root-ca"
key-label = "root-2026"
[request]
csr = "int.csr"
key-fingerprint = "AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01"
[output]
certificate = "int.crt"
"#;

const REVOKE: &str = r#"
root-dir = "root"
serial = "5A3F"
reason = "keyCompromise"
"#;

const CRL: &str = r#"
root-dir = "root"
[token]
token-label = "root-ca"
key-label = "root-2026"
[output]
crl = "crl.pem"
"#;

type Case<T> = (&'static str, fn(&mut T), Option<&'static str>);

/// Parses `base`, applies each case's mutation and checks what `validate` says.
fn run_table<T: DeserializeOwned + Validate>(base: &str, cases: &[Case<T>]) {
    let mut failures = Vec::new();
    for (name, mutate, want) in cases {
        let mut c: T = parse(Path::new("case.toml"), base).expect("the base file parses");
        mutate(&mut c);
        let got = c.validate().map_err(|e| e.to_string());
        match (want, &got) {
            (None, Ok(())) => {}
            (Some(w), Err(e)) if e.contains(*w) => {}
            _ => failures.push(format!("{name}: want {want:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn init_path_length() {
    let cases: &[Case<InitCeremony>] = &[
        ("default 1", |_| {}, None),
        (
            "2: room for a cross certificate",
            |c| c.root.path_length = 2,
            None,
        ),
        (
            "0: no intermediates at all",
            |c| c.root.path_length = 0,
            Some("root.path-length = 0 is out of range"),
        ),
        (
            "3",
            |c| c.root.path_length = 3,
            Some("root.path-length = 3 is out of range"),
        ),
    ];
    run_table(INIT, cases);
    let c: InitCeremony = parse(Path::new("x.toml"), INIT).unwrap();
    assert_eq!(c.root.path_length, 1);
}

#[test]
fn init_validate() {
    fn alg(c: &mut InitCeremony, a: &str) {
        c.key.algorithm = a.into();
    }
    let cases: &[Case<InitCeremony>] = &[
        ("base file", |_| {}, None),
        ("p256", |c| alg(c, "p256"), None),
        ("P-256 spelled out", |c| alg(c, "P-256"), None),
        ("ed25519", |c| alg(c, "ed25519"), None),
        ("rsa3072", |c| alg(c, "rsa3072"), None),
        ("rsa4096", |c| alg(c, "rsa4096"), None),
        (
            "rsa2048 is too weak for a root",
            |c| alg(c, "rsa2048"),
            Some("a root key must be P-256, P-384, Ed25519 or RSA of at least 3072 bits"),
        ),
        (
            "rsa1024 is refused outright",
            |c| alg(c, "rsa1024"),
            Some("RSA below 2048 bits is refused"),
        ),
        (
            "unknown algorithm",
            |c| alg(c, "dsa"),
            Some("unknown key algorithm 'dsa'"),
        ),
        (
            "empty algorithm",
            |c| alg(c, ""),
            Some("unknown key algorithm ''"),
        ),
        ("one day", |c| c.root.days = 1, None),
        ("the longest root", |c| c.root.days = 9132, None),
        ("zero days", |c| c.root.days = 0, Some("must be at least 1")),
        (
            "one day past the longest root",
            |c| c.root.days = 9133,
            Some("9133 days is longer than this profile allows (9132 days)"),
        ),
        (
            "the algorithm is checked before the days",
            |c| {
                alg(c, "rsa2048");
                c.root.days = 0;
            },
            Some("a root key must be"),
        ),
    ];
    run_table(INIT, cases);
}

#[test]
fn sign_validate_request_and_outputs() {
    fn bundle(c: &mut SignCeremony) {
        c.request.csr = None;
        c.request.bundle = Some("request.age".into());
        c.output.certificate = None;
        c.output.response = Some("response.age".into());
    }
    let cases: &[Case<SignCeremony>] = &[
        ("csr with certificate", |_| {}, None),
        ("bundle with response", bundle, None),
        (
            "bundle with response and certificate",
            |c| {
                bundle(c);
                c.output.certificate = Some("int.crt".into());
            },
            None,
        ),
        (
            "csr without certificate",
            |c| c.output.certificate = None,
            Some("[output] certificate is required when signing a CSR file"),
        ),
        (
            "csr with only a response",
            |c| {
                c.output.certificate = None;
                c.output.response = Some("response.age".into());
            },
            Some("[output] certificate is required when signing a CSR file"),
        ),
        (
            "bundle without response",
            |c| {
                bundle(c);
                c.output.response = None;
                c.output.certificate = Some("int.crt".into());
            },
            Some("[output] response is required when signing a request bundle"),
        ),
        (
            "csr and bundle",
            |c| {
                c.request.bundle = Some("request.age".into());
                c.output.response = Some("response.age".into());
            },
            Some("request needs exactly one of csr or bundle"),
        ),
        (
            "neither csr nor bundle",
            |c| c.request.csr = None,
            Some("request needs exactly one of csr or bundle"),
        ),
        (
            "a missing output is named before the request's source",
            |c| {
                c.request.bundle = Some("request.age".into());
                c.output.certificate = None;
            },
            Some("[output] certificate is required"),
        ),
    ];
    run_table(SIGN, cases);
}

#[test]
fn sign_validate_certificate() {
    fn ips(c: &mut SignCeremony, v: &[&str]) {
        c.certificate.permitted_ips = v.iter().map(|s| s.to_string()).collect();
    }
    let cases: &[Case<SignCeremony>] = &[
        ("IPv4 range", |c| ips(c, &["10.0.0.0/8"]), None),
        ("IPv6 range", |c| ips(c, &["fd00::/8"]), None),
        ("two ranges", |c| ips(c, &["10.0.0.0/8", "::1/128"]), None),
        (
            "DNS names only",
            |c| c.certificate.permitted_dns = vec!["etcd.example".into()],
            None,
        ),
        (
            "range without prefix",
            |c| ips(c, &["10.0.0.0"]),
            Some("certificate.permitted-ips = \"10.0.0.0\" is not a CIDR range like 10.0.0.0/8"),
        ),
        (
            "empty range",
            |c| ips(c, &[""]),
            Some("certificate.permitted-ips = \"\" is not a CIDR range"),
        ),
        (
            "short address",
            |c| ips(c, &["10.0.0/8"]),
            Some("= \"10.0.0/8\" has \"10.0.0\", which is not an IP address"),
        ),
        (
            "host name for an address",
            |c| ips(c, &["etcd.example/32"]),
            Some("has \"etcd.example\", which is not an IP address"),
        ),
        (
            "prefix not a number",
            |c| ips(c, &["10.0.0.0/x"]),
            Some("has prefix length \"x\", which is not a number"),
        ),
        (
            "prefix past 255",
            |c| ips(c, &["10.0.0.0/256"]),
            Some("has prefix length \"256\", which is not a number"),
        ),
        (
            "IPv4 prefix past 32",
            |c| ips(c, &["10.0.0.0/40"]),
            Some("has prefix length 40; an IPv4 range takes 0 to 32"),
        ),
        (
            "IPv6 prefix past 128",
            |c| ips(c, &["fd00::/129"]),
            Some("has prefix length 129; an IPv6 range takes 0 to 128"),
        ),
        (
            "a host inside the range, not its start",
            |c| ips(c, &["10.1.2.3/8"]),
            Some("has bits set past its /8 prefix"),
        ),
        (
            "IPv6 host bits in the last octet of the prefix",
            |c| ips(c, &["fd00::1/120"]),
            Some("has bits set past its /120 prefix"),
        ),
        (
            "prefix 0 is the whole space",
            |c| ips(c, &["0.0.0.0/0"]),
            None,
        ),
        ("a /31 at its start", |c| ips(c, &["10.0.0.2/31"]), None),
        (
            "bad range after a good one",
            |c| ips(c, &["10.0.0.0/8", "192.168.0.0"]),
            Some("= \"192.168.0.0\" is not a CIDR range"),
        ),
        (
            "no days: the profile default",
            |c| c.certificate.days = None,
            None,
        ),
        ("one day", |c| c.certificate.days = Some(1), None),
        (
            "the longest intermediate",
            |c| c.certificate.days = Some(3653),
            None,
        ),
        (
            "zero days",
            |c| c.certificate.days = Some(0),
            Some("must be at least 1"),
        ),
        (
            "one day past the longest intermediate",
            |c| c.certificate.days = Some(3654),
            Some("3654 days is longer than this profile allows (3653 days)"),
        ),
        (
            "a root's lifetime",
            |c| c.certificate.days = Some(9132),
            Some("longer than this profile allows"),
        ),
    ];
    run_table(SIGN, cases);
}

#[test]
fn sign_validate_key_fingerprint() {
    fn fp(c: &mut SignCeremony, v: &str) {
        c.request.key_fingerprint = v.into();
    }
    const HEX: &str = "abcdef01abcdef01abcdef01abcdef01abcdef01abcdef01abcdef01abcdef01";
    let bad = Some("is not a SHA-256 fingerprint");
    let cases: &[Case<SignCeremony>] = &[
        ("as intermediate-ca prints it", |_| {}, None),
        ("lower case, no colons", |c| fp(c, HEX), None),
        ("sha256: prefix", |c| fp(c, &format!("sha256:{HEX}")), None),
        (
            "SHA256 and a space",
            |c| fp(c, &format!("SHA256 {HEX}")),
            None,
        ),
        (
            "as sha256sum prints it",
            |c| fp(c, &format!("{HEX}  -")),
            None,
        ),
        (
            "pairs with spaces",
            |c| {
                fp(c, "AB CD EF 01 AB CD EF 01 AB CD EF 01 AB CD EF 01 AB CD EF 01 AB CD EF 01 AB CD EF 01 AB CD EF 01")
            },
            None,
        ),
        ("one digit short", |c| fp(c, &HEX[1..]), bad),
        ("one digit long", |c| fp(c, &format!("{HEX}0")), bad),
        ("a letter past f", |c| fp(c, &HEX.replace('a', "g")), bad),
        ("SHA-1 length", |c| fp(c, &HEX[..40]), bad),
        ("empty", |c| fp(c, ""), bad),
    ];
    run_table(SIGN, cases);
}

#[test]
fn revoke_validate() {
    fn reason(c: &mut RevokeCeremony, r: &str) {
        c.reason = r.into();
    }
    fn serial(c: &mut RevokeCeremony, s: &str) {
        c.serial = s.into();
    }
    let not_a_reason = Some("is not a revocation reason; use unspecified, keyCompromise");
    let cases: &[Case<RevokeCeremony>] = &[
        ("base file", |_| {}, None),
        ("unspecified", |c| reason(c, "unspecified"), None),
        ("cACompromise", |c| reason(c, "cACompromise"), None),
        (
            "affiliationChanged",
            |c| reason(c, "affiliationChanged"),
            None,
        ),
        ("superseded", |c| reason(c, "superseded"), None),
        (
            "cessationOfOperation",
            |c| reason(c, "cessationOfOperation"),
            None,
        ),
        (
            "privilegeWithdrawn",
            |c| reason(c, "privilegeWithdrawn"),
            None,
        ),
        (
            "reason in the wrong case",
            |c| reason(c, "KeyCompromise"),
            Some("reason = \"KeyCompromise\" is not a revocation reason"),
        ),
        ("empty reason", |c| reason(c, ""), not_a_reason),
        ("reason code number", |c| reason(c, "1"), not_a_reason),
        (
            "certificateHold is not offered",
            |c| reason(c, "certificateHold"),
            not_a_reason,
        ),
        (
            "removeFromCRL is not offered",
            |c| reason(c, "removeFromCRL"),
            not_a_reason,
        ),
        ("serial with colons", |c| serial(c, "5a:3f"), None),
        (
            "empty serial",
            |c| serial(c, ""),
            Some("serial = \"\" is not a hex serial"),
        ),
        (
            "serial of zeros only",
            |c| serial(c, "00:00"),
            Some("is not a hex serial"),
        ),
        ("serial of odd length", |c| serial(c, "abc"), None),
        (
            "serial not hex",
            |c| serial(c, "zz"),
            Some("serial = \"zz\" is not a hex serial"),
        ),
        (
            "serial with 0x",
            |c| serial(c, "0x5a3f"),
            Some("serial = \"0x5a3f\" is not a hex serial"),
        ),
        (
            "the reason is checked before the serial",
            |c| {
                reason(c, "stolen");
                serial(c, "zz");
            },
            Some("reason = \"stolen\" is not a revocation reason"),
        ),
    ];
    run_table(REVOKE, cases);
}

#[test]
fn crl_validate() {
    let range = Some("next-update-days must be between 1 and 366");
    let cases: &[Case<CrlCeremony>] = &[
        ("default 180 days", |_| {}, None),
        ("one day", |c| c.next_update_days = 1, None),
        ("366 days", |c| c.next_update_days = 366, None),
        ("zero days", |c| c.next_update_days = 0, range),
        ("367 days", |c| c.next_update_days = 367, range),
        ("u32::MAX days", |c| c.next_update_days = u32::MAX, range),
    ];
    run_table(CRL, cases);
}

/// Each template is a file `validate` accepts, once its placeholders are filled in.
#[test]
fn templates_validate() {
    let p = Path::new("template.toml");
    parse::<InitCeremony>(p, TEMPLATE_INIT)
        .unwrap()
        .validate()
        .unwrap();
    // So is the key fingerprint: the template shows its shape, not a value.
    let sign: SignCeremony = parse(p, TEMPLATE_SIGN).unwrap();
    let err = sign.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("request.key-fingerprint = \"AB:CD:...\" is not a SHA-256 fingerprint"),
        "{err}"
    );
    parse::<SignCeremony>(p, &TEMPLATE_SIGN.replace("AB:CD:...", "AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01:AB:CD:EF:01"))
        .unwrap()
        .validate()
        .unwrap();
    // The serial is a placeholder to fill in: as printed, it is refused.
    let revoke: RevokeCeremony = parse(p, TEMPLATE_REVOKE).unwrap();
    let err = revoke.validate().unwrap_err().to_string();
    assert!(
        err.starts_with("serial = \"5A3F...\" is not a hex serial"),
        "{err}"
    );
    parse::<RevokeCeremony>(p, &TEMPLATE_REVOKE.replace("5A3F...", "5A3F"))
        .unwrap()
        .validate()
        .unwrap();
    parse::<CrlCeremony>(p, TEMPLATE_CRL)
        .unwrap()
        .validate()
        .unwrap();
}

/// A scratch file removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(text: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "root-ca-ceremony-test-{}-{:016x}.toml",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&p, text).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn load_validates_right_after_parsing() {
    let bad = Scratch::new(&CRL.replace("root-dir", "next-update-days = 0\nroot-dir"));
    let Err(err) = load::<CrlCeremony>(&bad.0) else {
        panic!("next-update-days = 0 was accepted");
    };
    assert_eq!(
        err.to_string(),
        format!(
            "ceremony file {}: next-update-days = 0 is out of range: next-update-days must be between 1 and 366; correct the ceremony file and run it again",
            bad.0.display()
        )
    );

    let good = Scratch::new(CRL);
    let l = load::<CrlCeremony>(&good.0).expect("accepted");
    assert_eq!(l.c.next_update_days, 180);
    assert_eq!(l.base, std::env::temp_dir());
    assert_eq!(
        l.sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(CRL.as_bytes()))
    );
}

#[test]
fn parse_rejects_unknown_fields_before_validate() {
    let err = parse::<CrlCeremony>(Path::new("x.toml"), &format!("{CRL}colour = \"blue\"\n"))
        .expect_err("an unknown field was accepted");
    let text = err.to_string();
    assert!(text.starts_with("ceremony file x.toml: "), "{text}");
    assert!(text.contains("unknown field `colour`"), "{text}");
}

#[test]
fn request_source_names_the_one_set() {
    let p = Path::new("x.toml");
    let c: SignCeremony = parse(p, SIGN).unwrap();
    assert_eq!(
        c.request.source().unwrap(),
        RequestSource::Csr(Path::new("int.csr"))
    );
    let c: SignCeremony = parse(
        p,
        &SIGN.replace("csr = \"int.csr\"", "bundle = \"request.age\""),
    )
    .unwrap();
    assert_eq!(
        c.request.source().unwrap(),
        RequestSource::Bundle(Path::new("request.age"))
    );
}

const CUSTODY: &str = r#"
root-dir = "root"
threshold = 2
[token]
token-label = "root-ca"
key-label = "root-2026"
[[custodian]]
name = "alice"
recipient = "age1f6c39dvcrktlvvcg8aqkhpxy3rqglecqchrc65fkvxkkuua5fvcq5etgf3"
[[custodian]]
name = "bob"
recipient = "age1v2cug3ms0p9s60jku5m3u7ks7zatlsnhkrt3c28gf8zy94efsdcs9a5d5x"
[[custodian]]
name = "carol"
recipient = "age1glwxw4cu6j74q9apfarfrw2tgtpy2zvh960kxym4exzphk0kue7s73d6cd"
"#;

#[test]
fn custody_validate() {
    run_table::<CustodyCeremony>(
        CUSTODY,
        &[
            ("valid 2 of 3", |_| {}, None),
            ("3 of 3", |c| c.threshold = 3, None),
            ("4 of 3", |c| c.threshold = 4, Some("threshold = 4 is out of range: with 3 custodians the threshold must be between 2 and 3")),
            ("1 of 3: one person alone", |c| c.threshold = 1, Some("threshold = 1 is out of range")),
            ("0", |c| c.threshold = 0, Some("threshold = 0 is out of range")),
            ("one custodian", |c| c.custodians.truncate(1), Some("a split needs 2 to 32 [[custodian]] entries")),
            ("no custodian", |c| c.custodians.clear(), Some("custodian = 0")),
            ("same name twice", |c| c.custodians[1].name = "alice".into(), Some("custodian.name = \"alice\" appears twice")),
            ("name with a slash", |c| c.custodians[0].name = "../alice".into(), Some("is not a custodian name")),
            ("name starting with a dot", |c| c.custodians[0].name = ".alice".into(), Some("is not a custodian name")),
            ("empty name", |c| c.custodians[0].name = String::new(), Some("is not a custodian name")),
            ("dotted name", |c| c.custodians[0].name = "alice.smith".into(), None),
            ("not a recipient", |c| c.custodians[2].recipient = "ssh-ed25519 AAAA".into(), Some("custodian.recipient = \"ssh-ed25519 AAAA\" is not an age X25519 recipient")),
            ("bad checksum", |c| c.custodians[2].recipient.replace_range(10..11, "q"), Some("is not an age X25519 recipient")),
            ("same recipient twice", |c| c.custodians[2].recipient = c.custodians[0].recipient.clone(), Some("appears twice: two shares encrypted to one person")),
        ],
    );
}

#[test]
fn custody_templates_parse() {
    let p = Path::new("template.toml");
    // The custody template's recipients are placeholders: as printed, they are refused.
    let custody: CustodyCeremony = parse(p, TEMPLATE_CUSTODY).unwrap();
    assert_eq!(custody.threshold, 3);
    assert_eq!(custody.custodians.len(), 5);
    let err = custody.validate().unwrap_err().to_string();
    assert!(err.contains("custodian.recipient = \"age1...\""), "{err}");
    parse::<BackupCeremony>(p, TEMPLATE_BACKUP)
        .unwrap()
        .validate()
        .unwrap();
    parse::<RestoreCeremony>(p, TEMPLATE_RESTORE)
        .unwrap()
        .validate()
        .unwrap();
    let init: InitCeremony = parse(p, TEMPLATE_INIT).unwrap();
    assert_eq!(
        init.key_policy(),
        pki_core::keys::KeyPolicy::NeverExtractable
    );
    let backup: InitCeremony =
        parse(p, &TEMPLATE_INIT.replace("backup = false", "backup = true")).unwrap();
    assert_eq!(
        backup.key_policy(),
        pki_core::keys::KeyPolicy::WrappedBackup
    );
}

const CROSS: &str = r#"
direction = "new-with-old"
signer-root-dir = "root-a"
subject-root-dir = "root-b"
[token]
token-label = "root-ca"
key-label = "root-a"
[output]
certificate = "b-by-a.crt"
"#;

#[test]
fn cross_sign_validate() {
    let dir = Some("is not a direction; use new-with-old");
    run_table::<CrossSignCeremony>(
        CROSS,
        &[
            ("new-with-old", |_| {}, None),
            (
                "old-with-new",
                |c| c.direction = "old-with-new".into(),
                None,
            ),
            ("RFC spelling", |c| c.direction = "NewWithOld".into(), dir),
            (
                "new-with-new is the root itself",
                |c| c.direction = "new-with-new".into(),
                dir,
            ),
            ("empty", |c| c.direction = String::new(), dir),
            (
                "same folder twice",
                |c| c.subject_root_dir = "root-a".into(),
                Some("subject-root-dir = \"root-a\" is the signer's own folder"),
            ),
            ("one day", |c| c.days = Some(1), None),
            (
                "zero days",
                |c| c.days = Some(0),
                Some("days = 0 must be at least 1"),
            ),
            (
                "past the root profile",
                |c| c.days = Some(pki_core::x509::Profile::Root.max_days() + 1),
                Some("is too long"),
            ),
            (
                "the longest root",
                |c| c.days = Some(pki_core::x509::Profile::Root.max_days()),
                None,
            ),
        ],
    );
    let c: CrossSignCeremony = parse(Path::new("x.toml"), CROSS).unwrap();
    assert_eq!(c.direction(), Ok(CrossDirection::NewWithOld));
    assert!(!c.allow_resign);
    // The file names what the ceremony writes; unknown fields (a misspelt direction key) are refused.
    let err =
        parse::<CrossSignCeremony>(Path::new("x.toml"), &CROSS.replace("direction", "directon"))
            .unwrap_err()
            .to_string();
    assert!(err.contains("unknown field `directon`"), "{err}");
}

#[test]
fn cross_sign_template_validates() {
    let c: CrossSignCeremony = parse(Path::new("template.toml"), TEMPLATE_CROSS_SIGN).unwrap();
    c.validate().unwrap();
    assert_eq!(c.direction(), Ok(CrossDirection::NewWithOld));
    assert_eq!(c.days, None);
}
