//! etcd bundles (docs/etcd.md): a cluster file in, one self-contained folder per member and per
//! client out, with an `etcd.env` that etcd starts with as is. Environment variables, never a
//! YAML config: etcd 3.4's YAML silently drops CRL and peer-restriction settings and makes etcd
//! ignore every flag and variable (etcd facts Y1).


pub mod cfssl;
pub mod check;
mod values;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::x509::algorithm::KeyAlgorithm;
use crate::error::{Error, Result};
use crate::ca::issuing::{IssuingCa, LeafKey, LeafPaths, LeafRequest};
use crate::ca::ledger::Ledger;
use crate::output::{self, Mode};
use crate::x509::profile::{LeafRole, Subject, SubjectNames};
use crate::keys::signer::Signer;

/// The etcd CRL file of a bundle and of each member folder: DER, the one format every targeted
/// etcd parses (3.6 hands the file to Go's `x509.ParseRevocationList`, DER only; facts C8).
pub const ETCD_CRL_FILE: &str = "crl.der";
/// The PEM CRL file of bundles made before `crl.der`: still kept current by `issuer crl
/// --etcd-bundle` where it exists, because a running member's `etcd.env` may still name it.
pub const LEGACY_ETCD_CRL_FILE: &str = "crl.pem";

/// A target etcd version: 3.4, 3.5 or 3.6, with or without its patch level. Without one, only
/// what every patch release of that minor version does is assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdVersion {
    pub minor: u32,
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

/// The cluster file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterFile {
    /// The cluster's name: the initial cluster token, and the default shared peer SAN.
    pub name: String,
    /// Target etcd version: "3.4" (default), "3.5", "3.6" or a full version such as "3.5.1"
    /// or "3.6.5" (see [`EtcdVersion`]).
    #[serde(default = "default_version")]
    pub etcd_version: String,
    /// Where a member's folder is installed on its host; `{name}` is replaced by the member name.
    #[serde(default = "default_install_dir")]
    pub install_dir: String,
    /// Where a client's folder is installed; `{name}` is replaced by the client name.
    #[serde(default)]
    pub client_install_dir: Option<String>,
    /// etcd's data directory; `{name}` is replaced by the member name.
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// The SAN every peer certificate shares, for `--peer-cert-allowed-hostname`.
    #[serde(default)]
    pub peer_san: Option<String>,
    /// Leaf key algorithm (default p256).
    #[serde(default)]
    pub key: Option<String>,
    /// Leaf lifetime in days (default 90).
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default, rename = "member")]
    pub members: Vec<Member>,
    #[serde(default, rename = "client")]
    pub clients: Vec<Client>,
    #[serde(default, rename = "proxy")]
    pub proxies: Vec<Proxy>,
    #[serde(default, rename = "role")]
    pub roles: Vec<Role>,
}

fn default_version() -> String {
    "3.4".into()
}
fn default_install_dir() -> String {
    "/etc/etcd/pki".into()
}
fn default_data_dir() -> String {
    "/var/lib/etcd/{name}".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Member {
    pub name: String,
    pub ips: Vec<IpAddr>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// Default: `https://<first IP>:2379`.
    #[serde(default)]
    pub client_urls: Vec<String>,
    /// Default: `https://<first IP>:2380`.
    #[serde(default)]
    pub peer_urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Client {
    /// The certificate CN, which etcd maps to the RBAC user of the same name.
    pub name: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Who uses the certificate: `etcdctl` (default) or `kube-apiserver` (docs/kubernetes.md).
    #[serde(default)]
    pub kind: ClientKind,
    /// kube-apiserver only: where its files are installed on each control-plane node
    /// (default [`KUBE_PKI_DIR`]).
    #[serde(default)]
    pub install_dir: Option<String>,
    /// kube-apiserver only: the etcd URLs it dials (default: every member's client URLs). A
    /// URL whose host is not a member's (a load balancer) goes into every server certificate.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

/// Who a `[[client]]` certificate is for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// A person or program with `etcdctl.env`: `client.crt`, `client.key`, `ca.crt`.
    #[default]
    Etcdctl,
    /// Kubernetes' API server on external etcd (kubeadm `etcd.external`): the files under the
    /// names kubeadm uses, a `kubeadm-etcd.yaml` fragment and an RBAC role for its keys.
    KubeApiserver,
}

/// kubeadm's folder for the API server's etcd client files.
pub const KUBE_PKI_DIR: &str = "/etc/kubernetes/pki";
/// kubeadm's names, relative to [`KUBE_PKI_DIR`]: client certificate (chain), key, etcd trust.
pub const KUBE_CERT_FILE: &str = "apiserver-etcd-client.crt";
pub const KUBE_KEY_FILE: &str = "apiserver-etcd-client.key";
pub const KUBE_CA_FILE: &str = "etcd/ca.crt";
/// The kubeadm configuration fragment written beside them.
pub const KUBEADM_FILE: &str = "kubeadm-etcd.yaml";
/// The API server keeps every object under this prefix (`--etcd-prefix`, default `/registry`)...
pub const KUBE_PREFIX: &str = "/registry/";
/// ...except its compaction marker, a single key outside the prefix (apiserver storage/etcd3).
pub const KUBE_COMPACT_KEY: &str = "compact_rev_key";

impl ClientKind {
    /// The certificate and key file names inside the client's folder.
    pub fn cert_file(self) -> &'static str {
        match self {
            ClientKind::Etcdctl => "client.crt",
            ClientKind::KubeApiserver => KUBE_CERT_FILE,
        }
    }

    pub fn key_file(self) -> &'static str {
        match self {
            ClientKind::Etcdctl => "client.key",
            ClientKind::KubeApiserver => KUBE_KEY_FILE,
        }
    }

    /// The trust file (the root) inside the client's folder.
    pub fn ca_file(self) -> &'static str {
        match self {
            ClientKind::Etcdctl => "ca.crt",
            ClientKind::KubeApiserver => KUBE_CA_FILE,
        }
    }
}

/// A proxy such as `etcd grpc-proxy`: it serves clients and dials members, so its certificate
/// is a server certificate (serverAuth + clientAuth), like hack/tls-setup's `proxy1`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Proxy {
    pub name: String,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    #[serde(default)]
    pub dns: Vec<String>,
}

/// An RBAC role: key prefixes it may read, write, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub read: Vec<String>,
    #[serde(default)]
    pub write: Vec<String>,
    #[serde(default)]
    pub readwrite: Vec<String>,
}

