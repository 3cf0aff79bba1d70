//! A throwaway PostgreSQL server for the server-ledger tests: its own cluster (`initdb`) in a
//! temporary folder, on a free loopback port, password authentication (SCRAM) over TCP, stopped
//! when dropped. As root the server runs as the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running throwaway server.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    /// Its loopback port.
    pub port: u16,
    /// A 0600 file with the password of the `pki` role, as `ledger_password_file` reads it.
    pub password_file: PathBuf,
}

const ROLE: &str = "pki";

fn server_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/install-deps.sh)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Postgres {
    /// Initialises and starts a server.
    pub fn start() -> Postgres {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let tag = format!("{:x}-{nanos:x}", std::process::id());
        let dir = std::env::temp_dir().join(format!("pki-pg-{tag}"));
        std::fs::create_dir(&dir).unwrap();
        let bin = server_bin();
        let password = format!("pw-{nanos:x}");
        let password_file = dir.join("ledger.pass");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        chmod(&password_file, 0o600);
        let server = dir.join("server");
        std::fs::create_dir(&server).unwrap();
        let server_pw = server.join("pw");
        std::fs::write(&server_pw, &password).unwrap();
        if is_root() {
            chmod(&dir, 0o755);
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server)
                .status()
                .unwrap();
            assert!(ok.success(), "chown to postgres");
        }
        let data = server.join("data");
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ROLE,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", server_pw.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Below the ephemeral range: nothing takes it between this probe and the server's bind.
        let port = crate::serial::low_port();
        let pg = Postgres {
            dir,
            bin,
            port,
            password_file,
        };
        pg.ctl_start();
        pg
    }

    fn server_dir(&self) -> PathBuf {
        self.dir.join("server")
    }

    fn ctl_start(&self) {
        let s = self.server_dir();
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(s.join("data"))
            .arg("-o")
            .arg(format!(
                "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
                s.display(),
                self.port
            ))
            .arg("-l")
            .arg(s.join("log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(s.join("log")).unwrap_or_default()
        );
    }

    /// Stops the server: `fast` (clients disconnected, clean shutdown) or `immediate` (as a
    /// crash: recovery at the next start).
    pub fn stop(&self, mode: &str) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.server_dir().join("data"))
            .args(["-m", mode, "-w", "stop"])
            .output();
    }

    /// Starts the server again after [`Postgres::stop`].
    pub fn restart(&self) {
        self.ctl_start();
    }

    /// A new, empty database; its address for `ledger = "…"` (no password in it).
    pub fn create_db(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", ROLE])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .env("PGPASSWORD", self.password())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// The address of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs SQL on database `name` with `psql` (an independent client); returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", ROLE])
            .args(["-d", name, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .env("PGPASSWORD", self.password())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Turns TLS on (PostgreSQL reloads it without a restart) with this certificate and key.
    pub fn enable_tls(&self, cert: &Path, key: &Path) {
        let s = self.server_dir();
        std::fs::copy(cert, s.join("tls.crt")).unwrap();
        std::fs::copy(key, s.join("tls.key")).unwrap();
        chmod(&s.join("tls.key"), 0o600);
        if is_root() {
            for f in ["tls.crt", "tls.key"] {
                let ok = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(s.join(f))
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
        }
        for sql in [
            format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                s.join("tls.crt").display()
            ),
            format!(
                "ALTER SYSTEM SET ssl_key_file = '{}'",
                s.join("tls.key").display()
            ),
            "ALTER SYSTEM SET ssl = on".to_string(),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            self.psql("postgres", &sql);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    /// Runs an SQL file (a `pg_dump` backup, say) on database `name` with `psql -f`.
    pub fn psql_file(&self, name: &str, file: &Path) {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", ROLE])
            .args(["-d", name, "-v", "ON_ERROR_STOP=1", "-q", "-f"])
            .arg(file)
            .env("PGPASSWORD", self.password())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql -f: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump` of database `name` into `file` (plain SQL).
    pub fn pg_dump(&self, name: &str, file: &Path) {
        let out = Command::new(self.bin.join("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                ROLE,
                "-f",
            ])
            .arg(file)
            .arg(name)
            .env("PGPASSWORD", self.password())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn password(&self) -> String {
        std::fs::read_to_string(&self.password_file)
            .unwrap()
            .trim()
            .to_string()
    }

    /// Writes `ledger = …` and the password file into a CA folder's `ca.toml`.
    pub fn point_ca_at(&self, ca_dir: &Path, db: &str) {
        let state = ca_dir.join("ca.toml");
        let text = std::fs::read_to_string(&state).unwrap();
        let head = format!(
            "ledger = \"{}\"\nledger_password_file = \"{}\"\n",
            self.url(db),
            self.password_file.display()
        );
        std::fs::write(&state, head + &text).unwrap();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
