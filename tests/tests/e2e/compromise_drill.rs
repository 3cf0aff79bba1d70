//! Issue 6: revocation, CRLs for etcd, renewal, and the compromise drill against a real running
//! 3-member etcd cluster: intermediate A is revoked by the root (SoftHSM2), B is enrolled through
//! bundles, every leaf is re-issued under B and swapped in place without restarting etcd, and the
//! etcd CRL file makes etcd refuse anything still chaining through A.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::etcd_cluster::{etcd_crl_name, EtcdVersion};
use e2e_tests::fixture::{ok, run, sh, softhsm_token};
use e2e_tests::serial::exclusive;

struct Pki {
    d: PathBuf,
    conf: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let conf = softhsm_token(&d.join("tok"));
        let p = Pki { d, conf, _tmp: tmp };
        p.write("init.toml", "allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p256\"\n[root]\ncommon-name = \"Drill Root\"\n[output]\ndir = \"root\"\n");
        ok(p.root_ca(&["init", "init.toml", "--pin-file", "tok/user.pin"]));
        ok(run(
            &p.d,
            "intermediate-ca",
            &["new-identity", "id.txt"],
            &[],
        ));
        p
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.d.join(name), text).unwrap();
    }
    fn root_ca(&self, args: &[&str]) -> Output {
        run(&self.d, "root-ca", args, &[("SOFTHSM2_CONF", &self.conf)])
    }
    fn ica(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "intermediate-ca",
            args,
            &[("PKI_AGE_IDENTITY", &self.d.join("id.txt"))],
        )
    }
    fn issuer(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "issuer",
            args,
            &[("PKI_AGE_IDENTITY", &self.d.join("id.txt"))],
        )
    }
    fn enrol(&self, n: u32) {
        let out = ok(self.ica(&[
            "request",
            "--dir",
            "ica",
            "--to-file",
            "root/transport.recipient",
            "--out",
            &format!("request-{n}.age"),
            "--cn",
            &format!("Drill Intermediate {n}"),
        ]));
        let fp = out
            .lines()
            .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
            .unwrap();
        self.write(
            &format!("sign-{n}.toml"),
            &format!("allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[request]\nbundle = \"request-{n}.age\"\nkey-fingerprint = \"{fp}\"\n[output]\nresponse = \"response-{n}.age\"\ncertificate = \"intermediate-{n}.crt\"\n"),
        );
        ok(self.root_ca(&[
            "sign",
            &format!("sign-{n}.toml"),
            "--pin-file",
            "tok/user.pin",
        ]));
        let (_, rfp, _) = sh(
            &self.d,
            "openssl",
            &[
                "x509",
                "-in",
                "root/root.crt",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        ok(self.ica(&[
            "install",
            "--dir",
            "ica",
            "--root-fingerprint",
            rfp.trim().split('=').nth(1).unwrap(),
            &format!("response-{n}.age"),
        ]));
    }
    fn cluster_file(&self, base: u16, v: EtcdVersion) {
        let b = self.d.display();
        let ver = v.minor();
        let mut t = format!("name = \"drill\"\netcd-version = \"{ver}\"\ninstall-dir = \"{b}/etcd/nodes/{{name}}\"\nclient-install-dir = \"{b}/etcd/clients/{{name}}\"\ndata-dir = \"{b}/data/{{name}}\"\n");
        for i in 1..=3u16 {
            t.push_str(&format!(
                "[[member]]\nname = \"etcd-{i}\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\nclient-urls = [\"https://127.0.0.1:{}\"]\npeer-urls = [\"https://127.0.0.1:{}\"]\n",
                base + i * 10,
                base + i * 10 + 1
            ));
        }
        t.push_str("[[client]]\nname = \"root\"\n[[client]]\nname = \"app-user\"\n");
        self.write("cluster.toml", &t);
    }
}

/// The members; killed on drop, even when the test fails.
struct Cluster(Vec<Child>);

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(d: &Path, v: EtcdVersion) -> Cluster {
    let path = v.path_env();
    let mut kids = Vec::new();
    for i in 1..=3 {
        let log = std::fs::File::create(d.join(format!("etcd-{i}.log"))).unwrap();
        kids.push(
            Command::new("bash")
                .arg("-c")
                .arg(format!(
                    "set -a; . etcd/nodes/etcd-{i}/etcd.env; set +a; exec etcd"
                ))
                .current_dir(d)
                .env_clear()
                .env("PATH", &path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    Cluster(kids)
}

/// etcdctl of etcd `v` with a client folder's env file (ETCDCTL_* variables).
fn etcdctl(v: EtcdVersion, d: &Path, client_dir: &Path, args: &[&str]) -> Output {
    let env = std::fs::read_to_string(client_dir.join("etcdctl.env")).unwrap();
    let mut c = Command::new(v.etcdctl());
    c.current_dir(d).env_clear().env("PATH", v.path_env());
    for l in env
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (k, v) = l.split_once('=').unwrap();
        let v = v.replace(
            &client_dir_install(client_dir),
            &client_dir.display().to_string(),
        );
        c.env(k, v);
    }
    c.args(["--dial-timeout=2s", "--command-timeout=3s"])
        .args(args)
        .output()
        .unwrap()
}

/// Clients may be copied aside: their env names the install dir they came from.
fn client_dir_install(client_dir: &Path) -> String {
    let env = std::fs::read_to_string(client_dir.join("etcdctl.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("ETCDCTL_CACERT="))
        .map(|v| v.trim_end_matches("/ca.crt").to_string())
        .unwrap()
}

fn healthy(v: EtcdVersion, d: &Path) -> usize {
    let o = etcdctl(v, d, &d.join("etcd/clients/root"), &["endpoint", "health"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    text.matches("is healthy").count()
}

/// Waits for 3 healthy members, then checks they run release `v` (not another etcd on PATH).
fn wait_healthy(v: EtcdVersion, d: &Path) {
    let t = Instant::now();
    while healthy(v, d) < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "cluster not healthy in 40 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let o = etcdctl(
        v,
        d,
        &d.join("etcd/clients/root"),
        &["endpoint", "status", "-w", "json"],
    );
    let status = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        v.members_serving(&status),
        3,
        "not 3 members on {v}: {status}"
    );
}

fn serial_of(d: &Path, cert: &str) -> String {
    let (_, s, _) = sh(d, "openssl", &["x509", "-in", cert, "-noout", "-serial"]);
    s.trim().trim_start_matches("serial=").to_ascii_lowercase()
}

fn logs_mention(d: &Path, needle: &str) -> bool {
    (1..=3).any(|i| {
        std::fs::read_to_string(d.join(format!("etcd-{i}.log")))
            .unwrap_or_default()
            .contains(needle)
    })
}

/// The drill on each etcd release; the two run one after the other (the lock), so each error
/// window measures one cluster on an otherwise quiet machine.
#[test]
fn compromise_drill_on_a_running_cluster_etcd_3_4() {
    compromise_drill_on_a_running_cluster(EtcdVersion::V3_4, 47000);
}

#[test]
fn compromise_drill_on_a_running_cluster_etcd_3_5() {
    compromise_drill_on_a_running_cluster(EtcdVersion::V3_5, 48000);
}

fn compromise_drill_on_a_running_cluster(v: EtcdVersion, ports: u16) {
    let _serial = exclusive();
    let p = Pki::new();
    let d = p.d.clone();
    p.enrol(1);
    p.cluster_file(ports, v);
    ok(p.issuer(&[
        "etcd",
        "--ca",
        "ica",
        "--cluster",
        "cluster.toml",
        "--out",
        "etcd",
    ]));
    let _cluster = start(&d, v);
    wait_healthy(v, &d);

    // A writer keeps writing through the drill.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, acked, d) = (stop.clone(), acked.clone(), d.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let o = etcdctl(
                    v,
                    &d,
                    &d.join("etcd/clients/root"),
                    &["put", &format!("/drill/{n}"), &n.to_string()],
                );
                if o.status.success() {
                    acked.lock().unwrap().push((n, Instant::now()));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let drill_start = Instant::now();

    // An A-chain client kept aside (as a stolen or forgotten copy would be).
    let (okk, _, e) = sh(&d, "cp", &["-a", "etcd/clients/app-user", "a-client"]);
    assert!(okk, "{e}");
    let a_serial = serial_of(&d, "intermediate-1.crt");

    // The root revokes A and signs its CRL.
    p.write("revoke.toml", &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{a_serial}\"\nreason = \"keyCompromise\"\n"));
    ok(p.root_ca(&["revoke", "revoke.toml"]));
    p.write("crl.toml", "allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[output]\ncrl = \"root-crl-1.pem\"\n");
    ok(p.root_ca(&["crl", "crl.toml", "--pin-file", "tok/user.pin"]));
    // B is enrolled through bundles; the response carries the root CRL.
    p.enrol(2);
    let st: serde_json::Value =
        serde_json::from_str(&ok(p.ica(&["status", "--dir", "ica", "--json"]))).unwrap();
    assert_eq!(st["active"], 2);
    // Every live leaf of A is re-issued under B, swapped in place on the running members.
    let out = ok(p.issuer(&["reissue", "--ca", "ica", "--from", "1"]));
    assert!(out.contains("8 leaf/leaves replaced"), "{out}");
    // The etcd CRL file, with the root's revocation of A, goes into the bundle.
    ok(p.issuer(&["crl", "--ca", "ica", "--etcd-bundle", "etcd"]));
    // The file the members load, whatever its name (openssl reads PEM or DER alike).
    let crl = format!("etcd/{}", etcd_crl_name(&d.join("etcd")));
    let (_, crl_text, _) = sh(&d, "openssl", &["crl", "-in", &crl, "-noout", "-text"]);
    assert!(
        crl_text
            .to_ascii_lowercase()
            .replace(':', "")
            .contains(&a_serial),
        "{crl_text}"
    );
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let drill_secs = drill_start.elapsed().as_secs_f64();

    // Afterwards: B chains accepted, the A chain refused, all members healthy.
    assert_eq!(healthy(v, &d), 3, "all members healthy after the swap");
    let root_client = d.join("etcd/clients/root");
    assert!(etcdctl(v, &d, &root_client, &["put", "/after", "b"])
        .status
        .success());
    let app_client = d.join("etcd/clients/app-user");
    assert!(
        etcdctl(v, &d, &app_client, &["get", "/after"])
            .status
            .success(),
        "the B app-user is accepted"
    );
    let (_, issuer, _) = sh(
        &d,
        "openssl",
        &[
            "x509",
            "-in",
            "etcd/clients/app-user/client.crt",
            "-noout",
            "-issuer",
        ],
    );
    assert!(issuer.contains("Drill Intermediate 2"), "{issuer}");
    let refused = etcdctl(v, &d, &d.join("a-client"), &["get", "/after"]);
    assert!(
        !refused.status.success(),
        "the A-chain client must be refused"
    );
    assert!(
        logs_mention(&d, &format!("certificate serial {a_serial} revoked")),
        "etcd says why"
    );

    // No acknowledged write lost; the longest gap between acknowledged writes.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "the writer made progress: {}",
        acked.len()
    );
    for (n, _) in &acked {
        let o = etcdctl(
            v,
            &d,
            &root_client,
            &["get", &format!("/drill/{n}"), "--print-value-only"],
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            n.to_string(),
            "acknowledged write {n} lost"
        );
    }
    let window = acked
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or_default();
    println!(
        "measured error window on {v}: {} ms (longest gap between acknowledged writes; {} writes acknowledged over a {drill_secs:.1} s drill)",
        window.as_millis(),
        acked.len()
    );
    assert!(window < Duration::from_secs(5), "error window {window:?}");
    // The ledger: no live leaf of A is left.
    let rows: serde_json::Value =
        serde_json::from_str(&ok(p.issuer(&["list", "--ca", "ica", "--json"]))).unwrap();
    for r in rows.as_array().unwrap() {
        if r["generation"] == 1 {
            assert_eq!(r["status"], "superseded", "{r}");
        }
    }
}

#[test]
fn a_revoked_leaf_is_refused_once_the_crl_file_is_updated_etcd_3_4() {
    a_revoked_leaf_is_refused_once_the_crl_file_is_updated(EtcdVersion::V3_4, 47200);
}

#[test]
fn a_revoked_leaf_is_refused_once_the_crl_file_is_updated_etcd_3_5() {
    a_revoked_leaf_is_refused_once_the_crl_file_is_updated(EtcdVersion::V3_5, 48200);
}

fn a_revoked_leaf_is_refused_once_the_crl_file_is_updated(v: EtcdVersion, ports: u16) {
    let _serial = exclusive();
    let p = Pki::new();
    let d = p.d.clone();
    p.enrol(1);
    p.cluster_file(ports, v);
    ok(p.issuer(&[
        "etcd",
        "--ca",
        "ica",
        "--cluster",
        "cluster.toml",
        "--out",
        "etcd",
    ]));
    let _cluster = start(&d, v);
    wait_healthy(v, &d);
    let app = d.join("etcd/clients/app-user");
    assert!(etcdctl(v, &d, &app, &["get", "/x"]).status.success());
    // check-etcd --endpoint: the seed's `openssl s_client` step against the running member.
    let probe = |port: u16, client: &str| {
        p.issuer(&[
            "check-etcd",
            "etcd/nodes/etcd-1",
            "--endpoint",
            &format!("https://127.0.0.1:{port}"),
            "--cacert",
            "etcd/ca.crt",
            "--cert",
            &format!("etcd/clients/{client}/client.crt"),
            "--key",
            &format!("etcd/clients/{client}/client.key"),
        ])
    };
    let good = ok(probe(ports + 10, "root"));
    for line in [
        "ok   handshake",
        "sends 2 certificates",
        "SANs cover 127.0.0.1",
        "asks for a client certificate",
        "without a client certificate the member refuses",
    ] {
        assert!(good.contains(line), "'{line}' in\n{good}");
    }
    // A client certificate on the peer port is refused (the shared peer SAN restriction).
    let peer = probe(ports + 11, "app-user");
    let text = String::from_utf8_lossy(&peer.stdout);
    assert!(
        !peer.status.success() && text.contains("FAIL handshake"),
        "{text}"
    );
    let serial = serial_of(&d, "etcd/clients/app-user/client.crt");
    ok(p.issuer(&[
        "revoke",
        &serial,
        "--ca",
        "ica",
        "--reason",
        "keyCompromise",
    ]));
    // Revoked in the ledger, but etcd has not been told yet.
    assert!(etcdctl(v, &d, &app, &["get", "/x"]).status.success());
    ok(p.issuer(&[
        "crl",
        "--ca",
        "ica",
        "--etcd-bundle",
        "etcd",
        "--out",
        "int-crl.pem",
    ]));
    assert!(
        !etcdctl(v, &d, &app, &["get", "/x"]).status.success(),
        "refused after the CRL update, no restart"
    );
    assert!(logs_mention(
        &d,
        &format!("certificate serial {serial} revoked")
    ));
    assert!(etcdctl(v, &d, &d.join("etcd/clients/root"), &["get", "/x"])
        .status
        .success());
}

#[test]
fn renew_replaces_exactly_the_expiring_leaves() {
    let p = Pki::new();
    let d = p.d.clone();
    p.enrol(1);
    ok(p.issuer(&[
        "issue", "client", "--ca", "ica", "--out", "short", "--cn", "short", "--days", "10",
    ]));
    ok(p.issuer(&[
        "issue",
        "server",
        "--ca",
        "ica",
        "--out",
        "short-srv",
        "--cn",
        "s",
        "--ip",
        "127.0.0.1",
        "--dns",
        "s.test",
        "--days",
        "20",
    ]));
    ok(p.issuer(&[
        "issue", "client", "--ca", "ica", "--out", "long", "--cn", "long", "--days", "60",
    ]));
    let long_before = (
        std::fs::read(d.join("long/client.crt")).unwrap(),
        std::fs::read(d.join("long/client.key")).unwrap(),
    );
    let expiring = |p: &Pki| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&ok(p.issuer(&[
            "list",
            "--ca",
            "ica",
            "--expiring-within",
            "30d",
            "--json",
        ])))
        .unwrap();
        let mut s: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["subject"].as_str().unwrap().to_string())
            .collect();
        s.sort();
        s
    };
    assert_eq!(expiring(&p), ["s", "short"]);
    let dry = ok(p.issuer(&[
        "renew",
        "--ca",
        "ica",
        "--expiring-within",
        "30d",
        "--dry-run",
    ]));
    assert!(dry.contains("dry run") && expiring(&p).len() == 2);
    let old_short = serial_of(&d, "short/client.crt");
    let old_key = std::fs::read(d.join("short/client.key")).unwrap();
    ok(p.issuer(&["renew", "--ca", "ica", "--expiring-within", "30d"]));
    assert!(expiring(&p).is_empty(), "nothing expiring is left");
    let new_short = serial_of(&d, "short/client.crt");
    assert_ne!(old_short, new_short);
    assert_ne!(
        old_key,
        std::fs::read(d.join("short/client.key")).unwrap(),
        "a new key where we made the key"
    );
    let (_, text, _) = sh(
        &d,
        "openssl",
        &["x509", "-in", "short-srv/server.crt", "-noout", "-text"],
    );
    assert!(
        text.contains("DNS:s.test")
            && text.contains("IP Address:127.0.0.1")
            && text.contains("TLS Web Server Authentication")
    );
    let (good, out, err) = sh(
        &d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            "short/client.crt",
            "short/client.crt",
        ],
    );
    assert!(good, "{out}{err}");
    assert_eq!(
        long_before,
        (
            std::fs::read(d.join("long/client.crt")).unwrap(),
            std::fs::read(d.join("long/client.key")).unwrap()
        )
    );
    let rows: serde_json::Value =
        serde_json::from_str(&ok(p.issuer(&["list", "--ca", "ica", "--json"]))).unwrap();
    let status = |serial: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["serial"] == serial)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&old_short), "superseded");
    assert_eq!(status(&new_short), "active");
    assert!(!d.join("short/client.crt.new").exists() && !d.join("short/client.key.new").exists());
}

