//! Review findings: the issuance gate (issue 12, items 1, 3, 4 and the self-check of 5).
//! Every refusal: its message pinned, nothing new on disk, the ledger unchanged.

use std::process::Output;

use e2e_tests::fixture::{fails_with, ok, sh};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use e2e_tests::state::State;
use e2e_tests::trust_pki::{openssl_verify, sh_env, Limits, TrustPki};

const ETCD_LIMITS: Limits<'static> = Limits {
    dns: &["etcd.example.internal"],
    ips: &["127.0.0.0/8"],
};

/// Runs a command that must fail with `needle`; checks that no file and no ledger row changed
/// and pins the message as `trust-<name>`.
fn refused(p: &TrustPki, name: &str, needle: &str, cmd: impl FnOnce() -> Output) -> String {
    let ica = p.path("ica");
    let before = State::capture(&p.d, &[&ica]);
    let err = fails_with(cmd(), needle);
    before.assert_unchanged(&State::capture(&p.d, &[&ica]), name);
    assert_snapshot(&format!("trust-{name}"), &normalize(&err, &[&p.d]));
    err
}

fn issue(p: &TrustPki, role: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec!["issue", role, "--ca", "ica", "--out", out];
    args.extend_from_slice(extra);
    p.issuer(&args)
}

/// A PKI whose generation 1 is unconstrained (with one leaf outside what comes next) and whose
/// active generation 2 permits only etcd.example.internal and 127.0.0.0/8.
fn constrained_pki() -> TrustPki {
    let p = TrustPki::new();
    p.enrol(1, Limits::default());
    ok(issue(
        &p,
        "server",
        "wide",
        &[
            "--cn",
            "wide",
            "--dns",
            "wide.example.com",
            "--ip",
            "10.1.2.3",
        ],
    ));
    p.enrol(2, ETCD_LIMITS);
    p
}

#[test]
fn names_outside_the_intermediates_constraints_are_refused_on_every_path() {
    let p = constrained_pki();
    let d = &p.d;
    // Inside the constraints: issued, and openssl agrees it is valid.
    ok(issue(
        &p,
        "server",
        "good",
        &[
            "--cn",
            "m1",
            "--dns",
            "etcd.example.internal",
            "--dns",
            "m1.etcd.example.internal",
            "--ip",
            "127.0.0.1",
        ],
    ));
    let (passed, out) = openssl_verify(d, &p.path("root/root.crt"), &p.path("good/server.crt"));
    assert!(passed, "{out}");

    for (case, names) in [
        ("dns", &["--dns", "evil.example.com"][..]),
        ("suffix", &["--dns", "etcd.example.internal.evil.com"][..]),
        ("label", &["--dns", "xetcd.example.internal"][..]),
        (
            "ip",
            &["--dns", "etcd.example.internal", "--ip", "10.1.2.3"][..],
        ),
        (
            "ipv6",
            &["--dns", "etcd.example.internal", "--ip", "::1"][..],
        ),
    ] {
        let mut args = vec!["--cn", "m1"];
        args.extend_from_slice(names);
        refused(
            &p,
            &format!("1-issue-{case}"),
            "is outside the name constraints",
            || issue(&p, "server", "bad", &args),
        );
    }
    // A client whose dotted CN OpenSSL would check as a host name.
    refused(
        &p,
        "1-issue-client-cn",
        "DNS:app.evil.com is outside",
        || issue(&p, "client", "bad", &["--cn", "app.evil.com"]),
    );

    // batch: one bad leaf stops the run before anything is signed or written.
    p.write(
        "batch.toml",
        "[[leaf]]\nprofile = \"server\"\ncn = \"ok-1\"\ndns = [\"ok-1.etcd.example.internal\"]\n\
         [[leaf]]\nprofile = \"server\"\ncn = \"bad-1\"\ndns = [\"bad-1.example.com\"]\n",
    );
    refused(&p, "1-batch", "DNS:bad-1.example.com is outside", || {
        p.issuer(&["batch", "--ca", "ica", "--out", "bout", "batch.toml"])
    });

    // etcd: every member leaf carries DNS:<member>, which these constraints do not cover.
    let b = d.display();
    p.write(
        "cluster.toml",
        &format!("name = \"trust\"\ninstall-dir = \"{b}/etcd/nodes/{{name}}\"\ndata-dir = \"{b}/data/{{name}}\"\n\
                  [[member]]\nname = \"etcd-1\"\nips = [\"127.0.0.1\"]\ndns = [\"etcd-1.etcd.example.internal\"]\n\
                  client-urls = [\"https://127.0.0.1:23790\"]\npeer-urls = [\"https://127.0.0.1:23800\"]\n\
                  [[client]]\nname = \"root\"\n"),
    );
    refused(&p, "1-etcd", "DNS:etcd-1 is outside", || {
        p.issuer(&[
            "etcd",
            "--ca",
            "ica",
            "--cluster",
            "cluster.toml",
            "--out",
            "etcd",
        ])
    });

    // renew and reissue: generation 1's wide leaf cannot be re-signed by generation 2, and
    // nothing at all is replaced (the good leaf is due too).
    refused(&p, "1-renew", "DNS:wide.example.com is outside", || {
        p.issuer(&["renew", "--ca", "ica", "--expiring-within", "100d"])
    });
    refused(&p, "1-reissue", "DNS:wide.example.com is outside", || {
        p.issuer(&["reissue", "--ca", "ica", "--from", "1"])
    });
}

