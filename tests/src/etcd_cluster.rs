//! A real etcd cluster started from a bundle made by `issuer etcd`, and etcdctl against it.
//! Added for the lifecycle tests (`tests/tests/e2e/lifecycle.rs`); usable by any test that needs running members.
//!
//! Every member runs with exactly its `etcd.env` (a clean environment, as systemd's
//! `EnvironmentFile=` would give it); the members are killed when the [`EtcdCluster`] is dropped,
//! also when the test panics. Every wait here is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The PATH children get: the system tools only, nothing from the test environment.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The etcd releases the end-to-end suites run against. 3.4 is Debian's package in /usr/bin;
/// 3.5 is the upstream build `scripts/install-deps.sh` unpacks into our cache folder (no
/// distribution ships 3.5 for this machine). Both stay installed side by side: a test picks one
/// by putting its folder first on the children's PATH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdVersion {
    V3_4,
    V3_5,
}

impl EtcdVersion {
    /// Every version, in the order the suites run them (one after the other: two 3-member
    /// clusters at once are too much for a 2-core machine).
    pub const ALL: [EtcdVersion; 2] = [EtcdVersion::V3_4, EtcdVersion::V3_5];

    /// The exact release expected, as `etcd --version` prints it.
    pub fn release(self) -> &'static str {
        match self {
            EtcdVersion::V3_4 => "3.4.23",
            EtcdVersion::V3_5 => "3.5.1",
        }
    }

    /// `3.4` / `3.5`: the value of a cluster file's `etcd-version`.
    pub fn minor(self) -> &'static str {
        match self {
            EtcdVersion::V3_4 => "3.4",
            EtcdVersion::V3_5 => "3.5",
        }
    }

    /// The folder holding this version's `etcd` and `etcdctl`; panics (never skips) when they
    /// are missing or report another release, naming the script that installs them.
    pub fn bin_dir(self) -> PathBuf {
        // Checked once per test process: every etcdctl call asks for the folder.
        static CHECKED: [OnceLock<PathBuf>; 2] = [OnceLock::new(), OnceLock::new()];
        CHECKED[self as usize]
            .get_or_init(|| self.find_bin_dir())
            .clone()
    }

    fn find_bin_dir(self) -> PathBuf {
        let dir = match self {
            EtcdVersion::V3_4 => PathBuf::from("/usr/bin"),
            // The same place as scripts/install-deps.sh (PKI_ETCD35_DIR overrides both).
            EtcdVersion::V3_5 => match std::env::var_os("PKI_ETCD35_DIR") {
                Some(d) => PathBuf::from(d),
                None => std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .unwrap_or_else(|| {
                        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                    })
                    .join("pki-toolkit/etcd-3.5.1"),
            },
        };
        let etcd = dir.join("etcd");
        let said = Command::new(&etcd)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let want = format!("etcd Version: {}\n", self.release());
        assert!(
            said.contains(&want) && dir.join("etcdctl").is_file(),
            "etcd {} is needed at {} (found: {:?}): run scripts/install-deps.sh",
            self.release(),
            dir.display(),
            said.lines().next().unwrap_or("nothing")
        );
        dir
    }

    /// The PATH for children that run this version's etcd and etcdctl.
    pub fn path_env(self) -> String {
        format!("{}:{PATH}", self.bin_dir().display())
    }

    /// How many members of an `etcdctl endpoint status -w json` answer run exactly this
    /// release: proof that a test ran the version it names, not whatever `etcd` PATH found.
    pub fn members_serving(self, status_json: &str) -> usize {
        status_json
            .matches(&format!("\"version\":\"{}\"", self.release()))
            .count()
    }

    pub fn etcd(self) -> PathBuf {
        self.bin_dir().join("etcd")
    }

    pub fn etcdctl(self) -> PathBuf {
        self.bin_dir().join("etcdctl")
    }
}

impl std::fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "etcd {}", self.release())
    }
}

/// One running member.
pub struct EtcdMember {
    pub name: String,
    pub child: Child,
    /// etcd's stderr (its log).
    pub log: PathBuf,
    /// ETCD_ADVERTISE_CLIENT_URLS of its etcd.env.
    pub client_url: String,
    /// ETCD_LISTEN_PEER_URLS of its etcd.env.
    pub peer_url: String,
}

/// The members of one cluster; killed on drop.
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
    pub version: EtcdVersion,
}

