//! Shared fixtures of the end-to-end tests: the built binaries, running them, an OpenSSL-made
//! CA brought under management, throwaway SoftHSM2 tokens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's OpenSSL-only reference CA script (`scripts/openssl-reference-ca.sh`).
pub fn reference_ca_script() -> PathBuf {
    workspace().join("scripts/openssl-reference-ca.sh")
}

static BUILT: Mutex<bool> = Mutex::new(false);

/// The debug binary `name`. The first call of a test process runs `cargo build` for the three
/// tools, so a test never runs a stale binary (a no-op when they are up to date).
pub fn tool(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let ok = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "root-ca",
                "-p",
                "intermediate-ca",
                "-p",
                "issuer",
                "-p",
                "pki-agent",
            ])
            .current_dir(workspace())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "cannot build the tools; run `cargo build --workspace --bins` to see why"
        );
        *built = true;
    }
    target.join("debug").join(name)
}

/// A command of ours, run in `dir` with a clean secret environment plus `env`.
pub fn run(dir: &Path, bin: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(tool(bin));
    c.args(args)
        .current_dir(dir)
        .env_remove("PKI_AGE_IDENTITY")
        .env_remove("PKI_PASSPHRASE_FILE")
        .env_remove("PKI_TOKEN_PIN_FILE")
        .env_remove("ROOT_CA_PIN");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run")
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts failure with `needle` in stderr; returns stderr.
pub fn fails_with(o: Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "expected a failure with '{needle}', got success:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains(needle),
        "expected '{needle}' in stderr:\n{err}"
    );
    err
}