/// Signs a server leaf for one name with openssl and the intermediate's own key (decrypted with
/// the age CLI), and asks `openssl verify` about it.
fn openssl_accepts(p: &TrustPki, generation: u32, tag: &str, san: &str) -> (bool, String) {
    let d = &p.d;
    let run = |prog: &str, args: &[&str]| {
        let (good, out, err) = sh(d, prog, args);
        assert!(good, "{prog} {args:?}: {out}{err}");
    };
    if !p.path("int.key").exists() {
        run(
            "age",
            &[
                "-d",
                "-i",
                "id.txt",
                "-o",
                "int.key",
                &format!("ica/generations/{generation}/intermediate.key.age"),
            ],
        );
    }
    let int = format!("ica/generations/{generation}/intermediate.crt");
    let (key, csr, crt, ext) = (
        format!("{tag}.key"),
        format!("{tag}.csr"),
        format!("{tag}.crt"),
        format!("{tag}.ext"),
    );
    run(
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            "/CN=m1",
            "-out",
            &csr,
        ],
    );
    p.write(&ext, &format!("subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"));
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &int,
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    let chain = format!("{tag}.chain");
    let mut text = std::fs::read_to_string(p.path(&crt)).unwrap();
    text.push_str(&std::fs::read_to_string(p.path(&int)).unwrap());
    p.write(&chain, &text);
    openssl_verify(d, &p.path("root/root.crt"), &p.path(&chain))
}

#[test]
fn the_gate_refuses_exactly_what_openssl_rejects() {
    let p = TrustPki::new();
    p.enrol(1, ETCD_LIMITS);
    let cases = [
        ("DNS:etcd.example.internal", true),
        ("DNS:a.b.etcd.example.internal", true),
        ("DNS:*.etcd.example.internal", true),
        ("DNS:evil.example.com", false),
        ("DNS:etcd.example.internal.evil.com", false),
        ("DNS:xetcd.example.internal", false),
        ("IP:127.0.0.1", true),
        ("IP:127.255.255.254", true),
        ("IP:10.1.2.3", false),
        ("IP:::1", false),
        ("IP:::ffff:127.0.0.1", false),
    ];
    for (i, (san, allowed)) in cases.iter().enumerate() {
        let (accepted, out) = openssl_accepts(&p, 1, &format!("x{i}"), san);
        assert_eq!(accepted, *allowed, "openssl on {san}: {out}");
        let (kind, value) = san.split_once(':').unwrap();
        let flag = if kind == "DNS" { "--dns" } else { "--ip" };
        let mut args = vec!["--cn", "m1", flag, value];
        if kind == "IP" {
            args.extend_from_slice(&["--dns", "etcd.example.internal"]);
        }
        let o = issue(&p, "server", &format!("ours-{i}"), &args);
        assert_eq!(
            o.status.success(),
            accepted,
            "issuer on {san} (openssl says {accepted}): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if accepted {
            let (good, out) = openssl_verify(
                &p.d,
                &p.path("root/root.crt"),
                &p.path(&format!("ours-{i}/server.crt")),
            );
            assert!(good, "{san}: {out}");
        }
    }
}

fn make_csr(p: &TrustPki, name: &str, subj: &str) -> String {
    let (good, out, err) = sh(
        &p.d,
        "openssl",
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-subj",
            subj,
            "-out",
            &format!("{name}.csr"),
        ],
    );
    assert!(good, "{out}{err}");
    format!("{name}.csr")
}

