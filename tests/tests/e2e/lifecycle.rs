//! Revocation, CRLs, renewal, re-issue and the compromise drill (docs/rotation.md, docs/crl.md),
//! end to end: the root in a SoftHSM2 token, the intermediate enrolled through age bundles, a
//! real 3-member etcd cluster (3.4 and 3.5, one after the other) on loopback started from the bundle's etcd.env files, and
//! openssl / rustls-webpki as independent judges of every CRL.
//!
//! The ceremony files are those of `softhsm/rehearse.sh` (allow-network = true: a rehearsal on
//! a networked machine). Set `LIFECYCLE_KEEP=1` to keep each test's folder (logs included).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use e2e_tests::etcd_cluster::{
    etcd_crl_name, etcd_log_serial, presented_issuer, EtcdCluster, EtcdVersion, Etcdctl,
};
use e2e_tests::fixture::{changed_files, ok, run, sh, snapshot_files, softhsm_token};
use e2e_tests::serial::exclusive;
use e2e_tests::writer::{error_window, Attempt, Writer};
use serde_json::Value;

const TOKEN: &str = "[token]\n\
module = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
token-label = \"root-ca\"\n\
key-label = \"rehearsal-root\"\n";

/// One test's PKI: a SoftHSM2 token with the root, the root's state folder, an age identity for
/// the online side, and the intermediate's folder `intermediate/` (once enrolled).
struct Pki {
    _tmp: tempfile::TempDir,
    d: PathBuf,
    conf: PathBuf,
}

impl Pki {
    /// Token + root ceremony 1 (key generation and self-signed root), as rehearse.sh does it.
    fn new(tag: &str) -> Pki {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!("lifecycle-{tag}-"))
            .tempdir()
            .unwrap();
        if std::env::var_os("LIFECYCLE_KEEP").is_some() {
            tmp.disable_cleanup(true);
            eprintln!("{tag}: keeping {}", tmp.path().display());
        }
        let d = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(d.join("ceremonies")).unwrap();
        std::fs::create_dir_all(d.join("bundles")).unwrap();
        let conf = softhsm_token(&d.join("softhsm"));
        let p = Pki { _tmp: tmp, d, conf };
        p.write(
            "ceremonies/01-root-init.toml",
            &format!(
                "allow-network = true\n{TOKEN}[key]\nalgorithm = \"p384\"\n[root]\n\
                 common-name = \"Rehearsal Root CA\"\norganization = \"PKI rehearsal\"\ndays = 3653\n\
                 [output]\ndir = \"../root\"\n"
            ),
        );
        ok(p.root_ca(&["init", "ceremonies/01-root-init.toml"]));
        ok(run(
            &p.d,
            "intermediate-ca",
            &["new-identity", "intermediate-identity.txt"],
            &[],
        ));
        p
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.d.join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        std::fs::write(self.d.join(rel), text).unwrap();
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.d.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// root-ca with the token's config; the PIN file goes to the ceremonies that open the token
    /// (init, sign, crl; `revoke` and `log verify` take none).
    fn root_ca(&self, args: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        if matches!(args.first(), Some(&"init" | &"sign" | &"crl")) {
            a.extend(["--pin-file", "softhsm/user.pin"]);
        }
        run(&self.d, "root-ca", &a, &[("SOFTHSM2_CONF", &self.conf)])
    }