/// Why a cluster file is refused: a rule across values, or one value's content.
#[derive(Debug)]
enum Invalid {
    Rule(String),
    Value {
        field: String,
        value: String,
        problem: String,
    },
}

impl Invalid {
    fn value(field: &str, value: &str, problem: String) -> Self {
        Invalid::Value {
            field: field.into(),
            value: crate::etcd::values::shown(value),
            problem,
        }
    }

    fn into_error(self, file: &str) -> Error {
        match self {
            Invalid::Rule(r) => Error::input(file, r),
            Invalid::Value {
                field,
                value,
                problem,
            } => Error::ClusterValue {
                file: file.into(),
                field,
                value,
                problem,
            },
        }
    }
}

fn check(
    field: &str,
    value: &str,
    rule: fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<(), Invalid> {
    rule(value).map_err(|p| Invalid::value(field, value, p))
}

fn each(
    field: &str,
    values: &[String],
    rule: fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<(), Invalid> {
    values.iter().try_for_each(|v| check(field, v, rule))
}

fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let hostport = rest.split('/').next()?;
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.to_string(),
        None => hostport
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(hostport)
            .to_string(),
    };
    Some(host)
}

fn host_for_url(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Member {
    pub fn client_urls(&self) -> Vec<String> {
        if self.client_urls.is_empty() {
            vec![format!("https://{}:2379", host_for_url(&self.ips[0]))]
        } else {
            self.client_urls.clone()
        }
    }
    pub fn peer_urls(&self) -> Vec<String> {
        if self.peer_urls.is_empty() {
            vec![format!("https://{}:2380", host_for_url(&self.ips[0]))]
        } else {
            self.peer_urls.clone()
        }
    }
}

/// etcd binds to an IP only ("expected IP in URL for binding"): an advertised URL with a DNS
/// name listens on the member's first IP, same scheme and port.
fn listen_urls(urls: &[String], m: &Member) -> Vec<String> {
    urls.iter()
        .map(|u| match url_host(u) {
            Some(h) if h.parse::<IpAddr>().is_err() => {
                let port = u
                    .rsplit_once(':')
                    .map(|(_, p)| p.trim_end_matches('/'))
                    .unwrap_or("");
                format!("https://{}:{port}", host_for_url(&m.ips[0]))
            }
            _ => u.clone(),
        })
        .collect()
}

/// Adds URL hosts to a name set (as IPs or DNS names).
fn add_url_hosts(names: &mut SubjectNames, urls: &[String]) {
    for u in urls {
        if let Some(h) = url_host(u) {
            match h.parse::<IpAddr>() {
                Ok(ip) => push_ip(names, ip),
                Err(_) => push_dns(names, &h),
            }
        }
    }
}

fn push_dns(names: &mut SubjectNames, d: &str) {
    let d = d.to_ascii_lowercase();
    if !names.dns.contains(&d) {
        names.dns.push(d);
    }
}

fn push_ip(names: &mut SubjectNames, ip: IpAddr) {
    if !names.ips.contains(&ip) {
        names.ips.push(ip);
    }
}

impl ClusterFile {
    pub fn load(path: &Path) -> Result<Self> {
        Self::parse(&path.display().to_string(), &output::read_to_string(path)?)
    }

    /// Parses and validates a cluster file's text.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        let c: ClusterFile = toml::from_str(text)
            .map_err(|e| Error::input(what, e.to_string().trim().replace('\n', " ")))?;
        c.validate().map_err(|r| r.into_error(what))?;
        Ok(c)
    }

    /// The SAN shared by all peer certificates.
    pub fn peer_san(&self) -> String {
        self.peer_san
            .clone()
            .unwrap_or_else(|| format!("peers.{}.etcd", self.name))
            .to_ascii_lowercase()
    }

    /// The target version; `validate` has checked that it parses.
    pub fn version(&self) -> EtcdVersion {
        EtcdVersion::parse(&self.etcd_version).unwrap_or(EtcdVersion {
            minor: 4,
            patch: None,
        })
    }

    fn validate(&self) -> std::result::Result<(), Invalid> {
        self.validate_values()?;
        if self.members.is_empty() {
            return Err(Invalid::Rule("at least one [[member]] is needed".into()));
        }
        let mut seen = BTreeSet::new();
        for m in &self.members {
            if !seen.insert(m.name.clone()) {
                return Err(Invalid::Rule(format!(
                    "member name '{}' is repeated",
                    m.name
                )));
            }
            if m.ips.is_empty() {
                return Err(Invalid::Rule(format!(
                    "member '{}' needs its IP addresses: etcd checks a peer's source IP against its certificate",
                    m.name
                )));
            }
        }
        let mut clients = BTreeSet::new();
        for c in &self.clients {
            if !clients.insert(c.name.clone()) {
                return Err(Invalid::Rule(format!(
                    "client name '{}' is repeated",
                    c.name
                )));
            }
            if c.kind == ClientKind::Etcdctl && (c.install_dir.is_some() || !c.endpoints.is_empty())
            {
                return Err(Invalid::Rule(format!(
                    "client '{}': install-dir and endpoints are for kind = \"kube-apiserver\" only; an etcdctl client is installed under client-install-dir and dials every member",
                    c.name
                )));
            }
            if c.kind == ClientKind::KubeApiserver {
                if c.name == "root" || c.roles.iter().any(|r| r == "root") {
                    return Err(Invalid::Rule(format!(
                        "client '{}' is the API server's: it gets a role for {KUBE_PREFIX} and {KUBE_COMPACT_KEY} only, never etcd's root",
                        c.name
                    )));
                }
                if self.roles.iter().any(|r| r.name == c.name) {
                    return Err(Invalid::Rule(format!(
                        "role name '{}' is taken by the kube-apiserver client's own role; rename the [[role]]",
                        c.name
                    )));
                }
            }
            for r in &c.roles {
                if r != "root" && !self.roles.iter().any(|x| &x.name == r) {
                    return Err(Invalid::Rule(format!(
                        "client '{}' has role '{r}', which no [[role]] defines",
                        c.name
                    )));
                }
            }
        }
        if !self.roles.is_empty() && !clients.contains("root") {
            return Err(Invalid::Rule("RBAC needs a client named 'root': etcd's auth cannot be enabled without the root user".into()));
        }
        let unique = |names: Vec<&String>, what: &str| {
            let mut seen = BTreeSet::new();
            match names.into_iter().find(|n| !seen.insert(*n)) {
                Some(n) => Err(Invalid::Rule(format!("{what} name '{n}' is repeated"))),
                None => Ok(()),
            }
        };
        unique(self.proxies.iter().map(|p| &p.name).collect(), "proxy")?;
        unique(self.roles.iter().map(|r| &r.name).collect(), "role")?;
        Ok(())
    }

    /// Every value, against what etcd accepts and what a shell or systemd reads literally
    /// (see `etcd_values`): this is what keeps `rbac.sh` and `etcd.env` free of injected code.
    fn validate_values(&self) -> std::result::Result<(), Invalid> {
        use crate::etcd::values as v;
        check("name", &self.name, v::name)?;
        if let Err(p) = EtcdVersion::parse(&self.etcd_version) {
            return Err(Invalid::value("etcd-version", &self.etcd_version, p));
        }
        check("install-dir", &self.install_dir, v::path)?;
        if let Some(d) = &self.client_install_dir {
            check("client-install-dir", d, v::path)?;
        }
        check("data-dir", &self.data_dir, v::path)?;
        if let Some(s) = &self.peer_san {
            check("peer-san", s, v::hostname)?;
        }
        if let Some(k) = &self.key {
            if k.parse::<KeyAlgorithm>().is_err() {
                let p =
                    "is not a key algorithm; use p256, p384, ed25519, rsa2048, rsa3072 or rsa4096";
                return Err(Invalid::value("key", k, p.into()));
            }
        }
        if self.days == Some(0) {
            return Err(Invalid::value("days", "0", "must be at least 1".into()));
        }
        for (i, m) in self.members.iter().enumerate() {
            let f = |k: &str| format!("member[{}].{k}", i + 1);
            check(&f("name"), &m.name, v::name)?;
            each(&f("dns"), &m.dns, v::hostname)?;
            each(&f("client-urls"), &m.client_urls, v::url)?;
            each(&f("peer-urls"), &m.peer_urls, v::url)?;
        }
        for (i, c) in self.clients.iter().enumerate() {
            let f = |k: &str| format!("client[{}].{k}", i + 1);
            check(&f("name"), &c.name, v::name)?;
            each(&f("roles"), &c.roles, v::name)?;
            if let Some(d) = &c.install_dir {
                check(&f("install-dir"), d, v::path)?;
            }
            each(&f("endpoints"), &c.endpoints, v::url)?;
        }
        for (i, p) in self.proxies.iter().enumerate() {
            check(&format!("proxy[{}].name", i + 1), &p.name, v::name)?;
            each(&format!("proxy[{}].dns", i + 1), &p.dns, v::hostname)?;
        }
        for (i, r) in self.roles.iter().enumerate() {
            let f = |k: &str| format!("role[{}].{k}", i + 1);
            check(&f("name"), &r.name, v::name)?;
            if r.name == "root" {
                let p = "is etcd's built-in role; give clients `roles = [\"root\"]` instead of defining it";
                return Err(Invalid::value(&f("name"), &r.name, p.into()));
            }
            each(&f("read"), &r.read, v::key_prefix)?;
            each(&f("write"), &r.write, v::key_prefix)?;
            each(&f("readwrite"), &r.readwrite, v::key_prefix)?;
        }
        Ok(())
    }

    fn member_dir(&self, name: &str) -> String {
        self.install_dir.replace("{name}", name)
    }

    fn client_dir(&self, name: &str) -> String {
        self.client_install_dir
            .clone()
            .unwrap_or_else(|| self.install_dir.clone())
            .replace("{name}", name)
    }

    /// SANs of a proxy's server certificate: its name and the names it is reached by.
    pub fn proxy_names(&self, p: &Proxy) -> SubjectNames {
        let mut n = SubjectNames::default();
        push_dns(&mut n, &p.name);
        for d in &p.dns {
            push_dns(&mut n, d);
        }
        for ip in &p.ips {
            push_ip(&mut n, *ip);
        }
        n
    }

    /// SANs of a member's server certificate: every name clients use.
    pub fn server_names(&self, m: &Member) -> SubjectNames {
        let mut n = SubjectNames::default();
        push_dns(&mut n, &m.name);
        for d in &m.dns {
            push_dns(&mut n, d);
        }
        for ip in &m.ips {
            push_ip(&mut n, *ip);
        }
        add_url_hosts(&mut n, &m.client_urls());
        add_url_hosts(&mut n, &self.shared_endpoints());
        n
    }

    /// The kube-apiserver endpoints no member answers under its own client URLs (a load
    /// balancer or a virtual IP): any member may answer there, so every server certificate
    /// carries them.
    pub fn shared_endpoints(&self) -> Vec<String> {
        let member_hosts: BTreeSet<String> = self
            .members
            .iter()
            .flat_map(|m| m.client_urls())
            .filter_map(|u| url_host(&u))
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let mut out: Vec<String> = Vec::new();
        for u in self.clients.iter().flat_map(|c| &c.endpoints) {
            let foreign =
                url_host(u).is_some_and(|h| !member_hosts.contains(&h.to_ascii_lowercase()));
            if foreign && !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }

    /// The URLs a kube-apiserver client dials.
    pub fn kube_endpoints(&self, c: &Client) -> Vec<String> {
        if c.endpoints.is_empty() {
            self.members.iter().flat_map(|m| m.client_urls()).collect()
        } else {
            c.endpoints.clone()
        }
    }

    /// A kube-apiserver client's `kubeadm-etcd.yaml`: a ClusterConfiguration whose
    /// `etcd.external` names the files where kubeadm expects them. Every value was validated
    /// (no quote, backslash or control character), so double quotes keep it literal YAML.
    pub fn kubeadm_snippet(&self, c: &Client) -> String {
        let dir = c.install_dir.as_deref().unwrap_or(KUBE_PKI_DIR);
        let dir = dir.trim_end_matches('/');
        let mut s = format!(
            "# kubeadm configuration for Kubernetes on external etcd cluster {cluster}, made by `issuer etcd`.\n\
             # Copy this folder's {cert}, {key} (mode 0600) and {ca} to {dir}/ on every\n\
             # control-plane node, then merge the etcd section into your ClusterConfiguration\n\
             # (kubeadm.k8s.io/v1beta4; the section is the same in v1beta3) or use the file as is:\n\
             #   kubeadm init --config {file}   (with your own InitConfiguration beside it)\n\
             # The API server authenticates as CN={name}; with etcd auth on, rbac.sh gives it role\n\
             # {name}: readwrite on {prefix} and on the key {compact}.\n\
             apiVersion: kubeadm.k8s.io/v1beta4\n\
             kind: ClusterConfiguration\n\
             etcd:\n  external:\n    endpoints:\n",
            cluster = self.name,
            cert = KUBE_CERT_FILE,
            key = KUBE_KEY_FILE,
            ca = KUBE_CA_FILE,
            file = KUBEADM_FILE,
            name = c.name,
            prefix = KUBE_PREFIX,
            compact = KUBE_COMPACT_KEY,
        );
        for e in self.kube_endpoints(c) {
            s.push_str(&format!("      - \"{e}\"\n"));
        }
        s.push_str(&format!(
            "    caFile: \"{dir}/{KUBE_CA_FILE}\"\n    certFile: \"{dir}/{KUBE_CERT_FILE}\"\n    keyFile: \"{dir}/{KUBE_KEY_FILE}\"\n"
        ));
        s
    }

    /// SANs of a member's peer certificate: its own IPs (etcd checks the peer's source IP),
    /// its names, and the SAN shared by all peers for `--peer-cert-allowed-hostname`.
    pub fn peer_names(&self, m: &Member) -> SubjectNames {
        let mut n = SubjectNames::default();
        push_dns(&mut n, &m.name);
        for d in &m.dns {
            push_dns(&mut n, d);
        }
        push_dns(&mut n, &self.peer_san());
        for ip in &m.ips {
            push_ip(&mut n, *ip);
        }
        add_url_hosts(&mut n, &m.peer_urls());
        n
    }

    /// The member's `etcd.env`.
    pub fn member_env(&self, m: &Member, existing_cluster: bool) -> String {
        let dir = self.member_dir(&m.name);
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|x| {
                format!(
                    "{}={}",
                    x.name,
                    x.peer_urls().join(&format!(",{}=", x.name))
                )
            })
            .collect();
        let mut s = format!(
            "# etcd {ver} configuration for member {name} of cluster {cluster}, made by `issuer etcd`.\n\
             # Load it as environment variables (systemd EnvironmentFile=, Debian /etc/default/etcd).\n\
             # Do not translate it to a YAML --config-file: etcd's YAML (3.4, 3.5) drops the CRL and\n\
             # peer-restriction settings silently and makes etcd ignore every ETCD_* variable.\n\
             ETCD_NAME={name}\n\
             ETCD_DATA_DIR={data}\n\
             ETCD_LISTEN_CLIENT_URLS={lcurls}\n\
             ETCD_ADVERTISE_CLIENT_URLS={curls}\n\
             ETCD_LISTEN_PEER_URLS={lpurls}\n\
             ETCD_INITIAL_ADVERTISE_PEER_URLS={purls}\n\
             ETCD_INITIAL_CLUSTER={initial}\n\
             ETCD_INITIAL_CLUSTER_STATE={state}\n\
             ETCD_INITIAL_CLUSTER_TOKEN={cluster}\n\
             # Client transport: TLS, client certificates required, CN = RBAC user; trust = root only\n\
             # (an intermediate in the trust file would bypass its revocation, facts C6).\n\
             ETCD_CERT_FILE={dir}/server.crt\n\
             ETCD_KEY_FILE={dir}/server.key\n\
             ETCD_CLIENT_CERT_AUTH=true\n\
             ETCD_TRUSTED_CA_FILE={dir}/ca.crt\n\
             # The CRL is DER ({crl}): etcd 3.6 parses the file as DER only and refuses every\n\
             # connection when it cannot; 3.4 and 3.5 read DER too.\n\
             ETCD_CLIENT_CRL_FILE={dir}/{crl}\n\
             # Peer transport: mutual TLS, same root, same CRL.\n\
             ETCD_PEER_CERT_FILE={dir}/peer.crt\n\
             ETCD_PEER_KEY_FILE={dir}/peer.key\n\
             ETCD_PEER_CLIENT_CERT_AUTH=true\n\
             ETCD_PEER_TRUSTED_CA_FILE={dir}/ca.crt\n\
             ETCD_PEER_CRL_FILE={dir}/{crl}\n",
            crl = ETCD_CRL_FILE,
            ver = self.etcd_version,
            name = m.name,
            cluster = self.name,
            data = self.data_dir.replace("{name}", &m.name),
            curls = m.client_urls().join(","),
            purls = m.peer_urls().join(","),
            lcurls = listen_urls(&m.client_urls(), m).join(","),
            lpurls = listen_urls(&m.peer_urls(), m).join(","),
            initial = initial.join(","),
            state = if existing_cluster { "existing" } else { "new" },
        );
        s.push_str(&format!(
            "# Only certificates carrying the shared peer SAN may use the peer port; without this any\n\
             # client certificate of the CA could (facts B7). {}\n\
             ETCD_PEER_CERT_ALLOWED_HOSTNAME={}\n",
            if self.version().peer_lists() {
                format!("etcd {} also accepts a comma-separated list here (3.5.15 and later).", self.etcd_version)
            } else {
                format!("etcd {} takes one value here, compared whole: lists need 3.5.15 or later.", self.etcd_version)
            },
            self.peer_san()
        ));
        s
    }

    /// A client's `etcdctl.env`.
    pub fn client_env(&self, c: &Client) -> String {
        let dir = self.client_dir(&c.name);
        let endpoints: Vec<String> = self.members.iter().flat_map(|m| m.client_urls()).collect();
        format!(
            "# etcdctl settings for user {name} of cluster {cluster} (CN={name} maps to the RBAC user).\n\
             # Load with: set -a; . ./etcdctl.env; set +a\n\
             ETCDCTL_API=3\n\
             ETCDCTL_ENDPOINTS={eps}\n\
             ETCDCTL_CACERT={dir}/ca.crt\n\
             ETCDCTL_CERT={dir}/client.crt\n\
             ETCDCTL_KEY={dir}/client.key\n",
            name = c.name,
            cluster = self.name,
            eps = endpoints.join(","),
        )
    }

    /// `rbac.sh`: creates the users (no passwords: they authenticate by certificate CN) and
    /// roles, then enables auth. Every word from the cluster file is single-quoted (and was
    /// validated at load); every step checks before it adds, so a second run changes nothing.
    pub fn rbac_script(&self) -> String {
        use crate::etcd::values::sh_quote as q;
        let mut s = format!(
            "#!/bin/sh\n\
             # Creates the RBAC users and roles of etcd cluster {cluster}, then enables auth.\n\
             # Users get no password: etcd maps the certificate CN to the user (--client-cert-auth).\n\
             # Run as the root client:  set -a; . clients/root/etcdctl.env; set +a; sh rbac.sh\n\
             # Running it again is safe: what exists is left as it is.\n\
             {RBAC_PRELUDE}",
            cluster = self.name
        );
        for r in &self.roles {
            s.push_str(&format!("role_add {}\n", q(&r.name)));
            for (perm, prefixes) in [
                ("read", &r.read),
                ("write", &r.write),
                ("readwrite", &r.readwrite),
            ] {
                for p in prefixes {
                    s.push_str(&format!(
                        "$ETCDCTL role grant-permission {} {perm} {} --prefix=true\n",
                        q(&r.name),
                        q(p)
                    ));
                }
            }
        }
        for c in self
            .clients
            .iter()
            .filter(|c| c.kind == ClientKind::KubeApiserver)
        {
            s.push_str(&format!(
                "# The API server's role: every object under {KUBE_PREFIX}, and its compaction marker.\n\
                 role_add {r}\n\
                 $ETCDCTL role grant-permission {r} readwrite {p} --prefix=true\n\
                 $ETCDCTL role grant-permission {r} readwrite {k}\n",
                r = q(&c.name),
                p = q(KUBE_PREFIX),
                k = q(KUBE_COMPACT_KEY),
            ));
        }
        let mut clients: Vec<&Client> = self.clients.iter().collect();
        clients.sort_by_key(|c| c.name != "root");
        for c in clients {
            s.push_str(&format!("user_add {}\n", q(&c.name)));
            if c.name == "root" {
                s.push_str("$ETCDCTL user grant-role 'root' 'root'\n");
            }
            if c.kind == ClientKind::KubeApiserver {
                s.push_str(&format!(
                    "$ETCDCTL user grant-role {} {}\n",
                    q(&c.name),
                    q(&c.name)
                ));
            }
            for r in &c.roles {
                if !(c.name == "root" && r == "root") {
                    s.push_str(&format!(
                        "$ETCDCTL user grant-role {} {}\n",
                        q(&c.name),
                        q(r)
                    ));
                }
            }
        }
        if self.clients.iter().any(|c| c.name == "root") {
            s.push_str("$ETCDCTL auth enable\n");
        }
        s
    }
}

