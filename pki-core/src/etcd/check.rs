//! `issuer check-etcd`: finds, one line each, the mistakes the etcd facts file documents, in a
//! bundle (`nodes/`, `clients/`) or in one member's folder (with its `etcd.env`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::policy::LeafName;
use crate::etcd::{EtcdVersion, ETCD_CRL_FILE, LEGACY_ETCD_CRL_FILE};
use crate::keys::signer::FileKey;
use crate::x509::certs::pem_blocks;
use crate::x509::conformance::{Finding, Level};

/// Options of a check.
pub struct CheckOptions {
    pub warn_days: i64,
    pub now: OffsetDateTime,
    /// The etcd release the members run, when given: it overrides the version line of each
    /// `etcd.env` (e.g. to check members before upgrading them).
    pub etcd_version: Option<EtcdVersion>,
}

struct Ctx {
    out: Vec<Finding>,
    opts: CheckOptions,
    /// The bundle's `intermediate.crt` (DER), which every chain file must end with.
    bundle_int: Option<Vec<u8>>,
}

impl Ctx {
    fn fail(&mut self, check: &'static str, path: &Path, detail: impl Into<String>) {
        self.out.push(Finding {
            level: Level::Fail,
            check,
            detail: format!("{}: {}", path.display(), detail.into()),
        });
    }
    fn warn(&mut self, check: &'static str, path: &Path, detail: impl Into<String>) {
        self.out.push(Finding {
            level: Level::Warn,
            check,
            detail: format!("{}: {}", path.display(), detail.into()),
        });
    }
}

/// An `etcd.env` as systemd's `EnvironmentFile=` and `set -a; . FILE` both read it, with what
/// either would read differently or what etcd would not take as meant.
pub struct EnvFile {
    /// Every variable, the last assignment winning (as in both loaders).
    pub vars: BTreeMap<String, String>,
    /// Lines that are not a plain `KEY=value`, values with shell syntax, repeated and unknown
    /// `ETCD_*` variables: one sentence each.
    pub problems: Vec<String>,
}

/// What a value may hold to mean the same to sh, systemd and etcd: no quotes, whitespace,
/// `$`, backquote, backslash, `;`, `&`, `|`, `<`, `>`, `(`, `)`, `*`, `?`, `~`, `#`, `{`, `}`, `!`.
fn plain_value(v: &str) -> Option<char> {
    v.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@,:=%[]".contains(*c)))
}

/// Reads an `etcd.env` / `/etc/default/etcd` style file (`KEY=value` lines and `#` comments).
pub fn read_env(text: &str) -> EnvFile {
    let mut vars = BTreeMap::new();
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            problems.push(format!("line {n} is not KEY=value: {:?}", l));
            continue;
        };
        let key_ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            problems.push(format!(
                "line {n}: {k:?} is not a variable name (no `export`, no spaces around '=')"
            ));
            continue;
        }
        if let Some(c) = plain_value(v) {
            problems.push(format!(
                "line {n}: {k} has {c:?} in its value {v:?}: a shell that sources the file and systemd read that differently (quotes, expansions, commands); etcd.env values are plain words"
            ));
        }
        if let Some(prev) = first_line.insert(k.to_string(), n) {
            if k.starts_with("ETCD") {
                problems.push(format!(
                    "{k} is set twice (lines {prev} and {n}): the last one wins, so an earlier, reviewed line is silently overridden"
                ));
            }
        }
        if let Some(name) = k.strip_prefix("ETCD_") {
            if !ETCD_FLAGS.contains(&name.to_ascii_lowercase().replace('_', "-").as_str()) {
                problems.push(format!(
                    "{k} is not an etcd 3.4-3.6 setting: etcd ignores it (a misspelt name leaves the setting at its default)"
                ));
            }
        }
        vars.insert(k.to_string(), v.to_string());
    }
    EnvFile { vars, problems }
}

/// Reads an env file's variables (see [`read_env`]).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    read_env(text).vars
}

