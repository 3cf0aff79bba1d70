//! Writing (or completing) a bundle: issuing every leaf through the gate, then the files.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::cluster::{Client, ClientKind, ClusterFile, Member};
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
    /// Leaves issued by this run, as `FOLDER/ROLE` labels.
    pub issued: Vec<String>,
    /// Leaves already there and left as they were.
    pub kept: Vec<String>,
    /// Kept leaves that lack a name the cluster file now asks for, with what is missing.
    pub stale: Vec<String>,
    /// Every file this run wrote or rewrote.
    pub written: Vec<PathBuf>,
    /// Trust files rewritten because the set of trusted roots changed (a root rollover step:
    /// each member must restart to read it, etcd-io/etcd#11555).
    pub trust_changed: Vec<PathBuf>,
    /// Enrolment-only: the entries whose leaves their hosts are to obtain with a token.
    pub to_enrol: Vec<ToEnrol>,
}

/// An entry of an enrolment-only bundle without its leaves yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToEnrol {
    /// A `[[member]]` (else a `[[client]]`).
    pub member: bool,
    /// Its name.
    pub name: String,
    /// Its folder in the bundle.
    pub dir: PathBuf,
}

/// The certificates of a PEM trust file, DER each; empty when unreadable.
fn trust_set(pem: &[u8]) -> std::collections::BTreeSet<Vec<u8>> {
    crate::x509::certs::pem_blocks("trust file", pem, "CERTIFICATE")
        .map(|v| v.into_iter().collect())
        .unwrap_or_default()
}

/// Writes a trust file: absent, it is written; holding the same roots, left alone; sharing a
/// root with `trust_pem` (a rollover step), replaced atomically; sharing none, refused (another
/// PKI's bundle).
fn write_trust(path: &Path, trust_pem: &str, report: &mut BundleReport) -> Result<()> {
    let Ok(old) = std::fs::read(path) else {
        output::write_atomic(path, trust_pem.as_bytes(), Mode::Public, false)?;
        report.written.push(path.to_path_buf());
        return Ok(());
    };
    let (old_set, new_set) = (trust_set(&old), trust_set(trust_pem.as_bytes()));
    if old_set == new_set {
        return Ok(());
    }
    if old_set.is_disjoint(&new_set) {
        return Err(Error::BundleOtherRoot {
            path: path.to_path_buf(),
        });
    }
    output::write_atomic(path, trust_pem.as_bytes(), Mode::Public, true)?;
    report.written.push(path.to_path_buf());
    report.trust_changed.push(path.to_path_buf());
    Ok(())
}

/// Every trust file and leaf certificate already in the bundle.
fn existing_files(out: &Path, cluster: &ClusterFile) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut trust = vec![out.join("ca.crt")];
    let mut leaves = Vec::new();
    for m in &cluster.members {
        let d = out.join("nodes").join(&m.name);
        trust.push(d.join("ca.crt"));
        leaves.push(LeafPaths::new(&d, LeafRole::Server).cert);
        leaves.push(LeafPaths::new(&d, LeafRole::Peer).cert);
    }
    for c in &cluster.clients {
        let d = out.join("clients").join(&c.name);
        trust.push(d.join(c.kind.ca_file()));
        leaves.push(d.join(c.kind.cert_file()));
    }
    for p in &cluster.proxies {
        let d = out.join("proxies").join(&p.name);
        trust.push(d.join("ca.crt"));
        leaves.push(LeafPaths::new(&d, LeafRole::Server).cert);
    }
    trust.retain(|p| p.exists());
    leaves.retain(|p| p.exists());
    (trust, leaves)
}