/// The fixed start of every `rbac.sh`. etcd refuses `role add`/`user add` for a name that
/// exists, while `grant-permission`, `grant-role` and `auth enable` are idempotent, so only the
/// two adds need a look first. `check-etcd` compares a bundle's `rbac.sh` against this text.
pub const RBAC_PRELUDE: &str = "set -eu\n\
ETCDCTL=${ETCDCTL:-etcdctl}\n\
role_add() { $ETCDCTL role get \"$1\" >/dev/null 2>&1 || $ETCDCTL role add \"$1\"; }\n\
user_add() { $ETCDCTL user get \"$1\" >/dev/null 2>&1 || $ETCDCTL user add \"$1\" --no-password; }\n";

/// What `issuer etcd` did.
#[derive(Debug, Default)]
pub struct BundleReport {
    pub issued: Vec<String>,
    pub kept: Vec<String>,
    /// Kept leaves that lack a name the cluster file now asks for, with what is missing.
    pub stale: Vec<String>,
    pub written: Vec<PathBuf>,
}

/// Everything `build_bundle` needs besides the cluster file.
pub struct BundleInputs<'a, S: Signer> {
    pub ca: &'a IssuingCa<S>,
    pub ledger: &'a mut Ledger,
    pub root_pem: &'a str,
    /// The etcd CRL (DER) to install when the bundle has no `crl.der` yet.
    pub crl_der: &'a [u8],
    pub now: OffsetDateTime,
}

