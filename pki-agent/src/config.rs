//! The agent's configuration file (TOML), one per host: where the service is, the trust file,
//! the leaves it keeps current and the CRL file it installs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{AgentError, AgentResult};

/// `pki-agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `https://HOST:PORT` of `issuer serve`.
    pub service: String,
    /// Further instances of the service (several CA hosts on one database), tried in order
    /// when the one before cannot be reached or answers with a server error.
    #[serde(default)]
    pub fallback: Vec<String>,
    /// The root certificate (the bundle's `ca.crt`): the service and every certificate and CRL
    /// received are checked against it.
    pub root: PathBuf,
    /// Where the agent keeps what it must remember (last renewal, unconfirmed renewals).
    pub state: PathBuf,
    /// Renew when this fraction of a leaf's lifetime has passed (default 2/3).
    #[serde(default = "default_renew_at")]
    pub renew_at: f64,
    /// Spread renewals by up to this fraction of the lifetime either way (default 0.05), so a
    /// fleet issued together does not renew together.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// `status` and `run --once` exit with 2 when a leaf has less than this left, e.g. `7d`,
    /// `12h`. Unset: a tenth of each leaf's lifetime, at most 7 days (7 days for 90-day
    /// leaves, 12 seconds for two-minute drill leaves).
    #[serde(default)]
    pub danger: Option<String>,
    /// Key algorithm of renewed keys: `p256` (default), `p384`, `ed25519`, `rsa2048`, ...
    #[serde(default = "default_key")]
    pub key: String,
    /// The leaves of this host.
    #[serde(rename = "leaf")]
    pub leaves: Vec<LeafConfig>,
    /// The CRL file etcd reads, when this host runs an etcd member.
    pub crl: Option<CrlConfig>,
}

/// One leaf the agent keeps current.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafConfig {
    /// `server`, `peer` or `client`.
    pub role: String,
    /// The certificate file etcd (or the client) reads: leaf then intermediate.
    pub cert: PathBuf,
    /// Its key file.
    pub key: PathBuf,
}

/// The CRL file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlConfig {
    /// The file etcd's `--client-crl-file`/`--peer-crl-file` name (`crl.der`).
    pub path: PathBuf,
    /// `der` (every etcd version) or `pem` (3.4 and 3.5 only).
    #[serde(default = "default_crl_format")]
    pub format: String,
    /// How often to fetch it, e.g. `10m` (default).
    #[serde(default = "default_crl_interval")]
    pub interval: String,
}

fn default_renew_at() -> f64 {
    2.0 / 3.0
}
fn default_jitter() -> f64 {
    0.05
}
fn default_key() -> String {
    "p256".into()
}
fn default_crl_format() -> String {
    "der".into()
}
fn default_crl_interval() -> String {
    "10m".into()
}

impl Config {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> AgentResult<Self> {
        let text = pki_core::output::read_to_string(path)?;
        let c: Config = toml::from_str(&text).map_err(|e| AgentError::Config {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })?;
        c.validate().map_err(|reason| AgentError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(c)
    }

    /// Names the field at fault.
    fn validate(&self) -> Result<(), String> {
        for url in std::iter::once(&self.service).chain(&self.fallback) {
            pki_service::client::Endpoint::parse(url).map_err(|e| e.to_string())?;
        }
        if !(0.1..=0.95).contains(&self.renew_at) {
            return Err(format!("renew_at = {} is outside 0.1..0.95", self.renew_at));
        }
        if !(0.0..=0.2).contains(&self.jitter) {
            return Err(format!("jitter = {} is outside 0..0.2", self.jitter));
        }
        self.key
            .parse::<pki_core::keys::KeyAlgorithm>()
            .map_err(|e| format!("key = \"{}\": {e}", self.key))?;
        self.danger_window()?;
        if self.leaves.is_empty() && self.crl.is_none() {
            return Err("no [[leaf]] and no [crl]: nothing to do".into());
        }
        let mut roles = Vec::new();
        for l in &self.leaves {
            if !["server", "peer", "client"].contains(&l.role.as_str()) {
                return Err(format!(
                    "leaf role = \"{}\": use server, peer or client",
                    l.role
                ));
            }
            if roles.contains(&l.role) {
                return Err(format!("two [[leaf]] tables with role = \"{}\"", l.role));
            }
            if l.cert == l.key {
                return Err(format!("leaf {}: cert and key are the same file", l.role));
            }
            roles.push(l.role.clone());
        }
        if let Some(c) = &self.crl {
            if !["der", "pem"].contains(&c.format.as_str()) {
                return Err(format!("crl format = \"{}\": use der or pem", c.format));
            }
            self.crl_interval()?;
        }
        Ok(())
    }