/// etcd's flags (3.4 to 3.6) as `ETCD_*` names take them, lower case and dashed; etcd reads
/// `ETCD_<FLAG>` for each (and `ETCD_UNSUPPORTED_ARCH`).
const ETCD_FLAGS: &[&str] = &[
    "advertise-client-urls",
    "auth-token",
    "auth-token-ttl",
    "auto-compaction-mode",
    "auto-compaction-retention",
    "auto-tls",
    "backend-batch-interval",
    "backend-batch-limit",
    "backend-bbolt-freelist-type",
    "bcrypt-cost",
    "bootstrap-defrag-threshold-megabytes",
    "cert-file",
    "cipher-suites",
    "client-cert-allowed-hostname",
    "client-cert-auth",
    "client-cert-file",
    "client-crl-file",
    "client-key-file",
    "compact-hash-check-time",
    "compaction-batch-limit",
    "compaction-sleep-interval",
    "config-file",
    "cors",
    "corrupt-check-time",
    "data-dir",
    "debug",
    "discovery",
    "discovery-cacert",
    "discovery-cert",
    "discovery-dial-timeout",
    "discovery-endpoints",
    "discovery-fallback",
    "discovery-insecure-skip-tls-verify",
    "discovery-insecure-transport",
    "discovery-keepalive-time",
    "discovery-keepalive-timeout",
    "discovery-key",
    "discovery-password",
    "discovery-proxy",
    "discovery-request-timeout",
    "discovery-srv",
    "discovery-srv-name",
    "discovery-token",
    "discovery-user",
    "downgrade-check-time",
    "election-timeout",
    "enable-grpc-gateway",
    "enable-log-rotation",
    "enable-pprof",
    "enable-v2",
    "experimental-backend-bbolt-freelist-type",
    "experimental-bootstrap-defrag-threshold-megabytes",
    "experimental-compact-hash-check-enabled",
    "experimental-compact-hash-check-time",
    "experimental-compaction-batch-limit",
    "experimental-compaction-sleep-interval",
    "experimental-corrupt-check-time",
    "experimental-distributed-tracing-address",
    "experimental-distributed-tracing-instance-id",
    "experimental-distributed-tracing-sampling-rate",
    "experimental-distributed-tracing-service-name",
    "experimental-downgrade-check-time",
    "experimental-enable-distributed-tracing",
    "experimental-enable-lease-checkpoint",
    "experimental-enable-lease-checkpoint-persist",
    "experimental-enable-v2v3",
    "experimental-initial-corrupt-check",
    "experimental-max-learners",
    "experimental-memory-mlock",
    "experimental-peer-skip-client-san-verification",
    "experimental-snapshot-catchup-entries",
    "experimental-stop-grpc-service-on-defrag",
    "experimental-txn-mode-write-with-shared-buffer",
    "experimental-warning-apply-duration",
    "experimental-warning-unary-request-duration",
    "experimental-watch-progress-notify-interval",
    "feature-gates",
    "force-new-cluster",
    "grpc-keepalive-interval",
    "grpc-keepalive-min-time",
    "grpc-keepalive-timeout",
    "heartbeat-interval",
    "host-whitelist",
    "initial-advertise-peer-urls",
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "initial-election-tick-advance",
    "key-file",
    "listen-client-http-urls",
    "listen-client-urls",
    "listen-metrics-urls",
    "listen-peer-urls",
    "log-format",
    "log-level",
    "log-outputs",
    "log-package-levels",
    "log-rotation-config-json",
    "logger",
    "max-concurrent-streams",
    "max-learners",
    "max-request-bytes",
    "max-snapshots",
    "max-txn-ops",
    "max-wals",
    "memory-mlock",
    "metrics",
    "name",
    "peer-auto-tls",
    "peer-cert-allowed-cn",
    "peer-cert-allowed-hostname",
    "peer-cert-file",
    "peer-client-cert-auth",
    "peer-client-cert-file",
    "peer-client-key-file",
    "peer-crl-file",
    "peer-key-file",
    "peer-skip-client-san-verification",
    "peer-trusted-ca-file",
    "pre-vote",
    "proxy",
    "proxy-dial-timeout",
    "proxy-failure-wait",
    "proxy-read-timeout",
    "proxy-refresh-interval",
    "proxy-write-timeout",
    "quota-backend-bytes",
    "raft-read-timeout",
    "raft-write-timeout",
    "self-signed-cert-validity",
    "snapshot-catchup-entries",
    "snapshot-count",
    "socket-reuse-address",
    "socket-reuse-port",
    "strict-reconfig-check",
    "tls-max-version",
    "tls-min-version",
    "trusted-ca-file",
    "unsafe-no-fsync",
    "unsupported-arch",
    "v2-deprecation",
    "wal-dir",
    "warning-apply-duration",
    "warning-unary-request-duration",
    "watch-progress-notify-interval",
];