fn write_if_absent(path: &Path, data: &[u8], mode: Mode, report: &mut BundleReport) -> Result<()> {
    if !path.exists() {
        output::write_atomic(path, data, mode, false)?;
        report.written.push(path.to_path_buf());
    }
    Ok(())
}

/// Replaces a public file only when its content changes, so that re-running `issuer etcd`
/// leaves every existing file (content and mtime) alone unless it has to change.
fn write_if_changed(path: &Path, data: &[u8], report: &mut BundleReport) -> Result<()> {
    if std::fs::read(path).ok().as_deref() != Some(data) {
        output::write_atomic(path, data, Mode::Public, true)?;
        report.written.push(path.to_path_buf());
    }
    Ok(())
}

/// The names of `wanted` a kept leaf certificate does not carry (empty when it cannot be read:
/// `check-etcd` reports unreadable files).
fn missing_names(cert: &Path, wanted: &SubjectNames) -> Vec<String> {
    use x509_parser::prelude::FromDer;
    let Ok(bytes) = std::fs::read(cert) else {
        return Vec::new();
    };
    let Some(der) = crate::x509::certs::pem_blocks("leaf", &bytes, "CERTIFICATE")
        .ok()
        .and_then(|b| b.into_iter().next())
    else {
        return Vec::new();
    };
    let Ok((_, c)) = x509_parser::certificate::X509Certificate::from_der(&der) else {
        return Vec::new();
    };
    let has = crate::x509::certs::san_names(&c);
    let has_dns: Vec<String> = has.dns.iter().map(|d| d.to_ascii_lowercase()).collect();
    let mut missing: Vec<String> = wanted
        .dns
        .iter()
        .filter(|d| !has_dns.contains(&d.to_ascii_lowercase()))
        .map(|d| format!("DNS:{d}"))
        .collect();
    missing.extend(
        wanted
            .ips
            .iter()
            .filter(|ip| !has.ips.contains(ip))
            .map(|ip| format!("IP:{ip}")),
    );
    missing
}

