//! `issuer check-etcd`: finds, one line each, the mistakes the etcd facts file documents, in a
//! bundle (`nodes/`, `clients/`) or in one member's folder (with its `etcd.env`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::certs::pem_blocks;
use crate::signer::FileKey;
use crate::verify::{Finding, Level};

/// Options of a check.
pub struct CheckOptions {
    pub warn_days: i64,
    pub now: OffsetDateTime,
}

struct Ctx {
    out: Vec<Finding>,
    opts: CheckOptions,
}

impl Ctx {
    fn fail(&mut self, check: &'static str, path: &Path, detail: impl Into<String>) {
        self.out.push(Finding {
            level: Level::Fail,
            check,
            detail: format!("{}: {}", path.display(), detail.into()),
        });
    }
    fn warn(&mut self, check: &'static str, path: &Path, detail: impl Into<String>) {
        self.out.push(Finding {
            level: Level::Warn,
            check,
            detail: format!("{}: {}", path.display(), detail.into()),
        });
    }
}

/// Reads an `etcd.env` / `/etc/default/etcd` style file: `KEY=value`, comments, optional quotes.
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        if let Some((k, v)) = l.split_once('=') {
            let v = v.trim().trim_matches('"').trim_matches('\'');
            m.insert(k.trim().to_string(), v.to_string());
        }
    }
    m
}

