//! End-to-end tests of `issuer etcd` (the etcd bundle of docs/etcd.md) and `issuer check-etcd`,
//! against real etcd processes (3.4 and 3.5, one release after the other), the acceptance checks of `scripts/etcd-acceptance.sh`, openssl
//! and curl.
//!
//! The CA is the OpenSSL reference CA of `scripts/openssl-reference-ca.sh` brought under
//! management with `intermediate-ca import`; an imported CA has no pinned root, so `issuer etcd`
//! gets `--root <fixture>/ca.crt`.
//!
//! Tests that start etcd run one at a time (a 2-core machine: nine etcd processes at once make
//! health checks slow and flaky) and each picks free loopback ports of its own.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use e2e_tests::etcd_cluster::{free_port_base, EtcdVersion};
use e2e_tests::fixture::{
    bash as sh, ok_cmd as ok, output_text as text, run_cmd as run, stdout_text as stdout,
    tool as bin, workspace,
};
use e2e_tests::serial::exclusive;
use tempfile::TempDir;

/// The repository's scripts: the reference CA and the acceptance checks.
fn script(name: &str) -> PathBuf {
    workspace().join("scripts").join(name)
}
const CLUSTER_NAME: &str = "e2e";

// ------------------------------------------------------------------------------------------
// CA fixture (OpenSSL reference CA + intermediate-ca import) and bundles
// ------------------------------------------------------------------------------------------

struct CaFixture {
    /// Output of openssl-reference-ca.sh: ca.crt, intermediate.crt, ca-private/, negative/.
    openssl: PathBuf,
    /// The intermediate-ca folder.
    ca: PathBuf,
    /// Passphrase file of the imported key.
    pass: PathBuf,
}

impl CaFixture {
    fn create(dir: &Path) -> CaFixture {
        let openssl = dir.join("openssl-ca");
        ok(Command::new("bash")
            .arg(script("openssl-reference-ca.sh"))
            .arg(&openssl));
        let pass = dir.join("ca.pass");
        e2e_tests::secret::write_secret(&pass, "e2e etcd bundle passphrase\n");
        let ca = dir.join("ca");
        ok(Command::new(bin("intermediate-ca"))
            .arg("import")
            .arg("--cert")
            .arg(openssl.join("intermediate.crt"))
            .arg("--key")
            .arg(openssl.join("ca-private/intermediate.key"))
            .arg("--dir")
            .arg(&ca)
            .arg("--passphrase-file")
            .arg(&pass));
        CaFixture { openssl, ca, pass }
    }

    fn root(&self) -> PathBuf {
        self.openssl.join("ca.crt")
    }

    fn issuer(&self) -> Command {
        let mut c = Command::new(bin("issuer"));
        c.env_remove("PKI_AGE_IDENTITY")
            .env_remove("PKI_PASSPHRASE_FILE");
        c
    }

    /// `issuer etcd` on a cluster file; returns its output (success asserted).
    fn etcd(&self, cluster: &Path, out: &Path) -> Output {
        ok(self
            .issuer()
            .arg("etcd")
            .arg("--ca")
            .arg(&self.ca)
            .arg("--cluster")
            .arg(cluster)
            .arg("--out")
            .arg(out)
            .arg("--root")
            .arg(self.root())
            .arg("--passphrase-file")
            .arg(&self.pass))
    }

    fn ledger_len(&self) -> usize {
        let o = ok(self
            .issuer()
            .arg("list")
            .arg("--ca")
            .arg(&self.ca)
            .arg("--json"));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("issuer list --json");
        v.as_array().expect("a JSON array").len()
    }
}

struct MemberSpec {
    name: String,
    client_port: u16,
    peer_port: u16,
}

fn members(n: u16, client_base: u16, peer_base: u16) -> Vec<MemberSpec> {
    (1..=n)
        .map(|i| MemberSpec {
            name: format!("etcd-{i}"),
            client_port: client_base + i,
            peer_port: peer_base + i,
        })
        .collect()
}

/// A cluster file for members on 127.0.0.1 installed in place in `bundle`.
fn cluster_file(
    bundle: &Path,
    data: &Path,
    members: &[MemberSpec],
    clients: &[(&str, &[&str])],
) -> String {
    cluster_file_for(bundle, data, members, clients, EtcdVersion::V3_4)
}

/// [`cluster_file`] for etcd `v`.
fn cluster_file_for(
    bundle: &Path,
    data: &Path,
    members: &[MemberSpec],
    clients: &[(&str, &[&str])],
    v: EtcdVersion,
) -> String {
    let mut s = format!(
        "name = \"{CLUSTER_NAME}\"\netcd-version = \"{ver}\"\n\
         install-dir = \"{b}/nodes/{{name}}\"\n\
         client-install-dir = \"{b}/clients/{{name}}\"\n\
         data-dir = \"{d}/{{name}}\"\n",
        b = bundle.display(),
        d = data.display(),
        ver = v.minor()
    );
    for m in members {
        s.push_str(&format!(
            "\n[[member]]\nname = \"{}\"\nips = [\"127.0.0.1\"]\ndns = [\"localhost\"]\n\
             client-urls = [\"https://127.0.0.1:{}\"]\npeer-urls = [\"https://127.0.0.1:{}\"]\n",
            m.name, m.client_port, m.peer_port
        ));
    }
    for (name, roles) in clients {
        let roles: Vec<String> = roles.iter().map(|r| format!("\"{r}\"")).collect();
        s.push_str(&format!(
            "\n[[client]]\nname = \"{name}\"\nroles = [{}]\n",
            roles.join(", ")
        ));
    }
    s.push_str("\n[[role]]\nname = \"app-rw\"\nreadwrite = [\"/app/\"]\n");
    s
}

const CLIENTS: &[(&str, &[&str])] = &[("root", &[]), ("app-user", &["app-rw"])];

/// Writes the cluster file (for etcd `v`) into `dir` and builds the bundle `dir/bundle` with
/// `issuer etcd`.
fn build_bundle(
    fx: &CaFixture,
    dir: &Path,
    client_base: u16,
    peer_base: u16,
    v: EtcdVersion,
) -> PathBuf {
    build_bundle_with(fx, dir, client_base, peer_base, v, "")
}

/// [`build_bundle`] with `extra` appended to the cluster file.
fn build_bundle_with(
    fx: &CaFixture,
    dir: &Path,
    client_base: u16,
    peer_base: u16,
    v: EtcdVersion,
    extra: &str,
) -> PathBuf {
    let bundle = dir.join("bundle");
    let cluster = dir.join("cluster.toml");
    let text = cluster_file_for(
        &bundle,
        &dir.join("data"),
        &members(3, client_base, peer_base),
        CLIENTS,
        v,
    );
    fs::write(&cluster, format!("{text}{extra}")).unwrap();
    fx.etcd(&cluster, &bundle);
    bundle
}