    fn ica(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "intermediate-ca",
            args,
            &[(
                "PKI_AGE_IDENTITY",
                &self.d.join("intermediate-identity.txt"),
            )],
        )
    }

    fn issuer(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "issuer",
            args,
            &[(
                "PKI_AGE_IDENTITY",
                &self.d.join("intermediate-identity.txt"),
            )],
        )
    }

    fn openssl(&self, args: &[&str]) -> String {
        let (good, out, err) = sh(&self.d, "openssl", args);
        assert!(good, "openssl {args:?}: {out}{err}");
        out
    }

    /// `intermediate-ca request` on `intermediate/`: returns the CSR key fingerprint.
    fn request(&self, tag: &str, cn: &str) -> String {
        let out = ok(self.ica(&[
            "request",
            "--dir",
            "intermediate",
            "--to-file",
            "root/transport.recipient",
            "--cn",
            cn,
            "--out",
            &format!("bundles/request-{tag}.age"),
        ]));
        out.lines()
            .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
            .unwrap_or_else(|| panic!("no fingerprint in\n{out}"))
            .trim()
            .to_string()
    }

    /// The root signs the request in the token; the online side installs the response, pinned
    /// to the root fingerprint.
    fn sign_and_install(&self, tag: &str, key_fingerprint: &str) {
        let file = format!("ceremonies/sign-{tag}.toml");
        self.write(
            &file,
            &format!(
                "allow-network = true\nroot-dir = \"../root\"\n{TOKEN}[request]\n\
                 bundle = \"../bundles/request-{tag}.age\"\nkey-fingerprint = \"{key_fingerprint}\"\n\
                 [certificate]\ndays = 1826\n[output]\nresponse = \"../bundles/response-{tag}.age\"\n"
            ),
        );
        ok(self.root_ca(&["sign", &file]));
        ok(self.root_ca(&["log", "verify", "root"]));
        let fp = self.root_fingerprint();
        ok(self.ica(&[
            "install",
            "--dir",
            "intermediate",
            "--root-fingerprint",
            &fp,
            &format!("bundles/response-{tag}.age"),
        ]));
    }

    fn enrol(&self, tag: &str, cn: &str) {
        let fp = self.request(tag, cn);
        self.sign_and_install(tag, &fp);
    }

    fn root_fingerprint(&self) -> String {
        let out = self.openssl(&[
            "x509",
            "-in",
            "root/root.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        out.trim().split_once('=').unwrap().1.to_string()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&ok(self.ica(&[
            "status",
            "--dir",
            "intermediate",
            "--json",
        ])))
        .unwrap()
    }

    /// The serial (lower-case hex) of intermediate generation `g`.
    fn intermediate_serial(&self, g: u64) -> String {
        let st = self.status();
        st["generations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["generation"] == g)
            .and_then(|x| x["serial"].as_str())
            .unwrap_or_else(|| panic!("no generation {g} with a certificate: {st}"))
            .to_string()
    }

    /// Root ceremonies 3 and 4: revoke an intermediate, then sign the root CRL into `out`.
    fn root_revoke_and_crl(&self, serial: &str, out: &str, days: u32) {
        self.write(
            "ceremonies/revoke.toml",
            &format!(
                "allow-network = true\nroot-dir = \"../root\"\nserial = \"{serial}\"\n\
                 reason = \"keyCompromise\"\n"
            ),
        );
        ok(self.root_ca(&["revoke", "ceremonies/revoke.toml"]));
        self.root_crl(out, days);
    }

    fn root_crl(&self, out: &str, days: u32) {
        let file = format!("ceremonies/crl-{}.toml", out.replace(['/', '.'], "-"));
        self.write(
            &file,
            &format!(
                "allow-network = true\nroot-dir = \"../root\"\nnext-update-days = {days}\n{TOKEN}\
                 [output]\ncrl = \"../{out}\"\n"
            ),
        );
        ok(self.root_ca(&["crl", &file]));
        ok(self.root_ca(&["log", "verify", "root"]));
    }

    /// The ledger (`issuer list --json`).
    fn ledger(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&ok(self.issuer(&[
            "list",
            "--ca",
            "intermediate",
            "--json",
        ])))
        .unwrap();
        v.as_array().unwrap().clone()
    }

    /// Serials of `issuer list --expiring-within D`.
    fn expiring(&self, within: &str) -> BTreeSet<String> {
        let v: Value = serde_json::from_str(&ok(self.issuer(&[
            "list",
            "--ca",
            "intermediate",
            "--expiring-within",
            within,
            "--json",
        ])))
        .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["serial"].as_str().unwrap().to_string())
            .collect()
    }

    /// The serial of a certificate file (its first certificate), lower-case hex.
    fn serial_of(&self, cert: &str) -> String {
        let out = self.openssl(&["x509", "-in", cert, "-noout", "-serial"]);
        out.trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    }

    fn issuer_of(&self, cert: &str) -> String {
        self.openssl(&["x509", "-in", cert, "-noout", "-issuer"])
            .trim()
            .to_string()
    }

    /// `openssl crl -text` of a CRL file.
    fn crl_text(&self, crl: &str) -> String {
        self.openssl(&["crl", "-in", crl, "-noout", "-text"])
    }

    /// Whether a CRL file lists `serial` (any case, openssl prints upper-case hex).
    fn crl_lists(&self, crl: &str, serial: &str) -> bool {
        self.crl_text(crl)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
            .any(|s| s.eq_ignore_ascii_case(serial))
    }

    /// A cluster file for three members of etcd `v` on 127.0.0.1 (client port base+10*i, peer
    /// port base+10*i+1), clients root and app-user (role app-rw: readwrite /app/), installed in
    /// place under etcd/.
    fn cluster_file(&self, base: u16, v: EtcdVersion) {
        let d = self.d.display();
        let ver = v.minor();
        let mut t = format!(
            "name = \"drill\"\netcd-version = \"{ver}\"\ninstall-dir = \"{d}/etcd/nodes/{{name}}\"\n\
             client-install-dir = \"{d}/etcd/clients/{{name}}\"\ndata-dir = \"{d}/etcd-data/{{name}}\"\n"
        );
        for i in 1..=3u16 {
            t.push_str(&format!(
                "\n[[member]]\nname = \"etcd-{i}\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\n\
                 client-urls = [\"https://127.0.0.1:{}\"]\npeer-urls = [\"https://127.0.0.1:{}\"]\n",
                base + 10 * i,
                base + 10 * i + 1
            ));
        }
        t.push_str(
            "\n[[client]]\nname = \"root\"\n\n[[client]]\nname = \"app-user\"\nroles = [\"app-rw\"]\n\n\
             [[role]]\nname = \"app-rw\"\nreadwrite = [\"/app/\"]\n",
        );
        self.write("cluster.toml", &t);
    }

    /// rbac.sh of the bundle, run as the root client (the bundle's own instructions) with
    /// etcd `v`'s etcdctl.
    fn rbac(&self, v: EtcdVersion) {
        let o = std::process::Command::new("bash")
            .args([
                "-c",
                "set -a; . clients/root/etcdctl.env; set +a; ETCDCTL='etcdctl --dial-timeout=3s --command-timeout=5s' sh rbac.sh",
            ])
            .current_dir(self.path("etcd"))
            .env("PATH", v.path_env())
            .output()
            .expect("bash rbac.sh");
        assert!(
            o.status.success(),
            "rbac.sh: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The ledger rows of intermediate generation `g`.
fn leaves_of(ledger: &[Value], g: u64) -> Vec<&Value> {
    ledger.iter().filter(|r| r["generation"] == g).collect()
}

// ---------------------------------------------------------------------------------- tests

/// Issue 6, journey 4: the compromise drill against a running 3-member cluster, on each etcd
/// release (one after the other: the error window is measured per version).
#[test]
fn compromise_drill_with_a_running_cluster_and_a_writer_etcd_3_4() {
    compromise_drill_with_a_running_cluster_and_a_writer(EtcdVersion::V3_4, 25100);
}

#[test]
fn compromise_drill_with_a_running_cluster_and_a_writer_etcd_3_5() {
    compromise_drill_with_a_running_cluster_and_a_writer(EtcdVersion::V3_5, 26100);
}

fn compromise_drill_with_a_running_cluster_and_a_writer(v: EtcdVersion, ports: u16) {
    let _serial = exclusive();
    let started = Instant::now();
    let p = Pki::new("drill");

    // (a) Root, intermediate A through bundles, the etcd bundle, the cluster, RBAC, the writer.
    p.enrol("A", "Drill Intermediate A");
    let st = p.status();
    assert_eq!(st["active"], 1, "{st}");
    let a_serial = p.intermediate_serial(1);
    p.cluster_file(ports, v);
    ok(p.issuer(&[
        "etcd",
        "--ca",
        "intermediate",
        "--cluster",
        "cluster.toml",
        "--out",
        "etcd",
    ]));
    ok(p.issuer(&["check-etcd", "etcd"]));
    let mut cluster = EtcdCluster::start(&p.path("etcd"), &p.path("logs"), v);
    let pids = cluster.pids();
    let eps = cluster.endpoints();
    assert_eq!(eps.split(',').count(), 3, "{eps}");
    let root = Etcdctl::new(&p.path("etcd/clients/root"), &eps, v);
    let app = Etcdctl::new(&p.path("etcd/clients/app-user"), &eps, v);
    root.wait_healthy(3, Duration::from_secs(40), &mut cluster);
    root.assert_release(3);
    p.rbac(v);
    let (good, out) = app.try_run(&["put", "/app/before", "a"]);
    assert!(
        good,
        "app-user (A chain) in its prefix before the drill: {out}"
    );
    let (good, out) = app.try_run(&["put", "/other/before", "a"]);
    assert!(
        !good && out.contains("permission denied"),
        "RBAC by CN is on: {out}"
    );
    for m in &cluster.members {
        let port = m.client_url.trim_start_matches("https://");
        assert!(
            presented_issuer(port, Some(&p.path("etcd/clients/root"))).contains("Intermediate A"),
            "{} presents an A leaf before the drill",
            m.name
        );
    }

    let mut wctl = Etcdctl::new(&p.path("etcd/clients/root"), &eps, v);
    wctl.dial_timeout = "1s";
    wctl.command_timeout = "2s";
    let writer = Writer::start(wctl);
    let t = Instant::now();
    while writer.acked() < 5 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the writer gets no write through"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // (b) The drill starts. An A-chain client is kept aside, as a stolen copy would be.
    let drill_start = Instant::now();
    let (good, _, err) = sh(
        &p.d,
        "cp",
        &["-a", "etcd/clients/app-user", "saved-a-app-user"],
    );
    assert!(good, "{err}");
    assert!(p
        .issuer_of("saved-a-app-user/client.crt")
        .contains("Drill Intermediate A"));

    // (c) The root revokes A (keyCompromise) and signs its CRL in the token.
    p.root_revoke_and_crl(&a_serial, "bundles/root-crl-1.pem", 30);
    assert!(p.crl_lists("bundles/root-crl-1.pem", &a_serial));
    assert_eq!(
        p.read("root/crl.pem"),
        p.read("bundles/root-crl-1.pem"),
        "the root keeps its latest CRL for the response bundles"
    );
    // B: a second request on the same folder stages generation 2; A stays active meanwhile.
    let fp_b = p.request("B", "Drill Intermediate B");
    let st = p.status();
    assert_eq!(st["active"], 1, "A stays active until B is installed: {st}");
    assert_eq!(st["generations"].as_array().unwrap().len(), 2, "{st}");
    p.sign_and_install("B", &fp_b);
    let st = p.status();
    assert_eq!(st["active"], 2, "{st}");
    let gen2 = &st["generations"][1];
    assert_eq!(gen2["generation"], 2);
    assert_eq!(gen2["active"], true);
    assert_eq!(gen2["subject"], "CN=Drill Intermediate B", "{st}");
    // The response carried the root CRL.
    assert!(p.crl_lists("intermediate/root-crl.pem", &a_serial));
    assert_eq!(
        String::from_utf8_lossy(&p.read("intermediate/root-crl.pem")).trim(),
        String::from_utf8_lossy(&p.read("root/crl.pem")).trim()
    );
    // Every live leaf of A re-issued under B, in place: a dry run first changes nothing.
    let before = snapshot_files(&p.path("etcd"));
    let dry = ok(p.issuer(&[
        "reissue",
        "--ca",
        "intermediate",
        "--from",
        "1",
        "--dry-run",
    ]));
    assert_eq!(dry.matches("reissue ").count(), 8, "{dry}");
    assert!(changed_files(&before, &snapshot_files(&p.path("etcd"))).is_empty());
    let out = ok(p.issuer(&["reissue", "--ca", "intermediate", "--from", "1"]));
    assert!(out.contains("8 leaf/leaves replaced"), "{out}");
    let changed: BTreeSet<String> = changed_files(&before, &snapshot_files(&p.path("etcd")))
        .into_iter()
        .collect();
    let mut want = BTreeSet::new();
    for n in 1..=3 {
        for f in ["server.crt", "server.key", "peer.crt", "peer.key"] {
            want.insert(format!("changed nodes/etcd-{n}/{f}"));
        }
    }
    for c in ["root", "app-user"] {
        for f in ["client.crt", "client.key"] {
            want.insert(format!("changed clients/{c}/{f}"));
        }
    }
    want.insert("changed intermediate.crt".to_string());
    assert_eq!(
        changed, want,
        "exactly the leaf files, replaced in place, and the bundle's intermediate.crt"
    );
    // The bundle contract of the etcd harness still holds: every chain file is its leaf and a
    // copy of BUNDLE/intermediate.crt, which is now B.
    assert!(p
        .issuer_of("etcd/nodes/etcd-1/server.crt")
        .contains("Intermediate B"));
    let bundle_int = pem_der(&p.path("etcd/intermediate.crt"));
    assert_eq!(
        bundle_int,
        pem_der(&p.path("intermediate/generations/2/intermediate.crt"))
    );
    for f in [
        "nodes/etcd-1/server.crt",
        "nodes/etcd-2/peer.crt",
        "nodes/etcd-3/server.crt",
        "clients/root/client.crt",
        "clients/app-user/client.crt",
    ] {
        let chain = pem_ders(&p.path(&format!("etcd/{f}")));
        assert_eq!(chain.len(), 2, "{f}");
        assert_eq!(chain[1], bundle_int, "{f}: leaf + intermediate.crt");
    }

    // (d) The etcd CRL file: the issuer's revocations plus the root CRL (A's serial). Its name
    // is the one the members' etcd.env load.
    let crl_name = etcd_crl_name(&p.path("etcd"));
    let crl = format!("etcd/{crl_name}");
    let crl_before = p.read(&crl);
    let out = ok(p.issuer(&["crl", "--ca", "intermediate", "--etcd-bundle", "etcd"]));
    assert!(out.contains("root CRL included"), "{out}");
    assert_ne!(crl_before, p.read(&crl));
    assert!(p.crl_lists(&crl, &a_serial), "{}", p.crl_text(&crl));
    for n in 1..=3 {
        assert_eq!(
            p.read(&format!("etcd/nodes/etcd-{n}/{crl_name}")),
            p.read(&crl),
            "etcd-{n} has the new CRL"
        );
    }
    let drill_end = Instant::now();

    // (e) Afterwards, on the same processes: nobody restarted.
    assert!(cluster.exited().is_empty(), "{:?}", cluster.exited());
    assert_eq!(cluster.pids(), pids);
    for m in &cluster.members {
        let client_port = m.client_url.trim_start_matches("https://");
        let peer_port = m.peer_url.trim_start_matches("https://");
        let got = presented_issuer(client_port, Some(&p.path("etcd/clients/root")));
        assert!(
            got.contains("Drill Intermediate B"),
            "{} client port: {got}",
            m.name
        );
        let got = presented_issuer(peer_port, None);
        assert!(
            got.contains("Drill Intermediate B"),
            "{} peer port: {got}",
            m.name
        );
    }
    // Clients with B chains are accepted, RBAC by CN still applies.
    for f in ["root", "app-user"] {
        assert!(p
            .issuer_of(&format!("etcd/clients/{f}/client.crt"))
            .contains("Drill Intermediate B"));
    }
    let (good, out) = root.try_run(&["put", "/after/root", "b-root"]);
    assert!(good, "root (B) put: {out}");
    let (good, out) = root.try_run(&["get", "/after/root", "--print-value-only"]);
    assert!(good && out.trim() == "b-root", "root (B) get: {out}");
    let (good, out) = app.try_run(&["put", "/app/after", "b-app"]);
    assert!(good, "app-user (B) put in /app/: {out}");
    let (good, out) = app.try_run(&["put", "/other/after", "x"]);
    assert!(
        !good && out.contains("permission denied"),
        "app-user (B) outside /app/: {out}"
    );
    // The saved A-chain client is refused, and the members say why.
    let saved = Etcdctl::new(&p.path("saved-a-app-user"), &eps, v);
    let (good, out) = saved.try_run(&["get", "/app/after"]);
    assert!(!good, "the A-chain client must be refused: {out}");
    let needle = format!("certificate serial {} revoked", etcd_log_serial(&a_serial));
    assert!(
        cluster.log_count(&needle) > 0,
        "no '{needle}' in the member logs:\n{}",
        cluster.log_tails(20)
    );
    assert_eq!(root.healthy(), 3, "{}", cluster.log_tails(10));
    let check = p.issuer(&["check-etcd", "etcd"]);
    assert!(
        check.status.success(),
        "check-etcd after the drill:\n{}",
        String::from_utf8_lossy(&check.stdout)
    );

    // The writer: no acknowledged write lost; the longest gap between acknowledged writes.
    let (attempts, stopped) = writer.finish();
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.acked).collect();
    let (good, out) = root.try_run(&["get", "/drill/", "--prefix"]);
    assert!(good, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let stored: BTreeMap<&str, &str> = lines.chunks(2).map(|kv| (kv[0], kv[1])).collect();
    for a in &acked {
        let key = format!("/drill/{}", a.n);
        assert_eq!(
            stored.get(key.as_str()).copied(),
            Some(a.n.to_string().as_str()),
            "acknowledged write {key} lost"
        );
    }
    let during: Vec<&Attempt> = attempts.iter().filter(|a| a.done >= drill_start).collect();
    let failed: Vec<&&Attempt> = during.iter().filter(|a| !a.acked).collect();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for f in &failed {
        let line = f.error.lines().last().unwrap_or("").to_string();
        *errors.entry(line).or_default() += 1;
    }
    let window = error_window(&attempts, drill_start, stopped);
    println!(
        "measured error window on {v}: {} ms (longest gap between acknowledged writes from the start of the drill \
         to the writer's stop; drill {:.1} s, writer ran {:.1} s after it; {} attempts during the drill, \
         {} acknowledged, {} failed; {} acknowledged in all, none lost)",
        window.as_millis(),
        (drill_end - drill_start).as_secs_f64(),
        (stopped - drill_end).as_secs_f64(),
        during.len(),
        during.len() - failed.len(),
        failed.len(),
        acked.len()
    );
    for (e, n) in &errors {
        println!("  writer error x{n}: {e}");
    }
    assert!(
        during.len() - failed.len() >= 10,
        "the writer made progress during the drill"
    );
    assert!(
        window <= Duration::from_millis(5000),
        "error window {window:?} > 5 s; errors: {errors:?}"
    );

    // The ledger: no live leaf of A is left; B has the same leaves, active.
    let ledger = p.ledger();
    let names = |g: u64, status: &str| -> BTreeSet<(String, String, String)> {
        leaves_of(&ledger, g)
            .into_iter()
            .filter(|r| r["status"] == status)
            .map(|r| {
                (
                    r["profile"].as_str().unwrap().to_string(),
                    r["subject"].as_str().unwrap().to_string(),
                    r["cert_path"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert!(names(1, "active").is_empty(), "no active leaf of A");
    assert_eq!(names(1, "superseded").len(), 8);
    assert_eq!(names(1, "superseded"), names(2, "active"));
    ok(p.root_ca(&["log", "verify", "root"]));
    eprintln!(
        "drill test on {v} took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed() < Duration::from_secs(90));
}

/// A revoked leaf is refused once the CRL file is updated, without a restart, on each etcd
/// release.
#[test]
fn a_revoked_leaf_is_refused_once_the_crl_file_is_updated_without_restart_etcd_3_4() {
    a_revoked_leaf_is_refused_once_the_crl_file_is_updated_without_restart(
        EtcdVersion::V3_4,
        25300,
    );
}

#[test]
fn a_revoked_leaf_is_refused_once_the_crl_file_is_updated_without_restart_etcd_3_5() {
    a_revoked_leaf_is_refused_once_the_crl_file_is_updated_without_restart(
        EtcdVersion::V3_5,
        26300,
    );
}

fn a_revoked_leaf_is_refused_once_the_crl_file_is_updated_without_restart(
    v: EtcdVersion,
    ports: u16,
) {
    let _serial = exclusive();
    let started = Instant::now();
    let p = Pki::new("revoke");
    p.enrol("A", "Drill Intermediate A");
    p.cluster_file(ports, v);
    ok(p.issuer(&[
        "etcd",
        "--ca",
        "intermediate",
        "--cluster",
        "cluster.toml",
        "--out",
        "etcd",
    ]));
    let mut cluster = EtcdCluster::start(&p.path("etcd"), &p.path("logs"), v);
    let pids = cluster.pids();
    let eps = cluster.endpoints();
    let root = Etcdctl::new(&p.path("etcd/clients/root"), &eps, v);
    let app = Etcdctl::new(&p.path("etcd/clients/app-user"), &eps, v);
    root.wait_healthy(3, Duration::from_secs(40), &mut cluster);
    root.assert_release(3);
    let (good, out) = app.try_run(&["put", "/app/k", "v"]);
    assert!(good, "app-user before: {out}");
    // check-etcd --endpoint: the seed's `openssl s_client` step against the running member.
    let m1 = cluster.members.iter().find(|m| m.name == "etcd-1").unwrap();
    let probe = |url: &str, client: &str| {
        p.issuer(&[
            "check-etcd",
            "etcd/nodes/etcd-1",
            "--endpoint",
            url,
            "--cacert",
            "etcd/ca.crt",
            "--cert",
            &format!("etcd/clients/{client}/client.crt"),
            "--key",
            &format!("etcd/clients/{client}/client.key"),
        ])
    };
    let good = ok(probe(&m1.client_url, "root"));
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
    let peer = probe(&m1.peer_url, "app-user");
    let text = String::from_utf8_lossy(&peer.stdout);
    assert!(
        !peer.status.success() && text.contains("FAIL handshake"),
        "{text}"
    );

    let serial = p.serial_of("etcd/clients/app-user/client.crt");
    let needle = format!("certificate serial {} revoked", etcd_log_serial(&serial));
    let crl = format!("etcd/{}", etcd_crl_name(&p.path("etcd")));
    let crl_before = p.read(&crl);
    let out = ok(p.issuer(&[
        "revoke",
        &serial,
        "--ca",
        "intermediate",
        "--reason",
        "keyCompromise",
    ]));
    assert!(out.contains("app-user"), "{out}");
    let rec = p
        .ledger()
        .into_iter()
        .find(|r| r["serial"] == serial.as_str())
        .unwrap();
    assert_eq!(rec["status"], "revoked", "{rec}");
    assert_eq!(rec["revocation_reason"], "keyCompromise", "{rec}");
    // Revoked in the ledger, but nothing published: etcd still accepts it.
    assert_eq!(p.read(&crl), crl_before, "revoke publishes nothing");
    let (good, out) = app.try_run(&["get", "/app/k", "--print-value-only"]);
    assert!(
        good && out.trim() == "v",
        "still accepted before the CRL update: {out}"
    );
    assert_eq!(cluster.log_count(&needle), 0);

    ok(p.issuer(&["crl", "--ca", "intermediate", "--etcd-bundle", "etcd"]));
    assert!(p.crl_lists(&crl, &serial));
    let (good, out) = app.try_run(&["get", "/app/k"]);
    assert!(!good, "refused after the CRL update: {out}");
    assert!(
        cluster.log_count(&needle) > 0,
        "no '{needle}' in the logs:\n{}",
        cluster.log_tails(20)
    );
    let (good, out) = root.try_run(&["get", "/app/k", "--print-value-only"]);
    assert!(good && out.trim() == "v", "root still accepted: {out}");
    let (good, _) = app.try_run(&["put", "/app/k2", "v"]);
    assert!(!good, "refused on every new connection");
    assert!(cluster.exited().is_empty(), "{:?}", cluster.exited());
    assert_eq!(cluster.pids(), pids, "no restart");
    assert_eq!(root.healthy(), 3);
    assert!(started.elapsed() < Duration::from_secs(90));
}

/// `issuer renew` replaces exactly the expiring leaves, in place.
#[test]
fn renew_replaces_exactly_the_expiring_leaves() {
    let p = Pki::new("renew");
    p.enrol("A", "Renew Intermediate");
    std::fs::create_dir_all(p.path("leaves")).unwrap();
    let issue = |role: &str, cn: &str, days: &str, extra: &[&str]| {
        let out = format!("leaves/{cn}");
        let mut a = vec![
            "issue",
            role,
            "--ca",
            "intermediate",
            "--cn",
            cn,
            "--days",
            days,
            "--out",
            &out,
        ];
        a.extend_from_slice(extra);
        ok(p.issuer(&a));
    };
    issue("client", "short-client", "10", &[]);
    issue(
        "server",
        "short-server",
        "10",
        &["--dns", "short.test", "--ip", "127.0.0.2"],
    );
    // A leaf for a CSR: the key stays with its owner, renewal re-certifies that key.
    p.openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "csr.key",
        "-subj",
        "/CN=short-csr",
        "-out",
        "short.csr",
    ]);
    issue("client", "short-csr", "10", &["--csr", "short.csr"]);
    issue("client", "long-client", "60", &[]);
    issue(
        "peer",
        "long-peer",
        "60",
        &["--ip", "127.0.0.3", "--dns", "long.test"],
    );
    // And through etcd bundles: one of 10-day leaves, one of 60-day leaves.
    for (name, days) in [("short", 10), ("long", 60)] {
        p.write(
            &format!("{name}.toml"),
            &format!(
                "name = \"{name}\"\ndays = {days}\n[[member]]\nname = \"{name}-1\"\nips = [\"127.0.0.1\"]\n\
                 [[client]]\nname = \"{name}-app\"\n"
            ),
        );
        ok(p.issuer(&[
            "etcd",
            "--ca",
            "intermediate",
            "--cluster",
            &format!("{name}.toml"),
            "--out",
            &format!("bundle-{name}"),
        ]));
    }
    let ledger = p.ledger();
    assert_eq!(ledger.len(), 11, "5 leaves + 2 bundles of 3");
    let short: BTreeMap<String, Value> = ledger
        .iter()
        .filter(|r| {
            let path = r["cert_path"].as_str().unwrap();
            path.contains("/leaves/short-") || path.contains("/bundle-short/")
        })
        .map(|r| (r["serial"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert_eq!(short.len(), 6);
    let short_serials: BTreeSet<String> = short.keys().cloned().collect();

    // Before: exactly the 10-day leaves are listed as expiring.
    assert_eq!(p.expiring("30d"), short_serials);

    // A dry run changes nothing: no file, no ledger row.
    let files = snapshot_files(&p.d);
    let dry = ok(p.issuer(&[
        "renew",
        "--ca",
        "intermediate",
        "--expiring-within",
        "30d",
        "--dry-run",
    ]));
    assert!(dry.contains("dry run: nothing changed"), "{dry}");
    for s in &short_serials {
        assert!(dry.contains(s.as_str()), "{s} in\n{dry}");
    }
    assert_eq!(
        changed_files(&files, &snapshot_files(&p.d)),
        Vec::<String>::new()
    );
    assert_eq!(p.ledger(), ledger, "the dry run left the ledger alone");

    // The real run.
    let out = ok(p.issuer(&["renew", "--ca", "intermediate", "--expiring-within", "30d"]));
    assert!(out.contains("6 leaf/leaves replaced"), "{out}");
    // The renewed server leaf keeps its names and its server EKU.
    let text = p.openssl(&[
        "x509",
        "-in",
        "leaves/short-server/server.crt",
        "-noout",
        "-text",
    ]);
    assert!(
        text.contains("DNS:short.test")
            && text.contains("IP Address:127.0.0.2")
            && text.contains("TLS Web Server Authentication"),
        "{text}"
    );
    assert!(p.expiring("30d").is_empty(), "nothing expiring is left");

    // Exactly the files of the expiring leaves changed (the CSR leaf has no key file here).
    let changed: BTreeSet<String> = changed_files(&files, &snapshot_files(&p.d))
        .into_iter()
        .collect();
    let want: BTreeSet<String> = [
        "leaves/short-client/client.crt",
        "leaves/short-client/client.key",
        "leaves/short-server/server.crt",
        "leaves/short-server/server.key",
        "leaves/short-csr/client.crt",
        "bundle-short/nodes/short-1/server.crt",
        "bundle-short/nodes/short-1/server.key",
        "bundle-short/nodes/short-1/peer.crt",
        "bundle-short/nodes/short-1/peer.key",
        "bundle-short/clients/short-app/client.crt",
        "bundle-short/clients/short-app/client.key",
    ]
    .iter()
    .map(|f| format!("changed {f}"))
    .collect();
    assert_eq!(
        changed, want,
        "files replaced in place, nothing else touched (the 60-day leaves byte for byte)"
    );

    // The ledger: old rows superseded, successors active with the same names and profile.
    let after = p.ledger();
    assert_eq!(after.len(), 17);
    for r in &after {
        let serial = r["serial"].as_str().unwrap();
        if let Some(old) = short.get(serial) {
            assert_eq!(r["status"], "superseded", "{r}");
            let mut o = old.clone();
            o["status"] = "superseded".into();
            assert_eq!(r, &o, "nothing else about the old row changed");
            continue;
        }
        assert_eq!(r["status"], "active", "{r}");
        let before = ledger.iter().find(|b| b["serial"] == serial);
        if let Some(b) = before {
            assert_eq!(r, b, "a 60-day row is untouched");
            continue;
        }
        // A successor: same file, names, profile, key algorithm and key source as its old row.
        let old = short
            .values()
            .find(|o| o["cert_path"] == r["cert_path"])
            .unwrap_or_else(|| panic!("a successor with no predecessor: {r}"));
        for k in [
            "profile",
            "subject",
            "dns",
            "ips",
            "key_alg",
            "key_source",
            "generation",
        ] {
            assert_eq!(r[k], old[k], "{k} of {r}");
        }
        // The file at that path is the successor.
        let path = r["cert_path"].as_str().unwrap();
        assert_eq!(p.serial_of(path), serial, "{path}");
        let (good, out, err) = sh(
            &p.d,
            "openssl",
            &[
                "verify",
                "-CAfile",
                "root/root.crt",
                "-untrusted",
                path,
                path,
            ],
        );
        assert!(good, "{path}: {out}{err}");
        // Keys: a new one where we made the key, and it matches; the CSR's own key otherwise.
        let cert_pub = p.openssl(&["x509", "-in", path, "-noout", "-pubkey"]);
        let key = Path::new(path).with_extension("key");
        if old["key_source"] == "generated" {
            let key_pub = p.openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
            assert_eq!(
                cert_pub,
                key_pub,
                "{} matches its certificate",
                key.display()
            );
        } else {
            assert!(!key.exists(), "no key file appears for a CSR leaf");
            let csr_pub = p.openssl(&["req", "-in", "short.csr", "-noout", "-pubkey"]);
            assert_eq!(cert_pub, csr_pub, "the CSR leaf keeps its key");
        }
    }
    // No staging files are left behind.
    let leftovers: Vec<String> = snapshot_files(&p.d)
        .into_iter()
        .map(|(f, _)| f.display().to_string())
        .filter(|f| f.ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A second renew finds nothing.
    let again = ok(p.issuer(&["renew", "--ca", "intermediate", "--expiring-within", "30d"]));
    assert!(again.contains("nothing to renew"), "{again}");
}

/// DER of the first PEM block of a file.
fn pem_der(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
    pem.contents
}

/// DER of every PEM block of a file.
fn pem_ders(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .map(|p| p.unwrap().contents)
        .collect()
}

/// (CRL number, thisUpdate, nextUpdate) of a PEM CRL, read by x509-parser.
fn crl_facts(path: &Path) -> (u64, i64, i64) {
    use x509_parser::prelude::FromDer;
    let der = pem_der(path);
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
    (
        crl.crl_number()
            .expect("CRL number")
            .to_string()
            .parse()
            .unwrap(),
        crl.last_update().timestamp(),
        crl.next_update().expect("nextUpdate").timestamp(),
    )
}

/// rustls-webpki's verdict on a leaf (client auth) under root + intermediate with these CRLs.
fn webpki_verdict(
    root: &Path,
    intermediate: &Path,
    leaf: &Path,
    crls: &[&Path],
    depth: webpki::RevocationCheckDepth,
    unknown: webpki::UnknownStatusPolicy,
) -> Result<(), webpki::Error> {
    let ders: Vec<Vec<u8>> = crls.iter().map(|c| pem_der(c)).collect();
    let parsed: Vec<webpki::CertRevocationList<'_>> = ders
        .iter()
        .map(|d| {
            webpki::BorrowedCertRevocationList::from_der(d)
                .unwrap()
                .into()
        })
        .collect();
    let refs: Vec<&webpki::CertRevocationList<'_>> = parsed.iter().collect();
    let opts = webpki::RevocationOptionsBuilder::new(&refs)
        .unwrap()
        .with_depth(depth)
        .with_status_policy(unknown)
        .build();
    let root_der = rustls_pki_types::CertificateDer::from(pem_der(root));
    let anchors = [webpki::anchor_from_trusted_cert(&root_der).unwrap()];
    let inter = [rustls_pki_types::CertificateDer::from(pem_der(
        intermediate,
    ))];
    let leaf_der = rustls_pki_types::CertificateDer::from(pem_der(leaf));
    let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        Some(opts),
        None,
    )
    .map(|_| ())
}

/// Every CRL we write verifies with openssl, and rustls-webpki reads revocation from them.
#[test]
fn every_crl_verifies_and_webpki_reports_revoked_certificates() {
    use webpki::RevocationCheckDepth::{Chain, EndEntity};
    use webpki::UnknownStatusPolicy::{Allow, Deny};
    let p = Pki::new("crl");
    p.enrol("A", "CRL Intermediate A");
    let a_cert = p.path("intermediate/generations/1/intermediate.crt");
    let a_serial = p.intermediate_serial(1);
    for cn in ["victim", "bystander", "orphan"] {
        ok(p.issuer(&[
            "issue",
            "client",
            "--ca",
            "intermediate",
            "--cn",
            cn,
            "--out",
            &format!("leaves/{cn}"),
        ]));
    }
    let victim = p.serial_of("leaves/victim/client.crt");
    ok(p.issuer(&[
        "revoke",
        &victim,
        "--ca",
        "intermediate",
        "--reason",
        "keyCompromise",
    ]));

    // The intermediate's direct CRL, twice: numbers increase, nextUpdate follows --days.
    let t0 = time_now();
    ok(p.issuer(&[
        "crl",
        "--ca",
        "intermediate",
        "--out",
        "crl/a-1.pem",
        "--days",
        "7",
    ]));
    ok(p.issuer(&[
        "crl",
        "--ca",
        "intermediate",
        "--out",
        "crl/a-2.pem",
        "--days",
        "3",
    ]));
    let t1 = time_now();
    let (n1, this1, next1) = crl_facts(&p.path("crl/a-1.pem"));
    let (n2, this2, next2) = crl_facts(&p.path("crl/a-2.pem"));
    assert!(n2 > n1, "CRL numbers strictly increase: {n1} then {n2}");
    assert!((t0 - 1..=t1).contains(&this1) && (t0 - 1..=t1).contains(&this2));
    assert_eq!(
        next1 - this1,
        7 * 86400,
        "nextUpdate = thisUpdate + --days 7"
    );
    assert_eq!(
        next2 - this2,
        3 * 86400,
        "nextUpdate = thisUpdate + --days 3"
    );
    let a_cert_s = a_cert.to_str().unwrap();
    for f in ["crl/a-1.pem", "crl/a-2.pem"] {
        let (good, out, err) = sh(
            &p.d,
            "openssl",
            &["crl", "-in", f, "-CAfile", a_cert_s, "-verify", "-noout"],
        );
        assert!(good && err.contains("verify OK"), "{f}: {out}{err}");
        assert!(p.crl_lists(f, &victim), "{f} lists the revoked leaf");
        assert!(!p.crl_lists(f, &p.serial_of("leaves/bystander/client.crt")));
    }
    // openssl must also refuse the CRL against the wrong issuer (the check can fail).
    let (good, out, err) = sh(
        &p.d,
        "openssl",
        &[
            "crl",
            "-in",
            "crl/a-2.pem",
            "-CAfile",
            "root/root.crt",
            "-verify",
            "-noout",
        ],
    );
    assert!(
        !(good && err.contains("verify OK")),
        "a CRL of A verified with the root?\n{out}{err}"
    );

    // rustls-webpki with the direct CRL: the revoked leaf is revoked, the other is not.
    let root = p.path("root/root.crt");
    let leaf = |cn: &str| p.path(&format!("leaves/{cn}/client.crt"));
    let a2 = p.path("crl/a-2.pem");
    assert_eq!(
        webpki_verdict(&root, &a_cert, &leaf("victim"), &[&a2], EndEntity, Deny),
        Err(webpki::Error::CertRevoked)
    );
    assert_eq!(
        webpki_verdict(&root, &a_cert, &leaf("bystander"), &[&a2], EndEntity, Deny),
        Ok(())
    );

    // The root revokes A and signs its CRL in the token; a second one gets a higher number.
    p.root_revoke_and_crl(&a_serial, "crl/root-1.pem", 30);
    p.root_crl("crl/root-2.pem", 60);
    let (r1, rthis1, rnext1) = crl_facts(&p.path("crl/root-1.pem"));
    let (r2, rthis2, rnext2) = crl_facts(&p.path("crl/root-2.pem"));
    assert!(r2 > r1, "root CRL numbers increase: {r1} then {r2}");
    assert_eq!(rnext1 - rthis1, 30 * 86400);
    assert_eq!(rnext2 - rthis2, 60 * 86400);
    for f in ["crl/root-1.pem", "crl/root-2.pem"] {
        let (good, out, err) = sh(
            &p.d,
            "openssl",
            &[
                "crl",
                "-in",
                f,
                "-CAfile",
                "root/root.crt",
                "-verify",
                "-noout",
            ],
        );
        assert!(good && err.contains("verify OK"), "{f}: {out}{err}");
        assert!(p.crl_lists(f, &a_serial), "{f} lists A");
    }
    // rustls-webpki with the root CRL: the leaf under A (not itself revoked) is refused when
    // the whole chain is checked, because its intermediate is revoked ...
    let r2p = p.path("crl/root-2.pem");
    assert_eq!(
        webpki_verdict(&root, &a_cert, &leaf("orphan"), &[&r2p], Chain, Allow),
        Err(webpki::Error::CertRevoked)
    );
    // ... also with every status known (A's direct CRL says the leaf itself is fine) ...
    assert_eq!(
        webpki_verdict(&root, &a_cert, &leaf("orphan"), &[&r2p, &a2], Chain, Deny),
        Err(webpki::Error::CertRevoked)
    );
    // ... and not when only the end entity is checked: the depth is what finds it.
    assert_eq!(
        webpki_verdict(&root, &a_cert, &leaf("orphan"), &[&r2p], EndEntity, Allow),
        Ok(())
    );

    // B is enrolled (the response carries the root CRL); B's leaves pass the same checks.
    p.enrol("B", "CRL Intermediate B");
    let b_cert = p.path("intermediate/generations/2/intermediate.crt");
    ok(p.issuer(&[
        "issue",
        "client",
        "--ca",
        "intermediate",
        "--cn",
        "newcomer",
        "--out",
        "leaves/newcomer",
    ]));
    ok(p.issuer(&[
        "crl",
        "--ca",
        "intermediate",
        "--out",
        "crl/b-1.pem",
        "--etcd-out",
        "crl/etcd.pem",
        "--days",
        "5",
    ]));
    let (b1, bthis, bnext) = crl_facts(&p.path("crl/b-1.pem"));
    let (e1, ethis, enext) = crl_facts(&p.path("crl/etcd.pem"));
    assert!(b1 > n2 && e1 > n2 && e1 != b1, "{n2} < {b1}, {e1}");
    assert_eq!(bnext - bthis, 5 * 86400);
    assert_eq!(enext - ethis, 5 * 86400);
    let b_cert_s = b_cert.to_str().unwrap();
    for f in ["crl/b-1.pem", "crl/etcd.pem"] {
        let (good, out, err) = sh(
            &p.d,
            "openssl",
            &["crl", "-in", f, "-CAfile", b_cert_s, "-verify", "-noout"],
        );
        assert!(good && err.contains("verify OK"), "{f}: {out}{err}");
    }
    // The etcd CRL: one file with the leaf A revoked and A itself (from the root CRL), marked
    // indirect, each foreign entry naming its issuer.
    let text = p.crl_text("crl/etcd.pem");
    assert!(p.crl_lists("crl/etcd.pem", &victim), "{text}");
    assert!(p.crl_lists("crl/etcd.pem", &a_serial), "{text}");
    assert!(
        text.contains("Issuing Distribution Point: critical") && text.contains("Indirect CRL"),
        "{text}"
    );
    assert!(
        text.contains("DirName:/CN=CRL Intermediate A")
            && text.contains("DirName:/O=PKI rehearsal/CN=Rehearsal Root CA"),
        "{text}"
    );
    // webpki does not do indirect CRLs and says so, rather than misreading the file.
    let etcd_der = pem_der(&p.path("crl/etcd.pem"));
    assert!(matches!(
        webpki::BorrowedCertRevocationList::from_der(&etcd_der),
        Err(webpki::Error::UnsupportedIndirectCrl)
    ));
    // B's direct CRL lists none of A's leaves (they are not B's), and B's leaf is good with
    // the whole chain checked against the root CRL and B's CRL.
    assert!(!p.crl_lists("crl/b-1.pem", &victim));
    let b1p = p.path("crl/b-1.pem");
    assert_eq!(
        webpki_verdict(
            &root,
            &b_cert,
            &leaf("newcomer"),
            &[&r2p, &b1p],
            Chain,
            Deny
        ),
        Ok(())
    );
    // The response's root CRL is the latest the root signed.
    assert_eq!(
        String::from_utf8_lossy(&p.read("intermediate/root-crl.pem")).trim(),
        String::from_utf8_lossy(&p.read("crl/root-2.pem")).trim()
    );
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