#[test]
fn every_crl_verifies_and_webpki_reports_revocation() {
    let p = Pki::new();
    let d = p.d.clone();
    p.enrol(1);
    ok(p.issuer(&[
        "issue", "client", "--ca", "ica", "--out", "c", "--cn", "victim",
    ]));
    let serial = serial_of(&d, "c/client.crt");
    ok(p.issuer(&[
        "revoke",
        &serial,
        "--ca",
        "ica",
        "--reason",
        "keyCompromise",
    ]));
    ok(p.issuer(&[
        "crl",
        "--ca",
        "ica",
        "--out",
        "int-1.pem",
        "--etcd-out",
        "etcd-crl.der",
        "--days",
        "7",
    ]));
    ok(p.issuer(&["crl", "--ca", "ica", "--out", "int-2.pem", "--days", "3"]));
    for f in ["int-1.pem", "int-2.pem", "etcd-crl.der"] {
        let (good, out, err) = sh(
            &d,
            "openssl",
            &[
                "crl",
                "-in",
                f,
                "-CAfile",
                "ica/generations/1/intermediate.crt",
                "-verify",
                "-noout",
                "-text",
            ],
        );
        assert!(good && err.contains("verify OK"), "{f}: {out}{err}");
        assert!(
            out.contains(&serial.to_ascii_uppercase()),
            "{f} lists the serial"
        );
    }
    let num = |f: &str| -> u64 {
        let (_, out, _) = sh(&d, "openssl", &["crl", "-in", f, "-noout", "-crlnumber"]);
        u64::from_str_radix(out.trim().trim_start_matches("crlNumber=0x"), 16).unwrap()
    };
    assert!(num("int-2.pem") > num("int-1.pem"), "CRL numbers increase");
    let (_, dates, _) = sh(
        &d,
        "openssl",
        &[
            "crl",
            "-in",
            "int-2.pem",
            "-noout",
            "-lastupdate",
            "-nextupdate",
        ],
    );
    assert!(dates.contains("nextUpdate="), "{dates}");
    let (_, etcd_text, _) = sh(
        &d,
        "openssl",
        &["crl", "-in", "etcd-crl.der", "-noout", "-text"],
    );
    assert!(
        etcd_text.contains("Issuing Distribution Point: critical")
            && etcd_text.contains("Indirect CRL")
    );
    // rustls-webpki, on the direct CRL: the revoked leaf is revoked.
    let der = |pem: &str, form: &str| -> Vec<u8> {
        let out = format!("{pem}.der");
        let (good, _, e) = sh(
            &d,
            "openssl",
            &[form, "-in", pem, "-outform", "DER", "-out", &out],
        );
        assert!(good, "{e}");
        std::fs::read(d.join(out)).unwrap()
    };
    let crl = der("int-2.pem", "crl");
    let leaf = der("c/client.crt", "x509");
    let int = der("ica/generations/1/intermediate.crt", "x509");
    let root = der("root/root.crt", "x509");
    let crl = webpki::BorrowedCertRevocationList::from_der(&crl).unwrap();
    let crls = [&webpki::CertRevocationList::Borrowed(crl)];
    // The intermediate's CRL speaks for the leaf (the root CRL for the intermediate is checked in
    // root_ceremonies.rs).
    let opts = webpki::RevocationOptionsBuilder::new(&crls)
        .unwrap()
        .with_depth(webpki::RevocationCheckDepth::EndEntity)
        .build();
    let root_der = rustls_pki_types::CertificateDer::from(root.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der).unwrap()];
    let leaf_der = rustls_pki_types::CertificateDer::from(leaf.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    let inter = [rustls_pki_types::CertificateDer::from(int.as_slice())];
    let r = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        Some(opts),
        None,
    );
    assert!(
        matches!(r, Err(webpki::Error::CertRevoked)),
        "{:?}",
        r.err()
    );
}