/// A variable of an env file (`KEY=value` lines, `#` comments).
pub fn env_value(env_file: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(env_file).ok()?;
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_string())
}

/// The name of the CRL file a bundle's members load (`crl.pem` or `crl.der`), read from the
/// first member's `etcd.env` (ETCD_CLIENT_CRL_FILE) so tests follow the bundle, not a guess.
/// The bundle keeps the same file at its top level (`issuer crl --etcd-bundle` writes both).
pub fn etcd_crl_name(bundle: &Path) -> String {
    let mut envs: Vec<PathBuf> = std::fs::read_dir(bundle.join("nodes"))
        .expect("bundle nodes/")
        .flatten()
        .map(|e| e.path().join("etcd.env"))
        .filter(|p| p.is_file())
        .collect();
    envs.sort();
    let env = envs.first().expect("a member etcd.env");
    let crl = env_value(env, "ETCD_CLIENT_CRL_FILE")
        .unwrap_or_else(|| panic!("no ETCD_CLIENT_CRL_FILE in {}", env.display()));
    Path::new(&crl)
        .file_name()
        .expect("a CRL file name")
        .to_string_lossy()
        .into_owned()
}

impl EtcdCluster {
    /// Starts every member folder of `bundle/nodes/` with its `etcd.env` on `version`; logs go
    /// to `logs/<member>.log`.
    pub fn start(bundle: &Path, logs: &Path, version: EtcdVersion) -> Self {
        Self::start_mixed(bundle, logs, &[version])
    }

    /// Like [`EtcdCluster::start`], the members in name order on `versions` (the last one
    /// repeated when there are more members): a cluster halfway through a rolling upgrade.
    /// `version` is the first one (whose etcdctl the tests use).
    pub fn start_mixed(bundle: &Path, logs: &Path, versions: &[EtcdVersion]) -> Self {
        let version = versions[0];
        std::fs::create_dir_all(logs).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(bundle.join("nodes"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            version,
        };
        for (i, name) in names.into_iter().enumerate() {
            let path = versions[i.min(versions.len() - 1)].path_env();
            let env = bundle.join("nodes").join(&name).join("etcd.env");
            let log = logs.join(format!("{name}.log"));
            let child = Command::new("bash")
                .arg("-c")
                .arg("set -a; . \"$1\"; set +a; exec etcd")
                .arg("etcd-member")
                .arg(&env)
                .env_clear()
                .env("PATH", &path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start etcd");
            cluster.members.push(EtcdMember {
                client_url: env_value(&env, "ETCD_ADVERTISE_CLIENT_URLS").expect("client URL"),
                peer_url: env_value(&env, "ETCD_LISTEN_PEER_URLS").expect("peer URL"),
                name,
                child,
                log,
            });
        }
        cluster
    }

    /// Every member's client URL, comma-separated (for `--endpoints`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The process ids (`exec etcd` keeps the shell's pid).
    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().map(|m| m.child.id()).collect()
    }

    /// The members that have exited, with their exit status.
    pub fn exited(&mut self) -> Vec<String> {
        self.members
            .iter_mut()
            .filter_map(|m| match m.child.try_wait() {
                Ok(Some(st)) => Some(format!("{} exited: {st}", m.name)),
                _ => None,
            })
            .collect()
    }

    /// Every member's log, concatenated.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| std::fs::read_to_string(&m.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// How many log lines of all members contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.logs().lines().filter(|l| l.contains(needle)).count()
    }