    /// The danger window set in the file, if any.
    pub fn danger_window(&self) -> Result<Option<time::Duration>, String> {
        self.danger
            .as_deref()
            .map(|d| {
                pki_core::x509::parse_duration(d).map_err(|e| format!("danger = \"{d}\": {e}"))
            })
            .transpose()
    }

    /// The danger window of a leaf living `lifetime`: the one set, else a tenth of the
    /// lifetime, at most 7 days.
    pub fn danger_for(&self, lifetime: time::Duration) -> time::Duration {
        match self.danger_window() {
            Ok(Some(d)) => d,
            _ => (lifetime / 10_i32).min(time::Duration::days(7)),
        }
    }

    /// The CRL fetch interval.
    pub fn crl_interval(&self) -> Result<Duration, String> {
        let Some(c) = &self.crl else {
            return Ok(Duration::from_secs(600));
        };
        let d = pki_core::x509::parse_duration(&c.interval)
            .map_err(|e| format!("crl interval = \"{}\": {e}", c.interval))?;
        if d < time::Duration::seconds(10) {
            return Err(format!("crl interval = \"{}\" is under 10s", c.interval));
        }
        Ok(Duration::from_secs(d.whole_seconds() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
service = "https://127.0.0.1:8443"
root = "/p/ca.crt"
state = "/s/state.json"
[[leaf]]
role = "server"
cert = "/p/server.crt"
key = "/p/server.key"
[crl]
path = "/p/crl.der"
"#;

    #[test]
    fn the_danger_window_scales_with_the_lifetime_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("good.toml");
        std::fs::write(&p, GOOD).unwrap();
        let c = Config::load(&p).unwrap();
        let d = time::Duration::days;
        assert_eq!(c.danger_for(d(90)), d(7), "90-day leaves: 7 days");
        assert_eq!(c.danger_for(d(30)), d(3));
        assert_eq!(
            c.danger_for(time::Duration::minutes(2)),
            time::Duration::seconds(12)
        );
        let set = GOOD.replace(
            "state = \"/s/state.json\"",
            "state = \"/s/state.json\"\ndanger = \"1h\"",
        );
        std::fs::write(&p, set).unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(
            c.danger_for(time::Duration::minutes(2)),
            time::Duration::hours(1)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str, &str)] = &[
            (
                "https://127.0.0.1:8443",
                "http://127.0.0.1:8443",
                "service URL 'http://",
            ),
            (
                "role = \"server\"",
                "role = \"admin\"",
                "leaf role = \"admin\"",
            ),
            (
                "path = \"/p/crl.der\"",
                "path = \"/p/crl.der\"\nformat = \"txt\"",
                "crl format",
            ),
            (
                "path = \"/p/crl.der\"",
                "path = \"/p/crl.der\"\ninterval = \"1s\"",
                "under 10s",
            ),
            (
                "state = \"/s/state.json\"",
                "state = \"/s/state.json\"\nrenew_at = 1.5",
                "renew_at = 1.5",
            ),
            (
                "state = \"/s/state.json\"",
                "state = \"/s/state.json\"\nkey = \"dsa\"",
                "key = \"dsa\"",
            ),
            (
                "state = \"/s/state.json\"",
                "state = \"/s/state.json\"\ncolour = 1",
                "unknown field",
            ),
            (
                "key = \"/p/server.key\"",
                "key = \"/p/server.crt\"",
                "same file",
            ),
            (
                "state = \"/s/state.json\"",
                "state = \"/s/state.json\"\nfallback = [\"https://10.0.0.11:8443\", \"http://x:1\"]",
                "service URL 'http://x:1",
            ),
        ];
        let p = dir.path().join("good.toml");
        std::fs::write(&p, GOOD).unwrap();
        Config::load(&p).unwrap();
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let p = dir.path().join("bad.toml");
            std::fs::write(&p, GOOD.replacen(from, to, 1)).unwrap();
            let e = Config::load(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{to}: {e}");
            assert!(e.contains("bad.toml"), "{e}");
        }
    }
}
