//! `etcd.env` as etcd's loaders read it: variables, known settings, required ones, and the
//! settings whose meaning depends on the etcd version.

use super::*;

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
pub(super) fn plain_value(v: &str) -> Option<char> {
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
pub(super) const ETCD_FLAGS: &[&str] = &[
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

/// Settings whose meaning depends on the etcd version: `--listen-client-http-urls` (3.5+),
/// and the advisory GHSA-3wh4-j44w-pg92: with it set, etcd before 3.5.32 / 3.6.13 did not
/// check the CRL on the gRPC listener, so a revoked client kept working over gRPC.
pub(super) fn check_version_settings(
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
pub(super) const REQUIRED_ENV: &[(&str, &str, &str)] = &[
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
pub(super) fn check_env(cx: &mut Ctx, env_path: &Path, text: &str) -> BTreeMap<String, String> {
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