/// A CA and a bundle made once per test process, shared read-only by the static checks
/// (each test breaks its own copy). Kept under the cargo target tmp dir, one folder per
/// process; folders of processes that are gone are removed on the next run.
struct Shared {
    fx: CaFixture,
    bundle: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("etcd_bundle");
        fs::create_dir_all(&base).unwrap();
        for e in fs::read_dir(&base).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("run-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fx = CaFixture::create(&dir);
        // Ports of the shared bundle's etcd.env are never listened on (the acceptance script uses its own).
        let bundle = build_bundle(&fx, &dir, 21900, 21910, EtcdVersion::V3_4);
        Shared { fx, bundle }
    })
}

/// A private copy of the shared bundle (modes kept).
fn bundle_copy() -> (TempDir, PathBuf) {
    let t = TempDir::new().unwrap();
    let copy = t.path().join("bundle");
    ok(Command::new("cp")
        .arg("-a")
        .arg(&shared().bundle)
        .arg(&copy));
    (t, copy)
}

fn pem_certs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let end = rest[start..].find(end_marker).expect("END CERTIFICATE") + start;
        out.push(format!("{}\n", &rest[start..end + end_marker.len()]));
        rest = &rest[end + end_marker.len()..];
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

// ------------------------------------------------------------------------------------------
// A running cluster from the generated etcd.env files
// ------------------------------------------------------------------------------------------

struct Cluster {
    procs: Vec<(String, Child)>,
    logs: Vec<PathBuf>,
    version: EtcdVersion,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, c) in &mut self.procs {
            let _ = c.kill();
        }
        for (_, c) in &mut self.procs {
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Starts every member exactly as an operator would: `env -i` + the member's etcd.env, with
    /// etcd `v` first on PATH.
    fn start(bundle: &Path, names: &[String], logdir: &Path, v: EtcdVersion) -> Cluster {
        let mut cl = Cluster {
            procs: Vec::new(),
            logs: Vec::new(),
            version: v,
        };
        for name in names {
            let env = bundle.join("nodes").join(name).join("etcd.env");
            let log = logdir.join(format!("{name}.log"));
            let f = fs::File::create(&log).unwrap();
            let child = Command::new("env")
                .arg("-i")
                .arg(format!("PATH={}", v.path_env()))
                .arg("bash")
                .arg("-c")
                .arg("set -a; . \"$0\"; set +a; exec etcd")
                .arg(&env)
                .current_dir(logdir)
                .stdin(Stdio::null())
                .stdout(f.try_clone().unwrap())
                .stderr(f)
                .spawn()
                .expect("start etcd");
            cl.procs.push((name.clone(), child));
            cl.logs.push(log);
        }
        cl
    }

    fn log_sizes(&self) -> Vec<u64> {
        self.logs
            .iter()
            .map(|l| fs::metadata(l).map(|m| m.len()).unwrap_or(0))
            .collect()
    }

    /// Log text written after `marks` (from [`Cluster::log_sizes`]).
    fn logs_since(&self, marks: &[u64]) -> String {
        let mut s = String::new();
        for (l, m) in self.logs.iter().zip(marks) {
            let b = fs::read(l).unwrap_or_default();
            let from = (*m as usize).min(b.len());
            s.push_str(&String::from_utf8_lossy(&b[from..]));
        }
        s
    }

    fn log_tails(&self) -> String {
        let mut s = String::new();
        for l in &self.logs {
            let t = fs::read_to_string(l).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            let from = lines.len().saturating_sub(15);
            s.push_str(&format!(
                "== {}\n{}\n",
                l.display(),
                lines[from..].join("\n")
            ));
        }
        s
    }

    fn exited(&mut self) -> Option<String> {
        for (name, c) in &mut self.procs {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(format!("{name} exited: {st}"));
            }
        }
        None
    }
}

/// etcdctl of etcd `v` with the settings of a client's etcdctl.env (nothing else from our
/// environment), optionally with some ETCDCTL_* values replaced.
fn etcdctl(v: EtcdVersion, env_file: &Path, overrides: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut script = String::from("set -a; . \"$0\"; set +a; ");
    for (k, v) in overrides {
        script.push_str(&format!("export {k}='{}'; ", v.display()));
    }
    script.push_str("exec timeout 20 etcdctl --dial-timeout=2s --command-timeout=5s \"$@\"");
    run(Command::new("env")
        .arg("-i")
        .arg(format!("PATH={}", v.path_env()))
        .arg("bash")
        .arg("-c")
        .arg(script)
        .arg(env_file)
        .args(args))
}

