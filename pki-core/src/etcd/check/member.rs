//! One member folder: its trust file, leaves, CRL files and `etcd.env` together.

use super::*;

pub(super) fn check_member(
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
