//! PKCS#11 tokens other than SoftHSM2, started and stopped by the tests themselves, all from
//! Debian's packages (`scripts/install-deps.sh` installs them):
//!
//! - **tpm2-pkcs11 over a software TPM**: `swtpm` on two loopback ports below the ephemeral
//!   range, a private D-Bus session bus, `tpm2-abrmd --session` as the resource manager (without
//!   it `tpm2_ptool addtoken` runs out of object contexts), and the token store in the test
//!   folder. Everything is stopped by PID when the [`TestToken`] is dropped.
//! - **opencryptoki's soft token**: its configuration (`/etc/opencryptoki/opencryptoki.conf`)
//!   and token store (`/var/lib/opencryptoki/swtok`) are system-wide, so the test owns them for
//!   its duration: the originals are moved aside and put back on drop, `pkcsslotd` is started
//!   and stopped, and a lock file keeps two test processes from doing it at once.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::secret::write_secret;

/// A token for one test: its module, label, PINs and the environment its module needs.
pub struct TestToken {
    /// `tpm2-pkcs11` or `opencryptoki`.
    pub name: &'static str,
    pub module: PathBuf,
    pub label: String,
    /// The user PIN, and the file (0600) holding it.
    pub pin: String,
    pub pin_file: PathBuf,
    /// The environment the module needs (its daemon's address, its store).
    pub env: Vec<(String, String)>,
    children: Vec<Child>,
    pids: Vec<u32>,
    restore: Option<OckRestore>,
}