fn wait_healthy(cl: &mut Cluster, root_env: &Path, n: usize, limit: Duration) {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < limit {
        if let Some(why) = cl.exited() {
            panic!("{why}\n{}", cl.log_tails());
        }
        let o = etcdctl(cl.version, root_env, &[], &["endpoint", "health"]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if o.status.success() && all.matches("is healthy").count() == n {
            // The members run the release the test names, not whatever `etcd` PATH found.
            let o = etcdctl(
                cl.version,
                root_env,
                &[],
                &["endpoint", "status", "-w", "json"],
            );
            let status = stdout(&o);
            assert_eq!(
                cl.version.members_serving(&status),
                n,
                "not {n} members on {}: {}",
                cl.version,
                text(&o)
            );
            return;
        }
        last = all;
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!(
        "cluster not healthy within {limit:?}; last etcdctl output:\n{last}\n{}",
        cl.log_tails()
    );
}

fn curl(args: &[&str]) -> Output {
    run(Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args))
}

/// A self-signed CA unrelated to ours, and a client certificate CN=root it signed.
fn rogue_client(dir: &Path) -> (PathBuf, PathBuf) {
    fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    ok(&mut sh(&format!(
        "set -e; cd '{d}'
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
           -subj '/CN=rogue root' -days 2 -addext 'basicConstraints=critical,CA:TRUE' \
           -addext 'keyUsage=critical,keyCertSign' -out ca.crt 2>/dev/null
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key \
           -subj '/CN=root' -out client.csr 2>/dev/null
         printf 'extendedKeyUsage=clientAuth\\nkeyUsage=critical,digitalSignature\\n' > ext
         openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 7 -days 1 \
           -extfile ext -out client.crt 2>/dev/null"
    )));
    (dir.join("client.crt"), dir.join("client.key"))
}

// ------------------------------------------------------------------------------------------
// 1. A real cluster from the generated etcd.env files
// ------------------------------------------------------------------------------------------

#[test]
fn real_cluster_from_generated_env_files_etcd_3_4() {
    real_cluster_from_generated_env_files(EtcdVersion::V3_4);
}

#[test]
fn real_cluster_from_generated_env_files_etcd_3_5() {
    real_cluster_from_generated_env_files(EtcdVersion::V3_5);
}

fn real_cluster_from_generated_env_files(v: EtcdVersion) {
    let fx = &shared().fx;
    let t = TempDir::new().unwrap();
    let _guard = exclusive();
    let base = free_port_base(24100, 3);
    let (cbase, pbase) = (base, base + 10);
    // Kubernetes' API server as a client: its folder is installed in place, and it dials one
    // member by name (localhost) and one by IP.
    let kube_dir = t.path().join("bundle/clients").join(KUBE_CN);
    let kube = format!(
        "\n[[client]]\nname = \"{KUBE_CN}\"\nkind = \"kube-apiserver\"\ninstall-dir = \"{}\"\n\
         endpoints = [\"https://localhost:{}\", \"https://127.0.0.1:{}\"]\n",
        kube_dir.display(),
        cbase + 1,
        cbase + 2
    );
    let bundle = build_bundle_with(fx, t.path(), cbase, pbase, v, &kube);
    let names: Vec<String> = (1..=3).map(|i| format!("etcd-{i}")).collect();
    let logdir = t.path().join("logs");
    fs::create_dir_all(&logdir).unwrap();

    let t0 = Instant::now();
    let mut cl = Cluster::start(&bundle, &names, &logdir, v);
    let root_env = bundle.join("clients/root/etcdctl.env");
    let app_env = bundle.join("clients/app-user/etcdctl.env");
    wait_healthy(&mut cl, &root_env, 3, Duration::from_secs(30));

    // put/get as root (no auth yet).
    let o = etcdctl(v, &root_env, &[], &["put", "/e2e/k", "v-e2e"]);
    assert!(o.status.success(), "put: {}", text(&o));
    let o = etcdctl(v, &root_env, &[], &["get", "/e2e/k", "--print-value-only"]);
    assert_eq!(stdout(&o).trim(), "v-e2e", "get: {}", text(&o));

    let ca = bundle.join("ca.crt");
    let ca = ca.to_str().unwrap();
    let root_c = bundle.join("clients/root/client.crt");
    let root_k = bundle.join("clients/root/client.key");
    let app_c = bundle.join("clients/app-user/client.crt");
    let app_k = bundle.join("clients/app-user/client.key");
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // JSON gateway with root's certificate (before auth: the gateway ignores the CN, facts E).
    let body = format!("{{\"key\":\"{}\"}}", base64(b"/e2e/k"));
    let url = format!("https://127.0.0.1:{}/v3/kv/range", cbase + 1);
    let o = curl(&[
        "--cacert",
        ca,
        "--cert",
        &s(&root_c),
        "--key",
        &s(&root_k),
        "-X",
        "POST",
        "-d",
        &body,
        &url,
    ]);
    let out = stdout(&o);
    assert!(
        o.status.success() && out.contains("\"header\"") && out.contains(&base64(b"v-e2e")),
        "JSON gateway /v3/kv/range: {}",
        text(&o)
    );

    // Peer port: a member's peer cert is let in (control), a client cert is refused.
    let members_url = format!("https://127.0.0.1:{}/members", pbase + 2);
    let o = curl(&[
        "--http1.1",
        "--cacert",
        ca,
        "--cert",
        &s(&bundle.join("nodes/etcd-1/peer.crt")),
        "--key",
        &s(&bundle.join("nodes/etcd-1/peer.key")),
        &members_url,
    ]);
    assert!(
        o.status.success() && stdout(&o).contains("peerURLs"),
        "a member's peer certificate must reach the peer API: {}",
        text(&o)
    );
    let o = curl(&[
        "--http1.1",
        "--cacert",
        ca,
        "--cert",
        &s(&app_c),
        "--key",
        &s(&app_k),
        &members_url,
    ]);
    assert!(
        !o.status.success() && !stdout(&o).contains("peerURLs"),
        "a client certificate must be refused on the peer port (ETCD_PEER_CERT_ALLOWED_HOSTNAME): {}",
        text(&o)
    );

    // A client of another CA (CN=root) is refused, and the server says why.
    let (rc, rk) = rogue_client(&t.path().join("rogue"));
    let marks = cl.log_sizes();
    let o = etcdctl(
        v,
        &root_env,
        &[("ETCDCTL_CERT", &rc), ("ETCDCTL_KEY", &rk)],
        &["--dial-timeout=1s", "--command-timeout=2s", "get", "/e2e/k"],
    );
    assert!(!o.status.success(), "rogue client accepted: {}", text(&o));
    assert!(!stdout(&o).contains("v-e2e"), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logs = cl.logs_since(&marks);
        if logs.contains("unknown authority") || logs.contains("bad certificate") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 'unknown authority'/'bad certificate' in the server logs after the rogue client:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // RBAC: rbac.sh as root, then certificate CN = user.
    let o = run(Command::new("env")
        .arg("-i")
        .arg(format!("PATH={}", v.path_env()))
        .arg("bash")
        .arg("-c")
        .arg("set -a; . \"$0\"; set +a; exec timeout 60 sh rbac.sh")
        .arg(&root_env)
        .current_dir(&bundle));
    assert!(
        o.status.success() && stdout(&o).contains("Authentication Enabled"),
        "rbac.sh: {}",
        text(&o)
    );
    let o = etcdctl(v, &app_env, &[], &["put", "/app/k", "app-value"]);
    assert!(
        o.status.success(),
        "app-user put /app/k must be allowed: {}",
        text(&o)
    );
    let o = etcdctl(v, &app_env, &[], &["get", "/app/k", "--print-value-only"]);
    assert_eq!(stdout(&o).trim(), "app-value", "{}", text(&o));
    let o = etcdctl(v, &app_env, &[], &["put", "/other/k", "x"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("permission denied"),
        "app-user put /other/k must be denied: {}",
        text(&o)
    );
    let o = etcdctl(v, &root_env, &[], &["put", "/other/k", "root-value"]);
    assert!(
        o.status.success(),
        "root put /other/k must be allowed: {}",
        text(&o)
    );
    let o = etcdctl(v, &root_env, &[], &["put", "/app/k2", "root-value"]);
    assert!(
        o.status.success(),
        "root put /app/k2 must be allowed: {}",
        text(&o)
    );
    kube_apiserver_client_with_auth(v, &kube_dir);
    drop(cl);
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "cluster test took {:?}",
        t0.elapsed()
    );
}

const KUBE_CN: &str = "kube-apiserver-etcd-client";

/// What the API server does with its files, on a cluster whose auth is on: the settings come
/// from `kubeadm-etcd.yaml` as a YAML parser reads it (Python's), then etcdctl does the API
/// server's operations under /registry/ and on its compaction key, and is refused elsewhere.
fn kube_apiserver_client_with_auth(v: EtcdVersion, dir: &Path) {
    let yaml = dir.join("kubeadm-etcd.yaml");
    let o = run(Command::new("python3")
        .arg("-c")
        .arg("import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(&yaml));
    assert!(
        o.status.success(),
        "kubeadm-etcd.yaml does not parse as YAML: {}",
        text(&o)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["apiVersion"], "kubeadm.k8s.io/v1beta4", "{doc}");
    assert_eq!(doc["kind"], "ClusterConfiguration", "{doc}");
    let ext = doc["etcd"]["external"].as_object().expect("etcd.external");
    let mut keys: Vec<&str> = ext.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["caFile", "certFile", "endpoints", "keyFile"],
        "{doc}"
    );
    let file = |k: &str| PathBuf::from(ext[k].as_str().unwrap());
    assert_eq!(file("caFile"), dir.join("etcd/ca.crt"));
    assert_eq!(file("certFile"), dir.join("apiserver-etcd-client.crt"));
    assert_eq!(file("keyFile"), dir.join("apiserver-etcd-client.key"));
    let mode = fs::metadata(file("keyFile")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the API server's key must be 0600");
    let endpoints: Vec<&str> = ext["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(endpoints.len(), 2, "{doc}");
    // kubeadm's profile: CN only (etcd ignores O, so no system:masters), clientAuth only.
    let o = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
            "-in",
        ])
        .arg(file("certFile")));
    let info = stdout(&o);
    assert!(
        info.contains(&format!("subject=CN = {KUBE_CN}\n")),
        "{info}"
    );
    assert!(
        info.contains("TLS Web Client Authentication") && !info.contains("Server"),
        "{info}"
    );

    let kubectl = |args: &[&str]| -> Output {
        run(Command::new("env")
            .arg("-i")
            .arg(format!("PATH={}", v.path_env()))
            .arg("ETCDCTL_API=3")
            .args([
                "timeout",
                "20",
                "etcdctl",
                "--dial-timeout=2s",
                "--command-timeout=5s",
            ])
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .arg(format!("--cacert={}", file("caFile").display()))
            .arg(format!("--cert={}", file("certFile").display()))
            .arg(format!("--key={}", file("keyFile").display()))
            .args(args))
    };
    let o = kubectl(&["put", "/registry/pods/default/p1", "pod-1"]);
    assert!(
        o.status.success(),
        "kube-apiserver put /registry/: {}",
        text(&o)
    );
    let o = kubectl(&["get", "/registry/", "--prefix", "--print-value-only"]);
    assert_eq!(stdout(&o).trim(), "pod-1", "{}", text(&o));
    // The compactor's marker (outside the prefix), then a compaction at the current revision.
    let o = kubectl(&["put", "compact_rev_key", "1", "-w", "json"]);
    assert!(
        o.status.success(),
        "kube-apiserver put compact_rev_key: {}",
        text(&o)
    );
    let rev = serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["header"]["revision"]
        .as_i64()
        .expect("revision");
    let o = kubectl(&["compact", &rev.to_string()]);
    assert!(o.status.success(), "kube-apiserver compact: {}", text(&o));
    let o = kubectl(&["lease", "grant", "60"]);
    assert!(
        o.status.success(),
        "kube-apiserver lease grant: {}",
        text(&o)
    );
    for (args, what) in [
        (&["put", "/app/k", "x"][..], "put /app/k"),
        (&["get", "/app/k"][..], "get /app/k"),
        (
            &["put", "/registry", "x"][..],
            "put /registry (outside /registry/)",
        ),
    ] {
        let o = kubectl(args);
        assert!(
            !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("permission denied"),
            "kube-apiserver {what} must be denied: {}",
            text(&o)
        );
    }
}

// ------------------------------------------------------------------------------------------
// 2. The acceptance checks (scripts/etcd-acceptance.sh)
// ------------------------------------------------------------------------------------------

/// scripts/etcd-acceptance.sh on `bundle` with etcd `v` (ETCD_BIN / ETCDCTL_BIN).
fn run_harness(bundle: &Path, client_start: u16, peer_start: u16, v: EtcdVersion) {
    let _guard = exclusive();
    // The script puts member i on CLIENT_PORT_BASE+i and PEER_PORT_BASE+i.
    let client_base = free_port_base(client_start, 3);
    let peer_base = free_port_base(peer_start, 3);
    let o = run(Command::new("bash")
        .arg(script("etcd-acceptance.sh"))
        .arg(bundle)
        .env("CLIENT_PORT_BASE", client_base.to_string())
        .env("PEER_PORT_BASE", peer_base.to_string())
        .env("DEADLINE", "150")
        .env("ETCD_BIN", v.etcd())
        .env("ETCDCTL_BIN", v.etcdctl())
        .stdin(Stdio::null()));
    let out = stdout(&o);
    let last = out.lines().last().unwrap_or("");
    let (passed, failed) = last
        .split_once(" passed, ")
        .and_then(|(p, f)| Some((p.parse::<u32>().ok()?, f.strip_suffix(" failed")?)))
        .unwrap_or((0, "?"));
    assert!(
        o.status.success() && failed == "0" && passed > 0,
        "harness on {}: {}",
        bundle.display(),
        text(&o)
    );
}

#[test]
fn harness_passes_on_issuer_etcd_bundle_etcd_3_4() {
    let s = shared();
    run_harness(&s.bundle, 24400, 23840, EtcdVersion::V3_4);
}

/// The certificate files do not depend on the release: the same bundle on etcd 3.5.
#[test]
fn harness_passes_on_issuer_etcd_bundle_etcd_3_5() {
    let s = shared();
    run_harness(&s.bundle, 24400, 23840, EtcdVersion::V3_5);
}

#[test]
fn harness_passes_on_rehearse_bundle() {
    // The process's shared rehearsal: the harness only reads the bundle.
    let out = e2e_tests::fixture::rehearsal();
    let bundle = out.join("etcd");
    for m in ["etcd-1", "etcd-2", "etcd-3"] {
        assert!(bundle.join("nodes").join(m).join("etcd.env").is_file());
    }
    run_harness(&bundle, 24500, 23860, EtcdVersion::V3_4);
}

// ------------------------------------------------------------------------------------------
// 3. Adding a member and a client issues only what is new
// ------------------------------------------------------------------------------------------

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                m.insert(rel, (fs::read(&p).unwrap(), meta.modified().unwrap()));
            }
        }
    }
    m
}

