//! Keeping an existing bundle current after the CA acts on it: the CRL files `issuer crl
//! --etcd-bundle` publishes, and the bundle's `intermediate.crt` after leaves were replaced.

use std::path::{Path, PathBuf};

use super::{ETCD_CRL_FILE, KUBE_CERT_FILE, LEGACY_ETCD_CRL_FILE};
use crate::ca::lifecycle::CrlFormat;
use crate::error::Result;
use crate::output::{self, Mode};
use crate::x509::certs::CertFacts;

/// The CRL files of an etcd bundle, each with its format: `crl.der` at the top and in every
/// member folder, plus every legacy `crl.pem` that exists (a member started from an older
/// `etcd.env` still loads it, so it must keep receiving revocations until that member's
/// `etcd.env` names `crl.der`; `check-etcd` says so).
pub fn bundle_crl_paths(bundle: &Path) -> Vec<(PathBuf, CrlFormat)> {
    let mut dirs = vec![bundle.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(bundle.join("nodes")) {
        let mut members: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        members.sort();
        dirs.extend(members);
    }
    let mut v = Vec::new();
    for d in dirs {
        v.push((d.join(ETCD_CRL_FILE), CrlFormat::Der));
        if d.join(LEGACY_ETCD_CRL_FILE).exists() {
            v.push((d.join(LEGACY_ETCD_CRL_FILE), CrlFormat::Pem));
        }
    }
    v
}

/// The etcd bundle a leaf file belongs to: `BUNDLE/{nodes,clients,proxies}/<name>/<file>`
/// with a `BUNDLE/intermediate.crt`.
fn bundle_of(cert_path: &Path) -> Option<PathBuf> {
    let folder = cert_path.parent()?;
    let kind = folder.parent()?;
    let bundle = kind.parent()?;
    let kind_name = kind.file_name()?.to_str()?;
    (matches!(kind_name, "nodes" | "clients" | "proxies")
        && bundle.join("intermediate.crt").is_file())
    .then(|| bundle.to_path_buf())
}

/// After leaves were replaced in place (`issuer reissue`, `issuer renew`): brings
/// `BUNDLE/intermediate.crt` of every etcd bundle they live in up to the issuing intermediate,
/// so the bundle keeps its contract (every chain file = leaf + a copy of intermediate.crt;
/// docs/etcd.md) after a rotation instead of naming the old, revoked intermediate. A bundle is only
/// touched once every chain file in it ends with `intermediate`; returns the files rewritten.
pub fn refresh_bundle_intermediates(
    cert_paths: &[PathBuf],
    intermediate: &CertFacts,
) -> Result<Vec<PathBuf>> {
    let bundles: std::collections::BTreeSet<PathBuf> =
        cert_paths.iter().filter_map(|p| bundle_of(p)).collect();
    let mut written = Vec::new();
    'bundle: for b in bundles {
        let target = b.join("intermediate.crt");
        let current = output::read(&target)?;
        let current = crate::x509::certs::pem_blocks("intermediate.crt", &current, "CERTIFICATE")?;
        if current.len() == 1 && current[0] == intermediate.der {
            continue;
        }
        for (kind, files) in [
            ("nodes", &["server.crt", "peer.crt"][..]),
            ("clients", &["client.crt", KUBE_CERT_FILE][..]),
            ("proxies", &["server.crt"][..]),
        ] {
            let Ok(rd) = std::fs::read_dir(b.join(kind)) else {
                continue;
            };
            for e in rd.flatten() {
                for f in files {
                    let chain_path = e.path().join(f);
                    let Ok(bytes) = std::fs::read(&chain_path) else {
                        continue;
                    };
                    let chain = crate::x509::certs::pem_blocks(
                        &chain_path.display().to_string(),
                        &bytes,
                        "CERTIFICATE",
                    )?;
                    if chain.get(1) != Some(&intermediate.der) {
                        continue 'bundle;
                    }
                }
            }
        }
        output::write_atomic(&target, intermediate.pem().as_bytes(), Mode::Public, true)?;
        written.push(target);
    }
    Ok(written)
}