impl TestToken {
    /// A command with the module's environment.
    pub fn command(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(prog);
        c.env_remove("SOFTHSM2_CONF")
            .env_remove("PKI_AGE_IDENTITY")
            .env_remove("PKI_TOKEN_PIN_FILE");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `pkcs11-tool --list-objects` after login: the token's objects, one line each, sorted
    /// (to compare the token before and after a refused ceremony).
    pub fn objects(&self) -> Vec<String> {
        let o = self
            .command("pkcs11-tool")
            .args(["--module"])
            .arg(&self.module)
            .args(["--token-label", &self.label, "--login", "--pin", &self.pin])
            .arg("--list-objects")
            .output()
            .expect("pkcs11-tool");
        assert!(
            o.status.success(),
            "pkcs11-tool --list-objects: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut objects: Vec<String> = text
            .split("\n\n")
            .filter(|b| b.contains("Object;") || b.contains("Key Object"))
            .map(|b| b.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        objects.sort();
        objects
    }

    /// A software TPM with a tpm2-pkcs11 token labelled `label` (user PIN `userpin-tpm`).
    pub fn tpm2(dir: &Path, label: &str) -> TestToken {
        for prog in ["swtpm", "tpm2-abrmd", "tpm2_ptool", "dbus-daemon"] {
            assert!(
                which(prog),
                "{prog} is missing: run scripts/install-deps.sh (it installs swtpm, tpm2-abrmd, tpm2-tools, libtpm2-pkcs11-tools, dbus)"
            );
        }
        let state = dir.join("tpm-state");
        let store = dir.join("tpm-store");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        let mut t = TestToken {
            name: "tpm2-pkcs11",
            module: PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"),
            label: label.into(),
            pin: "userpin-tpm".into(),
            pin_file: dir.join("tpm-user.pin"),
            env: Vec::new(),
            children: Vec::new(),
            pids: Vec::new(),
            restore: None,
        };
        // The software TPM: a port pair below the kernel's ephemeral range, retried if another
        // process takes it between the probe and swtpm's bind.
        let mut port = 0;
        for attempt in 0..20u16 {
            let p = 23100 + 2 * ((std::process::id() as u16 % 400) + attempt * 7 % 400);
            if !(free(p) && free(p + 1)) {
                continue;
            }
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={p},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", p + 1))
                .args(["--flags", "not-need-init,startup-clear", "--tpmstate"])
                .arg(format!("dir={}", state.display()))
                .stdout(Stdio::null())
                .stderr(File::create(dir.join("swtpm.log")).unwrap())
                .spawn()
                .expect("swtpm");
            t.children.push(child);
            if wait_for(Duration::from_secs(5), || !free(p)) {
                port = p;
                break;
            }
            let mut c = t.children.pop().unwrap();
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(port != 0, "swtpm did not start on any port (see swtpm.log)");
        // A private session bus for the resource manager.
        let o = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
            .output()
            .expect("dbus-daemon");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut lines = text.lines();
        let address = lines.next().expect("bus address").to_string();
        let pid: u32 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("bus pid");
        t.pids.push(pid);
        t.env = vec![
            ("DBUS_SESSION_BUS_ADDRESS".into(), address.clone()),
            ("TPM2TOOLS_TCTI".into(), "tabrmd:bus_type=session".into()),
            ("TPM2_PKCS11_TCTI".into(), "tabrmd:bus_type=session".into()),
            ("TPM2_PKCS11_STORE".into(), store.display().to_string()),
        ];
        let mut abrmd = Command::new("tpm2-abrmd");
        abrmd.arg("--session");
        if is_root() {
            abrmd.arg("--allow-root");
        }
        let child = abrmd
            .arg(format!("--tcti=swtpm:port={port}"))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(File::create(dir.join("abrmd.log")).unwrap())
            .spawn()
            .expect("tpm2-abrmd");
        t.children.push(child);
        let store_arg = format!("--path={}", store.display());
        let ready = wait_for(Duration::from_secs(15), || {
            t.command("tpm2_ptool")
                .args(["init", &store_arg])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        assert!(ready, "tpm2_ptool init never succeeded (see abrmd.log)");
        let o = t
            .command("tpm2_ptool")
            .args(["addtoken", "--pid=1", &format!("--label={label}")])
            .args([
                "--sopin=sopin-tpm",
                &format!("--userpin={}", t.pin),
                &store_arg,
            ])
            .output()
            .expect("tpm2_ptool addtoken");
        assert!(
            o.status.success(),
            "tpm2_ptool addtoken: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        write_secret(&t.pin_file, &format!("{}\n", t.pin));
        t
    }

    /// opencryptoki's soft token (slot 3), labelled `label`, user PIN `ock-user` (opencryptoki
    /// takes PINs of 4 to 8 characters). Needs root: its configuration is system-wide.
    pub fn opencryptoki(dir: &Path, label: &str) -> TestToken {
        assert!(
            is_root(),
            "the opencryptoki test owns /etc/opencryptoki and /var/lib/opencryptoki for its duration: run it as root"
        );
        assert!(
            Path::new("/usr/sbin/pkcsslotd").exists(),
            "opencryptoki is missing: run scripts/install-deps.sh"
        );
        let restore = OckRestore::take(dir);
        let mut t = TestToken {
            name: "opencryptoki",
            module: PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so"),
            label: label.into(),
            pin: "ock-user".into(),
            pin_file: dir.join("ock-user.pin"),
            env: Vec::new(),
            children: Vec::new(),
            pids: Vec::new(),
            restore: Some(restore),
        };
        let o = Command::new("/usr/sbin/pkcsslotd")
            .output()
            .expect("pkcsslotd");
        assert!(
            o.status.success(),
            "pkcsslotd: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // The daemon forks: its PID file may come a moment after the parent returns.
        wait_for(Duration::from_secs(10), || slotd_pid().is_some());
        let pid = slotd_pid().expect("pkcsslotd wrote no PID file within 10 s");
        t.pids.push(pid);
        let pkcsconf = |args: &[&str], stdin: &str| {
            let mut c = Command::new("pkcsconf")
                .args(["-c", "3"])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pkcsconf");
            use std::io::Write;
            c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "pkcsconf {args:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        // The soft token's factory SO PIN is 87654321.
        pkcsconf(&["-I", "-S", "87654321"], &format!("{label}\n"));
        pkcsconf(&["-P", "-S", "87654321", "-n", "ock-so01"], "");
        pkcsconf(&["-u", "-S", "ock-so01", "-n", "ock-tmp1"], "");
        pkcsconf(&["-p", "-U", "ock-tmp1", "-n", &t.pin.clone()], "");
        write_secret(&t.pin_file, &format!("{}\n", t.pin));
        t
    }
}

impl Drop for TestToken {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in &self.pids {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        if self.restore.is_some() {
            wait_for(Duration::from_secs(10), || slotd_pid().is_none());
            let _ = std::fs::remove_file(SLOTD_PID);
        }
        self.restore.take();
    }
}

const SLOTD_PID: &str = "/var/run/pkcsslotd.pid";

/// The PID of a running pkcsslotd, from its PID file (a stale file is no daemon).
fn slotd_pid() -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(SLOTD_PID)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

const OCK_CONF: &str = "/etc/opencryptoki/opencryptoki.conf";
const OCK_STORE: &str = "/var/lib/opencryptoki/swtok";
const OCK_SHM: &str = "/dev/shm/var.lib.opencryptoki.swtok";

/// The system's opencryptoki configuration and soft-token store, moved aside for a test and
/// put back when dropped; holds the cross-process lock meanwhile.
struct OckRestore {
    saved: PathBuf,
    _lock: File,
}

impl OckRestore {
    fn take(dir: &Path) -> Self {
        let lock = File::create("/tmp/pki-toolkit-opencryptoki.lock").unwrap();
        lock.lock().unwrap();
        assert!(
            slotd_pid().is_none(),
            "pkcsslotd is running already (/var/run/pkcsslotd.pid): the test needs the opencryptoki configuration to itself; stop it first"
        );
        // A PID file left by a pkcsslotd that is gone would stop the new one from starting.
        let _ = std::fs::remove_file(SLOTD_PID);
        let saved = dir.join("opencryptoki-saved");
        std::fs::create_dir_all(&saved).unwrap();
        std::fs::copy(OCK_CONF, saved.join("opencryptoki.conf")).unwrap();
        move_path(Path::new(OCK_STORE), &saved.join("swtok"));
        move_path(Path::new(OCK_SHM), &saved.join("shm"));
        std::fs::write(
            OCK_CONF,
            "version opencryptoki-3.1\nslot 3\n{\nstdll = libpkcs11_sw.so\n}\n",
        )
        .unwrap();
        for d in [
            OCK_STORE,
            &format!("{OCK_STORE}/TOK_OBJ"),
            "/var/lock/opencryptoki",
            "/var/log/opencryptoki",
        ] {
            std::fs::create_dir_all(d).unwrap();
            let _ = Command::new("chgrp").args(["pkcs11", d]).status();
            let _ = Command::new("chmod").args(["770", d]).status();
        }
        OckRestore { saved, _lock: lock }
    }
}

impl Drop for OckRestore {
    fn drop(&mut self) {
        let _ = std::fs::copy(self.saved.join("opencryptoki.conf"), OCK_CONF);
        let _ = std::fs::remove_dir_all(OCK_STORE);
        let _ = std::fs::remove_file(OCK_SHM);
        move_path(&self.saved.join("swtok"), Path::new(OCK_STORE));
        move_path(&self.saved.join("shm"), Path::new(OCK_SHM));
    }
}

/// Moves `from` to `to` when it exists (rename, or copy for another file system).
fn move_path(from: &Path, to: &Path) {
    if !from.exists() {
        return;
    }
    if std::fs::rename(from, to).is_err() {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(to)
            .status()
            .map(|s| s.success());
        assert_eq!(
            ok.ok(),
            Some(true),
            "cannot move {} to {}",
            from.display(),
            to.display()
        );
        let _ = std::fs::remove_dir_all(from).or_else(|_| std::fs::remove_file(from));
    }
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn which(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