/// Runs every static check on `dir` (a bundle or a member folder).
pub fn check_dir(dir: &Path, opts: CheckOptions) -> Vec<Finding> {
    let bundle = dir.join("nodes").is_dir();
    let mut cx = Ctx {
        out: Vec::new(),
        opts,
        bundle_int: None,
    };
    let members: Vec<PathBuf> = if bundle {
        sorted_dirs(&dir.join("nodes"))
    } else {
        vec![dir.to_path_buf()]
    };
    let clients = sorted_dirs(&dir.join("clients"));
    let proxies = sorted_dirs(&dir.join("proxies"));
    if dir.join("ca.crt").exists() {
        check_trust_file(&mut cx, &dir.join("ca.crt"));
    }
    let given = cx.opts.etcd_version;
    if dir.join(ETCD_CRL_FILE).exists() {
        check_crl(&mut cx, &dir.join(ETCD_CRL_FILE), given);
    } else if bundle {
        cx.fail("crl", &dir.join(ETCD_CRL_FILE), "missing: the bundle's CRL (DER, the format every etcd reads) is what every member loads; publish it with `issuer crl --etcd-bundle`");
    }
    if bundle && dir.join(LEGACY_ETCD_CRL_FILE).exists() {
        check_crl(&mut cx, &dir.join(LEGACY_ETCD_CRL_FILE), given);
    }
    if bundle {
        cx.bundle_int = bundle_intermediate(&mut cx, &dir.join("intermediate.crt"));
    }
    check_yaml(&mut cx, dir);
    if dir.join("rbac.sh").exists() {
        check_rbac_script(&mut cx, &dir.join("rbac.sh"));
    }

    let mut cas = BTreeMap::new();
    let mut restrictions = BTreeMap::new();
    for m in &members {
        check_member(&mut cx, m, &mut cas, &mut restrictions);
    }
    for c in &clients {
        // A kube-apiserver client folder holds kubeadm's names (docs/kubernetes.md).
        let (cert, key, ca) = if c.join(crate::etcd::KUBE_CERT_FILE).exists() {
            let e = crate::etcd::ClientKind::KubeApiserver;
            (e.cert_file(), e.key_file(), e.ca_file())
        } else {
            let e = crate::etcd::ClientKind::Etcdctl;
            (e.cert_file(), e.key_file(), e.ca_file())
        };
        check_trust_file(&mut cx, &c.join(ca));
        check_leaf(&mut cx, &c.join(cert), &c.join(key), Role::Client);
    }
    // A proxy (`etcd grpc-proxy`) serves clients and dials members with one server
    // certificate: the same mistakes break it as a member's client side.
    for p in &proxies {
        check_trust_file(&mut cx, &p.join("ca.crt"));
        check_leaf(
            &mut cx,
            &p.join("server.crt"),
            &p.join("server.key"),
            Role::Server,
        );
    }
    let distinct: BTreeSet<&Vec<u8>> = cas.values().collect();
    if distinct.len() > 1 {
        cx.fail(
            "ca-files",
            dir,
            format!(
                "the members trust different CA files ({}): every member must trust the same root",
                cas.keys()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let values: BTreeSet<&Option<String>> = restrictions.values().collect();
    if values.len() > 1 {
        cx.fail(
            "peer-restriction",
            dir,
            format!(
            "the peer restriction differs across members ({:?}): members would refuse each other",
            restrictions.values().collect::<Vec<_>>()
        ),
        );
    }
    if cx.out.iter().all(|f| f.level == Level::Ok) {
        cx.out.push(Finding {
            level: Level::Ok,
            check: "all",
            detail: format!(
                "{}: {} member(s), {} client(s){}, no known mistake found",
                dir.display(),
                members.len(),
                clients.len(),
                match proxies.len() {
                    0 => String::new(),
                    n => format!(", {n} proxy(ies)"),
                }
            ),
        });
    }
    cx.out
}

/// The bundle's `intermediate.crt`: one certificate, which every chain file must carry.
fn bundle_intermediate(cx: &mut Ctx, path: &Path) -> Option<Vec<u8>> {
    let Ok(bytes) = std::fs::read(path) else {
        cx.fail("chain", path, "missing: the bundle's intermediate is what every chain file must end with; run `issuer etcd` again to write it");
        return None;
    };
    match pem_blocks("intermediate.crt", &bytes, "CERTIFICATE") {
        Ok(mut certs) if certs.len() == 1 => certs.pop(),
        Ok(certs) => {
            cx.fail(
                "chain",
                path,
                format!(
                    "holds {} certificates; it must be the issuing intermediate alone",
                    certs.len()
                ),
            );
            None
        }
        Err(e) => {
            cx.fail("chain", path, e.to_string());
            None
        }
    }
}

fn sorted_dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Server,
    Peer,
    Client,
}

fn check_trust_file(cx: &mut Ctx, path: &Path) {
    let Ok(bytes) = std::fs::read(path) else {
        cx.fail("trust-file", path, "missing");
        return;
    };
    match pem_blocks("trust file", &bytes, "CERTIFICATE") {
        Err(e) => cx.fail("trust-file", path, e.to_string()),
        Ok(certs) => {
            for der in &certs {
                if let Ok((_, c)) = X509Certificate::from_der(der) {
                    if c.subject() != c.issuer() {
                        cx.fail("trust-file", path, format!(
                            "holds '{}', which is not a self-signed root: an intermediate in the trust file lets its clients bypass its revocation (facts C6); keep the root only",
                            c.subject()
                        ));
                    }
                }
            }
            if certs.len() > 1 {
                cx.warn(
                    "trust-file",
                    path,
                    format!(
                        "holds {} certificates; the bundle's trust file is the root alone",
                        certs.len()
                    ),
                );
            }
        }
    }
}

/// The version an `etcd.env` was made for, from the header `issuer etcd` writes
/// (`# etcd 3.5.1 configuration for member ...`).
pub fn env_version(text: &str) -> Option<EtcdVersion> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# etcd "))
        .find_map(|rest| {
            let (v, tail) = rest.split_once(' ')?;
            tail.starts_with("configuration")
                .then(|| EtcdVersion::parse(v).ok())
                .flatten()
        })
}

/// A CRL file as the strictest etcd reads it. etcd 3.6 hands the whole file to Go's
/// `x509.ParseRevocationList`: one DER CertificateList, nothing before or after it (facts
/// C8). 3.4 and 3.5 use `x509.ParseCRL`, which also takes PEM (first block only, facts C5).
/// `version` is the member's target, `None` when unknown (the bundle's top-level copy).
fn check_crl(cx: &mut Ctx, path: &Path, version: Option<EtcdVersion>) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    check_crl_size(cx, path, &bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        cx.fail("crl", path, "empty: etcd cannot parse it and refuses every connection that presents a certificate; publish the CRL with `issuer crl --etcd-bundle`");
        return;
    }
    // PEM may have text before its block (Go's pem.Decode skips it); a DER file starts with
    // its SEQUENCE tag, whatever bytes its names hold.
    let pem_armour = bytes.first() != Some(&0x30) && bytes.windows(10).any(|w| w == b"-----BEGIN");
    let der = if pem_armour {
        let fix = "run `issuer crl --etcd-bundle` to write crl.der and set ETCD_CLIENT_CRL_FILE and ETCD_PEER_CRL_FILE to it";
        match version {
            Some(v) if v.crl_der_only() => cx.fail("crl", path, format!(
                "PEM, but etcd {v} reads the CRL file as DER only and refuses every client and peer connection that presents a certificate (facts C8); {fix}"
            )),
            Some(v) => cx.warn("crl", path, format!(
                "PEM: etcd {v} reads it, 3.6 does not (facts C8) and would refuse every connection after an upgrade; {fix}"
            )),
            None => cx.warn("crl", path, format!(
                "PEM: etcd 3.4 and 3.5 read it, 3.6 does not (facts C8); {fix}"
            )),
        }
        let blocks = pem::parse_many(&bytes).unwrap_or_default();
        if blocks.len() > 1 {
            cx.fail("crl", path, format!(
                "{} PEM blocks: etcd reads only the first one, so the others are silently ignored (facts C5)",
                blocks.len()
            ));
        }
        let Some(first) = blocks.first() else {
            cx.fail(
                "crl",
                path,
                "no readable PEM block: etcd would reject every client (facts C5)",
            );
            return;
        };
        first.contents().to_vec()
    } else {
        match strict_der_crl(&bytes) {
            Ok(()) => bytes,
            Err(e) => {
                cx.fail("crl", path, format!(
                    "not one DER CRL ({e}): etcd cannot parse it and refuses every connection that presents a certificate; publish the CRL again with `issuer crl --etcd-bundle`"
                ));
                return;
            }
        }
    };
    match x509_parser::revocation_list::CertificateRevocationList::from_der(&der) {
        Err(e) => cx.fail("crl", path, format!("unparseable CRL ({e}): etcd would reject every client")),
        Ok((_, crl)) => match crl.next_update() {
            Some(n) if n.to_datetime() < cx.opts.now => cx.fail("crl", path, format!(
                "stale: nextUpdate was {}; etcd does not check dates (facts C4), so publish a fresh one",
                crate::x509::validity::fmt_time(n.to_datetime())
            )),
            Some(n) if (n.to_datetime() - cx.opts.now).whole_days() < 2 => {
                cx.warn("crl", path, format!("nextUpdate {} is close", crate::x509::validity::fmt_time(n.to_datetime())))
            }
            None => cx.warn("crl", path, "no nextUpdate"),
            _ => {}
        },
    }
}