#[allow(clippy::too_many_arguments)]
fn issue_into<S: Signer>(
    inputs: &mut BundleInputs<'_, S>,
    paths: LeafPaths,
    role: LeafRole,
    cn: &str,
    names: SubjectNames,
    cluster: &ClusterFile,
    report: &mut BundleReport,
) -> Result<()> {
    let dir = paths.cert.parent().unwrap_or(Path::new(".")).to_path_buf();
    let label = format!("{}/{}", dir.display(), role);
    if paths.cert.exists() || paths.key.exists() {
        if !(paths.cert.exists() && paths.key.exists()) {
            return Err(Error::Policy(format!(
                "{label}: only one of the certificate and key exists; move the leftover away and re-run"
            )));
        }
        let missing = missing_names(&paths.cert, &names);
        if !missing.is_empty() {
            report.stale.push(format!(
                "{}: lacks {} that the cluster file now asks for",
                paths.cert.display(),
                missing.join(", ")
            ));
        }
        report.kept.push(label);
        return Ok(());
    }
    let alg: KeyAlgorithm = cluster.key.as_deref().unwrap_or("p256").parse()?;
    let leaf = inputs.ca.sign_leaf(
        LeafRequest {
            role,
            subject: Subject::cn(cn),
            names,
            days: cluster.days,
            key: LeafKey::Generate(alg),
        },
        inputs.now,
    )?;
    output::create_dir(&dir, 0o700)?;
    leaf.commit(inputs.ledger, inputs.ca.generation, &paths, false)?;
    report.issued.push(label);
    Ok(())
}

