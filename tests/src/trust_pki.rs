//! A real two-tier PKI for the trust tests: a root in a throwaway SoftHSM2 token, intermediates
//! enrolled into `ica/` through request and response bundles, optionally name-constrained,
//! and the root's revocations and CRLs. Everything runs the released binaries.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixture::{ok, run, sh, softhsm_token};

pub struct TrustPki {
    pub d: PathBuf,
    pub conf: PathBuf,
}

impl Drop for TrustPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.d);
    }
}

/// A fresh, empty folder of its own under the system temp folder.
fn fresh_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let d = std::env::temp_dir().join(format!(
        "trust-pki-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&d).expect("fresh temp folder");
    d
}

/// Name constraints for `root-ca sign`.
#[derive(Default, Clone, Copy)]
pub struct Limits<'a> {
    pub dns: &'a [&'a str],
    pub ips: &'a [&'a str],
}

fn toml_list(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", q.join(", "))
}

impl TrustPki {
    /// A root (P-256, in a SoftHSM2 token) and an age identity for the CA folder.
    pub fn new() -> Self {
        Self::with_root("")
    }

    /// As [`TrustPki::new`], with `extra` lines in the init ceremony's `[root]` table (e.g.
    /// `path-length = 2`).
    pub fn with_root(extra: &str) -> Self {
        let d = fresh_dir();
        let conf = softhsm_token(&d.join("tok"));
        let p = TrustPki { d, conf };
        p.write("init.toml", &format!("allow-network = true\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p256\"\n[root]\ncommon-name = \"Trust Root\"\n{extra}[output]\ndir = \"root\"\n"));
        ok(p.root_ca(&["init", "init.toml", "--pin-file", "tok/user.pin"]));
        ok(run(
            &p.d,
            "intermediate-ca",
            &["new-identity", "id.txt"],
            &[],
        ));
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.d.join(rel)
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.d.join(name), text).unwrap();
    }

    pub fn root_ca(&self, args: &[&str]) -> Output {
        run(&self.d, "root-ca", args, &[("SOFTHSM2_CONF", &self.conf)])
    }

    pub fn ica(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "intermediate-ca",
            args,
            &[
                ("PKI_AGE_IDENTITY", &self.d.join("id.txt")),
                ("SOFTHSM2_CONF", &self.conf),
            ],
        )
    }

    pub fn issuer(&self, args: &[&str]) -> Output {
        run(
            &self.d,
            "issuer",
            args,
            &[
                ("PKI_AGE_IDENTITY", &self.d.join("id.txt")),
                ("SOFTHSM2_CONF", &self.conf),
            ],
        )
    }

    /// `intermediate-ca request` + `root-ca sign` for generation `n`; returns the response
    /// bundle's file name (not yet installed).
    pub fn request_and_sign(&self, n: u32, limits: Limits<'_>) -> String {
        self.request_and_sign_with(n, limits, &[])
    }

    /// A second SoftHSM2 token, `intermediate` (user PIN in `int.pin`), for intermediate keys.
    pub fn intermediate_token(&self) {
        let (good, out, err) = sh_env(
            &self.d,
            "softhsm2-util",
            &[
                "--init-token",
                "--free",
                "--label",
                "intermediate",
                "--pin",
                "4711-int",
                "--so-pin",
                "so-4711-int",
            ],
            &self.conf,
        );
        assert!(good, "{out}{err}");
        crate::secret::write_secret(self.d.join("int.pin"), "4711-int\n");
    }

    /// As [`TrustPki::request_and_sign`], with extra `intermediate-ca request` arguments (e.g.
    /// a token for the key).
    pub fn request_and_sign_with(&self, n: u32, limits: Limits<'_>, extra: &[&str]) -> String {
        let req = format!("request-{n}.age");
        let cn = format!("Trust Intermediate {n}");
        let mut args = vec![
            "request",
            "--dir",
            "ica",
            "--to-file",
            "root/transport.recipient",
            "--out",
            &req,
            "--cn",
            &cn,
        ];
        args.extend_from_slice(extra);
        let out = ok(self.ica(&args));
        let fp = out
            .lines()
            .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
            .expect("fingerprint line");
        let mut cert = String::new();
        if !limits.dns.is_empty() {
            cert.push_str(&format!("permitted-dns = {}\n", toml_list(limits.dns)));
        }
        if !limits.ips.is_empty() {
            cert.push_str(&format!("permitted-ips = {}\n", toml_list(limits.ips)));
        }
        self.write(
            &format!("sign-{n}.toml"),
            &format!("allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[request]\nbundle = \"request-{n}.age\"\nkey-fingerprint = \"{fp}\"\n[certificate]\n{cert}[output]\nresponse = \"response-{n}.age\"\ncertificate = \"intermediate-{n}.crt\"\n"),
        );
        ok(self.root_ca(&[
            "sign",
            &format!("sign-{n}.toml"),
            "--pin-file",
            "tok/user.pin",
        ]));
        format!("response-{n}.age")
    }

    /// Generation `n` under a new age identity `identity` (a file created here): requested,
    /// signed by the root and installed with it, as a compromise rotation does.
    pub fn enrol_under_new_identity(&self, n: u32, identity: &str) {
        ok(run(
            &self.d,
            "intermediate-ca",
            &["new-identity", identity],
            &[],
        ));
        let response = self.request_and_sign_with(n, Limits::default(), &["--identity", identity]);
        ok(run(
            &self.d,
            "intermediate-ca",
            &[
                "install",
                "--dir",
                "ica",
                "--root-fingerprint",
                &self.root_fingerprint(),
                &response,
                "--identity",
                identity,
            ],
            &[],
        ));
    }

    /// The service's TLS certificate for 127.0.0.1 from the active intermediate, in `svc/`
    /// (server.crt, server.key), for `issuer serve`.
    pub fn service_cert(&self) {
        ok(self.issuer(&[
            "issue",
            "server",
            "--ca",
            "ica",
            "--out",
            "svc",
            "--cn",
            "pki-service",
            "--ip",
            "127.0.0.1",
        ]));
    }

    /// The root certificate's SHA-256 fingerprint, as openssl prints it.
    pub fn root_fingerprint(&self) -> String {
        let (_, out, _) = sh(
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
        out.trim().split('=').nth(1).unwrap().to_string()
    }

    pub fn install(&self, response: &str) -> Output {
        self.ica(&[
            "install",
            "--dir",
            "ica",
            "--root-fingerprint",
            &self.root_fingerprint(),
            response,
        ])
    }

    /// Enrols generation `n` end to end and makes it active.
    pub fn enrol(&self, n: u32, limits: Limits<'_>) {
        let r = self.request_and_sign(n, limits);
        ok(self.install(&r));
    }

    /// The serial of a certificate file, lower-case hex as the ceremonies take it.
    pub fn serial_of(&self, cert: &str) -> String {
        let (_, out, _) = sh(
            &self.d,
            "openssl",
            &["x509", "-in", cert, "-noout", "-serial"],
        );
        out.trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    }

    /// The root revokes the intermediate in `cert` (a file under the test folder).
    pub fn root_revokes(&self, cert: &str) {
        let serial = self.serial_of(cert);
        self.write(
            "revoke.toml",
            &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{serial}\"\nreason = \"keyCompromise\"\n"),
        );
        ok(self.root_ca(&["revoke", "revoke.toml"]));
    }

    /// The root signs its next CRL into `file`.
    pub fn root_crl(&self, file: &str) {
        self.write(
            "crl.toml",
            &format!("allow-network = true\nroot-dir = \"root\"\n[token]\ntoken-label = \"root-ca\"\nkey-label = \"root\"\n[output]\ncrl = \"{file}\"\n"),
        );
        ok(self.root_ca(&["crl", "crl.toml", "--pin-file", "tok/user.pin"]));
    }
}

impl Default for TrustPki {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs an external program with SOFTHSM2_CONF set; (success, stdout, stderr).
pub fn sh_env(dir: &Path, prog: &str, args: &[&str], conf: &Path) -> (bool, String, String) {
    let o = std::process::Command::new(prog)
        .args(args)
        .current_dir(dir)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `openssl verify` of a chain file (leaf then intermediate) against a root; (passed, output).
pub fn openssl_verify(dir: &Path, root: &Path, chain: &Path) -> (bool, String) {
    let (good, out, err) = sh(
        dir,
        "openssl",
        &[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            chain.to_str().unwrap(),
            chain.to_str().unwrap(),
        ],
    );
    (good, format!("{out}{err}"))
}