#[test]
fn a_requests_cn_is_certified_only_when_the_operator_types_it() {
    let p = TrustPki::new();
    p.enrol(1, Limits::default());
    let evil = make_csr(&p, "evil", "/CN=root");
    p.write(
        "evil.json",
        r#"{"CN":"root","hosts":[],"key":{"algo":"ecdsa","size":256}}"#,
    );
    refused(&p, "3-csr-without-cn", "no --cn was given", || {
        issue(&p, "client", "c", &["--csr", &evil])
    });
    refused(&p, "3-csr-other-cn", "but --cn is app", || {
        issue(&p, "client", "c", &["--csr", &evil, "--cn", "app"])
    });
    refused(&p, "3-cfssl-without-cn", "no --cn was given", || {
        issue(&p, "client", "c", &["--cfssl-json", "evil.json"])
    });
    // Typed by the operator: issued, with exactly that CN.
    ok(issue(&p, "client", "c", &["--csr", &evil, "--cn", "root"]));
    let (_, subject, _) = sh(
        &p.d,
        "openssl",
        &["x509", "-in", "c/client.crt", "-noout", "-subject"],
    );
    assert_eq!(subject.trim(), "subject=CN = root");
    // A CSR without a CN takes the operator's.
    let anon = make_csr(&p, "anon", "/O=nobody");
    ok(issue(&p, "client", "a", &["--csr", &anon, "--cn", "app"]));
    let (_, subject, _) = sh(
        &p.d,
        "openssl",
        &["x509", "-in", "a/client.crt", "-noout", "-subject"],
    );
    assert_eq!(
        subject.trim(),
        "subject=CN = app",
        "the CSR's O never reaches the certificate"
    );
}

#[test]
fn nothing_is_issued_from_an_intermediate_the_root_revoked() {
    let p = TrustPki::new();
    p.enrol(1, Limits::default());
    ok(issue(&p, "client", "before", &["--cn", "app"]));
    // The root revokes generation 1 and signs CRLs 1 and 2.
    p.root_revokes("intermediate-1.crt");
    p.root_crl("root-crl-1.pem");
    p.root_crl("root-crl-2.pem");

    // Installing the root CRL is checked and reported.
    let out = ok(p.ica(&["root-crl", "--dir", "ica", "root-crl-2.pem"]));
    assert!(out.contains("installed root CRL 2"), "{out}");
    assert!(
        out.contains("the root revoked the ACTIVE intermediate (generation 1)"),
        "{out}"
    );
    let out = ok(p.ica(&["root-crl", "--dir", "ica", "root-crl-2.pem"]));
    assert!(out.contains("already installed"), "{out}");
    refused(
        &p,
        "4-root-crl-older",
        "is not newer than the installed root CRL",
        || p.ica(&["root-crl", "--dir", "ica", "root-crl-1.pem"]),
    );

    // Every issuing path refuses, naming the CRL.
    refused(&p, "4-issue", "is revoked by the root CRL", || {
        issue(&p, "client", "after", &["--cn", "app2"])
    });
    p.write(
        "batch.toml",
        "[[leaf]]\nprofile = \"client\"\ncn = \"b1\"\n",
    );
    refused(&p, "4-batch", "is revoked by the root CRL", || {
        p.issuer(&["batch", "--ca", "ica", "--out", "bout", "batch.toml"])
    });
    refused(&p, "4-renew", "is revoked by the root CRL", || {
        p.issuer(&["renew", "--ca", "ica", "--expiring-within", "100d"])
    });

    // A root CRL altered on disk is not trusted, and stops issuance too.
    let crl = std::fs::read_to_string(p.path("ica/root-crl.pem")).unwrap();
    let mut lines: Vec<String> = crl.lines().map(str::to_string).collect();
    let mid = lines.len() / 2;
    let flipped: String = lines[mid]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 10 {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect();
    lines[mid] = flipped;
    std::fs::write(p.path("ica/root-crl.pem"), lines.join("\n") + "\n").unwrap();
    refused(
        &p,
        "4-issue-bad-crl",
        "refusing to issue without a root CRL that verifies",
        || issue(&p, "client", "after", &["--cn", "app2"]),
    );
    std::fs::write(p.path("ica/root-crl.pem"), crl).unwrap();

    // A CRL from another root is refused by the install command.
    let other = TrustPki::new();
    other.root_crl("other-crl.pem");
    std::fs::copy(other.path("other-crl.pem"), p.path("other-crl.pem")).unwrap();
    refused(
        &p,
        "4-root-crl-foreign",
        "its signature does not verify with the pinned root",
        || p.ica(&["root-crl", "--dir", "ica", "other-crl.pem"]),
    );

    // The way out: a new intermediate, then the old generation's leaves re-issued.
    p.enrol(2, Limits::default());
    let out = ok(p.issuer(&["reissue", "--ca", "ica", "--from", "1"]));
    assert!(out.contains("1 leaf/leaves replaced"), "{out}");
}

#[test]
fn install_refuses_an_intermediate_the_installed_root_crl_revokes() {
    let p = TrustPki::new();
    p.enrol(1, Limits::default());
    // Generation 2 is signed, then revoked by the root before it is installed.
    let response = p.request_and_sign(2, Limits::default());
    p.root_revokes("intermediate-2.crt");
    p.root_crl("root-crl-1.pem");
    ok(p.ica(&["root-crl", "--dir", "ica", "root-crl-1.pem"]));
    refused(
        &p,
        "4-install-revoked",
        "is revoked by the root CRL",
        || p.install(&response),
    );
    // Generation 1 is still active and still issues.
    ok(issue(&p, "client", "still", &["--cn", "app"]));
}

const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// `pkcs11-tool` on the intermediate token, logged in.
fn int_token(p: &TrustPki, args: &[&str]) -> String {
    let mut all = vec![
        "--module",
        SOFTHSM,
        "--token-label",
        "intermediate",
        "--login",
        "--pin",
        "4711-int",
    ];
    all.extend_from_slice(args);
    let (good, out, err) = sh_env(&p.d, "pkcs11-tool", &all, &p.conf);
    assert!(good, "pkcs11-tool {args:?}: {out}{err}");
    out
}

#[test]
fn a_second_token_key_with_the_same_label_never_yields_a_bad_certificate() {
    let p = TrustPki::new();
    p.intermediate_token();
    let response = p.request_and_sign_with(
        1,
        Limits::default(),
        &[
            "--pkcs11-module",
            SOFTHSM,
            "--token",
            "intermediate",
            "--key-label",
            "int-1",
            "--pin-file",
            "int.pin",
        ],
    );
    ok(p.install(&response));
    ok(issue(
        &p,
        "client",
        "before",
        &["--cn", "app", "--pin-file", "int.pin"],
    ));
    // A rogue private key under the same label, without its public half.
    int_token(
        &p,
        &[
            "--keypairgen",
            "--key-type",
            "EC:secp384r1",
            "--label",
            "int-1",
            "--id",
            "99",
        ],
    );
    int_token(&p, &["--delete-object", "--type", "pubkey", "--id", "99"]);
    let listing = int_token(&p, &["--list-objects", "--type", "privkey"]);
    assert_eq!(listing.matches("label:      int-1").count(), 2, "{listing}");

    let ica = p.path("ica");
    let ledger_before = State::capture(&ica, &[&ica]);
    let out = p.path("after");
    let o = issue(
        &p,
        "client",
        "after",
        &["--cn", "app", "--pin-file", "int.pin"],
    );
    if o.status.success() {
        // The right key was found (by its CKA_ID): the certificate must verify.
        let (good, text) = openssl_verify(&p.d, &p.path("root/root.crt"), &out.join("client.crt"));
        assert!(good, "a written certificate that does not verify: {text}");
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("does not verify with the public key of the issuing certificate")
                || err.contains("int-1"),
            "{err}"
        );
        assert!(!out.exists(), "a refused issue left {}", out.display());
        ledger_before.assert_unchanged(&State::capture(&ica, &[&ica]), "refused issue");
    }
}

