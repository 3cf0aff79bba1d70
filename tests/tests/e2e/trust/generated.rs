//! Review findings: generated files that are executed or loaded (issue 12, items 12, 20 and
//! the check-etcd / issuer-etcd parts of 23).
//!
//! The CA is an OpenSSL two-tier PKI under management (`fixture::OpensslCa`); bundles come from
//! `issuer etcd`, are judged by `issuer check-etcd`, and `rbac.sh` runs against a real etcd.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e_tests::etcd_cluster::{free_ports, EtcdCluster, EtcdVersion, Etcdctl};
use e2e_tests::fixture::{self, ok, OpensslCa};
use e2e_tests::serial::exclusive;
use e2e_tests::snapshot::{assert_snapshot, normalize};
use tempfile::TempDir;

/// A cluster file: one member per port pair on 127.0.0.1, installed in place in `bundle`.
fn cluster_toml(bundle: &Path, data: &Path, ports: &[(u16, u16)], extra: &str) -> String {
    let mut s = format!(
        "name = \"gen\"\netcd-version = \"3.4\"\n\
         install-dir = \"{b}/nodes/{{name}}\"\n\
         client-install-dir = \"{b}/clients/{{name}}\"\n\
         data-dir = \"{d}/{{name}}\"\n",
        b = bundle.display(),
        d = data.display()
    );
    for (i, (c, p)) in ports.iter().enumerate() {
        s.push_str(&format!(
            "\n[[member]]\nname = \"etcd-{}\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\n\
             client-urls = [\"https://127.0.0.1:{c}\"]\npeer-urls = [\"https://127.0.0.1:{p}\"]\n",
            i + 1
        ));
    }
    s.push_str(
        "\n[[client]]\nname = \"root\"\n\n[[client]]\nname = \"app-user\"\nroles = [\"app-rw\"]\n\
         \n[[role]]\nname = \"app-rw\"\nreadwrite = [\"/app/\"]\nread = [\"/shared/\"]\n",
    );
    s.push_str(extra);
    s
}

fn etcd_args<'a>(ca: &'a OpensslCa, cluster: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "etcd",
        "--ca",
        ca.ca.to_str().unwrap(),
        "--cluster",
        cluster.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--root",
        ca.root.to_str().unwrap(),
    ]
}

/// A CA and a three-member bundle (ports never listened on), with `extra` cluster-file text.
fn bundle(extra: &str) -> (TempDir, OpensslCa, PathBuf) {
    let t = TempDir::new().unwrap();
    let ca = OpensslCa::new(t.path());
    let b = t.path().join("bundle");
    let ports = [(1, 2), (3, 4), (5, 6)].map(|(c, p)| (41700 + c, 41700 + p));
    let cluster = t.path().join("cluster.toml");
    fs::write(
        &cluster,
        cluster_toml(&b, &t.path().join("data"), &ports, extra),
    )
    .unwrap();
    ok(ca.issuer(&etcd_args(&ca, &cluster, &b)));
    (t, ca, b)
}

/// check-etcd must fail with a `FAIL <check>` line containing `needle`; the FAIL lines are
/// pinned as snapshot `name`.
#[track_caller]
fn assert_finding(ca: &OpensslCa, dir: &Path, check: &str, needle: &str, name: &str) {
    let (passed, out) = ca.check_etcd(dir);
    assert!(!passed, "check-etcd must fail:\n{out}");
    assert_eq!(out.lines().last(), Some("FAILED"), "{out}");
    let fails: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("FAIL") && l.split_whitespace().nth(1) == Some(check))
        .collect();
    assert!(
        fails.iter().any(|l| l.contains(needle)),
        "no FAIL {check} line with '{needle}':\n{out}"
    );
    let tmp = dir.parent().unwrap();
    assert_snapshot(name, &normalize(&(fails.join("\n") + "\n"), &[tmp]));
}

fn edit(path: &Path, f: impl Fn(&str) -> String) {
    let t = fs::read_to_string(path).unwrap();
    fs::write(path, f(&t)).unwrap();
}

// ---- item 12: values that would be code or a second variable are refused at load ----