#[test]
fn adding_a_member_and_a_client_issues_only_what_is_new() {
    // Its own CA: the ledger count must not see leaves other tests issue meanwhile.
    let t = TempDir::new().unwrap();
    let fx = CaFixture::create(t.path());
    let bundle = t.path().join("bundle");
    let data = t.path().join("data");
    let cluster = t.path().join("cluster.toml");
    fs::write(
        &cluster,
        cluster_file(&bundle, &data, &members(3, 22000, 22010), CLIENTS),
    )
    .unwrap();
    fx.etcd(&cluster, &bundle);
    let before = snapshot(&bundle);
    let ledger_before = fx.ledger_len();
    assert_eq!(ledger_before, 8, "3 x (server + peer) + 2 clients");

    // Coarse file systems: make a rewrite visible in the mtime.
    std::thread::sleep(Duration::from_millis(1100));
    let mut clients = CLIENTS.to_vec();
    clients.push(("backup", &["app-rw"]));
    fs::write(
        &cluster,
        cluster_file(&bundle, &data, &members(4, 22000, 22010), &clients),
    )
    .unwrap();
    let o = fx.etcd(&cluster, &bundle);
    let out = stdout(&o);
    let after = snapshot(&bundle);

    // rbac.sh is the one file that must change: it now creates the new user.
    let rbac = String::from_utf8_lossy(&after[Path::new("rbac.sh")].0).into_owned();
    assert!(
        rbac.contains("user_add 'backup'\n") && rbac.contains("user grant-role 'backup' 'app-rw'"),
        "rbac.sh does not create the new client:\n{rbac}"
    );
    for (rel, (bytes, mtime)) in &before {
        if rel == Path::new("rbac.sh") {
            continue;
        }
        let (b2, m2) = after
            .get(rel)
            .unwrap_or_else(|| panic!("{} disappeared", rel.display()));
        assert!(b2 == bytes, "{} changed", rel.display());
        assert_eq!(m2, mtime, "{} was rewritten (mtime changed)", rel.display());
    }
    for f in [
        "nodes/etcd-4/server.crt",
        "nodes/etcd-4/server.key",
        "nodes/etcd-4/peer.crt",
        "nodes/etcd-4/peer.key",
        "nodes/etcd-4/ca.crt",
        "nodes/etcd-4/crl.der",
        "nodes/etcd-4/etcd.env",
        "clients/backup/client.crt",
        "clients/backup/client.key",
        "clients/backup/ca.crt",
        "clients/backup/etcdctl.env",
    ] {
        assert!(after.contains_key(Path::new(f)), "{f} missing\n{out}");
    }
    // The new member joins an existing cluster of four.
    let env4 = String::from_utf8_lossy(&after[Path::new("nodes/etcd-4/etcd.env")].0).into_owned();
    assert!(
        env4.contains("ETCD_INITIAL_CLUSTER_STATE=existing\n")
            && env4.contains("etcd-4=https://127.0.0.1:22014"),
        "etcd-4's etcd.env:\n{env4}"
    );

    assert_eq!(
        fx.ledger_len(),
        ledger_before + 3,
        "ledger must grow by server + peer + client\n{out}"
    );
    for label in [
        "nodes/etcd-1/server",
        "nodes/etcd-1/peer",
        "nodes/etcd-2/server",
        "nodes/etcd-2/peer",
        "nodes/etcd-3/server",
        "nodes/etcd-3/peer",
        "clients/root/client",
        "clients/app-user/client",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("kept") && l.contains(label)),
            "no 'kept' line for {label}:\n{out}"
        );
    }
    for label in [
        "nodes/etcd-4/server",
        "nodes/etcd-4/peer",
        "clients/backup/client",
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("issued") && l.contains(label)),
            "no 'issued' line for {label}:\n{out}"
        );
    }
    assert_eq!(
        out.lines().filter(|l| l.starts_with("issued")).count(),
        3,
        "{out}"
    );
}

