//! Root rollover fixtures: a second root (root B) beside a [`TrustPki`]'s root A in the same
//! SoftHSM2 token, the two cross certificates, and an intermediate under root B in `ica-b/`.

use std::path::{Path, PathBuf};

use crate::fixture::{ok, sh};
use crate::trust_pki::TrustPki;

/// Root A is `root/` (key label `root`), root B is `root-b/` (key label `root-b`).
pub struct Rollover {
    pub pki: TrustPki,
}

impl Rollover {
    /// Root A with an active intermediate in `ica/`, and root B made by `root-ca init` in the
    /// same token under another key label; both with path-length 2.
    pub fn new() -> Self {
        Self::with_path_length(2)
    }

    /// Both roots made with `[root] path-length = n` (1: the root profile's default, which
    /// leaves no room for a cross certificate in a path).
    pub fn with_path_length(n: u8) -> Self {
        let extra = format!("path-length = {n}\n");
        let pki = TrustPki::with_root(&extra);
        pki.enrol(1, Default::default());
        // Root B must start later than root A for the direction check: a second apart.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        pki.write("init-b.toml", &format!("allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root-b\"\n[key]\nalgorithm = \"p256\"\n[root]\ncommon-name = \"Trust Root B\"\n{extra}[output]\ndir = \"root-b\"\n"));
        ok(pki.root_ca(&["init", "init-b.toml", "--pin-file", "tok/user.pin"]));
        Rollover { pki }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.pki.path(rel)
    }

    /// The cross-sign ceremony file for `direction`, written as `cross-<direction>.toml`;
    /// returns its name. The output is `<direction>.crt`.
    pub fn cross_file(&self, direction: &str, extra: &str) -> String {
        let (signer, subject, key) = match direction {
            "new-with-old" => ("root", "root-b", "root"),
            _ => ("root-b", "root", "root-b"),
        };
        let name = format!("cross-{direction}.toml");
        self.pki.write(
            &name,
            &format!("allow-network = true\ndirection = \"{direction}\"\nsigner-root-dir = \"{signer}\"\nsubject-root-dir = \"{subject}\"\n{extra}[token]\ntoken-label = \"root-ca\"\nkey-label = \"{key}\"\n[output]\ncertificate = \"{direction}.crt\"\n"),
        );
        name
    }

    /// Runs the cross-sign ceremony for `direction`; returns stdout.
    pub fn cross_sign(&self, direction: &str) -> String {
        let f = self.cross_file(direction, "");
        ok(self
            .pki
            .root_ca(&["cross-sign", &f, "--pin-file", "tok/user.pin"]))
    }

    /// An intermediate under root B, active in `ica-b/`.
    pub fn enrol_b(&self) {
        let p = &self.pki;
        let out = ok(p.ica(&[
            "request",
            "--dir",
            "ica-b",
            "--to-file",
            "root-b/transport.recipient",
            "--out",
            "request-b.age",
            "--cn",
            "Trust Intermediate B",
        ]));
        let fp = out
            .lines()
            .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
            .expect("fingerprint line");
        p.write("sign-b.toml", &format!("allow-network = true\nroot-dir = \"root-b\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root-b\"\n[request]\nbundle = \"request-b.age\"\nkey-fingerprint = \"{fp}\"\n[output]\nresponse = \"response-b.age\"\ncertificate = \"intermediate-b.crt\"\n"));
        ok(p.root_ca(&["sign", "sign-b.toml", "--pin-file", "tok/user.pin"]));
        let (_, fpr, _) = sh(
            &p.d,
            "openssl",
            &[
                "x509",
                "-in",
                "root-b/root.crt",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        let fpr = fpr.trim().split('=').nth(1).unwrap().to_string();
        ok(p.ica(&[
            "install",
            "--dir",
            "ica-b",
            "--root-fingerprint",
            &fpr,
            "response-b.age",
        ]));
    }

    /// `openssl verify` of `leaf` with only `anchor` trusted and `untrusted` (files under the
    /// test folder) offered as intermediates; (passed, output).
    pub fn verify(&self, anchor: &str, untrusted: &[&str], leaf: &str) -> (bool, String) {
        let pool = self.path("untrusted.pem");
        let mut text = String::new();
        for u in untrusted {
            text.push_str(&std::fs::read_to_string(self.path(u)).unwrap());
        }
        std::fs::write(&pool, text).unwrap();
        let (good, out, err) = sh(
            &self.pki.d,
            "openssl",
            &[
                "verify",
                "-x509_strict",
                "-CAfile",
                anchor,
                "-untrusted",
                pool.to_str().unwrap(),
                leaf,
            ],
        );
        (good, format!("{out}{err}"))
    }
}

impl Default for Rollover {
    fn default() -> Self {
        Self::new()
    }
}

/// The certificates of a PEM file, as their subjects (openssl's one-line form), in order.
pub fn subjects(dir: &Path, pem: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(pem).unwrap_or_default();
    let mut out = Vec::new();
    for block in text.split_inclusive("-----END CERTIFICATE-----\n") {
        if !block.contains("BEGIN CERTIFICATE") {
            continue;
        }
        let tmp = dir.join("one.pem");
        std::fs::write(&tmp, block).unwrap();
        let (_, s, _) = sh(
            dir,
            "openssl",
            &[
                "x509",
                "-in",
                tmp.to_str().unwrap(),
                "-noout",
                "-subject",
                "-nameopt",
                "oneline",
            ],
        );
        out.push(s.trim().trim_start_matches("subject=").trim().to_string());
    }
    out
}

/// Stops one member the way a rolling restart does (SIGTERM, then waits for it to exit) and
/// starts it again from the same `etcd.env`, its log appended to the same file.
pub fn restart_member(cluster: &mut crate::etcd_cluster::EtcdCluster, i: usize, env: &Path) {
    use std::process::{Command, Stdio};
    let version = cluster.version;
    let m = &mut cluster.members[i];
    let pid = m.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let t = std::time::Instant::now();
    loop {
        if m.child.try_wait().ok().flatten().is_some() {
            break;
        }
        if t.elapsed() > std::time::Duration::from_secs(15) {
            let _ = m.child.kill();
            let _ = m.child.wait();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(&m.log)
        .expect("member log");
    m.child = Command::new("bash")
        .arg("-c")
        .arg("set -a; . \"$1\"; set +a; exec etcd")
        .arg("etcd-member")
        .arg(env)
        .env_clear()
        .env("PATH", version.path_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("restart etcd");
}

/// Installs `from/name` over `to/name` by one rename (a copy beside it first), as an operator
/// installs a file on a running host.
pub fn install_file(from: &Path, to: &Path, name: &str) {
    let tmp = to.join(format!(".{name}.new"));
    let data = std::fs::read(from.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", from.join(name).display()));
    std::fs::write(&tmp, data).unwrap();
    if name.ends_with(".key") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::rename(&tmp, to.join(name)).unwrap();
}