/// Re-encrypts response bundle `name` to the CA folder's identity with its X509 CRL block
/// replaced by `crl_pem`, as someone holding the transport media could.
fn swap_response_crl(p: &TrustPki, name: &str, crl_pem: &str, out: &str) {
    let (good, plain, err) = sh(&p.d, "age", &["-d", "-i", "id.txt", name]);
    assert!(good, "{err}");
    let start = plain
        .find("-----BEGIN X509 CRL-----")
        .expect("the response carries a CRL");
    let end = plain.find("-----END X509 CRL-----").unwrap() + "-----END X509 CRL-----\n".len();
    let forged = format!("{}{}{}", &plain[..start], crl_pem, &plain[end..]);
    p.write("forged.txt", &forged);
    let (good, recipient, err) = sh(&p.d, "age-keygen", &["-y", "id.txt"]);
    assert!(good, "{err}");
    let (good, _, err) = sh(
        &p.d,
        "age",
        &["-e", "-a", "-r", recipient.trim(), "-o", out, "forged.txt"],
    );
    assert!(good, "{err}");
    std::fs::remove_file(p.path("forged.txt")).unwrap();
}

#[test]
fn install_refuses_a_response_whose_root_crl_the_root_did_not_sign() {
    let p = TrustPki::new();
    p.enrol(1, Limits::default());
    p.root_crl("root-crl-1.pem");
    let response = p.request_and_sign(2, Limits::default());
    let other = TrustPki::new();
    other.root_crl("other-crl.pem");
    let foreign = std::fs::read_to_string(other.path("other-crl.pem")).unwrap();
    swap_response_crl(&p, &response, &foreign, "forged-response.age");
    refused(
        &p,
        "4-install-foreign-crl",
        "root CRL in the response",
        || p.install("forged-response.age"),
    );
    // The genuine response installs, and its CRL with it.
    ok(p.install(&response));
    assert_eq!(
        std::fs::read(p.path("ica/root-crl.pem")).unwrap(),
        std::fs::read(p.path("root-crl-1.pem")).unwrap()
    );
}