// ------------------------------------------------------------------------------------------
// 4. issuer check-etcd: passes a good bundle, finds each known mistake
// ------------------------------------------------------------------------------------------

#[test]
fn kube_apiserver_client_added_later_files_warning_check_and_renewal() {
    let t = TempDir::new().unwrap();
    let fx = CaFixture::create(t.path());
    let bundle = t.path().join("bundle");
    let data = t.path().join("data");
    let cluster = t.path().join("cluster.toml");
    let base = cluster_file(&bundle, &data, &members(3, 22100, 22110), CLIENTS);
    fs::write(&cluster, &base).unwrap();
    fx.etcd(&cluster, &bundle);

    // The API server dials a load balancer: its name belongs in every server certificate, and
    // the kept ones do not have it. Said on stderr; nothing existing is replaced.
    fs::write(
        &cluster,
        format!(
            "{base}\n[[client]]\nname = \"{KUBE_CN}\"\nkind = \"kube-apiserver\"\n\
             endpoints = [\"https://etcd-lb.example.internal:2379\"]\n"
        ),
    )
    .unwrap();
    let o = fx.etcd(&cluster, &bundle);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    for m in 1..=3 {
        assert!(
            err.contains(&format!(
                "nodes/etcd-{m}/server.crt: lacks DNS:etcd-lb.example.internal that the cluster file now asks for"
            )),
            "etcd-{m}: {}",
            text(&o)
        );
    }
    assert!(!err.contains("peer.crt"), "{err}");
    let kube = bundle.join("clients").join(KUBE_CN);
    let mut files: Vec<String> = walk(&kube);
    files.sort();
    assert_eq!(
        files,
        [
            "apiserver-etcd-client.crt",
            "apiserver-etcd-client.key",
            "etcd/ca.crt",
            "kubeadm-etcd.yaml"
        ],
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read(kube.join("etcd/ca.crt")).unwrap(),
        fs::read(bundle.join("ca.crt")).unwrap()
    );
    let yaml = fs::read_to_string(kube.join("kubeadm-etcd.yaml")).unwrap();
    assert!(
        yaml.contains("      - \"https://etcd-lb.example.internal:2379\"\n")
            && yaml.contains("keyFile: \"/etc/kubernetes/pki/apiserver-etcd-client.key\""),
        "{yaml}"
    );
    // The chain file verifies as a client certificate under the bundle's root (openssl).
    let o = run(Command::new("openssl")
        .args(["verify", "-purpose", "sslclient", "-CAfile"])
        .arg(kube.join("etcd/ca.crt"))
        .arg("-untrusted")
        .arg(kube.join("apiserver-etcd-client.crt"))
        .arg(kube.join("apiserver-etcd-client.crt")));
    assert!(o.status.success(), "openssl verify: {}", text(&o));
    // check-etcd reads the kubeadm names (a missing key would be a finding).
    let o = run(fx.issuer().arg("check-etcd").arg(&bundle));
    assert!(o.status.success(), "check-etcd: {}", text(&o));
    fs::rename(
        kube.join("apiserver-etcd-client.key"),
        t.path().join("moved.key"),
    )
    .unwrap();
    let o = run(fx.issuer().arg("check-etcd").arg(&bundle));
    assert!(
        !o.status.success() && text(&o).contains("apiserver-etcd-client.key"),
        "check-etcd must miss the API server's key: {}",
        text(&o)
    );
    fs::rename(
        t.path().join("moved.key"),
        kube.join("apiserver-etcd-client.key"),
    )
    .unwrap();

    // Renewal swaps kubeadm's files in place: new key, new certificate, no client.key beside.
    let key_before = fs::read(kube.join("apiserver-etcd-client.key")).unwrap();
    let crt_before = fs::read(kube.join("apiserver-etcd-client.crt")).unwrap();
    let o = ok(fx
        .issuer()
        .arg("renew")
        .arg("--ca")
        .arg(&fx.ca)
        .arg("--expiring-within")
        .arg("400d")
        .arg("--passphrase-file")
        .arg(&fx.pass));
    assert_ne!(
        fs::read(kube.join("apiserver-etcd-client.key")).unwrap(),
        key_before,
        "{}",
        text(&o)
    );
    assert_ne!(
        fs::read(kube.join("apiserver-etcd-client.crt")).unwrap(),
        crt_before
    );
    let mut files: Vec<String> = walk(&kube);
    files.sort();
    assert_eq!(files.len(), 4, "{files:?}");
    let o = run(fx.issuer().arg("check-etcd").arg(&bundle));
    assert!(o.status.success(), "check-etcd after renewal: {}", text(&o));
}