#[test]
fn injected_cluster_values_are_refused_before_anything_is_written() {
    let t = TempDir::new().unwrap();
    let ca = OpensslCa::new(t.path());
    let b = t.path().join("bundle");
    let good = cluster_toml(&b, &t.path().join("data"), &[(41801, 41802)], "");
    // The good file passes (in a scratch folder), so each refusal below is the value's alone.
    let scratch = t.path().join("scratch");
    let cluster = t.path().join("cluster.toml");
    fs::write(
        &cluster,
        good.replace(b.to_str().unwrap(), scratch.to_str().unwrap()),
    )
    .unwrap();
    ok(ca.issuer(&etcd_args(&ca, &cluster, &scratch)));
    fs::remove_dir_all(&scratch).unwrap();
    let data = t.path().join("data").display().to_string();
    let cases: [(&str, String); 7] = [
        (
            "role-name",
            good.replace("\"app-rw\"", "\"x'; touch PWNED; echo '\""),
        ),
        (
            "data-dir-newline",
            good.replace(
                &format!("{data}/{{name}}\""),
                &format!("{data}/{{name}}\\nETCD_CLIENT_CERT_AUTH=false\""),
            ),
        ),
        (
            "key-prefix-quote",
            good.replace("\"/app/\"", "\"/app/' ; touch PWNED ; '\""),
        ),
        (
            "client-url-newline",
            good.replace(":41801\"", ":41801\\nETCD_CLIENT_CERT_AUTH=false\""),
        ),
        (
            "member-dns-space",
            good.replace("dns = [\"localhost\"]", "dns = [\"localhost evil\"]"),
        ),
        (
            "install-dir-dollar",
            good.replace("/nodes/{name}\"", "/nodes/$(touch PWNED)\""),
        ),
        (
            "client-name-newline",
            good.replace("name = \"app-user\"", "name = \"app-user\\nx\""),
        ),
    ];
    for (case, text) in cases {
        fs::write(&cluster, &text).unwrap();
        let ledger = ca.ledger();
        let before = fixture::snapshot_files(t.path());
        let o = ca.issuer(&etcd_args(&ca, &cluster, &b));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "{case}: accepted\n{err}");
        assert_snapshot(&format!("trust-12-{case}"), &normalize(&err, &[t.path()]));
        let after = fixture::snapshot_files(t.path());
        assert_eq!(
            fixture::changed_files(&before, &after),
            Vec::<String>::new(),
            "{case}"
        );
        assert_eq!(ca.ledger(), ledger, "{case}: ledger changed");
        assert!(!b.exists() && !t.path().join("PWNED").exists(), "{case}");
    }
}

// ---- item 12: rbac.sh is idempotent against a real etcd ----

/// What RBAC holds, as the root user sees it.
fn rbac_state(root: &Etcdctl) -> String {
    let mut s = String::new();
    for args in [
        &["user", "list"][..],
        &["role", "list"],
        &["user", "get", "root"],
        &["user", "get", "app-user"],
        &["role", "get", "app-rw"],
    ] {
        let (good, out) = root.try_run(args);
        assert!(good, "etcdctl {args:?}: {out}");
        s.push_str(&out);
    }
    s
}