/// What Go's `x509.ParseRevocationList` (etcd 3.6) accepts: the whole input is one DER
/// CertificateList (a SEQUENCE), with no PEM armour and no byte after it.
pub fn strict_der_crl(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.first() != Some(&0x30) {
        return Err("it does not start with a DER SEQUENCE".into());
    }
    match x509_parser::revocation_list::CertificateRevocationList::from_der(bytes) {
        Err(e) => Err(e.to_string()),
        Ok((rest, _)) if !rest.is_empty() => {
            Err(format!("{} bytes follow the CertificateList", rest.len()))
        }
        Ok(_) => Ok(()),
    }
}

/// Above either, `check-etcd` warns that the CRL slows every connection down. etcd reads and
/// parses the whole CRL file on every new TLS connection, client and peer (facts C9). On etcd
/// 3.4.23 (scripts/bench-etcd-crl.sh, docs/crl.md) each entry costs about 3 µs against a 3 ms
/// handshake: at 100 entries a new connection is already about 10% slower than with an empty
/// CRL, at 1,000 half as fast, at 10,000 ten times slower. A cluster of 500 leaves under the
/// expiry rule holds about 20 after a year (docs/crl.md), so past 100 something is off, e.g.
/// leaves revoked one by one where their intermediate should have been.
pub const CRL_WARN_ENTRIES: usize = 100;
/// The same point by DER size: about 50 bytes an entry (16-byte serial, date, reason) and a
/// header; entries naming their issuer (indirect CRL) are bigger and cost more to parse.
pub const CRL_WARN_BYTES: usize = 6_000;

/// Warns when the CRL etcd loads is big enough to cost connection time (PEM or DER file).
fn check_crl_size(cx: &mut Ctx, path: &Path, bytes: &[u8]) {
    let Some(der) = crate::ca::lifecycle::crl_file_der(bytes) else {
        return;
    };
    let Ok((_, crl)) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
    else {
        return;
    };
    let entries = crl.iter_revoked_certificates().count();
    // The DER size, whatever the file's format: it is what the parse walks through (and the
    // benchmark's measure); PEM adds a third in base64 on top.
    if entries > CRL_WARN_ENTRIES || der.len() > CRL_WARN_BYTES {
        cx.warn("crl-size", path, format!(
            "{entries} entries, {} bytes DER: etcd parses the whole CRL on every new connection, so each one pays for it (above {CRL_WARN_ENTRIES} entries or {CRL_WARN_BYTES} bytes a new connection was measured ≥ 10% slower than with an empty CRL); `issuer crl` drops entries of expired leaves, and a compromised intermediate is one entry where its leaves are thousands: revoke the intermediate (docs/crl.md)",
            der.len()
        ));
    }
}

#[cfg(test)]
mod crl_size_tests {
    use super::*;
    use crate::x509::crl::{sign_crl, CrlEntry, CrlParams};

    fn crl_of(n: usize) -> Vec<u8> {
        let key =
            crate::keys::signer::FileKey::generate(crate::keys::algorithm::KeyAlgorithm::P256)
                .unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let entries: Vec<CrlEntry> = (0..n as u64)
            .map(|i| CrlEntry {
                serial: [&[0x7e_u8; 8][..], &i.to_be_bytes()].concat(),
                revoked_at: now,
                reason: None,
                certificate_issuer: None,
            })
            .collect();
        let params = CrlParams {
            issuer_name: &[0x30, 0x00],
            issuer_key_id: &[1; 20],
            number: 1,
            this_update: now,
            next_update: now + time::Duration::days(30),
            indirect: true,
        };
        sign_crl(&key, &params, &entries).unwrap()
    }