/// Refuses a run whose trust file drops a root while a kept leaf was issued by another
/// intermediate than this run's: that leaf may chain to the dropped root, and whoever holds
/// it would be refused by every member once they restart.
fn check_trust_drop<S: Signer>(
    out: &Path,
    cluster: &ClusterFile,
    inputs: &BundleInputs<'_, S>,
) -> Result<()> {
    let new_set = trust_set(inputs.trust_pem.as_bytes());
    let (trust_files, leaves) = existing_files(out, cluster);
    for t in &trust_files {
        let old = std::fs::read(t).unwrap_or_default();
        let Some(dropped) = trust_set(&old).into_iter().find(|c| !new_set.contains(c)) else {
            continue;
        };
        for leaf in &leaves {
            let bytes = std::fs::read(leaf).unwrap_or_default();
            let der = crate::x509::certs::pem_blocks("leaf", &bytes, "CERTIFICATE")
                .ok()
                .and_then(|b| b.into_iter().next())
                .unwrap_or_default();
            if crate::keys::verify_certificate(&der, &inputs.ca.cert.spki_der).is_err() {
                let root = crate::x509::CertFacts::from_der("dropped root", &dropped)
                    .map(|f| format!("{} (SHA256 {})", f.subject, f.fingerprint))
                    .unwrap_or_else(|_| "a root".into());
                return Err(Error::TrustDrop {
                    path: t.clone(),
                    root,
                    leaf: leaf.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Everything `build_bundle` needs besides the cluster file.
pub struct BundleInputs<'a, S: Signer> {
    /// The unlocked intermediate every leaf is signed with.
    pub ca: &'a IssuingCa<S>,
    /// The ledger each leaf is recorded in before its files are written.
    pub ledger: &'a mut Ledger,
    /// The root certificate (PEM) the intermediate chains to.
    pub root_pem: &'a str,
    /// The trust file of every folder (PEM): the root, then the cluster file's `also-trust`
    /// roots during a root rollover (docs/root-rollover.md).
    pub trust_pem: &'a str,
    /// The etcd CRL (DER) to install when the bundle has no `crl.der` yet.
    pub crl_der: &'a [u8],
    /// The issuance time (validity starts from it).
    pub now: OffsetDateTime,
    /// Enrolment-only: no leaf is issued here (no key on the CA host); the entries without
    /// leaves are listed in the report for their tokens.
    pub enrol_only: bool,
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

/// Issues the leaf at `paths` unless it is there; false when it is absent and the bundle is
/// enrolment-only (its host obtains it with a token).
#[allow(clippy::too_many_arguments)]
fn issue_into<S: Signer>(
    inputs: &mut BundleInputs<'_, S>,
    paths: LeafPaths,
    role: LeafRole,
    cn: &str,
    names: SubjectNames,
    cluster: &ClusterFile,
    report: &mut BundleReport,
) -> Result<bool> {
    let dir = paths.cert.parent().unwrap_or(Path::new(".")).to_path_buf();
    let label = format!("{}/{}", dir.display(), role);
    if inputs.enrol_only && !paths.cert.exists() && !paths.key.exists() {
        return Ok(false);
    }
    if paths.cert.exists() || paths.key.exists() {
        if !(paths.cert.exists() && paths.key.exists()) {
            return Err(Error::HalfLeaf { label });
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
        return Ok(true);
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
    Ok(true)
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
    check_trust_drop(out, cluster, &inputs)?;
    let mut report = BundleReport::default();
    let existing_cluster = out.join("nodes").exists();
    let crl_now = write_shared_files(out, &inputs, &mut report)?;
    for m in &cluster.members {
        let dir = out.join("nodes").join(&m.name);
        let joins_existing = existing_cluster && !dir.exists();
        write_member(
            &mut inputs,
            cluster,
            m,
            &dir,
            &crl_now,
            joins_existing,
            &mut report,
        )?;
    }
    for c in &cluster.clients {
        let dir = out.join("clients").join(&c.name);
        write_client(&mut inputs, cluster, c, &dir, &mut report)?;
    }
    for p in &cluster.proxies {
        let dir = out.join("proxies").join(&p.name);
        let names = cluster.proxy_names(p);
        let paths = LeafPaths::new(&dir, LeafRole::Server);
        issue_into(
            &mut inputs,
            paths,
            LeafRole::Server,
            &p.name,
            names,
            cluster,
            &mut report,
        )?;
        write_trust(&dir.join("ca.crt"), inputs.trust_pem, &mut report)?;
    }
    if !cluster.clients.is_empty() {
        let rbac = cluster.rbac_script();
        write_if_changed(&out.join("rbac.sh"), rbac.as_bytes(), &mut report)?;
    }
    Ok(report)
}

/// The bundle's own `ca.crt` (which must stay this CA's root), `intermediate.crt` and CRL
/// file; returns the CRL the member folders get when they have none.
fn write_shared_files<S: Signer>(
    out: &Path,
    inputs: &BundleInputs<'_, S>,
    report: &mut BundleReport,
) -> Result<Vec<u8>> {
    output::create_dir(out, 0o755)?;
    let root_path = out.join("ca.crt");
    write_trust(&root_path, inputs.trust_pem, report)?;
    if !trust_set(&output::read(&root_path)?).is_superset(&trust_set(inputs.root_pem.as_bytes())) {
        return Err(Error::BundleOtherRoot { path: root_path });
    }
    let int_pem = inputs.ca.cert.pem();
    write_if_changed(&out.join("intermediate.crt"), int_pem.as_bytes(), report)?;
    let crl_path = out.join(ETCD_CRL_FILE);
    write_if_absent(&crl_path, inputs.crl_der, Mode::Public, report)?;
    output::read(&crl_path)
}

/// A member's folder: server and peer leaves, trust file, CRL file, `etcd.env`.
fn write_member<S: Signer>(
    inputs: &mut BundleInputs<'_, S>,
    cluster: &ClusterFile,
    m: &Member,
    dir: &Path,
    crl: &[u8],
    joins_existing: bool,
    report: &mut BundleReport,
) -> Result<()> {
    let server = LeafPaths::new(dir, LeafRole::Server);
    let names = cluster.server_names(m);
    let server_there = issue_into(
        inputs,
        server,
        LeafRole::Server,
        &m.name,
        names,
        cluster,
        report,
    )?;
    let peer = LeafPaths::new(dir, LeafRole::Peer);
    let names = cluster.peer_names(m);
    let peer_there = issue_into(
        inputs,
        peer,
        LeafRole::Peer,
        &m.name,
        names,
        cluster,
        report,
    )?;
    if !(server_there && peer_there) {
        output::create_dir(dir, 0o700)?;
        report.to_enrol.push(ToEnrol {
            member: true,
            name: m.name.clone(),
            dir: dir.to_path_buf(),
        });
    }
    write_trust(&dir.join("ca.crt"), inputs.trust_pem, report)?;
    write_if_absent(&dir.join(ETCD_CRL_FILE), crl, Mode::Public, report)?;
    if let Some(files) = cluster.member_agent_files(m) {
        write_agent_files(dir, &files, report)?;
    }
    let env = cluster.member_env(m, joins_existing);
    write_if_absent(&dir.join("etcd.env"), env.as_bytes(), Mode::Public, report)
}

/// `pki-agent.toml` and its systemd units, rewritten when the cluster file changes them.
fn write_agent_files(
    dir: &Path,
    files: &super::AgentFiles,
    report: &mut BundleReport,
) -> Result<()> {
    write_if_changed(
        &dir.join(super::AGENT_CONFIG_FILE),
        files.config.as_bytes(),
        report,
    )?;
    write_if_changed(
        &dir.join(files.service_file()),
        files.service.as_bytes(),
        report,
    )?;
    write_if_changed(
        &dir.join(files.timer_file()),
        files.timer.as_bytes(),
        report,
    )?;
    write_if_changed(
        &dir.join(files.daemon_file()),
        files.daemon.as_bytes(),
        report,
    )
}

/// A client's folder: its leaf and trust file under the names its kind expects, and
/// `etcdctl.env` or `kubeadm-etcd.yaml`.
fn write_client<S: Signer>(
    inputs: &mut BundleInputs<'_, S>,
    cluster: &ClusterFile,
    c: &Client,
    dir: &Path,
    report: &mut BundleReport,
) -> Result<()> {
    let paths = LeafPaths {
        cert: dir.join(c.kind.cert_file()),
        key: dir.join(c.kind.key_file()),
    };
    let names = SubjectNames::default();
    if !issue_into(
        inputs,
        paths,
        LeafRole::Client,
        &c.name,
        names,
        cluster,
        report,
    )? {
        output::create_dir(dir, 0o700)?;
        report.to_enrol.push(ToEnrol {
            member: false,
            name: c.name.clone(),
            dir: dir.to_path_buf(),
        });
    }
    let ca = dir.join(c.kind.ca_file());
    if let Some(parent) = ca.parent().filter(|p| *p != dir) {
        output::create_dir(parent, 0o755)?;
    }
    write_trust(&ca, inputs.trust_pem, report)?;
    if let Some(files) = cluster.client_agent_files(c) {
        write_agent_files(dir, &files, report)?;
    }
    match c.kind {
        ClientKind::Etcdctl => {
            let env = cluster.client_env(c);
            write_if_absent(
                &dir.join("etcdctl.env"),
                env.as_bytes(),
                Mode::Public,
                report,
            )
        }
        // Rewritten when the endpoints change: it holds no secret and nothing else.
        ClientKind::KubeApiserver => {
            let yaml = cluster.kubeadm_snippet(c);
            write_if_changed(&dir.join(KUBEADM_FILE), yaml.as_bytes(), report)
        }
    }
}
