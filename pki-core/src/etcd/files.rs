//! The files a bundle generates from the cluster file: `etcd.env`, `etcdctl.env`, `rbac.sh`
//! and `kubeadm-etcd.yaml`.

use super::cluster::{listen_urls, Client, ClientKind, ClusterFile, Member};
use super::{
    ETCD_CRL_FILE, KUBEADM_FILE, KUBE_CA_FILE, KUBE_CERT_FILE, KUBE_COMPACT_KEY, KUBE_KEY_FILE,
    KUBE_PKI_DIR, KUBE_PREFIX,
};

impl ClusterFile {
    /// A kube-apiserver client's `kubeadm-etcd.yaml`: a ClusterConfiguration whose
    /// `etcd.external` names the files where kubeadm expects them. Every value was validated
    /// (no quote, backslash or control character), so double quotes keep it literal YAML.
    pub fn kubeadm_snippet(&self, c: &Client) -> String {
        let dir = c
            .install_dir
            .as_deref()
            .unwrap_or(KUBE_PKI_DIR)
            .replace("{name}", &c.name);
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
