//! `issuer check-etcd`: finds, one line each, the mistakes the etcd facts file documents, in a
//! bundle (`nodes/`, `clients/`) or in one member's folder (with its `etcd.env`).

mod crl;
mod env;
mod leaf;
mod member;
mod rbac;
#[cfg(test)]
mod tests;

use crate::ca::policy::LeafName;
use crate::etcd::{EtcdVersion, ETCD_CRL_FILE, LEGACY_ETCD_CRL_FILE};
use crate::keys::signer::FileKey;
use crate::x509::certs::pem_blocks;
use crate::x509::conformance::{Finding, Level};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crl::*;
use env::*;
use leaf::*;
use member::*;
use rbac::*;

pub use crl::{strict_der_crl, CRL_WARN_BYTES, CRL_WARN_ENTRIES};
pub use env::{env_version, parse_env, read_env, EnvFile};

/// Options of a check.
pub struct CheckOptions {
    /// Certificates that expire within this many days are reported.
    pub warn_days: i64,
    /// The time expiry and CRL freshness are judged at.
    pub now: OffsetDateTime,
    /// The etcd release the members run, when given: it overrides the version line of each
    /// `etcd.env` (e.g. to check members before upgrading them).
    pub etcd_version: Option<EtcdVersion>,
}

struct Ctx {
    out: Vec<Finding>,
    opts: CheckOptions,
    /// The bundle's `intermediate.crt` (DER), which every chain file must end with.
    bundle_int: Option<Vec<u8>>,
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

/// Runs every static check on `dir` (a bundle or a member folder).
pub fn check_dir(dir: &Path, opts: CheckOptions) -> Vec<Finding> {
    let bundle = dir.join("nodes").is_dir();
    let mut cx = Ctx {
        out: Vec::new(),
        opts,
        bundle_int: None,
    };
    let members: Vec<PathBuf> = if bundle {
        sorted_dirs(&dir.join("nodes"))
    } else {
        vec![dir.to_path_buf()]
    };
    let clients = sorted_dirs(&dir.join("clients"));
    let proxies = sorted_dirs(&dir.join("proxies"));
    if dir.join("ca.crt").exists() {
        check_trust_file(&mut cx, &dir.join("ca.crt"));
    }
    let given = cx.opts.etcd_version;
    if dir.join(ETCD_CRL_FILE).exists() {
        check_crl(&mut cx, &dir.join(ETCD_CRL_FILE), given);
    } else if bundle {
        cx.fail("crl", &dir.join(ETCD_CRL_FILE), "missing: the bundle's CRL (DER, the format every etcd reads) is what every member loads; publish it with `issuer crl --etcd-bundle`");
    }
    if bundle && dir.join(LEGACY_ETCD_CRL_FILE).exists() {
        check_crl(&mut cx, &dir.join(LEGACY_ETCD_CRL_FILE), given);
    }
    if bundle {
        cx.bundle_int = bundle_intermediate(&mut cx, &dir.join("intermediate.crt"));
    }
    check_yaml(&mut cx, dir);
    if dir.join("rbac.sh").exists() {
        check_rbac_script(&mut cx, &dir.join("rbac.sh"));
    }

    let mut cas = BTreeMap::new();
    let mut restrictions = BTreeMap::new();
    for m in &members {
        check_member(&mut cx, m, &mut cas, &mut restrictions);
    }
    for c in &clients {
        // A kube-apiserver client folder holds kubeadm's names (docs/kubernetes.md).
        let kind = match c.join(crate::etcd::KUBE_CERT_FILE).exists() {
            true => crate::etcd::ClientKind::KubeApiserver,
            false => crate::etcd::ClientKind::Etcdctl,
        };
        check_trust_file(&mut cx, &c.join(kind.ca_file()));
        let (cert, key) = (c.join(kind.cert_file()), c.join(kind.key_file()));
        check_leaf(&mut cx, &cert, &key, Role::Client);
    }
    // A proxy (`etcd grpc-proxy`) serves clients and dials members with one server
    // certificate: the same mistakes break it as a member's client side.
    for p in &proxies {
        check_trust_file(&mut cx, &p.join("ca.crt"));
        check_leaf(
            &mut cx,
            &p.join("server.crt"),
            &p.join("server.key"),
            Role::Server,
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
                "{}: {} member(s), {} client(s){}, no known mistake found",
                dir.display(),
                members.len(),
                clients.len(),
                match proxies.len() {
                    0 => String::new(),
                    n => format!(", {n} proxy(ies)"),
                }
            ),
        });
    }
    cx.out
}

/// The bundle's `intermediate.crt`: one certificate, which every chain file must carry.
fn bundle_intermediate(cx: &mut Ctx, path: &Path) -> Option<Vec<u8>> {
    let Ok(bytes) = std::fs::read(path) else {
        cx.fail("chain", path, "missing: the bundle's intermediate is what every chain file must end with; run `issuer etcd` again to write it");
        return None;
    };
    match pem_blocks("intermediate.crt", &bytes, "CERTIFICATE") {
        Ok(mut certs) if certs.len() == 1 => certs.pop(),
        Ok(certs) => {
            cx.fail(
                "chain",
                path,
                format!(
                    "holds {} certificates; it must be the issuing intermediate alone",
                    certs.len()
                ),
            );
            None
        }
        Err(e) => {
            cx.fail("chain", path, e.to_string());
            None
        }
    }
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
                        "holds {} roots; the bundle's trust file is the root alone, except during a root rollover (the cluster file's also-trust): drop the old root once every leaf chains to the new one (docs/root-rollover.md)",
                        certs.len()
                    ),
                );
            }
        }
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
                "sets {} in a YAML config: etcd 3.4 and 3.5 silently drop these keys and, with --config-file, ignore every flag and ETCD_* variable (facts Y1, W6); use the etcd.env file",
                bad.join(", ")
            ));
        }
    }
}