    fn size_findings(file: &str, bytes: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), bytes).unwrap();
        let mut cx = Ctx {
            out: Vec::new(),
            opts: CheckOptions {
                warn_days: 30,
                now: OffsetDateTime::now_utc(),
                etcd_version: None,
            },
            bundle_int: None,
        };
        check_crl_size(&mut cx, &dir.path().join(file), bytes);
        cx.out.iter().map(|f| format!("{f:?}")).collect()
    }

    #[test]
    fn a_crl_past_the_threshold_is_a_warning_in_pem_and_der() {
        let small = crl_of(CRL_WARN_ENTRIES);
        assert!(small.len() <= CRL_WARN_BYTES, "{}", small.len());
        let big = crl_of(CRL_WARN_ENTRIES + 1);
        for (file, small, big) in [
            ("crl.der", small.clone(), big.clone()),
            (
                "crl.pem",
                crate::x509::certs::to_pem("X509 CRL", &small).into_bytes(),
                crate::x509::certs::to_pem("X509 CRL", &big).into_bytes(),
            ),
        ] {
            assert!(size_findings(file, &small).is_empty(), "{file}");
            let f = size_findings(file, &big);
            assert_eq!(f.len(), 1, "{file}: {f:?}");
            assert!(
                f[0].contains(&format!("{} entries", CRL_WARN_ENTRIES + 1))
                    && f[0].contains("Warn"),
                "{file}: {f:?}"
            );
        }
    }
}

fn check_yaml(cx: &mut Ctx, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !(name.ends_with(".yml") || name.ends_with(".yaml") || name.ends_with(".conf")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let bad: Vec<&str> = ["crl-file", "cert-allowed-cn", "cert-allowed-hostname"]
            .into_iter()
            .filter(|k| {
                text.lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains(k))
            })
            .collect();
        if !bad.is_empty() {
            cx.fail("yaml-config", &p, format!(
                "sets {} in a YAML config: etcd 3.4 and 3.5 silently drop these keys and, with --config-file, ignore every flag and ETCD_* variable (facts Y1, W6); use the etcd.env file",
                bad.join(", ")
            ));
        }
    }
}

fn check_member(
    cx: &mut Ctx,
    m: &Path,
    cas: &mut BTreeMap<PathBuf, Vec<u8>>,
    restrictions: &mut BTreeMap<PathBuf, Option<String>>,
) {
    check_trust_file(cx, &m.join("ca.crt"));
    if let Ok(b) = std::fs::read(m.join("ca.crt")) {
        cas.insert(m.join("ca.crt"), b);
    }
    check_yaml(cx, m);
    let env_path = m.join("etcd.env");
    let env_text = std::fs::read_to_string(&env_path).ok();
    let version = cx
        .opts
        .etcd_version
        .or_else(|| env_text.as_deref().and_then(env_version));
    let env = env_text.as_deref().map(|t| check_env(cx, &env_path, t));
    check_member_crls(cx, m, &env_path, env.as_ref(), version);
    let mut peer_ips = Vec::new();
    let mut allowed_hostname = None;
    if let Some(env) = &env {
        if version.is_none() {
            cx.warn("etcd-version", &env_path, "does not say which etcd it is for (the `# etcd VERSION configuration` line `issuer etcd` writes): give it with --etcd-version, or the version-specific checks (CRL format, peer-restriction lists, GHSA-3wh4-j44w-pg92) cannot be exact");
        }
        check_version_settings(cx, &env_path, env, version);
        let cn = env.get("ETCD_PEER_CERT_ALLOWED_CN").cloned();
        let host = env.get("ETCD_PEER_CERT_ALLOWED_HOSTNAME").cloned();
        match (&cn, &host) {
            (None, None) => cx.fail("peer-restriction", &env_path, "no ETCD_PEER_CERT_ALLOWED_HOSTNAME (or _CN): any client certificate of the CA can use the peer port (facts B7)"),
            (Some(_), Some(_)) => cx.fail("peer-restriction", &env_path, "both ALLOWED_CN and ALLOWED_HOSTNAME are set: etcd refuses to start (facts B6)"),
            _ => {}
        }
        for (k, v) in [
            ("ETCD_PEER_CERT_ALLOWED_CN", &cn),
            ("ETCD_PEER_CERT_ALLOWED_HOSTNAME", &host),
        ] {
            if let Some(v) = v {
                if v.contains(',') && !version.is_some_and(|x| x.peer_lists()) {
                    let target = match version {
                        Some(x) => format!("etcd {x}"),
                        None => "etcd before 3.5.15".into(),
                    };
                    cx.fail("peer-restriction", &env_path, format!(
                        "{k}={v}: {target} takes one value and compares the whole string, so no peer matches (facts B1/B5); lists need 3.5.15 or later (name the full version in etcd-version, e.g. 3.5.15)"
                    ));
                }
            }
        }
        restrictions.insert(
            m.to_path_buf(),
            cn.map(|c| format!("cn={c}"))
                .or(host.clone().map(|h| format!("hostname={h}"))),
        );
        allowed_hostname = host;
        if env.get("ETCD_CLIENT_CERT_AUTH").map(String::as_str) != Some("true") {
            cx.fail("client-cert-auth", &env_path, "ETCD_CLIENT_CERT_AUTH is not true: client certificates are not mapped to RBAC users (facts E1)");
        }
        if env.get("ETCD_PEER_CLIENT_CERT_AUTH").map(String::as_str) != Some("true") {
            cx.fail("client-cert-auth", &env_path, "ETCD_PEER_CLIENT_CERT_AUTH is not true: the peer port does not demand certificates");
        }
        for url in env
            .get("ETCD_INITIAL_ADVERTISE_PEER_URLS")
            .map(|s| s.split(',').collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(host) = url
                .strip_prefix("https://")
                .and_then(|r| r.rsplit_once(':'))
                .map(|(h, _)| h.trim_matches(['[', ']']))
            {
                if let Ok(ip) = host.parse::<IpAddr>() {
                    peer_ips.push(ip);
                }
            }
        }
    }
    if env.is_none() {
        cx.warn("config", &env_path, "no etcd.env here: peer restriction, client-cert-auth and CRL settings were not checked");
    }
    check_leaf(
        cx,
        &m.join("server.crt"),
        &m.join("server.key"),
        Role::Server,
    );
    let peer_names = check_leaf(cx, &m.join("peer.crt"), &m.join("peer.key"), Role::Peer);
    if let Some((dns, ips)) = peer_names {
        for ip in &peer_ips {
            if !ips.contains(ip) {
                cx.fail("peer-san", &m.join("peer.crt"), format!(
                    "lacks the member's own IP {ip}: peers check the connecting member's source IP against it (facts H)"
                ));
            }
        }
        if let Some(h) = &allowed_hostname {
            if !h.contains(',') && !dns.iter().any(|d| d.eq_ignore_ascii_case(h)) {
                cx.fail("peer-restriction", &m.join("peer.crt"), format!(
                    "does not carry DNS:{h}, the ETCD_PEER_CERT_ALLOWED_HOSTNAME value: the other members will refuse it"
                ));
            }
        }
    }
}