/// Asks the issuance gate about every leaf of the cluster before anything is written, so a
/// name outside the intermediate's constraints stops the run instead of leaving half a bundle.
pub fn gate_every_leaf(cluster: &ClusterFile, gate: &crate::ca::policy::Gate) -> Result<()> {
    for m in &cluster.members {
        let subject = Subject::cn(m.name.clone());
        gate.check(LeafRole::Server, &subject, &cluster.server_names(m))?;
        gate.check(LeafRole::Peer, &subject, &cluster.peer_names(m))?;
    }
    for c in &cluster.clients {
        gate.check(
            LeafRole::Client,
            &Subject::cn(c.name.clone()),
            &SubjectNames::default(),
        )?;
    }
    for p in &cluster.proxies {
        gate.check(
            LeafRole::Server,
            &Subject::cn(p.name.clone()),
            &cluster.proxy_names(p),
        )?;
    }
    Ok(())
}

/// Writes (or completes) the bundle of docs/etcd.md in `out`. Existing keys and certificates are
/// never replaced: running it again after adding a member or a client issues only what is new.
pub fn build_bundle<S: Signer>(
    cluster: &ClusterFile,
    out: &Path,
    mut inputs: BundleInputs<'_, S>,
) -> Result<BundleReport> {
    gate_every_leaf(cluster, inputs.ca.gate())?;
    let mut report = BundleReport::default();
    let existing_cluster = out.join("nodes").exists();
    output::create_dir(out, 0o755)?;
    let int_pem = inputs.ca.cert.pem();
    write_if_absent(
        &out.join("ca.crt"),
        inputs.root_pem.as_bytes(),
        Mode::Public,
        &mut report,
    )?;
    let existing_root = output::read_to_string(&out.join("ca.crt"))?;
    if existing_root.trim() != inputs.root_pem.trim() {
        return Err(Error::Policy(format!(
            "{} holds another root than this CA's; a bundle has exactly one trust anchor",
            out.join("ca.crt").display()
        )));
    }
    write_if_changed(
        &out.join("intermediate.crt"),
        int_pem.as_bytes(),
        &mut report,
    )?;
    write_if_absent(
        &out.join(ETCD_CRL_FILE),
        inputs.crl_der,
        Mode::Public,
        &mut report,
    )?;
    let crl_now = output::read(&out.join(ETCD_CRL_FILE))?;

    for m in &cluster.members {
        let dir = out.join("nodes").join(&m.name);
        let new_member = !dir.exists();
        issue_into(
            &mut inputs,
            LeafPaths::new(&dir, LeafRole::Server),
            LeafRole::Server,
            &m.name,
            cluster.server_names(m),
            cluster,
            &mut report,
        )?;
        issue_into(
            &mut inputs,
            LeafPaths::new(&dir, LeafRole::Peer),
            LeafRole::Peer,
            &m.name,
            cluster.peer_names(m),
            cluster,
            &mut report,
        )?;
        write_if_absent(
            &dir.join("ca.crt"),
            inputs.root_pem.as_bytes(),
            Mode::Public,
            &mut report,
        )?;
        write_if_absent(
            &dir.join(ETCD_CRL_FILE),
            &crl_now,
            Mode::Public,
            &mut report,
        )?;
        let env = cluster.member_env(m, existing_cluster && new_member);
        write_if_absent(
            &dir.join("etcd.env"),
            env.as_bytes(),
            Mode::Public,
            &mut report,
        )?;
    }
    for c in &cluster.clients {
        let dir = out.join("clients").join(&c.name);
        issue_into(
            &mut inputs,
            LeafPaths {
                cert: dir.join(c.kind.cert_file()),
                key: dir.join(c.kind.key_file()),
            },
            LeafRole::Client,
            &c.name,
            SubjectNames::default(),
            cluster,
            &mut report,
        )?;
        let ca = dir.join(c.kind.ca_file());
        if let Some(parent) = ca.parent().filter(|p| *p != dir) {
            output::create_dir(parent, 0o755)?;
        }
        write_if_absent(&ca, inputs.root_pem.as_bytes(), Mode::Public, &mut report)?;
        match c.kind {
            ClientKind::Etcdctl => write_if_absent(
                &dir.join("etcdctl.env"),
                cluster.client_env(c).as_bytes(),
                Mode::Public,
                &mut report,
            )?,
            // Rewritten when the endpoints change: it holds no secret and nothing else.
            ClientKind::KubeApiserver => write_if_changed(
                &dir.join(KUBEADM_FILE),
                cluster.kubeadm_snippet(c).as_bytes(),
                &mut report,
            )?,
        }
    }
    for p in &cluster.proxies {
        let dir = out.join("proxies").join(&p.name);
        let names = cluster.proxy_names(p);
        issue_into(
            &mut inputs,
            LeafPaths::new(&dir, LeafRole::Server),
            LeafRole::Server,
            &p.name,
            names,
            cluster,
            &mut report,
        )?;
        write_if_absent(
            &dir.join("ca.crt"),
            inputs.root_pem.as_bytes(),
            Mode::Public,
            &mut report,
        )?;
    }
    if !cluster.clients.is_empty() {
        write_if_changed(
            &out.join("rbac.sh"),
            cluster.rbac_script().as_bytes(),
            &mut report,
        )?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = r#"
name = "demo"
[[member]]
name = "etcd-1"
ips = ["10.0.0.1"]
dns = ["etcd-1.example"]
[[member]]
name = "etcd-2"
ips = ["10.0.0.2"]
client-urls = ["https://etcd-2.example:2379"]
[[client]]
name = "root"
[[client]]
name = "app-user"
roles = ["app-rw"]
[[role]]
name = "app-rw"
readwrite = ["/app/"]
"#;

    #[test]
    fn names_env_and_rbac() {
        let c: ClusterFile = toml::from_str(CLUSTER).unwrap();
        c.validate().unwrap();
        let m2 = &c.members[1];
        let s = c.server_names(m2);
        assert!(
            s.dns.contains(&"etcd-2.example".to_string()) && s.dns.contains(&"etcd-2".to_string())
        );
        let p = c.peer_names(&c.members[0]);
        assert!(p.dns.contains(&"peers.demo.etcd".to_string()));
        assert_eq!(p.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        let env2 = c.member_env(&c.members[1], false);
        assert!(
            env2.contains("ETCD_LISTEN_CLIENT_URLS=https://10.0.0.2:2379\n"),
            "{env2}"
        );
        assert!(env2.contains("ETCD_ADVERTISE_CLIENT_URLS=https://etcd-2.example:2379\n"));
        let env = c.member_env(&c.members[0], false);
        assert!(env.contains(
            "ETCD_INITIAL_CLUSTER=etcd-1=https://10.0.0.1:2380,etcd-2=https://10.0.0.2:2380\n"
        ));
        assert!(env.contains("ETCD_PEER_CERT_ALLOWED_HOSTNAME=peers.demo.etcd\n"));
        assert!(env.contains("ETCD_CLIENT_CRL_FILE=/etc/etcd/pki/crl.der\n"));
        assert!(env.contains("ETCD_PEER_CRL_FILE=/etc/etcd/pki/crl.der\n"));
        assert!(!env.contains("ETCD_PEER_CERT_ALLOWED_CN"));
        let rbac = c.rbac_script();
        let root_add = rbac.find("user_add 'root'").unwrap();
        assert!(root_add < rbac.find("user_add 'app-user'").unwrap());
        assert!(rbac.contains("role grant-permission 'app-rw' readwrite '/app/' --prefix=true"));
        assert!(rbac.trim_end().ends_with("auth enable"));
    }

    fn refused(text: &str) -> String {
        ClusterFile::parse("cluster.toml", text)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_cluster_files_are_refused() {
        let no_ip = CLUSTER.replace("ips = [\"10.0.0.2\"]", "ips = []");
        assert!(refused(&no_ip).contains("IP addresses"));
        let no_root = CLUSTER.replace("name = \"root\"", "name = \"admin\"");
        assert!(refused(&no_root).contains("root"));
        assert!(
            toml::from_str::<ClusterFile>(&format!("{CLUSTER}\ncolour = 1")).is_err()
                || toml::from_str::<ClusterFile>(
                    &CLUSTER.replace("name = \"demo\"", "name = \"demo\"\ncolour = 1")
                )
                .is_err()
        );
    }

    #[test]
    fn injected_values_are_refused_naming_field_and_problem() {
        let role = CLUSTER.replace("\"app-rw\"", "\"x'; touch PWNED; echo '\"");
        assert_eq!(
            refused(&role),
            "cluster.toml: client[2].roles = \"x'; touch PWNED; echo '\" contains a quote ('); \
             use letters, digits, '-', '_' or '.'; correct the cluster file and run again"
        );
        let data = CLUSTER.replace(
            "name = \"demo\"",
            "name = \"demo\"\ndata-dir = \"/var/lib/etcd\\nETCD_CLIENT_CERT_AUTH=false\"",
        );
        let e = refused(&data);
        assert!(
            e.contains(
                "data-dir = \"/var/lib/etcd\\nETCD_CLIENT_CERT_AUTH=false\" contains a newline"
            ),
            "{e}"
        );
        let cases = [
            ("\"/app/\"", "\"/app/'\"", "role[1].readwrite"),
            (
                "\"etcd-1.example\"",
                "\"etcd-1.example evil\"",
                "member[1].dns",
            ),
            (
                "\"https://etcd-2.example:2379\"",
                "\"https://etcd-2.example:2379\\nETCD_X=1\"",
                "member[2].client-urls",
            ),
            ("name = \"etcd-1\"", "name = \"etcd 1\"", "member[1].name"),
        ];
        for (from, to, field) in cases {
            let e = refused(&CLUSTER.replace(from, to));
            assert!(e.starts_with(&format!("cluster.toml: {field} = ")), "{e}");
        }
    }

    #[test]
    fn rbac_script_quotes_and_checks_before_adding() {
        let c = ClusterFile::parse("c", CLUSTER).unwrap();
        let rbac = c.rbac_script();
        assert!(rbac.contains(RBAC_PRELUDE));
        assert!(rbac.contains("role_add 'app-rw'\n"));
        let body = rbac.split(RBAC_PRELUDE).nth(1).unwrap();
        assert!(!body.contains("$ETCDCTL role add") && !body.contains("$ETCDCTL user add"));
    }

    #[test]
    fn etcd_versions_short_and_full() {
        for (text, lists, der_only) in [
            ("3.4", false, false),
            ("3.5", false, false),
            ("3.5.1", false, false),
            ("3.5.14", false, false),
            ("3.5.15", true, false),
            ("3.6", true, true),
            ("3.6.5", true, true),
        ] {
            let v = EtcdVersion::parse(text).unwrap();
            assert_eq!(v.to_string(), text);
            assert_eq!(v.peer_lists(), lists, "{text}");
            assert_eq!(v.crl_der_only(), der_only, "{text}");
        }
        assert_eq!(
            EtcdVersion::parse("3.5.31").unwrap().grpc_crl_fixed(),
            Some(false)
        );
        assert_eq!(
            EtcdVersion::parse("3.5.32").unwrap().grpc_crl_fixed(),
            Some(true)
        );
        assert_eq!(
            EtcdVersion::parse("3.6.12").unwrap().grpc_crl_fixed(),
            Some(false)
        );
        assert_eq!(
            EtcdVersion::parse("3.6.13").unwrap().grpc_crl_fixed(),
            Some(true)
        );
        assert_eq!(EtcdVersion::parse("3.6").unwrap().grpc_crl_fixed(), None);
        for bad in [
            "3",
            "3.3",
            "3.7",
            "4.0",
            "3.5.",
            "3.5.x",
            "v3.5.1",
            "3.5.1.2",
            " 3.5",
            "3.5.1-rc1",
        ] {
            assert!(EtcdVersion::parse(bad).is_err(), "{bad}");
        }
        let e =
            refused(&CLUSTER.replace("name = \"demo\"", "name = \"demo\"\netcd-version = \"3.7\""));
        assert!(
            e.contains("etcd-version = \"3.7\" is not a supported etcd version"),
            "{e}"
        );
        let c = ClusterFile::parse(
            "c",
            &CLUSTER.replace(
                "name = \"demo\"",
                "name = \"demo\"\netcd-version = \"3.5.15\"",
            ),
        )
        .unwrap();
        let env = c.member_env(&c.members[0], false);
        assert!(
            env.starts_with("# etcd 3.5.15 configuration for member etcd-1"),
            "{env}"
        );
        assert!(env.contains("also accepts a comma-separated list"), "{env}");
        assert_eq!(
            crate::etcd::check::env_version(&env),
            EtcdVersion::parse("3.5.15").ok()
        );
    }

    const KUBE: &str = r#"
[[client]]
name = "kube-apiserver-etcd-client"
kind = "kube-apiserver"
endpoints = ["https://etcd.lb.example:2379", "https://10.0.0.1:2379"]
"#;

    #[test]
    fn kube_apiserver_client_files_snippet_role_and_sans() {
        let c = ClusterFile::parse("c", &format!("{CLUSTER}{KUBE}")).unwrap();
        let k = c
            .clients
            .iter()
            .find(|c| c.kind == ClientKind::KubeApiserver)
            .unwrap();
        assert_eq!(
            (k.kind.cert_file(), k.kind.key_file(), k.kind.ca_file()),
            (
                "apiserver-etcd-client.crt",
                "apiserver-etcd-client.key",
                "etcd/ca.crt"
            )
        );
        // The load balancer is in every member's server certificate; 10.0.0.1 is etcd-1's own.
        assert_eq!(
            c.shared_endpoints(),
            vec!["https://etcd.lb.example:2379".to_string()]
        );
        for m in &c.members {
            assert!(
                c.server_names(m)
                    .dns
                    .contains(&"etcd.lb.example".to_string()),
                "{}",
                m.name
            );
            assert!(!c.peer_names(m).dns.contains(&"etcd.lb.example".to_string()));
        }
        assert!(!c
            .server_names(&c.members[1])
            .ips
            .contains(&"10.0.0.1".parse().unwrap()));
        let y = c.kubeadm_snippet(k);
        assert!(y.contains("kind: ClusterConfiguration\netcd:\n  external:\n    endpoints:\n      - \"https://etcd.lb.example:2379\"\n      - \"https://10.0.0.1:2379\"\n"), "{y}");
        assert!(y.ends_with(
            "    caFile: \"/etc/kubernetes/pki/etcd/ca.crt\"\n    certFile: \"/etc/kubernetes/pki/apiserver-etcd-client.crt\"\n    keyFile: \"/etc/kubernetes/pki/apiserver-etcd-client.key\"\n"
        ), "{y}");
        let rbac = c.rbac_script();
        for line in [
            "role_add 'kube-apiserver-etcd-client'\n",
            "$ETCDCTL role grant-permission 'kube-apiserver-etcd-client' readwrite '/registry/' --prefix=true\n",
            "$ETCDCTL role grant-permission 'kube-apiserver-etcd-client' readwrite 'compact_rev_key'\n",
            "user_add 'kube-apiserver-etcd-client'\n$ETCDCTL user grant-role 'kube-apiserver-etcd-client' 'kube-apiserver-etcd-client'\n",
        ] {
            assert!(rbac.contains(line), "{line}\n{rbac}");
        }
        assert!(
            rbac.find("auth enable").unwrap() > rbac.find("grant-role 'kube-apiserver").unwrap()
        );
        // Without endpoints: every member's client URL, and no extra SAN.
        let plain = ClusterFile::parse(
            "c",
            &format!(
                "{CLUSTER}{}",
                KUBE.replace(
                    "endpoints = [\"https://etcd.lb.example:2379\", \"https://10.0.0.1:2379\"]",
                    "install-dir = \"/srv/k8s/pki\""
                )
            ),
        )
        .unwrap();
        assert!(plain.shared_endpoints().is_empty());
        let k = plain
            .clients
            .iter()
            .find(|c| c.kind == ClientKind::KubeApiserver)
            .unwrap();
        let y = plain.kubeadm_snippet(k);
        assert!(
            y.contains(
                "      - \"https://10.0.0.1:2379\"\n      - \"https://etcd-2.example:2379\"\n"
            ),
            "{y}"
        );
        assert!(
            y.contains("keyFile: \"/srv/k8s/pki/apiserver-etcd-client.key\""),
            "{y}"
        );
    }

    #[test]
    fn kube_apiserver_client_mistakes_are_refused() {
        let with = |extra: &str| refused(&format!("{CLUSTER}{extra}"));
        let e = with("[[client]]\nname = \"k\"\nkind = \"kube-apiserver\"\nroles = [\"root\"]\n");
        assert!(e.contains("never etcd's root"), "{e}");
        let e = with("[[client]]\nname = \"app-rw\"\nkind = \"kube-apiserver\"\n");
        assert!(e.contains("role name 'app-rw' is taken"), "{e}");
        let e = with("[[client]]\nname = \"x\"\nendpoints = [\"https://a.example:2379\"]\n");
        assert!(e.contains("for kind = \"kube-apiserver\" only"), "{e}");
        let e = with("[[client]]\nname = \"k\"\nkind = \"kube-apiserver\"\nendpoints = [\"http://a.example:2379\"]\n");
        assert!(
            e.contains("client[3].endpoints = \"http://a.example:2379\" must start with https://"),
            "{e}"
        );
        let e = with(
            "[[client]]\nname = \"k\"\nkind = \"kube-apiserver\"\ninstall-dir = \"/etc/k\\\"x\"\n",
        );
        assert!(e.contains("client[3].install-dir"), "{e}");
        let e = with("[[client]]\nname = \"k\"\nkind = \"kubelet\"\n");
        assert!(e.contains("unknown variant `kubelet`"), "{e}");
    }
}