fn run_rbac(bundle: &Path) -> (bool, String) {
    let o = Command::new("sh")
        .arg("-c")
        .arg(
            "set -a; . clients/root/etcdctl.env; set +a; \
             ETCDCTL='etcdctl --dial-timeout=3s --command-timeout=5s' sh rbac.sh",
        )
        .current_dir(bundle)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn rbac_sh_runs_twice_against_a_real_etcd_and_the_second_run_changes_nothing() {
    let _serial = exclusive();
    let t = TempDir::new().unwrap();
    let ca = OpensslCa::new(t.path());
    let b = t.path().join("bundle");
    let cluster = t.path().join("cluster.toml");
    let ports = [free_ports()];
    fs::write(
        &cluster,
        cluster_toml(&b, &t.path().join("data"), &ports, ""),
    )
    .unwrap();
    let hint = ok(ca.issuer(&etcd_args(&ca, &cluster, &b)));
    let mut cluster = EtcdCluster::start(&b, &t.path().join("logs"), EtcdVersion::V3_4);
    let root = Etcdctl::new(
        &b.join("clients/root"),
        &cluster.endpoints(),
        cluster.version,
    );
    root.wait_healthy(1, Duration::from_secs(30), &mut cluster);

    let (good, first) = run_rbac(&b);
    assert!(good, "first run: {first}\n{}", cluster.log_tails(10));
    let state = rbac_state(&root);
    assert!(state.contains("Roles: app-rw"), "{state}");
    let (good, second) = run_rbac(&b);
    assert!(good, "second run must succeed: {second}");
    assert!(
        !second.contains("created"),
        "the second run added something: {second}"
    );
    assert_eq!(rbac_state(&root), state, "the second run changed RBAC");

    // Auth is on and the roles do what the cluster file says, by certificate CN.
    let app = Etcdctl::new(
        &b.join("clients/app-user"),
        &cluster.endpoints(),
        cluster.version,
    );
    let (good, out) = app.try_run(&["put", "/app/k", "v"]);
    assert!(good, "{out}");
    let (good, out) = app.try_run(&["put", "/shared/k", "v"]);
    assert!(!good && out.contains("permission denied"), "{out}");
    drop(cluster);
    // item 23: the closing hint names the member folder, not a literal `{name}`.
    assert!(
        hint.contains(&format!("to {}/nodes/<member> on each member", b.display()))
            && !hint.contains("{name}"),
        "{hint}"
    );
}

// ---- item 12: check-etcd reports injected or planted generated files ----

#[test]
fn check_etcd_fails_an_env_file_with_an_injected_variable() {
    let (_t, ca, b) = bundle("");
    let (passed, out) = ca.check_etcd(&b);
    assert!(passed, "{out}");
    // The review's reproduction: a data-dir with a newline adds ETCD_CLIENT_CERT_AUTH=false.
    edit(&b.join("nodes/etcd-1/etcd.env"), |t| {
        t.lines()
            .map(|l| match l.starts_with("ETCD_DATA_DIR=") {
                true => format!("{l}\nETCD_CLIENT_CERT_AUTH=false\n"),
                false => format!("{l}\n"),
            })
            .collect()
    });
    assert_finding(
        &ca,
        &b,
        "env",
        "ETCD_CLIENT_CERT_AUTH is set twice",
        "trust-12-env-duplicate",
    );
}

#[test]
fn check_etcd_fails_shell_syntax_and_unknown_variables_in_etcd_env() {
    let (t, ca, b) = bundle("");
    let env = b.join("nodes/etcd-2/etcd.env");
    let pwned = t.path().join("PWNED");
    edit(&env, |s| {
        s.replace(
            "ETCD_NAME=etcd-2\n",
            &format!("ETCD_NAME=etcd-2$(touch {})\n", pwned.display()),
        ) + "ETCD_CLIENT_CRL_FIEL=/tmp/crl.pem\n"
    });
    assert_finding(&ca, &b, "env", "ETCD_NAME has '$'", "trust-12-env-shell");
    let (_, out) = ca.check_etcd(&b);
    assert!(
        out.contains("ETCD_CLIENT_CRL_FIEL is not an etcd 3.4-3.6 setting"),
        "{out}"
    );
    assert!(!pwned.exists(), "check-etcd must never run the file");
}

#[test]
fn check_etcd_fails_a_planted_step_in_rbac_sh() {
    let (t, ca, b) = bundle("");
    edit(&b.join("rbac.sh"), |s| {
        s.replace(
            "role_add 'app-rw'\n",
            "role_add 'app-rw'\n$ETCDCTL user grant-role 'app-user' 'root'; touch PWNED\n",
        )
    });
    assert_finding(
        &ca,
        &b,
        "rbac",
        "is not a step `issuer etcd` writes",
        "trust-12-rbac-planted",
    );
    assert!(!t.path().join("PWNED").exists());
}

// ---- item 20: what check-etcd missed ----

#[test]
fn check_etcd_finds_a_missing_crl_file_and_crl_variables() {
    let (_t, ca, b) = bundle("");
    fs::remove_file(b.join("nodes/etcd-1/crl.der")).unwrap();
    assert_finding(
        &ca,
        &b,
        "crl",
        "missing: etcd reads the CRL file",
        "trust-20-crl-file",
    );
    let (_t, ca, b) = bundle("");
    edit(&b.join("nodes/etcd-3/etcd.env"), |s| {
        s.lines()
            .filter(|l| {
                !l.starts_with("ETCD_CLIENT_CRL_FILE=") && !l.starts_with("ETCD_PEER_CRL_FILE=")
            })
            .map(|l| format!("{l}\n"))
            .collect()
    });
    assert_finding(
        &ca,
        &b,
        "crl",
        "no ETCD_CLIENT_CRL_FILE",
        "trust-20-crl-variables",
    );
}

#[test]
fn check_etcd_finds_a_missing_trust_variable() {
    let (_t, ca, b) = bundle("");
    edit(&b.join("nodes/etcd-1/etcd.env"), |s| {
        s.lines()
            .filter(|l| !l.starts_with("ETCD_TRUSTED_CA_FILE="))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    assert_finding(
        &ca,
        &b,
        "trust-file",
        "no ETCD_TRUSTED_CA_FILE",
        "trust-20-trust-variable",
    );
}

#[test]
fn check_etcd_finds_a_config_file_variable() {
    let (_t, ca, b) = bundle("");
    edit(&b.join("nodes/etcd-2/etcd.env"), |s| {
        format!("{s}ETCD_CONFIG_FILE=/etc/etcd/etcd.conf.yml\n")
    });
    assert_finding(
        &ca,
        &b,
        "config-file",
        "etcd ignores every other ETCD_* variable",
        "trust-20-config-file",
    );
}

#[test]
fn check_etcd_checks_proxies() {
    let (_t, ca, b) = bundle("\n[[proxy]]\nname = \"proxy-1\"\nips = [\"127.0.0.1\"]\n");
    let (passed, summary) = ca.check_etcd(&b);
    assert!(passed, "{summary}");
    // A proxy certificate without its intermediate: clients cannot build the chain (D1).
    let crt = b.join("proxies/proxy-1/server.crt");
    edit(&crt, |s| {
        let end = "-----END CERTIFICATE-----\n";
        s[..s.find(end).unwrap() + end.len()].to_string()
    });
    assert_finding(
        &ca,
        &b,
        "chain",
        "holds only the leaf",
        "trust-20-proxy-chain",
    );
    assert!(summary.contains("1 proxy(ies)"), "{summary}");
}

/// The reference intermediate signed again by the root: same subject and key, another serial.
fn second_intermediate(ca: &OpensslCa, out: &Path) {
    let r = &ca.reference;
    let work = out.parent().unwrap();
    fs::write(
        work.join("int.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
    )
    .unwrap();
    let csr = work.join("int.csr");
    ok(Command::new("openssl")
        .args(["x509", "-x509toreq", "-in"])
        .arg(r.join("intermediate.crt"))
        .arg("-signkey")
        .arg(r.join("ca-private/intermediate.key"))
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap());
    ok(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-days",
            "365",
            "-sha384",
            "-set_serial",
            "0x7e57ab1e",
        ])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(r.join("ca.crt"))
        .arg("-CAkey")
        .arg(r.join("ca-private/root.key"))
        .arg("-extfile")
        .arg(work.join("int.ext"))
        .arg("-out")
        .arg(out)
        .output()
        .unwrap());
}

#[test]
fn check_etcd_finds_a_chain_whose_intermediate_differs_from_the_bundles() {
    let (t, ca, b) = bundle("");
    let other = t.path().join("other-int.crt");
    second_intermediate(&ca, &other);
    let crt = b.join("nodes/etcd-1/server.crt");
    edit(&crt, |s| {
        let end = "-----END CERTIFICATE-----\n";
        let leaf = &s[..s.find(end).unwrap() + end.len()];
        format!("{leaf}{}", fs::read_to_string(&other).unwrap())
    });
    // The chain still verifies to the root: only the comparison with intermediate.crt finds it.
    let (good, _, err) = fixture::sh(
        t.path(),
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.root.to_str().unwrap(),
            "-untrusted",
            crt.to_str().unwrap(),
            crt.to_str().unwrap(),
        ],
    );
    assert!(good, "{err}");
    assert_finding(
        &ca,
        &b,
        "chain",
        "not the bundle's intermediate.crt (serial",
        "trust-20-chain-intermediate",
    );
}

// ---- item 23: leaves outside the intermediate's name constraints ----

/// An intermediate with name constraints, signed by the reference root, and a server leaf for
/// `san` under it; returns (intermediate PEM, leaf PEM, leaf key path).
fn constrained_leaf(ca: &OpensslCa, work: &Path, san: &str) -> (String, String, PathBuf) {
    fs::create_dir_all(work).unwrap();
    let r = &ca.reference;
    let w = |name: &str| work.join(name);
    let ssl = |args: &[&str]| fixture::sh(work, "openssl", args);
    fs::write(
        w("int.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         nameConstraints=critical,permitted;DNS:etcd.example.internal,permitted;IP:127.0.0.0/255.0.0.0\n",
    )
    .unwrap();
    fs::write(
        w("leaf.ext"),
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"
        ),
    )
    .unwrap();
    let ec = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
    ];
    for (args, what) in [
        ([&ec[..], &["int.key"]].concat(), "int key"),
        ([&ec[..], &["leaf.key"]].concat(), "leaf key"),
        (
            vec![
                "req",
                "-new",
                "-key",
                "int.key",
                "-subj",
                "/CN=Constrained Intermediate",
                "-out",
                "int.csr",
            ],
            "int csr",
        ),
        (
            vec![
                "x509",
                "-req",
                "-in",
                "int.csr",
                "-days",
                "365",
                "-CA",
                r.join("ca.crt").to_str().unwrap(),
                "-CAkey",
                r.join("ca-private/root.key").to_str().unwrap(),
                "-set_serial",
                "0x1c0ffee1",
                "-extfile",
                "int.ext",
                "-out",
                "int.crt",
            ],
            "int cert",
        ),
        (
            vec![
                "req",
                "-new",
                "-key",
                "leaf.key",
                "-subj",
                "/CN=etcd-1",
                "-out",
                "leaf.csr",
            ],
            "leaf csr",
        ),
        (
            vec![
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-days",
                "200",
                "-CA",
                "int.crt",
                "-CAkey",
                "int.key",
                "-set_serial",
                "0x1c0ffee2",
                "-extfile",
                "leaf.ext",
                "-out",
                "leaf.crt",
            ],
            "leaf cert",
        ),
    ] {
        let (good, _, err) = ssl(&args);
        assert!(good, "{what}: {err}");
    }
    let (good, _, err) = ssl(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", "leaf.key", "-out", "leaf.p8",
    ]);
    assert!(good, "{err}");
    (
        fs::read_to_string(w("int.crt")).unwrap(),
        fs::read_to_string(w("leaf.crt")).unwrap(),
        w("leaf.p8"),
    )
}