/// Runs an external program in `dir` without the test environment's age identity or SoftHSM2
/// configuration; returns (success, stdout, stderr).
pub fn sh(dir: &Path, prog: &str, args: &[&str]) -> (bool, String, String) {
    let o = Command::new(prog)
        .args(args)
        .current_dir(dir)
        .env_remove("PKI_AGE_IDENTITY")
        .env_remove("SOFTHSM2_CONF")
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

// ---- Command-style helpers (a `Command` built by the caller) ----

/// Runs `cmd` and returns its output, whatever the status.
pub fn run_cmd(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Status, stdout and stderr of `o`, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The stdout of `o` as text.
pub fn stdout_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `cmd`, asserts success and returns its output.
#[track_caller]
pub fn ok_cmd(cmd: &mut Command) -> Output {
    let o = run_cmd(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", output_text(&o));
    o
}

/// `bash -c script`, to be run by [`run_cmd`] or [`ok_cmd`].
pub fn bash(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script);
    c
}

/// An OpenSSL two-tier PKI (the seed's flow) with its intermediate imported as `ca/`.
pub struct OpensslCa {
    pub dir: PathBuf,
    /// The reference PKI of openssl-reference-ca.sh (root at ref/ca.crt, keys in ref/ca-private).
    pub reference: PathBuf,
    pub ca: PathBuf,
    pub identity: PathBuf,
    pub root: PathBuf,
}

impl OpensslCa {
    pub fn new(dir: &Path) -> Self {
        let reference = dir.join("ref");
        let o = Command::new("bash")
            .arg(reference_ca_script())
            .arg(&reference)
            .output()
            .expect("openssl-reference-ca.sh");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let identity = dir.join("identity.txt");
        ok(run(
            dir,
            "intermediate-ca",
            &["new-identity", identity.to_str().unwrap()],
            &[],
        ));
        ok(run(
            dir,
            "intermediate-ca",
            &[
                "import",
                "--cert",
                reference.join("intermediate.crt").to_str().unwrap(),
                "--key",
                reference
                    .join("ca-private/intermediate.key")
                    .to_str()
                    .unwrap(),
                "--dir",
                dir.join("ca").to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
            ],
            &[],
        ));
        OpensslCa {
            dir: dir.to_path_buf(),
            root: reference.join("ca.crt"),
            reference,
            ca: dir.join("ca"),
            identity,
        }
    }

    /// `issuer` with the identity in the environment.
    pub fn issuer(&self, args: &[&str]) -> Output {
        run(
            &self.dir,
            "issuer",
            args,
            &[("PKI_AGE_IDENTITY", &self.identity)],
        )
    }

    /// `issuer` with the identity in the environment, as a [`Command`] (to add variables or to
    /// spawn); no passphrase, PIN or failpoint variable comes from the test environment.
    pub fn issuer_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(tool("issuer"));
        c.args(args)
            .current_dir(&self.dir)
            .env_remove("PKI_PASSPHRASE_FILE")
            .env_remove("PKI_TOKEN_PIN_FILE")
            .env_remove("PKI_FAILPOINTS")
            .env("PKI_AGE_IDENTITY", &self.identity);
        c
    }

    /// `issuer check-etcd DIR`: (passed, stdout).
    pub fn check_etcd(&self, dir: &Path) -> (bool, String) {
        let o = self.issuer(&["check-etcd", dir.to_str().unwrap()]);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// The ledger as JSON text (`issuer list --json`).
    pub fn ledger(&self) -> String {
        ok(self.issuer(&["list", "--ca", self.ca.to_str().unwrap(), "--json"]))
    }
}

/// A throwaway SoftHSM2 token in `dir` (label `root-ca`); returns its config file.
pub fn softhsm_token(dir: &Path) -> PathBuf {
    let o = Command::new("bash")
        .arg(workspace().join("softhsm/new-token.sh"))
        .arg(dir)
        .arg("root-ca")
        .output()
        .expect("new-token.sh");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join("softhsm2.conf")
}

/// Every file under `dir`, recursively (full paths).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every file under `dir` (relative path, content), for before/after comparisons; ledger
/// files are left out (compare the ledger through `issuer list --json`).
pub fn snapshot_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ledger.sqlite") {
                continue;
            }
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((
                    p.strip_prefix(base).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The paths that differ between two [`snapshot_files`] results (added, removed or changed).
pub fn changed_files(before: &[(PathBuf, Vec<u8>)], after: &[(PathBuf, Vec<u8>)]) -> Vec<String> {
    let b: std::collections::BTreeMap<_, _> = before.iter().map(|(p, c)| (p, c)).collect();
    let a: std::collections::BTreeMap<_, _> = after.iter().map(|(p, c)| (p, c)).collect();
    let mut out = Vec::new();
    for (p, c) in &a {
        match b.get(p) {
            None => out.push(format!("added {}", p.display())),
            Some(old) if old != c => out.push(format!("changed {}", p.display())),
            _ => {}
        }
    }
    for p in b.keys() {
        if !a.contains_key(p) {
            out.push(format!("removed {}", p.display()));
        }
    }
    out
}

/// Runs `softhsm/rehearse.sh OUT` (a root in its own SoftHSM2 token, an intermediate enrolled
/// through bundles, an etcd bundle, OUT/env) with no secret from the test environment; panics
/// with its output when it fails.
pub fn rehearse(out: &Path) {
    let o = Command::new("timeout")
        .arg("1500")
        .arg("bash")
        .arg(workspace().join("softhsm/rehearse.sh"))
        .arg(out)
        .current_dir(out.parent().expect("OUT has a parent folder"))
        .env_remove("PKI_AGE_IDENTITY")
        .env_remove("PKI_PASSPHRASE_FILE")
        .env_remove("SOFTHSM2_CONF")
        .env_remove("ROOT_CA_PIN")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("rehearse.sh");
    assert!(
        o.status.success(),
        "rehearse.sh {} failed\n--- stdout\n{}\n--- stderr\n{}",
        out.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One rehearsal ([`rehearse`]) per test process, shared read-only by the tests that only look
/// at it or run a harness on its etcd bundle (a rehearsal takes minutes on this machine). Kept
/// under the system temp folder, one folder per process; folders of processes that are gone
/// are removed on the next run.
pub fn rehearsal() -> &'static Path {
    static OUT: OnceLock<PathBuf> = OnceLock::new();
    OUT.get_or_init(|| {
        let base = std::env::temp_dir().join("e2e-rehearsal");
        std::fs::create_dir_all(&base).unwrap();
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("run-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("rehearsal");
        rehearse(&out);
        out
    })
}
