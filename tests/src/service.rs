//! `issuer serve` started for a test on a free loopback port, and stopped (SIGTERM) at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running service.
pub struct Service {
    pub child: Child,
    pub port: u16,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl Service {
    /// Spawns `cmd` (an `issuer serve ... --listen 127.0.0.1:0` command) with its stderr in
    /// `log`, and waits for the "listening on" line.
    pub fn start(mut cmd: Command, log: &Path) -> Service {
        let f = std::fs::File::create(log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(f))
            .spawn()
            .expect("issuer serve");
        let mut s = Service {
            child,
            port: 0,
            log: log.to_path_buf(),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(rest) = text.split("listening on 127.0.0.1:").nth(1) {
                s.port = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("issuer serve exited ({status}): {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "issuer serve did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port of the plain-HTTP metrics listener (`--metrics-listen 127.0.0.1:0`), from
    /// the log.
    pub fn metrics_port(&self) -> u16 {
        self.log_text()
            .split("metrics on http://127.0.0.1:")
            .nth(1)
            .expect("metrics listener logged")
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// `GET /metrics` on the metrics listener: the whole HTTP answer.
    pub fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port())).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).unwrap();
        text
    }

    /// Sends `signal` (e.g. `TERM`, `HUP`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// SIGTERM, then the exit status (within `within`).
    pub fn stop(mut self, within: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "issuer serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CA's own server leaf for the service (`issuer issue server --out svc --cn pki-service
/// --ip 127.0.0.1` and `issue_extra`), then `issuer serve` with it on a free loopback port, the
/// root pinned, and `serve_extra`; its log is `serve.log` beside the CA folder.
pub fn serve_ca(
    ca: &crate::fixture::OpensslCa,
    issue_extra: &[&str],
    serve_extra: &[&str],
) -> Service {
    let mut issue = vec![
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "svc",
        "--cn",
        "pki-service",
        "--ip",
        "127.0.0.1",
    ];
    issue.extend_from_slice(issue_extra);
    crate::fixture::ok(ca.issuer(&issue));
    let root = ca.root.to_str().unwrap();
    let mut serve = vec![
        "serve",
        "--ca",
        "ca",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "svc/server.crt",
        "--tls-key",
        "svc/server.key",
        "--root",
        root,
    ];
    serve.extend_from_slice(serve_extra);
    Service::start(ca.issuer_command(&serve), &ca.dir.join("serve.log"))
}

/// A child process (an agent daemon) killed and reaped on drop, also when a test panics.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent configuration for `leaves` (role, cert, key) and an optional CRL file.
pub fn agent_config(
    url: &str,
    root: &Path,
    state: &Path,
    leaves: &[(&str, &Path, &Path)],
    crl: Option<&Path>,
) -> String {
    let mut s = format!(
        "service = \"{url}\"\nroot = \"{}\"\nstate = \"{}\"\n",
        root.display(),
        state.display()
    );
    for (role, cert, key) in leaves {
        s.push_str(&format!(
            "\n[[leaf]]\nrole = \"{role}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    if let Some(c) = crl {
        s.push_str(&format!(
            "\n[crl]\npath = \"{}\"\ninterval = \"10s\"\n",
            c.display()
        ));
    }
    s
}