    /// The last lines of every log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut s = String::new();
        for m in &self.members {
            let text = std::fs::read_to_string(&m.log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            s.push_str(&format!("--- {} (last {lines} lines)\n", m.name));
            for l in &all[all.len().saturating_sub(lines)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// etcdctl (API 3) with one client identity: explicit flags, a clean environment.
#[derive(Clone, Debug)]
pub struct Etcdctl {
    pub endpoints: String,
    pub cacert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub dial_timeout: &'static str,
    pub command_timeout: &'static str,
    /// Whose etcdctl runs (the cluster's own release).
    pub version: EtcdVersion,
}

impl Etcdctl {
    /// The client folder `dir` (ca.crt, client.crt, client.key) against `endpoints`, with
    /// `version`'s etcdctl.
    pub fn new(dir: &Path, endpoints: &str, version: EtcdVersion) -> Self {
        Etcdctl {
            endpoints: endpoints.to_string(),
            cacert: dir.join("ca.crt"),
            cert: dir.join("client.crt"),
            key: dir.join("client.key"),
            dial_timeout: "2s",
            command_timeout: "3s",
            version,
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.version.etcdctl());
        c.env_clear()
            .env("PATH", self.version.path_env())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg(format!("--cacert={}", self.cacert.display()))
            .arg(format!("--cert={}", self.cert.display()))
            .arg(format!("--key={}", self.key.display()))
            .arg(format!("--dial-timeout={}", self.dial_timeout))
            .arg(format!("--command-timeout={}", self.command_timeout))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("etcdctl")
    }

    /// Runs and returns (success, stdout + stderr).
    pub fn try_run(&self, args: &[&str]) -> (bool, String) {
        let o = self.run(args);
        (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// Asserts every one of `n` members reports this Etcdctl's release.
    #[track_caller]
    pub fn assert_release(&self, n: usize) {
        let (good, out) = self.try_run(&["endpoint", "status", "-w", "json"]);
        assert!(
            good && self.version.members_serving(&out) == n,
            "expected {n} members on {}: {out}",
            self.version
        );
    }

    /// How many endpoints `etcdctl endpoint health` reports healthy.
    pub fn healthy(&self) -> usize {
        let (_, text) = self.try_run(&["endpoint", "health"]);
        text.lines().filter(|l| l.contains(" is healthy")).count()
    }

    /// Waits (at most `limit`) until `want` endpoints are healthy; panics with the cluster's
    /// log tails otherwise.
    pub fn wait_healthy(&self, want: usize, limit: Duration, cluster: &mut EtcdCluster) {
        let t = Instant::now();
        loop {
            let n = self.healthy();
            if n >= want {
                return;
            }
            let exited = cluster.exited();
            assert!(
                exited.is_empty() && t.elapsed() < limit,
                "cluster not healthy ({n}/{want}) after {:?}; {exited:?}\n{}",
                t.elapsed(),
                cluster.log_tails(15)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A certificate serial as etcd 3.4 prints it in its "certificate serial ... revoked" log line:
/// `%x` of `SerialNumber.Bytes()`, i.e. lower-case hex of the minimal big-endian octets (a
/// leading zero *nibble* stays, leading zero *octets* do not).
pub fn etcd_log_serial(hex: &str) -> String {
    let mut s: String = hex
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if s.len() % 2 == 1 {
        s.insert(0, '0');
    }
    while s.len() > 2 && s.starts_with("00") {
        s.drain(..2);
    }
    s
}

/// The issuer line of the certificate a TLS endpoint presents (`openssl s_client`), e.g.
/// `CN = Drill Intermediate 2`; with `client` (a folder with client.crt/.key) as client
/// certificate when given.
pub fn presented_issuer(hostport: &str, client: Option<&Path>) -> String {
    let mut c = Command::new("openssl");
    c.args(["s_client", "-connect", hostport]);
    if let Some(dir) = client {
        c.arg("-cert")
            .arg(dir.join("client.crt"))
            .arg("-key")
            .arg(dir.join("client.key"));
    }
    let o = c
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // "Certificate chain\n 0 s:CN = etcd-1\n   i:CN = Drill Intermediate 2\n"
    text.lines()
        .skip_while(|l| !l.starts_with("Certificate chain"))
        .find_map(|l| l.trim().strip_prefix("i:"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("<no certificate: {text}>"))
}

/// Two free loopback ports for one member (client, peer), below the ephemeral range
/// ([`crate::serial::low_port`]). Free when asked, not reserved: hold
/// `crate::serial::exclusive()` until the member is up.
pub fn free_ports() -> (u16, u16) {
    (crate::serial::low_port(), crate::serial::low_port())
}

/// True when 127.0.0.1:base+1..=base+n can all be bound.
pub fn ports_free(base: u16, n: u16) -> bool {
    (1..=n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
}

/// A port base such that base+1..=base+n (client) and base+10+1..=base+10+n (peer) are free on
/// 127.0.0.1, starting at `start` and moving up in steps of 20.
pub fn free_port_base(start: u16, n: u16) -> u16 {
    (0..100u16)
        .map(|k| start + 20 * k)
        .find(|&b| ports_free(b, n) && ports_free(b + 10, n))
        .unwrap_or_else(|| panic!("no free loopback ports from {start} on"))
}
