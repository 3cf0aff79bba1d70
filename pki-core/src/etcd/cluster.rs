//! The cluster file: its types, what it may hold, and the names each certificate carries.

use std::collections::BTreeSet;

use std::net::IpAddr;

use std::path::Path;

use serde::Deserialize;

use super::version::EtcdVersion;

use super::{KUBE_CA_FILE, KUBE_CERT_FILE, KUBE_KEY_FILE};

use crate::error::{Error, Result};

use crate::output;

use crate::x509::profile::SubjectNames;

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
    /// The online issuing service (`issuer serve`) as `https://HOST:PORT`: when set, every
    /// member and client folder gets a `pki-agent.toml` and systemd units for `pki-agent`.
    #[serde(default)]
    pub service: Option<String>,
    /// Further instances of the service (several CA hosts on one PostgreSQL ledger), written
    /// into every `pki-agent.toml` as `fallback`.
    #[serde(default)]
    pub service_fallback: Vec<String>,
    /// Leaf key algorithm (default p256).
    #[serde(default)]
    pub key: Option<String>,
    /// Leaf lifetime in days (default 90).
    #[serde(default)]
    pub days: Option<u32>,
    /// Root rollover (docs/root-rollover.md): further root certificates (PEM files, relative
    /// to the cluster file's folder) every trust file holds beside the issuing CA's root. Name
    /// the new root here before any leaf moves to it, the old root while leaves move, and
    /// nothing once every leaf chains to the new root.
    #[serde(default)]
    pub also_trust: Vec<std::path::PathBuf>,
    /// The `[[member]]` tables.
    #[serde(default, rename = "member")]
    pub members: Vec<Member>,
    /// The `[[client]]` tables.
    #[serde(default, rename = "client")]
    pub clients: Vec<Client>,
    /// The `[[proxy]]` tables.
    #[serde(default, rename = "proxy")]
    pub proxies: Vec<Proxy>,
    /// The `[[role]]` tables.
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

/// A `[[member]]`: one etcd member and how it is reached.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Member {
    /// The member name: `ETCD_NAME`, the CN and a DNS SAN of its certificates.
    pub name: String,
    /// Its IP addresses (at least one): SANs, and the listen address.
    pub ips: Vec<IpAddr>,
    /// Further DNS names clients reach it by.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Default: `https://<first IP>:2379`.
    #[serde(default)]
    pub client_urls: Vec<String>,
    /// Default: `https://<first IP>:2380`.
    #[serde(default)]
    pub peer_urls: Vec<String>,
    /// The user its pki-agent unit runs as (default `etcd`): it must own the member's files.
    #[serde(default)]
    pub agent_user: Option<String>,
}

/// A `[[client]]`: an etcd user with a certificate of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Client {
    /// The certificate CN, which etcd maps to the RBAC user of the same name.
    pub name: String,
    /// The roles `rbac.sh` grants this user: `[[role]]` names, or `root`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Who uses the certificate: `etcdctl` (default) or `kube-apiserver` (docs/kubernetes.md).
    #[serde(default)]
    pub kind: ClientKind,
    /// kube-apiserver only: where its files are installed on each control-plane node
    /// (default [`super::KUBE_PKI_DIR`]).
    #[serde(default)]
    pub install_dir: Option<String>,
    /// kube-apiserver only: the etcd URLs it dials (default: every member's client URLs). A
    /// URL whose host is not a member's (a load balancer) goes into every server certificate.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// The user its pki-agent unit runs as (default `root`, without capabilities): it must own
    /// the client's files on its host.
    #[serde(default)]
    pub agent_user: Option<String>,
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

impl ClientKind {
    /// The certificate and key file names inside the client's folder.
    pub fn cert_file(self) -> &'static str {
        match self {
            ClientKind::Etcdctl => "client.crt",
            ClientKind::KubeApiserver => KUBE_CERT_FILE,
        }
    }

    /// The key file name inside the client's folder.
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
    /// The proxy name: the CN and a DNS SAN of its certificate.
    pub name: String,
    /// IP addresses clients reach it at.
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// DNS names clients reach it by.
    #[serde(default)]
    pub dns: Vec<String>,
}

/// An RBAC role: key prefixes it may read, write, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Role {
    /// The role name.
    pub name: String,
    /// Key prefixes the role may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Key prefixes the role may write.
    #[serde(default)]
    pub write: Vec<String>,
    /// Key prefixes the role may read and write.
    #[serde(default)]
    pub readwrite: Vec<String>,
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
    /// The client URLs the member advertises (default `https://<first IP>:2379`).
    pub fn client_urls(&self) -> Vec<String> {
        if self.client_urls.is_empty() {
            vec![format!("https://{}:2379", host_for_url(&self.ips[0]))]
        } else {
            self.client_urls.clone()
        }
    }
    /// The peer URLs the member advertises (default `https://<first IP>:2380`).
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
pub(super) fn listen_urls(urls: &[String], m: &Member) -> Vec<String> {
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
    /// Reads, parses and validates a cluster file.
    pub fn load(path: &Path) -> Result<Self> {
        Self::parse(&path.display().to_string(), &output::read_to_string(path)?)
    }

    /// Parses and validates a cluster file's text.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        let c: ClusterFile = toml::from_str(text).map_err(|e| {
            // On one line: the position, the offending text, the reason.
            let mut detail = e
                .to_string()
                .lines()
                .map(|l| l.trim().trim_start_matches('|').trim())
                .filter(|l| !l.is_empty() && l.chars().any(|c| c != '^' && c != ' '))
                .collect::<Vec<_>>()
                .join(": ");
            if detail.contains("unknown field") && !text.trim_start().starts_with('[') {
                detail.push_str(
                    " (a top-level key such as `service` or `name` must come before the first [[member]], [[client]] or [[role]] table)",
                );
            }
            Error::BadToml {
                what: what.into(),
                detail,
            }
        })?;
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

    pub(super) fn member_dir(&self, name: &str) -> String {
        self.install_dir.replace("{name}", name)
    }

    pub(super) fn client_dir(&self, name: &str) -> String {
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
}