/// Runs every static check on `dir` (a bundle or a member folder).
pub fn check_dir(dir: &Path, opts: CheckOptions) -> Vec<Finding> {
    let mut cx = Ctx {
        out: Vec::new(),
        opts,
    };
    let members: Vec<PathBuf> = if dir.join("nodes").is_dir() {
        sorted_dirs(&dir.join("nodes"))
    } else {
        vec![dir.to_path_buf()]
    };
    let clients = if dir.join("clients").is_dir() {
        sorted_dirs(&dir.join("clients"))
    } else {
        Vec::new()
    };
    if dir.join("ca.crt").exists() {
        check_trust_file(&mut cx, &dir.join("ca.crt"));
    }
    if dir.join("crl.pem").exists() {
        check_crl(&mut cx, &dir.join("crl.pem"));
    }
    check_yaml(&mut cx, dir);

    let mut cas = BTreeMap::new();
    let mut restrictions = BTreeMap::new();
    for m in &members {
        check_member(&mut cx, m, &mut cas, &mut restrictions);
    }
    for c in &clients {
        check_trust_file(&mut cx, &c.join("ca.crt"));
        check_leaf(
            &mut cx,
            &c.join("client.crt"),
            &c.join("client.key"),
            Role::Client,
        );
    }
    let distinct: BTreeSet<&Vec<u8>> = cas.values().collect();
    if distinct.len() > 1 {
        cx.fail(
            "ca-files",
            dir,
            format!(
                "the members trust different CA files ({}): every member must trust the same root",
                cas.keys()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let values: BTreeSet<&Option<String>> = restrictions.values().collect();
    if values.len() > 1 {
        cx.fail(
            "peer-restriction",
            dir,
            format!(
            "the peer restriction differs across members ({:?}): members would refuse each other",
            restrictions.values().collect::<Vec<_>>()
        ),
        );
    }
    if cx.out.iter().all(|f| f.level == Level::Ok) {
        cx.out.push(Finding {
            level: Level::Ok,
            check: "all",
            detail: format!(
                "{}: {} member(s), {} client(s), no known mistake found",
                dir.display(),
                members.len(),
                clients.len()
            ),
        });
    }
    cx.out
}

fn sorted_dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Server,
    Peer,
    Client,
}

fn check_trust_file(cx: &mut Ctx, path: &Path) {
    let Ok(bytes) = std::fs::read(path) else {
        cx.fail("trust-file", path, "missing");
        return;
    };
    match pem_blocks("trust file", &bytes, "CERTIFICATE") {
        Err(e) => cx.fail("trust-file", path, e.to_string()),
        Ok(certs) => {
            for der in &certs {
                if let Ok((_, c)) = X509Certificate::from_der(der) {
                    if c.subject() != c.issuer() {
                        cx.fail("trust-file", path, format!(
                            "holds '{}', which is not a self-signed root: an intermediate in the trust file lets its clients bypass its revocation (facts C6); keep the root only",
                            c.subject()
                        ));
                    }
                }
            }
            if certs.len() > 1 {
                cx.warn(
                    "trust-file",
                    path,
                    format!(
                        "holds {} certificates; the bundle's trust file is the root alone",
                        certs.len()
                    ),
                );
            }
        }
    }
}

fn check_crl(cx: &mut Ctx, path: &Path) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    let blocks = pem::parse_many(&bytes).unwrap_or_default();
    if blocks.len() > 1 {
        cx.fail("crl", path, format!(
            "{} PEM blocks: etcd reads only the first one, so the others are silently ignored (facts C5)",
            blocks.len()
        ));
    }
    let Some(first) = blocks.first() else {
        cx.fail(
            "crl",
            path,
            "no PEM block: etcd would reject every client (facts C5)",
        );
        return;
    };
    match x509_parser::revocation_list::CertificateRevocationList::from_der(first.contents()) {
        Err(e) => cx.fail("crl", path, format!("unparseable CRL ({e}): etcd would reject every client")),
        Ok((_, crl)) => match crl.next_update() {
            Some(n) if n.to_datetime() < cx.opts.now => cx.fail("crl", path, format!(
                "stale: nextUpdate was {}; etcd does not check dates (facts C4), so publish a fresh one",
                crate::validity::fmt_time(n.to_datetime())
            )),
            Some(n) if (n.to_datetime() - cx.opts.now).whole_days() < 2 => {
                cx.warn("crl", path, format!("nextUpdate {} is close", crate::validity::fmt_time(n.to_datetime())))
            }
            None => cx.warn("crl", path, "no nextUpdate"),
            _ => {}
        },
    }
}

fn check_yaml(cx: &mut Ctx, dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !(name.ends_with(".yml") || name.ends_with(".yaml") || name.ends_with(".conf")) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let bad: Vec<&str> = ["crl-file", "cert-allowed-cn", "cert-allowed-hostname"]
            .into_iter()
            .filter(|k| {
                text.lines()
                    .any(|l| !l.trim_start().starts_with('#') && l.contains(k))
            })
            .collect();
        if !bad.is_empty() {
            cx.fail("yaml-config", &p, format!(
                "sets {} in a YAML config: etcd 3.4 silently drops these keys and, with --config-file, ignores every flag and ETCD_* variable (facts Y1); use the etcd.env file",
                bad.join(", ")
            ));
        }
    }
}

