//! Writing (or completing) a bundle: issuing every leaf through the gate, then the files.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::cluster::{ClientKind, ClusterFile};
use super::{ETCD_CRL_FILE, KUBEADM_FILE};
use crate::ca::issuing::{IssuingCa, LeafKey, LeafPaths, LeafRequest};
use crate::ca::ledger::Ledger;
use crate::error::{Error, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::signer::Signer;
use crate::output::{self, Mode};
use crate::x509::profile::{LeafRole, Subject, SubjectNames};

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