/// Files under `dir`, relative, with `/` between folders.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            out.extend(walk(&e.path()).into_iter().map(|f| format!("{name}/{f}")));
        } else {
            out.push(name);
        }
    }
    out
}

fn check_etcd(dir: &Path, extra: &[&str]) -> Output {
    run(shared().fx.issuer().arg("check-etcd").arg(dir).args(extra))
}

/// Asserts `check-etcd` exits 1 with a FAIL line of `check` whose text contains `needle`.
#[track_caller]
fn assert_finds(dir: &Path, extra: &[&str], check: &str, needle: &str) {
    let o = check_etcd(dir, extra);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "check-etcd must fail:\n{}",
        text(&o)
    );
    assert!(
        out.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("FAIL") && w.next() == Some(check) && l.contains(needle)
        }),
        "no FAIL {check} line containing '{needle}':\n{}",
        text(&o)
    );
    assert_eq!(out.lines().last(), Some("FAILED"), "{out}");
}

#[test]
fn check_etcd_passes_a_good_bundle() {
    let (_t, b) = bundle_copy();
    let o = check_etcd(&b, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        !out.contains("FAIL") && out.lines().last() == Some("PASSED"),
        "{out}"
    );
    assert!(out.contains("3 member(s), 2 client(s)"), "{out}");
    // One member's folder on its own, as installed on its host.
    let o = check_etcd(&b.join("nodes/etcd-2"), &[]);
    assert!(o.status.success(), "member folder: {}", text(&o));
}

#[test]
fn check_etcd_finds_intermediate_missing_from_chain() {
    let (_t, b) = bundle_copy();
    let p = b.join("nodes/etcd-1/server.crt");
    let leaf = pem_certs(&fs::read_to_string(&p).unwrap()).remove(0);
    fs::write(&p, leaf).unwrap();
    assert_finds(&b, &[], "chain", "holds only the leaf");
}

#[test]
fn check_etcd_finds_intermediate_in_trust_file() {
    let (_t, b) = bundle_copy();
    let int = fs::read(b.join("intermediate.crt")).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(b.join("nodes/etcd-1/ca.crt"))
        .unwrap()
        .write_all(&int)
        .unwrap();
    assert_finds(&b, &[], "trust-file", "not a self-signed root");
}