/// The CRL files a member loads: the ones its `etcd.env` names (looked up in the member
/// folder, which is what gets installed), else `crl.der` or a legacy `crl.pem`.
fn check_member_crls(
    cx: &mut Ctx,
    m: &Path,
    env_path: &Path,
    env: Option<&BTreeMap<String, String>>,
    version: Option<EtcdVersion>,
) {
    let Some(env) = env else {
        // Without an etcd.env (a bare reference bundle) the CRL is optional.
        for f in [ETCD_CRL_FILE, LEGACY_ETCD_CRL_FILE] {
            if m.join(f).exists() {
                check_crl(cx, &m.join(f), version);
            }
        }
        return;
    };
    let mut named = BTreeSet::new();
    for var in ["ETCD_CLIENT_CRL_FILE", "ETCD_PEER_CRL_FILE"] {
        if let Some(file) = env
            .get(var)
            .and_then(|v| Path::new(v).file_name())
            .map(|f| f.to_string_lossy().to_string())
        {
            named.insert(file);
        }
    }
    for file in &named {
        let p = m.join(file);
        if !p.exists() {
            cx.fail("crl", &p, format!(
                "missing: etcd reads the CRL file on every connection and refuses them all when it cannot; copy the bundle's {ETCD_CRL_FILE} here"
            ));
            continue;
        }
        check_crl(cx, &p, version);
        if file == LEGACY_ETCD_CRL_FILE && m.join(ETCD_CRL_FILE).exists() {
            cx.warn("crl", env_path, format!(
                "names {LEGACY_ETCD_CRL_FILE}, made before {ETCD_CRL_FILE}: set ETCD_CLIENT_CRL_FILE and ETCD_PEER_CRL_FILE to {ETCD_CRL_FILE} (same directory), restart the member, then delete {LEGACY_ETCD_CRL_FILE}"
            ));
        }
    }
}

/// Settings whose meaning depends on the etcd version: `--listen-client-http-urls` (3.5+),
/// and the advisory GHSA-3wh4-j44w-pg92: with it set, etcd before 3.5.32 / 3.6.13 did not
/// check the CRL on the gRPC listener, so a revoked client kept working over gRPC.
fn check_version_settings(
    cx: &mut Ctx,
    env_path: &Path,
    env: &BTreeMap<String, String>,
    version: Option<EtcdVersion>,
) {
    if !env.contains_key("ETCD_LISTEN_CLIENT_HTTP_URLS") {
        return;
    }
    match version {
        Some(v) if !v.has_client_http_urls() => cx.fail("etcd-version", env_path, format!(
            "ETCD_LISTEN_CLIENT_HTTP_URLS is not an etcd {v} setting (it came with 3.5): etcd {v} ignores it and serves HTTP on the client URLs; remove it or raise etcd-version"
        )),
        Some(v) if v.grpc_crl_fixed() == Some(true) => {}
        Some(v) if v.grpc_crl_fixed() == Some(false) => cx.warn("etcd-version", env_path, format!(
            "ETCD_LISTEN_CLIENT_HTTP_URLS with etcd {v}: the gRPC listener does not enforce the CRL before 3.5.32 / 3.6.13 (GHSA-3wh4-j44w-pg92), so revoked clients keep working over gRPC; upgrade, or remove ETCD_LISTEN_CLIENT_HTTP_URLS"
        )),
        v => cx.warn("etcd-version", env_path, format!(
            "ETCD_LISTEN_CLIENT_HTTP_URLS with etcd {}: before 3.5.32 / 3.6.13 the gRPC listener does not enforce the CRL (GHSA-3wh4-j44w-pg92); name the full version in etcd-version, and upgrade if it is older",
            v.map(|v| v.to_string()).unwrap_or_else(|| "of unknown version".into())
        )),
    }
}

/// The variables an `etcd.env` must set, and what is lost without each.
const REQUIRED_ENV: &[(&str, &str, &str)] = &[
    ("ETCD_CERT_FILE", "tls-config", "etcd serves clients without TLS"),
    ("ETCD_KEY_FILE", "tls-config", "etcd serves clients without TLS"),
    ("ETCD_TRUSTED_CA_FILE", "trust-file", "client certificates are not checked against the bundle's root"),
    ("ETCD_PEER_CERT_FILE", "tls-config", "members talk to each other without TLS"),
    ("ETCD_PEER_KEY_FILE", "tls-config", "members talk to each other without TLS"),
    ("ETCD_PEER_TRUSTED_CA_FILE", "trust-file", "peer certificates are not checked against the bundle's root"),
    ("ETCD_CLIENT_CRL_FILE", "crl", "the client port checks no revocation: a revoked client certificate keeps working (facts C1)"),
    ("ETCD_PEER_CRL_FILE", "crl", "the peer port checks no revocation: a revoked peer certificate keeps connecting (facts C1, C7)"),
];