fn install_leaf(node: &Path, int: &str, leaf: &str, key: &Path) {
    fs::write(node.join("server.crt"), format!("{leaf}{int}")).unwrap();
    fs::copy(key, node.join("server.key")).unwrap();
}

#[test]
fn check_etcd_finds_a_member_name_outside_the_intermediates_constraints() {
    let (t, ca, b) = bundle("");
    let node = b.join("nodes/etcd-1");
    // What `issuer etcd` puts in a member's server certificate: its name, hostnames and IPs.
    let (int, leaf, key) = constrained_leaf(
        &ca,
        &t.path().join("bad"),
        "DNS:etcd-1,DNS:localhost,IP:127.0.0.1",
    );
    install_leaf(&node, &int, &leaf, &key);
    // OpenSSL (like etcd's Go verifier) refuses it: the finding is real.
    let chain = node.join("server.crt");
    let (good, out, err) = fixture::sh(
        t.path(),
        "openssl",
        &[
            "verify",
            "-CAfile",
            ca.root.to_str().unwrap(),
            "-untrusted",
            chain.to_str().unwrap(),
            chain.to_str().unwrap(),
        ],
    );
    assert!(
        !good && format!("{out}{err}").contains("permitted subtree violation"),
        "{out}{err}"
    );
    assert_finding(
        &ca,
        &b,
        "name-constraints",
        "DNS:etcd-1 is outside the intermediate's name constraints (it permits only DNS:etcd.example.internal)",
        "trust-23-name-constraints",
    );
    // Names inside the constraints: no such finding (only the foreign intermediate is).
    let (int, leaf, key) = constrained_leaf(
        &ca,
        &t.path().join("good"),
        "DNS:etcd-1.etcd.example.internal,IP:127.0.0.1",
    );
    install_leaf(&node, &int, &leaf, &key);
    let (_, out) = ca.check_etcd(&b);
    assert!(!out.contains("name-constraints"), "{out}");
    assert!(out.contains("FAIL chain"), "{out}");
}