#[test]
fn check_etcd_finds_server_cert_without_client_auth() {
    let (t, b) = bundle_copy();
    let fx = &shared().fx;
    let node = b.join("nodes/etcd-1");
    let w = t.path().join("work");
    fs::create_dir_all(&w).unwrap();
    fs::write(
        w.join("ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:etcd-1,DNS:localhost,IP:127.0.0.1\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
    )
    .unwrap();
    ok(Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=etcd-1", "-key"])
        .arg(node.join("server.key"))
        .arg("-out")
        .arg(w.join("csr")));
    ok(Command::new("openssl")
        .args(["x509", "-req", "-days", "90", "-sha256", "-set_serial"])
        .arg("0x5e4e4a1c0ffee0ddba11c0ffee0ddba1")
        .arg("-in")
        .arg(w.join("csr"))
        .arg("-CA")
        .arg(fx.openssl.join("intermediate.crt"))
        .arg("-CAkey")
        .arg(fx.openssl.join("ca-private/intermediate.key"))
        .arg("-extfile")
        .arg(w.join("ext"))
        .arg("-out")
        .arg(w.join("leaf.pem")));
    let mut chain = fs::read_to_string(w.join("leaf.pem")).unwrap();
    chain.push_str(&fs::read_to_string(b.join("intermediate.crt")).unwrap());
    fs::write(node.join("server.crt"), chain).unwrap();
    // The replacement is otherwise sound: same key, right chain.
    let o = check_etcd(&b, &[]);
    let out = stdout(&o);
    assert!(
        !out.contains("FAIL chain") && !out.contains("FAIL key-match"),
        "{out}"
    );
    assert_finds(&b, &[], "eku", "without clientAuth");
}

#[test]
fn check_etcd_finds_peer_cert_without_member_ip() {
    let (t, b) = bundle_copy();
    let fx = &shared().fx;
    let w = t.path().join("peer-no-ip");
    ok(fx
        .issuer()
        .args(["issue", "peer", "--cn", "etcd-1", "--dns"])
        .arg(format!("peers.{CLUSTER_NAME}.etcd"))
        .arg("--ca")
        .arg(&fx.ca)
        .arg("--out")
        .arg(&w)
        .arg("--passphrase-file")
        .arg(&fx.pass));
    for f in ["peer.crt", "peer.key"] {
        fs::copy(w.join(f), b.join("nodes/etcd-1").join(f)).unwrap();
    }
    fs::set_permissions(
        b.join("nodes/etcd-1/peer.key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    assert_finds(&b, &[], "peer-san", "lacks the member's own IP 127.0.0.1");
}

fn edit_env(b: &Path, member: &str, f: impl Fn(&str) -> Option<String>) {
    let p = b.join("nodes").join(member).join("etcd.env");
    let t = fs::read_to_string(&p).unwrap();
    assert!(t.contains("ETCD_PEER_CERT_ALLOWED_HOSTNAME="), "{t}");
    let mut s = String::new();
    for l in t.lines() {
        if let Some(l) = f(l) {
            s.push_str(&l);
            s.push('\n');
        }
    }
    fs::write(p, s).unwrap();
}

#[test]
fn check_etcd_finds_missing_peer_restriction() {
    let (_t, b) = bundle_copy();
    edit_env(&b, "etcd-2", |l| {
        (!l.starts_with("ETCD_PEER_CERT_ALLOWED_HOSTNAME=")).then(|| l.to_string())
    });
    assert_finds(
        &b,
        &[],
        "peer-restriction",
        "no ETCD_PEER_CERT_ALLOWED_HOSTNAME",
    );
}

#[test]
fn check_etcd_finds_inconsistent_peer_restriction() {
    let (_t, b) = bundle_copy();
    edit_env(&b, "etcd-3", |l| {
        Some(if l.starts_with("ETCD_PEER_CERT_ALLOWED_HOSTNAME=") {
            "ETCD_PEER_CERT_ALLOWED_HOSTNAME=peers.elsewhere.etcd".into()
        } else {
            l.to_string()
        })
    });
    assert_finds(&b, &[], "peer-restriction", "differs across members");
}

#[test]
fn check_etcd_finds_cn_list_on_etcd_34() {
    let (_t, b) = bundle_copy();
    for m in ["etcd-1", "etcd-2", "etcd-3"] {
        edit_env(&b, m, |l| {
            Some(if l.starts_with("ETCD_PEER_CERT_ALLOWED_HOSTNAME=") {
                "ETCD_PEER_CERT_ALLOWED_CN=etcd-1,etcd-2,etcd-3".into()
            } else {
                l.to_string()
            })
        });
    }
    assert_finds(
        &b,
        &[],
        "peer-restriction",
        "ETCD_PEER_CERT_ALLOWED_CN=etcd-1,etcd-2,etcd-3: etcd 3.4 takes one value",
    );
}

#[test]
fn check_etcd_finds_crl_in_yaml_config() {
    let (_t, b) = bundle_copy();
    fs::write(
        b.join("nodes/etcd-1/etcd.conf.yml"),
        "client-transport-security:\n  crl-file: /x\n",
    )
    .unwrap();
    assert_finds(&b, &[], "yaml-config", "sets crl-file in a YAML config");
}

#[test]
fn check_etcd_finds_peer_restriction_in_yaml_config() {
    let (_t, b) = bundle_copy();
    fs::write(
        b.join("nodes/etcd-1/etcd.conf.yml"),
        "peer-cert-allowed-cn: x\n",
    )
    .unwrap();
    assert_finds(&b, &[], "yaml-config", "cert-allowed-cn in a YAML config");
}

#[test]
fn check_etcd_finds_members_trusting_different_roots() {
    let (_t, b) = bundle_copy();
    // Another root with the very same subject DN as ours.
    let other = shared().fx.openssl.join("negative/rogue-ca/ca.crt");
    fs::copy(other, b.join("nodes/etcd-2/ca.crt")).unwrap();
    assert_finds(&b, &[], "ca-files", "trust different CA files");
}

#[test]
fn check_etcd_finds_crl_with_trailing_bytes() {
    let (_t, b) = bundle_copy();
    let p = b.join("nodes/etcd-1/crl.der");
    let crl = fs::read(&p).unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .unwrap()
        .write_all(&crl)
        .unwrap();
    // etcd 3.6 parses the whole file as one DER CRL and fails on anything after it.
    assert_finds(&b, &[], "crl", "bytes follow the CertificateList");
}

#[test]
fn check_etcd_finds_stale_crl() {
    let (t, b) = bundle_copy();
    let fx = &shared().fx;
    let private = fx.openssl.join("ca-private");
    let stale = t.path().join("stale-crl.pem");
    ok(Command::new("openssl")
        .args(["ca", "-gencrl", "-name", "intermediate_ca"])
        .args(["-crl_lastupdate", "20200101000000Z"])
        .args(["-crl_nextupdate", "20200102000000Z"])
        .arg("-config")
        .arg(private.join("openssl.cnf"))
        .arg("-out")
        .arg(&stale)
        .env("CADIR", &private)
        .env("SAN", "DNS:localhost")
        .env("SERVER_EKU", "serverAuth, clientAuth"));
    ok(Command::new("openssl")
        .args(["crl", "-outform", "DER", "-in"])
        .arg(&stale)
        .arg("-out")
        .arg(b.join("crl.der")));
    assert_finds(&b, &[], "crl", "stale: nextUpdate was 2020-01-02");
}

#[test]
fn check_etcd_finds_key_readable_by_others() {
    let (_t, b) = bundle_copy();
    fs::set_permissions(
        b.join("nodes/etcd-3/server.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert_finds(&b, &[], "key-mode", "mode 644");
}

#[test]
fn check_etcd_finds_key_cert_mismatch() {
    let (_t, b) = bundle_copy();
    let n = b.join("nodes/etcd-1");
    fs::rename(n.join("server.key"), n.join("tmp.key")).unwrap();
    fs::rename(n.join("peer.key"), n.join("server.key")).unwrap();
    fs::rename(n.join("tmp.key"), n.join("peer.key")).unwrap();
    assert_finds(&b, &[], "key-match", "does not match");
}

#[test]
fn check_etcd_finds_expiry_within_threshold() {
    let (_t, b) = bundle_copy();
    // Leaves live 90 days: fine at the default 30, reported at 100.
    assert!(check_etcd(&b, &[]).status.success());
    assert_finds(&b, &["--warn-days", "100"], "expiry", "expires in 89 days");
}

// ------------------------------------------------------------------------------------------
// 5. Bundle contents
// ------------------------------------------------------------------------------------------

fn openssl_text(args: &[&str], file: &Path) -> String {
    let o = ok(Command::new("openssl").args(args).arg("-in").arg(file));
    stdout(&o)
}

#[test]
fn bundle_contents_follow_the_spec() {
    let s = shared();
    let b = &s.bundle;
    let root = fs::read_to_string(b.join("ca.crt")).unwrap();
    let int = fs::read_to_string(b.join("intermediate.crt")).unwrap();

    // ca.crt: the root alone (one self-signed certificate: the fixture's root).
    assert_eq!(pem_certs(&root).len(), 1, "ca.crt:\n{root}");
    let fp = |p: &Path| openssl_text(&["x509", "-noout", "-fingerprint", "-sha256"], p);
    assert_eq!(fp(&b.join("ca.crt")), fp(&s.fx.root()));
    ok(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(b.join("ca.crt"))
        .arg(b.join("ca.crt")));
    assert_eq!(pem_certs(&int).len(), 1);
    assert_eq!(
        fp(&b.join("intermediate.crt")),
        fp(&s.fx.openssl.join("intermediate.crt"))
    );

    // No YAML anywhere, no CA key anywhere.
    let all = snapshot(b);
    for rel in all.keys() {
        let name = rel.file_name().unwrap().to_string_lossy();
        assert!(
            !name.ends_with(".yml") && !name.ends_with(".yaml"),
            "{}",
            rel.display()
        );
        if name.ends_with(".key") {
            assert!(
                ["server.key", "peer.key", "client.key"].contains(&name.as_ref()),
                "unexpected key {}",
                rel.display()
            );
            let mode = fs::metadata(b.join(rel)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", rel.display());
        }
    }

    let crl = fs::read(b.join("crl.der")).unwrap();
    let chain_check = |rel: &str, purposes: &[&str]| {
        let p = b.join(rel);
        let certs = pem_certs(&fs::read_to_string(&p).unwrap());
        assert_eq!(certs.len(), 2, "{rel}: leaf then intermediate");
        assert_eq!(
            certs[1].trim(),
            int.trim(),
            "{rel}: second block is not intermediate.crt"
        );
        for purpose in purposes {
            ok(Command::new("openssl")
                .args(["verify", "-purpose", purpose, "-CAfile"])
                .arg(b.join("ca.crt"))
                .arg("-untrusted")
                .arg(b.join("intermediate.crt"))
                .arg(&p));
        }
    };

    for m in ["etcd-1", "etcd-2", "etcd-3"] {
        let n = b.join("nodes").join(m);
        for f in [
            "ca.crt",
            "server.crt",
            "server.key",
            "peer.crt",
            "peer.key",
            "etcd.env",
        ] {
            assert!(n.join(f).is_file(), "nodes/{m}/{f} missing");
        }
        assert_eq!(fs::read_to_string(n.join("ca.crt")).unwrap(), root);
        assert_eq!(
            fs::read(n.join("crl.der")).unwrap(),
            crl,
            "nodes/{m}/crl.der"
        );
        chain_check(
            &format!("nodes/{m}/server.crt"),
            &["sslserver", "sslclient"],
        );
        chain_check(&format!("nodes/{m}/peer.crt"), &["sslserver", "sslclient"]);

        let server = openssl_text(
            &[
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "extendedKeyUsage,subjectAltName",
                "-nameopt",
                "RFC2253",
            ],
            &n.join("server.crt"),
        );
        for want in [
            "TLS Web Server Authentication",
            "TLS Web Client Authentication",
            "IP Address:127.0.0.1",
            "DNS:localhost",
            &format!("DNS:{m}"),
            &format!("subject=CN={m}"),
        ] {
            assert!(
                server.contains(want),
                "nodes/{m}/server.crt lacks {want}:\n{server}"
            );
        }
        let peer = openssl_text(
            &["x509", "-noout", "-ext", "extendedKeyUsage,subjectAltName"],
            &n.join("peer.crt"),
        );
        for want in [
            "TLS Web Server Authentication",
            "TLS Web Client Authentication",
            "IP Address:127.0.0.1",
            &format!("DNS:peers.{CLUSTER_NAME}.etcd"),
        ] {
            assert!(
                peer.contains(want),
                "nodes/{m}/peer.crt lacks {want}:\n{peer}"
            );
        }

        let env = fs::read_to_string(n.join("etcd.env")).unwrap();
        for l in env.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (k, _) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=value: {l}"));
            assert!(
                k.starts_with("ETCD_")
                    && k.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "nodes/{m}/etcd.env: not an ETCD_* variable: {l}"
            );
        }
        assert!(!env.contains("ETCD_CONFIG_FILE"), "{env}");
        let nd = n.display();
        for want in [
            format!("ETCD_NAME={m}\n"),
            format!("ETCD_CLIENT_CRL_FILE={nd}/crl.der\n"),
            format!("ETCD_PEER_CRL_FILE={nd}/crl.der\n"),
            "ETCD_CLIENT_CERT_AUTH=true\n".into(),
            "ETCD_PEER_CLIENT_CERT_AUTH=true\n".into(),
            format!("ETCD_PEER_CERT_ALLOWED_HOSTNAME=peers.{CLUSTER_NAME}.etcd\n"),
            format!("ETCD_TRUSTED_CA_FILE={nd}/ca.crt\n"),
            format!("ETCD_PEER_TRUSTED_CA_FILE={nd}/ca.crt\n"),
            format!("ETCD_CERT_FILE={nd}/server.crt\n"),
            format!("ETCD_PEER_KEY_FILE={nd}/peer.key\n"),
        ] {
            assert!(
                env.contains(&want),
                "nodes/{m}/etcd.env lacks {want:?}:\n{env}"
            );
        }
        assert!(!env.contains("ETCD_PEER_CERT_ALLOWED_CN"), "{env}");
    }

    for c in ["root", "app-user"] {
        let d = b.join("clients").join(c);
        assert_eq!(fs::read_to_string(d.join("ca.crt")).unwrap(), root);
        chain_check(&format!("clients/{c}/client.crt"), &["sslclient"]);
        let cert = openssl_text(
            &[
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "extendedKeyUsage",
                "-nameopt",
                "RFC2253",
            ],
            &d.join("client.crt"),
        );
        assert!(cert.contains(&format!("subject=CN={c}\n")), "{cert}");
        assert!(cert.contains("TLS Web Client Authentication"), "{cert}");
        assert!(!cert.contains("TLS Web Server Authentication"), "{cert}");
    }

    // The CRL is DER (etcd 3.6 reads nothing else), signed by the intermediate.
    assert_eq!(crl.first(), Some(&0x30), "crl.der is not DER");
    let o = ok(Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-verify", "-CAfile"])
        .arg(b.join("intermediate.crt"))
        .arg("-in")
        .arg(b.join("crl.der")));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(said.contains("verify OK"), "{said}");
}