/// Reads `etcd.env` as etcd's loaders would and reports what they would read differently,
/// what etcd would ignore, and what is missing.
fn check_env(cx: &mut Ctx, env_path: &Path, text: &str) -> BTreeMap<String, String> {
    let env = read_env(text);
    for p in env.problems {
        cx.fail("env", env_path, p);
    }
    if let Some(v) = env.vars.get("ETCD_CONFIG_FILE") {
        cx.fail("config-file", env_path, format!(
            "ETCD_CONFIG_FILE={v}: with a config file etcd ignores every other ETCD_* variable and flag, and the YAML of 3.4 and 3.5 drops the CRL and peer-restriction settings (facts Y1, W6); remove it"
        ));
    }
    for (var, check, lost) in REQUIRED_ENV {
        match env.vars.get(*var) {
            Some(v) if !v.is_empty() => {}
            _ => cx.fail(check, env_path, format!("no {var}: {lost}")),
        }
    }
    env.vars
}

/// Checks one leaf chain file and its key; returns the leaf's DNS names and IPs.
fn check_leaf(
    cx: &mut Ctx,
    cert: &Path,
    key: &Path,
    role: Role,
) -> Option<(Vec<String>, Vec<IpAddr>)> {
    let Ok(bytes) = std::fs::read(cert) else {
        cx.fail("missing", cert, "missing");
        return None;
    };
    let chain = match pem_blocks("chain file", &bytes, "CERTIFICATE") {
        Ok(c) => c,
        Err(e) => {
            cx.fail("chain", cert, e.to_string());
            return None;
        }
    };
    if chain.len() < 2 {
        cx.fail("chain", cert, "holds only the leaf: the intermediate must follow it in the same file, or TLS peers cannot build the chain (facts D1-D3)");
    }
    let Ok((_, leaf)) = X509Certificate::from_der(&chain[0]) else {
        cx.fail("chain", cert, "the first certificate does not parse");
        return None;
    };
    if chain.len() >= 2 {
        if let Ok((_, int)) = X509Certificate::from_der(&chain[1]) {
            if leaf.issuer() != int.subject() {
                cx.fail("chain", cert, "the second certificate is not the leaf's issuer: wrong order or wrong intermediate");
            }
        }
    }
    if let (Some(want), Some(got)) = (&cx.bundle_int, chain.get(1)) {
        if want != got {
            cx.fail("chain", cert, format!(
                "carries intermediate serial {}, not the bundle's intermediate.crt (serial {}): members, clients and the bundle disagree on the issuer; finish the rotation (`issuer reissue`) or install the files of one generation",
                serial_of(got),
                serial_of(want)
            ));
        }
    }
    let issuer_der = chain.get(1).or(cx.bundle_int.as_ref()).cloned();
    let (mut server, mut client) = (false, false);
    for ext in leaf.extensions() {
        if let ParsedExtension::ExtendedKeyUsage(e) = ext.parsed_extension() {
            server = e.server_auth || e.any;
            client = e.client_auth || e.any;
        }
    }
    let crate::x509::profile::SubjectNames { dns, ips } = crate::x509::certs::san_names(&leaf);
    if let Some(der) = &issuer_der {
        check_name_constraints(cx, cert, der, &dns, &ips);
    }
    match role {
        Role::Server if !client => cx.fail("eku", cert, "server certificate without clientAuth: etcd's gateway dials itself with it and the JSON API breaks (facts I1)"),
        Role::Server | Role::Peer if !server => cx.fail("eku", cert, "no serverAuth"),
        Role::Peer if !client => cx.fail("eku", cert, "peer certificate without clientAuth: members dial each other with it"),
        Role::Client if !client => cx.fail("eku", cert, "client certificate without clientAuth"),
        _ => {}
    }
    let not_after = leaf.validity().not_after.to_datetime();
    let left = (not_after - cx.opts.now).whole_days();
    if not_after < cx.opts.now {
        cx.fail(
            "expiry",
            cert,
            format!("expired {}", crate::x509::validity::fmt_time(not_after)),
        );
    } else if left < cx.opts.warn_days {
        cx.fail(
            "expiry",
            cert,
            format!(
                "expires in {left} days ({}): renew it",
                crate::x509::validity::fmt_time(not_after)
            ),
        );
    }
    check_key(cx, cert, key, leaf.public_key().raw);
    Some((dns, ips))
}

/// `rbac.sh` is run as etcd's root user: every line must be one `issuer etcd` writes (its
/// fixed prelude, or an etcdctl step whose words are single-quoted plain values), so an edited
/// or planted script is reported before anyone runs it.
fn check_rbac_script(cx: &mut Ctx, path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        cx.fail("rbac", path, "unreadable");
        return;
    };
    let prelude: BTreeSet<&str> = crate::etcd::RBAC_PRELUDE.lines().collect();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        let known = l.is_empty()
            || (l.starts_with('#') && (i == 0 || !l.starts_with("#!")))
            || prelude.contains(l)
            || rbac_step(l);
        if !known {
            cx.fail("rbac", path, format!(
                "line {} is not a step `issuer etcd` writes: {:?}; this script runs as etcd's root user, so review the change, or write it again with `issuer etcd`",
                i + 1,
                l
            ));
        }
    }
}

