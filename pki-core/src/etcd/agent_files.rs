//! The files `issuer etcd` writes for `pki-agent` when the cluster file names a `service`:
//! per member and per client folder, the agent's configuration and a systemd service and
//! timer that run one agent pass every few minutes.

use super::cluster::{Client, ClientKind, ClusterFile, Member};
use super::{ETCD_CRL_FILE, KUBE_CA_FILE, KUBE_CERT_FILE, KUBE_KEY_FILE, KUBE_PKI_DIR};

/// The agent's configuration file in each folder.
pub const AGENT_CONFIG_FILE: &str = "pki-agent.toml";
/// The systemd service unit in each folder.
pub const AGENT_SERVICE_FILE: &str = "pki-agent.service";
/// The systemd timer unit in each folder.
pub const AGENT_TIMER_FILE: &str = "pki-agent.timer";

/// The three agent files of one folder: configuration, service unit, timer unit.
pub struct AgentFiles {
    /// `pki-agent.toml`.
    pub config: String,
    /// `pki-agent.service`.
    pub service: String,
    /// `pki-agent.timer`.
    pub timer: String,
}

impl ClusterFile {
    /// The agent files of member `m`; None when the cluster file names no service.
    pub fn member_agent_files(&self, m: &Member) -> Option<AgentFiles> {
        let dir = self.member_dir(&m.name);
        let leaves = [
            (
                "server",
                format!("{dir}/server.crt"),
                format!("{dir}/server.key"),
            ),
            ("peer", format!("{dir}/peer.crt"), format!("{dir}/peer.key")),
        ];
        let crl = format!("{dir}/{ETCD_CRL_FILE}");
        self.agent_files(&m.name, &dir, &format!("{dir}/ca.crt"), &leaves, Some(&crl))
    }

    /// The agent files of client `c`; None when the cluster file names no service.
    pub fn client_agent_files(&self, c: &Client) -> Option<AgentFiles> {
        let dir = match c.kind {
            ClientKind::Etcdctl => self.client_dir(&c.name),
            ClientKind::KubeApiserver => c
                .install_dir
                .as_deref()
                .unwrap_or(KUBE_PKI_DIR)
                .replace("{name}", &c.name)
                .trim_end_matches('/')
                .to_string(),
        };
        let (cert, key, ca) = match c.kind {
            ClientKind::Etcdctl => ("client.crt", "client.key", "ca.crt"),
            ClientKind::KubeApiserver => (KUBE_CERT_FILE, KUBE_KEY_FILE, KUBE_CA_FILE),
        };
        let leaves = [("client", format!("{dir}/{cert}"), format!("{dir}/{key}"))];
        self.agent_files(&c.name, &dir, &format!("{dir}/{ca}"), &leaves, None)
    }

    fn agent_files(
        &self,
        name: &str,
        dir: &str,
        root: &str,
        leaves: &[(&str, String, String)],
        crl: Option<&str>,
    ) -> Option<AgentFiles> {
        // Every value here was validated at load (URL, names, absolute plain paths): none
        // holds a quote, backslash or control character, so TOML basic strings keep them.
        let service = self.service.as_deref()?;
        let mut config = format!(
            "# pki-agent for {name} of etcd cluster {cluster}, made by `issuer etcd`.\n\
             # Renews the leaves below at about 2/3 of their life through {service}, with\n\
             # keys made on this host; installs the CRL etcd reads. Run by {timer}.\n\
             service = \"{service}\"\n\
             root = \"{root}\"\n\
             state = \"/var/lib/pki-agent/{name}.json\"\n",
            cluster = self.name,
            timer = AGENT_TIMER_FILE,
        );
        if !self.service_fallback.is_empty() {
            let list: Vec<String> = self
                .service_fallback
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect();
            config.push_str(&format!("fallback = [{}]\n", list.join(", ")));
        }
        for (role, cert, key) in leaves {
            config.push_str(&format!(
                "\n[[leaf]]\nrole = \"{role}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n"
            ));
        }
        if let Some(crl) = crl {
            config.push_str(&format!("\n[crl]\npath = \"{crl}\"\nformat = \"der\"\n"));
        }
        let unit = format!(
            "# One pki-agent pass for {name}: renew what is due, install the CRL. Started by\n\
             # {AGENT_TIMER_FILE}. Install both in /etc/systemd/system/, then:\n\
             #   systemctl daemon-reload && systemctl enable --now {AGENT_TIMER_FILE}\n\
             # The user must be able to read and replace the files in {dir} (etcd's own user\n\
             # on a member); the keys never leave this host.\n\
             [Unit]\n\
             Description=pki-agent pass for {name} (etcd cluster {cluster})\n\
             Wants=network-online.target\n\
             After=network-online.target\n\n\
             [Service]\n\
             Type=oneshot\n\
             User=etcd\n\
             ExecStart=/usr/local/bin/pki-agent run --once --config {dir}/{AGENT_CONFIG_FILE}\n\
             # Exit status 2: a leaf is inside the danger window; the unit fails so it is seen.\n\
             StateDirectory=pki-agent\n\
             StateDirectoryMode=0700\n\
             ReadWritePaths={dir}\n\
             ProtectSystem=strict\n\
             ProtectHome=yes\n\
             PrivateTmp=yes\n\
             NoNewPrivileges=yes\n\
             UMask=0077\n",
            cluster = self.name,
        );
        let timer = format!(
            "# Runs {AGENT_SERVICE_FILE} for {name} every 10 minutes (spread by up to 2).\n\
             [Unit]\n\
             Description=pki-agent passes for {name}\n\n\
             [Timer]\n\
             OnBootSec=2min\n\
             OnUnitActiveSec=10min\n\
             RandomizedDelaySec=2min\n\
             Persistent=true\n\n\
             [Install]\n\
             WantedBy=timers.target\n"
        );
        Some(AgentFiles {
            config,
            service: unit,
            timer,
        })
    }
}
