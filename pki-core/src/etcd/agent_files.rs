//! The files `issuer etcd` writes for `pki-agent` when the cluster file names a `service`:
//! per member and per client folder, the agent's configuration and a systemd service and
//! timer that run one agent pass every few minutes. The units are named for the cluster and
//! the entry (`pki-agent-CLUSTER-NAME.service`), so a host that is a member of two clusters,
//! or a member and a client, installs each beside the others; so is the state file.

use super::cluster::{Client, ClientKind, ClusterFile, Member};
use super::{ETCD_CRL_FILE, KUBE_CA_FILE, KUBE_CERT_FILE, KUBE_KEY_FILE, KUBE_PKI_DIR};

/// The agent's configuration file in each folder.
pub const AGENT_CONFIG_FILE: &str = "pki-agent.toml";

/// The user a member's agent runs as unless the cluster file says (`agent-user`).
pub const MEMBER_AGENT_USER: &str = "etcd";
/// The user a client's agent runs as unless the cluster file says: root without any
/// capability, which can replace only the files root owns.
pub const CLIENT_AGENT_USER: &str = "root";

/// The three agent files of one folder: configuration, service unit, timer unit.
pub struct AgentFiles {
    /// `pki-agent.toml`.
    pub config: String,
    /// The units' name without suffix: `pki-agent-CLUSTER-NAME`.
    pub unit: String,
    /// `UNIT.service`.
    pub service: String,
    /// `UNIT.timer`.
    pub timer: String,
    /// `UNIT-daemon.service`: the same agent as a long-running daemon, instead of the timer.
    pub daemon: String,
}

impl AgentFiles {
    /// `UNIT.service`.
    pub fn service_file(&self) -> String {
        format!("{}.service", self.unit)
    }

    /// `UNIT.timer`.
    pub fn timer_file(&self) -> String {
        format!("{}.timer", self.unit)
    }

    /// `UNIT-daemon.service`.
    pub fn daemon_file(&self) -> String {
        format!("{}-daemon.service", self.unit)
    }
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
        let user = m.agent_user.as_deref().unwrap_or(MEMBER_AGENT_USER);
        let ca = format!("{dir}/ca.crt");
        self.agent_files(&m.name, user, &dir, &ca, &leaves, Some(&crl))
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
        let user = c.agent_user.as_deref().unwrap_or(CLIENT_AGENT_USER);
        self.agent_files(&c.name, user, &dir, &format!("{dir}/{ca}"), &leaves, None)
    }

    fn agent_files(
        &self,
        name: &str,
        user: &str,
        dir: &str,
        root: &str,
        leaves: &[(&str, String, String)],
        crl: Option<&str>,
    ) -> Option<AgentFiles> {
        // Every value here was validated at load (URL, names, absolute plain paths): none
        // holds a quote, backslash or control character, so TOML basic strings keep them.
        let service = self.service.as_deref()?;
        let unit = format!("pki-agent-{}-{name}", self.name);
        let (service_file, timer_file) = (format!("{unit}.service"), format!("{unit}.timer"));
        let mut config = format!(
            "# pki-agent for {name} of etcd cluster {cluster}, made by `issuer etcd`.\n\
             # Renews the leaves below at about 2/3 of their life through {service}, with\n\
             # keys made on this host; installs the CRL etcd reads. Run by {timer_file}.\n\
             service = \"{service}\"\n\
             root = \"{root}\"\n\
             state = \"/var/lib/pki-agent/{cluster}-{name}.json\"\n",
            cluster = self.name,
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
        // Hardened: the agent needs its folder, its state and the network, nothing else. Its
        // configuration is bind-mounted read-only although it lives in the folder it writes.
        let hardening = format!(
            "StateDirectory=pki-agent\n\
             StateDirectoryMode=0700\n\
             UMask=0077\n\
             ProtectSystem=strict\n\
             ReadWritePaths={dir}\n\
             ReadOnlyPaths={dir}/{AGENT_CONFIG_FILE}\n\
             ProtectHome=yes\n\
             PrivateTmp=yes\n\
             PrivateDevices=yes\n\
             PrivateMounts=yes\n\
             NoNewPrivileges=yes\n\
             CapabilityBoundingSet=\n\
             AmbientCapabilities=\n\
             RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n\
             RestrictNamespaces=yes\n\
             RestrictRealtime=yes\n\
             RestrictSUIDSGID=yes\n\
             LockPersonality=yes\n\
             MemoryDenyWriteExecute=yes\n\
             ProtectClock=yes\n\
             ProtectHostname=yes\n\
             ProtectKernelLogs=yes\n\
             ProtectKernelModules=yes\n\
             ProtectKernelTunables=yes\n\
             ProtectControlGroups=yes\n\
             ProtectProc=invisible\n\
             ProcSubset=pid\n\
             RemoveIPC=yes\n\
             DevicePolicy=closed\n\
             SystemCallArchitectures=native\n\
             SystemCallFilter=@system-service\n\
             SystemCallFilter=~@privileged @resources\n\
             SystemCallErrorNumber=EPERM\n"
        );
        let service_unit = format!(
            "# One pki-agent pass for {name}: renew what is due, install the CRL. Started by\n\
             # {timer_file}. Install both in /etc/systemd/system/, then:\n\
             #   systemctl daemon-reload && systemctl enable --now {timer_file}\n\
             # (or, instead of both, {unit}-daemon.service: the agent as a daemon).\n\
             # User {user} must own the files in {dir} (agent-user in the cluster file); the\n\
             # keys never leave this host.\n\
             [Unit]\n\
             Description=pki-agent pass for {name} (etcd cluster {cluster})\n\
             Wants=network-online.target\n\
             After=network-online.target\n\n\
             [Service]\n\
             Type=oneshot\n\
             User={user}\n\
             ExecStart=/usr/local/bin/pki-agent run --once --config {dir}/{AGENT_CONFIG_FILE}\n\
             # Exit status 2: a leaf is inside the danger window; the unit fails so it is seen.\n\
             {hardening}",
            cluster = self.name,
        );
        let daemon = format!(
            "# pki-agent for {name} as a daemon: passes when a leaf is due or the CRL interval\n\
             # has passed, retries with a backoff. Use it instead of {service_file} and\n\
             # {timer_file} (not beside them). Install in /etc/systemd/system/, then:\n\
             #   systemctl daemon-reload && systemctl enable --now {unit}-daemon.service\n\
             [Unit]\n\
             Description=pki-agent daemon for {name} (etcd cluster {cluster})\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             Conflicts={timer_file}\n\n\
             [Service]\n\
             Type=simple\n\
             User={user}\n\
             ExecStart=/usr/local/bin/pki-agent run --config {dir}/{AGENT_CONFIG_FILE}\n\
             Restart=on-failure\n\
             RestartSec=30s\n\
             # Exit status 3: the service refused a leaf for good (re-enrol the host); no restart.\n\
             RestartPreventExitStatus=3\n\
             {hardening}\n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            cluster = self.name,
        );
        let timer = format!(
            "# Runs {service_file} for {name} every 10 minutes (spread by up to 2).\n\
             [Unit]\n\
             Description=pki-agent passes for {name} (etcd cluster {cluster})\n\n\
             [Timer]\n\
             OnBootSec=2min\n\
             OnUnitActiveSec=10min\n\
             RandomizedDelaySec=2min\n\
             Persistent=true\n\n\
             [Install]\n\
             WantedBy=timers.target\n",
            cluster = self.name,
        );
        Some(AgentFiles {
            config,
            unit,
            service: service_unit,
            timer,
            daemon,
        })
    }
}
