//! A real etcd cluster started from a bundle made by `issuer etcd`, and etcdctl against it.
//! Added for `tests/tests/lifecycle.rs`; usable by any test that needs running members.
//!
//! Every member runs with exactly its `etcd.env` (a clean environment, as systemd's
//! `EnvironmentFile=` would give it); the members are killed when the [`EtcdCluster`] is dropped,
//! also when the test panics. Every wait here is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The PATH children get: the system tools only, nothing from the test environment.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

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
}

/// A variable of an env file (`KEY=value` lines, `#` comments).
pub fn env_value(env_file: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(env_file).ok()?;
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_string())
}

impl EtcdCluster {
    /// Starts every member folder of `bundle/nodes/` with its `etcd.env`; logs go to
    /// `logs/<member>.log`.
    pub fn start(bundle: &Path, logs: &Path) -> Self {
        std::fs::create_dir_all(logs).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(bundle.join("nodes"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut cluster = EtcdCluster {
            members: Vec::new(),
        };
        for name in names {
            let env = bundle.join("nodes").join(&name).join("etcd.env");
            let log = logs.join(format!("{name}.log"));
            let child = Command::new("bash")
                .arg("-c")
                .arg("set -a; . \"$1\"; set +a; exec etcd")
                .arg("etcd-member")
                .arg(&env)
                .env_clear()
                .env("PATH", PATH)
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
}

impl Etcdctl {
    /// The client folder `dir` (ca.crt, client.crt, client.key) against `endpoints`.
    pub fn new(dir: &Path, endpoints: &str) -> Self {
        Etcdctl {
            endpoints: endpoints.to_string(),
            cacert: dir.join("ca.crt"),
            cert: dir.join("client.crt"),
            key: dir.join("client.key"),
            dial_timeout: "2s",
            command_timeout: "3s",
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("etcdctl");
        c.env_clear()
            .env("PATH", PATH)
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
