//! The files of a live drill: a cluster file with three members on loopback and some clients,
//! and the agent files `issuer etcd` wrote, their state moved into the test's folder.

use std::path::{Path, PathBuf};

/// Cluster `name` on etcd `minor` (`3.4`), its folders under `bundle` (nodes/, clients/) and
/// data under `data`, served by `url`: members etcd-1..3 with client ports `base`+1..3 and peer
/// ports `base`+11..13, then `clients` (no roles).
pub fn cluster_text(
    name: &str,
    minor: &str,
    bundle: &Path,
    data: &Path,
    base: u16,
    url: &str,
    clients: &[&str],
) -> String {
    let mut s = format!(
        "service = \"{url}\"\nname = \"{name}\"\netcd-version = \"{minor}\"\n\
         install-dir = \"{b}/nodes/{{name}}\"\nclient-install-dir = \"{b}/clients/{{name}}\"\n\
         data-dir = \"{d}/{{name}}\"\n",
        b = bundle.display(),
        d = data.display(),
    );
    for i in 1..=3u16 {
        s.push_str(&format!(
            "\n[[member]]\nname = \"etcd-{i}\"\nips = [\"127.0.0.1\"]\n\
             client-urls = [\"https://127.0.0.1:{}\"]\npeer-urls = [\"https://127.0.0.1:{}\"]\n",
            base + i,
            base + 10 + i
        ));
    }
    for c in clients {
        s.push_str(&format!("\n[[client]]\nname = \"{c}\"\nroles = []\n"));
    }
    s
}

/// The agent file `issuer etcd` wrote in `folder` for entry `name` of cluster `cluster`, with
/// its state file in `states`, a 10-second CRL interval and `danger` when given; written as
/// `states/NAME.toml`.
pub fn agent_conf(
    folder: &Path,
    states: &Path,
    cluster: &str,
    name: &str,
    danger: Option<&str>,
) -> PathBuf {
    let text = std::fs::read_to_string(folder.join("pki-agent.toml")).unwrap();
    let state = format!("/var/lib/pki-agent/{cluster}-{name}.json");
    assert!(text.contains(&state), "{text}");
    let mut text = text
        .replace(
            &state,
            states.join(format!("{name}.json")).to_str().unwrap(),
        )
        .replace(
            "format = \"der\"\n",
            "format = \"der\"\ninterval = \"10s\"\n",
        );
    if let Some(d) = danger {
        text = text.replace("state = ", &format!("danger = \"{d}\"\nstate = "));
    }
    assert!(text.contains(states.to_str().unwrap()), "{text}");
    let path = states.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}
