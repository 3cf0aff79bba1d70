//! The etcd release a cluster runs, and what each release does differently (docs/etcd-facts.md V).

/// A target etcd version: 3.4, 3.5 or 3.6, with or without its patch level. Without one, only
/// what every patch release of that minor version does is assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdVersion {
    /// The minor version: 4, 5 or 6.
    pub minor: u32,
    /// The patch level, when the cluster file names one.
    pub patch: Option<u32>,
}

impl EtcdVersion {
    /// `3.4`, `3.5`, `3.6`, or `3.x.y` with x in 4..=6.
    pub fn parse(v: &str) -> std::result::Result<Self, String> {
        let bad = || {
            "is not a supported etcd version; use 3.4, 3.5 or 3.6, or a full version such as 3.5.1 or 3.6.5".to_string()
        };
        let parts: Vec<&str> = v.split('.').collect();
        let num = |s: &str| -> Option<u32> {
            (!s.is_empty() && s.len() <= 4 && s.chars().all(|c| c.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (major, minor, patch) = match parts.as_slice() {
            [a, b] => (num(a), num(b), None),
            [a, b, c] => (num(a), num(b), Some(num(c).ok_or_else(bad)?)),
            _ => return Err(bad()),
        };
        match (major, minor) {
            (Some(3), Some(minor @ 4..=6)) => Ok(EtcdVersion { minor, patch }),
            _ => Err(bad()),
        }
    }

    /// At least `3.minor.patch` for certain (an unknown patch level counts as `.0`).
    pub fn at_least(&self, minor: u32, patch: u32) -> bool {
        self.minor > minor || (self.minor == minor && self.patch.unwrap_or(0) >= patch)
    }

    /// Comma-separated lists in `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`:
    /// from 3.5.15 (earlier releases compare the whole value as one name, facts B1/B5).
    pub fn peer_lists(&self) -> bool {
        self.at_least(5, 15)
    }

    /// Reads the CRL file as DER only (3.6: `x509.ParseRevocationList`, facts C8).
    pub fn crl_der_only(&self) -> bool {
        self.minor >= 6
    }

    /// `--listen-client-http-urls` exists (3.5 and later).
    pub fn has_client_http_urls(&self) -> bool {
        self.minor >= 5
    }

    /// Has the fix for GHSA-3wh4-j44w-pg92 (with `--listen-client-http-urls` set, the gRPC
    /// listener did not enforce the CRL): 3.5.32 and 3.6.13. `None` when the patch level is
    /// unknown, so the answer depends on it.
    pub fn grpc_crl_fixed(&self) -> Option<bool> {
        let fixed_at = match self.minor {
            4 => return Some(true), // no such setting, no such listener split
            5 => 32,
            _ => 13,
        };
        self.patch.map(|p| p >= fixed_at)
    }
}

impl std::fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.patch {
            Some(p) => write!(f, "3.{}.{p}", self.minor),
            None => write!(f, "3.{}", self.minor),
        }
    }
}