/// One etcdctl step of `rbac.sh`: fixed words and single-quoted plain values in the places
/// the generator puts them.
fn rbac_step(line: &str) -> bool {
    let quoted = |w: &str| {
        w.len() > 2
            && w.starts_with('\'')
            && w.ends_with('\'')
            && w[1..w.len() - 1]
                .chars()
                .all(|c| c.is_ascii_graphic() && !"'\"`\\$".contains(c))
    };
    let w: Vec<&str> = line.split(' ').collect();
    match w.as_slice() {
        ["role_add" | "user_add", name] => quoted(name),
        ["$ETCDCTL", "role", "grant-permission", role, "read" | "write" | "readwrite", prefix, "--prefix=true"] => {
            quoted(role) && quoted(prefix)
        }
        // The one single-key grant: the API server's compaction marker (docs/kubernetes.md).
        ["$ETCDCTL", "role", "grant-permission", role, "readwrite", key] => {
            quoted(role) && *key == format!("'{}'", crate::etcd::KUBE_COMPACT_KEY)
        }
        ["$ETCDCTL", "user", "grant-role", user, role] => quoted(user) && quoted(role),
        ["$ETCDCTL", "auth", "enable"] => true,
        _ => false,
    }
}

/// The leaf's key file: present, readable by its owner only, and the key of `cert`.
fn check_key(cx: &mut Ctx, cert: &Path, key: &Path, leaf_spki: &[u8]) {
    match std::fs::metadata(key) {
        Err(_) => cx.fail("key", key, "missing"),
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                cx.fail(
                    "key-mode",
                    key,
                    format!(
                        "mode {:o}: a private key must be readable by its owner only (chmod 600)",
                        meta.permissions().mode() & 0o777
                    ),
                );
            }
            match std::fs::read_to_string(key)
                .map_err(|e| e.to_string())
                .and_then(|t| FileKey::from_pkcs8_pem("key", &t).map_err(|e| e.to_string()))
            {
                Err(e) => cx.fail("key", key, e),
                Ok(k) if k.spki_der() != leaf_spki => cx.fail(
                    "key-match",
                    key,
                    format!(
                        "does not match {}: etcd will fail the handshake",
                        cert.display()
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
}

fn serial_of(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .map(|(_, c)| {
            c.tbs_certificate
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        })
        .unwrap_or_else(|_| "unreadable".into())
}

/// Every SAN of a leaf against its issuer's name constraints, with the issuance gate's matcher
/// (RFC 5280 4.2.1.10): etcd (Go's verifier) refuses a chain with a name outside them ("is not
/// permitted by any constraint"), and an `issuer etcd` leaf always carries the member name,
/// which a constraint must therefore cover.
fn check_name_constraints(
    cx: &mut Ctx,
    cert: &Path,
    issuer: &[u8],
    dns: &[String],
    ips: &[IpAddr],
) {
    let Ok(Some(c)) = crate::ca::policy::Constraints::of_certificate("issuing certificate", issuer)
    else {
        return;
    };
    const FIX: &str = "etcd and every TLS client refuse this certificate; sign an intermediate whose constraints cover every name in the cluster file (docs/etcd.md, section 2), or remove the name";
    let names = dns
        .iter()
        .map(|d| LeafName::Dns(d.clone()))
        .chain(ips.iter().map(|ip| LeafName::Ip(*ip)));
    for name in names {
        let why = match c.check(&name) {
            Ok(()) => continue,
            Err(crate::Error::NameNotPermitted { rule, .. }) => {
                format!("{name} is outside the intermediate's name constraints ({rule})")
            }
            Err(crate::Error::UncheckableConstraint { constraint, .. }) => format!(
                "the intermediate carries a name constraint this toolkit cannot check ({constraint})"
            ),
            Err(e) => e.to_string(),
        };
        cx.fail("name-constraints", cert, format!("{why}: {FIX}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_steps_allow_the_compaction_key_and_no_other_single_key() {
        let ok = "$ETCDCTL role grant-permission 'kube' readwrite 'compact_rev_key'";
        assert!(rbac_step(ok));
        for bad in [
            "$ETCDCTL role grant-permission 'kube' readwrite '/registry'",
            "$ETCDCTL role grant-permission 'kube' readwrite ''",
            "$ETCDCTL role grant-permission 'kube' read 'compact_rev_key'",
            "$ETCDCTL role grant-permission kube readwrite 'compact_rev_key'",
        ] {
            assert!(!rbac_step(bad), "{bad}");
        }
        let kube = "$ETCDCTL role grant-permission 'kube' readwrite '/registry/' --prefix=true";
        assert!(rbac_step(kube));
    }

    #[test]
    fn env_files_are_read_as_etcd_loaders_read_them() {
        let injected =
            "ETCD_NAME=etcd-1\nETCD_DATA_DIR=/var/lib/etcd\nETCD_CLIENT_CERT_AUTH=false\n\
                        ETCD_CLIENT_CERT_AUTH=true\n";
        let e = read_env(injected);
        assert_eq!(e.vars["ETCD_CLIENT_CERT_AUTH"], "true");
        assert!(
            e.problems
                .iter()
                .any(|p| p.starts_with("ETCD_CLIENT_CERT_AUTH is set twice (lines 3 and 4)")),
            "{:?}",
            e.problems
        );
        for (text, needle) in [
            ("ETCD_NAME='x'; touch /tmp/PWNED\n", "has '\\''"),
            ("ETCD_NAME=$(id)\n", "has '$'"),
            ("ETCD_NAME=a b\n", "has ' '"),
            ("export ETCD_NAME=a\n", "not a variable name"),
            (
                "ETCD_CLIENT_CRL_FIEL=/x\n",
                "ETCD_CLIENT_CRL_FIEL is not an etcd",
            ),
            ("garbage\n", "line 1 is not KEY=value"),
        ] {
            let e = read_env(text);
            assert!(
                e.problems.iter().any(|p| p.contains(needle)),
                "{text:?}: {:?}",
                e.problems
            );
        }
        assert!(read_env(
            "# c\nETCD_INITIAL_CLUSTER=a=https://[fd00::1]:2380,b=https://10.0.0.2:2380\n"
        )
        .problems
        .is_empty());
    }
}