fn check_member(
    cx: &mut Ctx,
    m: &Path,
    cas: &mut BTreeMap<PathBuf, Vec<u8>>,
    restrictions: &mut BTreeMap<PathBuf, Option<String>>,
) {
    check_trust_file(cx, &m.join("ca.crt"));
    if let Ok(b) = std::fs::read(m.join("ca.crt")) {
        cas.insert(m.join("ca.crt"), b);
    }
    if m.join("crl.pem").exists() {
        check_crl(cx, &m.join("crl.pem"));
    }
    check_yaml(cx, m);
    let env_path = m.join("etcd.env");
    let env = std::fs::read_to_string(&env_path)
        .ok()
        .map(|t| parse_env(&t));
    let mut peer_ips = Vec::new();
    let mut allowed_hostname = None;
    if let Some(env) = &env {
        let cn = env.get("ETCD_PEER_CERT_ALLOWED_CN").cloned();
        let host = env.get("ETCD_PEER_CERT_ALLOWED_HOSTNAME").cloned();
        let v34 = !env_path.exists()
            || std::fs::read_to_string(&env_path)
                .map(|t| t.contains("etcd 3.4"))
                .unwrap_or(true);
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
                if v34 && v.contains(',') {
                    cx.fail("peer-restriction", &env_path, format!(
                        "{k}={v}: etcd 3.4 takes one value and compares the whole string, so no peer matches (facts B1/B5)"
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

/// Checks one leaf chain file and its key; returns the leaf's DNS names and IPs.
fn check_leaf(
    cx: &mut Ctx,
    cert: &Path,
    key: &Path,
    role: Role,
) -> Option<(Vec<String>, Vec<IpAddr>)> {
    let Ok(bytes) = std::fs::read(cert) else {
        cx.fail("missing", cert, "missing");
        return None;
    };
    let chain = match pem_blocks("chain file", &bytes, "CERTIFICATE") {
        Ok(c) => c,
        Err(e) => {
            cx.fail("chain", cert, e.to_string());
            return None;
        }
    };
    if chain.len() < 2 {
        cx.fail("chain", cert, "holds only the leaf: the intermediate must follow it in the same file, or TLS peers cannot build the chain (facts D1-D3)");
    }
    let Ok((_, leaf)) = X509Certificate::from_der(&chain[0]) else {
        cx.fail("chain", cert, "the first certificate does not parse");
        return None;
    };
    if chain.len() >= 2 {
        if let Ok((_, int)) = X509Certificate::from_der(&chain[1]) {
            if leaf.issuer() != int.subject() {
                cx.fail("chain", cert, "the second certificate is not the leaf's issuer: wrong order or wrong intermediate");
            }
        }
    }
    let (mut server, mut client) = (false, false);
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::ExtendedKeyUsage(e) => {
                server = e.server_auth || e.any;
                client = e.client_auth || e.any;
            }
            ParsedExtension::SubjectAlternativeName(s) => {
                for n in &s.general_names {
                    match n {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) if b.len() == 4 => {
                            ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).expect("4")))
                        }
                        GeneralName::IPAddress(b) if b.len() == 16 => {
                            ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).expect("16")))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match role {
        Role::Server if !client => cx.fail("eku", cert, "server certificate without clientAuth: etcd's gateway dials itself with it and the JSON API breaks (facts I1)"),
        Role::Server | Role::Peer if !server => cx.fail("eku", cert, "no serverAuth"),
        Role::Peer if !client => cx.fail("eku", cert, "peer certificate without clientAuth: members dial each other with it"),
        Role::Client if !client => cx.fail("eku", cert, "client certificate without clientAuth"),
        _ => {}
    }
    let not_after = leaf.validity().not_after.to_datetime();
    let left = (not_after - cx.opts.now).whole_days();
    if not_after < cx.opts.now {
        cx.fail(
            "expiry",
            cert,
            format!("expired {}", crate::validity::fmt_time(not_after)),
        );
    } else if left < cx.opts.warn_days {
        cx.fail(
            "expiry",
            cert,
            format!(
                "expires in {left} days ({}): renew it",
                crate::validity::fmt_time(not_after)
            ),
        );
    }
    match std::fs::metadata(key) {
        Err(_) => cx.fail("key", key, "missing"),
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                cx.fail(
                    "key-mode",
                    key,
                    format!(
                        "mode {:o}: a private key must be readable by its owner only (chmod 600)",
                        meta.permissions().mode() & 0o777
                    ),
                );
            }
            match std::fs::read_to_string(key)
                .map_err(|e| e.to_string())
                .and_then(|t| FileKey::from_pkcs8_pem("key", &t).map_err(|e| e.to_string()))
            {
                Err(e) => cx.fail("key", key, e),
                Ok(k) if k.spki_der() != leaf.public_key().raw => cx.fail(
                    "key-match",
                    key,
                    format!(
                        "does not match {}: etcd will fail the handshake",
                        cert.display()
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
    Some((dns, ips))
}
