//! `issuer etcd` and `issuer check-etcd`: bundles from a cluster file, and their check.

use super::*;

pub fn etcd(
    ca_dir: &Path,
    cluster: &Path,
    out: &Path,
    root: Option<&Path>,
    enrol_only: Option<&str>,
    secret: &SecretArgs,
) -> Result<()> {
    let cluster_path = cluster;
    let cluster = pki_core::etcd::ClusterFile::load(cluster)?;
    let token_ttl = enrol_only.map(super::service::token_ttl).transpose()?;
    if token_ttl.is_some() {
        if cluster.service.is_none() {
            return Err(Usage::EnrolOnlyWithoutService.into());
        }
        if !cluster.proxies.is_empty() {
            let names: Vec<&str> = cluster.proxies.iter().map(|p| p.name.as_str()).collect();
            return Err(Usage::EnrolOnlyWithProxies {
                names: names.join(", "),
            }
            .into());
        }
    }
    let ca = open_ca(ca_dir)?;
    let _lock = ca.lock_exclusive()?;
    // Before the PIN and before the CRL number is drawn: a refused bundle changes nothing.
    pki_core::etcd::gate_every_leaf(&cluster, &Gate::for_ca(&ca)?)?;
    let root_pem = root_of(&ca, root)?;
    let root_facts = CertFacts::from_pem("root certificate", root_pem.as_bytes())?;
    let signer = secret.unlock_ca(&ca)?;
    pki_core::keys::verify_certificate(&signer.cert.der, &root_facts.spki_der).map_err(|_| {
        Usage::OtherRoot {
            intermediate: signer.cert.subject.clone(),
            root: root_facts.subject.clone(),
        }
    })?;
    let trust_pem = trust_file(&root_facts, &cluster, cluster_path)?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    // A bundle made before crl.der (it has only crl.pem) gets a fresh DER CRL here; its
    // crl.pem stays for members whose etcd.env still names it (check-etcd reports them).
    let etcd_crl = if out.join(pki_core::etcd::ETCD_CRL_FILE).exists() {
        None
    } else {
        let (_, root_crl) = root_and_crl(&ca, root, None)?;
        let pair = root_crl.as_deref().map(|c| (&root_facts, c, &[][..]));
        let signed = etcd_crl(&ca, &signer, &mut ledger, pair, now, 30)?;
        if let Some(der) = &root_crl {
            super::crl::record_root_published(&ca, &ledger, &root_facts, der, signed.number, now)?;
        }
        Some(signed)
    };
    let crl_der = etcd_crl.as_ref().map(|c| c.der.clone()).unwrap_or_default();
    let report = pki_core::etcd::build_bundle(
        &cluster,
        out,
        pki_core::etcd::BundleInputs {
            ca: &signer,
            ledger: &mut ledger,
            root_pem: root_facts.pem().as_str(),
            trust_pem: &trust_pem,
            crl_der: &crl_der,
            now,
            enrol_only: token_ttl.is_some(),
        },
    )?;
    if let Some(ttl) = token_ttl {
        write_tokens(&ca, &cluster, &report.to_enrol, ttl)?;
    }
    if let Some(c) = &etcd_crl {
        c.selection.published(&mut ledger, c.number)?;
        println!(
            "etcd CRL {}: {}",
            c.number,
            crl_size(c.selection.entries.len(), crl_der.len())
        );
    }
    for i in &report.issued {
        println!("issued  {i}");
    }
    for k in &report.kept {
        println!("kept    {k} (already there; not replaced)");
    }
    for t in &report.trust_changed {
        println!("trust   {t} rewritten: the roots it holds changed (root rollover); restart each member, one at a time, to load it (docs/root-rollover.md)", t = t.display());
    }
    for s in &report.stale {
        eprintln!(
            "issuer: warning: {s}; issue it afresh: move its .crt and .key away, run `issuer etcd` again, install the new pair, then revoke the old serial"
        );
    }
    println!(
        "bundle {}: {} issued, {} kept. Copy nodes/<member>/ to {} on each member and start etcd with its etcd.env;",
        out.display(),
        report.issued.len(),
        report.kept.len(),
        cluster.install_dir.replace("{name}", "<member>")
    );
    println!(
        "then, once, as the root client: set -a; . clients/root/etcdctl.env; set +a; sh rbac.sh"
    );
    if let Some(service) = &cluster.service {
        println!(
            "agents ({service}): on each host, install pki-agent in /usr/local/bin, copy the folder's pki-agent-{cluster}-<name>.service and .timer to /etc/systemd/system/, then `systemctl daemon-reload && systemctl enable --now pki-agent-{cluster}-<name>.timer` (the unit runs as the member's or client's agent-user: etcd, or root without capabilities for a client, unless the cluster file says);",
            cluster = cluster.name
        );
        println!(
            "a host added later enrols instead of receiving keys: `issuer token create --ca {} --cluster CLUSTER --member NAME --out NAME.token`, then on the host `pki-agent enrol --config <its folder>/pki-agent.toml --token-file NAME.token` (docs/production.md)",
            ca_dir.display()
        );
    }
    Ok(())
}

pub(super) use pki_core::ca::sign_etcd_crl as etcd_crl;

/// The trust file of every folder: the CA's root, then each `also-trust` root of the cluster
/// file (relative to its folder), each checked to be a self-signed CA certificate whose
/// signature verifies, and none the CA's root again.
fn trust_file(
    root: &CertFacts,
    cluster: &pki_core::etcd::ClusterFile,
    cluster_path: &Path,
) -> Result<String> {
    let base = cluster_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut pem = root.pem();
    let mut seen = vec![root.der.clone()];
    for rel in &cluster.also_trust {
        let path = if rel.is_absolute() {
            rel.clone()
        } else {
            base.join(rel)
        };
        let bad = |problem: String| pki_core::Error::TrustRoot {
            path: path.clone(),
            problem,
        };
        let bytes = output::read(&path)?;
        let blocks =
            pki_core::x509::pem_blocks(&path.display().to_string(), &bytes, "CERTIFICATE")?;
        if blocks.len() != 1 {
            return Err(bad(format!(
                "holds {} certificates; name one root certificate per entry",
                blocks.len()
            ))
            .into());
        }
        let facts = CertFacts::from_der(&path.display().to_string(), &blocks[0])?;
        if !facts.self_signed || !facts.is_ca || !facts.key_cert_sign {
            return Err(bad(format!(
                "{} is not a self-signed root CA certificate (a cross certificate or an intermediate in a trust file would bypass its revocation, facts C6); name the root's root.crt",
                facts.subject
            ))
            .into());
        }
        if pki_core::keys::verify_certificate(&facts.der, &facts.spki_der).is_err() {
            return Err(bad("its self-signature does not verify".into()).into());
        }
        if seen.contains(&facts.der) {
            return Err(bad(format!(
                "{} is already trusted (it is the CA's root or named twice)",
                facts.subject
            ))
            .into());
        }
        if facts.not_after < OffsetDateTime::now_utc() {
            return Err(bad(format!(
                "{} expired on {}",
                facts.subject,
                pki_core::x509::fmt_time(facts.not_after)
            ))
            .into());
        }
        seen.push(facts.der.clone());
        pem.push_str(&facts.pem());
    }
    Ok(pem)
}

/// "N entries, B bytes": what a written CRL costs every etcd connection (docs/crl.md).
pub(super) fn crl_size(entries: usize, bytes: usize) -> String {
    format!("{entries} entries, {bytes} bytes")
}

/// The root certificate and, when there is one, the root CRL (verified later against it).
pub(super) fn root_and_crl(
    ca: &CaDir,
    root: Option<&Path>,
    root_crl: Option<&Path>,
) -> Result<(Option<CertFacts>, Option<Vec<u8>>)> {
    let root_facts = match root_of(ca, root) {
        Ok(pem) => Some(CertFacts::from_pem("root certificate", pem.as_bytes())?),
        Err(e) if root_crl.is_some() => return Err(e),
        Err(_) => None,
    };
    let crl_path = root_crl
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ca.root_crl_path());
    let crl = if crl_path.exists() {
        let bytes = output::read(&crl_path)?;
        let blocks =
            pki_core::x509::pem_blocks(&crl_path.display().to_string(), &bytes, "X509 CRL")?;
        Some(blocks.into_iter().next().expect("one block"))
    } else {
        None
    };
    Ok((root_facts, crl))
}

/// Returns whether the folder passed every check.
pub fn check_etcd(
    dir: &Path,
    warn_days: i64,
    etcd_version: Option<pki_core::etcd::EtcdVersion>,
    probe: Option<&crate::probe::ProbeArgs<'_>>,
    json: bool,
) -> bool {
    let mut findings = pki_core::etcd::check_dir(
        dir,
        pki_core::etcd::CheckOptions {
            warn_days,
            now: OffsetDateTime::now_utc(),
            etcd_version,
        },
    );
    if let Some(p) = probe {
        findings.extend(crate::probe::probe(p));
    }
    let ok = x509::passed(&findings);
    if json {
        let doc = serde_json::json!({ "dir": dir, "passed": ok, "findings": findings });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        for f in &findings {
            println!("{f}");
        }
        println!("{}", if ok { "PASSED" } else { "FAILED" });
    }
    ok
}

/// `enrol.token` (0600) in each folder of an enrolment-only bundle whose host has not enrolled:
/// a token still unused and unexpired is kept; a used or expired one is replaced, but never
/// for an entry the ledger holds active leaves of (its host enrolled: a new token would let
/// anyone holding the folder obtain a second live identity; `issuer token create` is the
/// deliberate way).
fn write_tokens(
    ca: &pki_core::ca::CaDir,
    cluster: &pki_core::etcd::ClusterFile,
    entries: &[pki_core::etcd::ToEnrol],
    ttl: time::Duration,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    for e in entries {
        let path = e.dir.join(ENROL_TOKEN_FILE);
        let valid = match output::read(&path) {
            Ok(old) => {
                let old = zeroize::Zeroizing::new(String::from_utf8_lossy(&old).trim().to_string());
                ca.ledger()?
                    .enrol_grant(&pki_service::server::token_hash(&old), now)?
            }
            Err(_) => None,
        };
        if let Some(g) = valid {
            println!(
                "token   {} kept: {} enrols with it once, until {}",
                path.display(),
                g.entry,
                fmt_time(g.expires_at)
            );
            continue;
        }
        let (member, client) = match e.member {
            true => (Some(e.name.as_str()), None),
            false => (None, Some(e.name.as_str())),
        };
        // The roles a token for this entry would obtain.
        let (_, grant) = super::service::grant_for(cluster, member, client)?;
        let roles: Vec<String> = grant.into_iter().map(|l| l.role).collect();
        let active = super::service::active_leaves_of(ca, &e.name, &roles)?;
        if !active.is_empty() {
            println!(
                "enrolled {} {}: active leaf/leaves {}; no new token (to enrol its host again: issuer token create --member/--client {}; names are unique across the clusters of one CA folder)",
                if e.member { "member" } else { "client" },
                e.name,
                active.join(", "),
                e.name
            );
            continue;
        }
        let t = super::service::new_token(ca, cluster, member, client, ttl)?;
        output::write_atomic(
            &path,
            format!("{}\n", *t.token).as_bytes(),
            output::Mode::Secret,
            true,
        )?;
        println!(
            "token   {} for {} ({}), once, until {}: on its host, pki-agent enrol --config <folder>/{} --token-file <folder>/{ENROL_TOKEN_FILE}",
            path.display(),
            t.entry,
            t.roles.join(" + "),
            fmt_time(t.expires),
            pki_core::etcd::AGENT_CONFIG_FILE
        );
    }
    Ok(())
}

/// The token file of an enrolment-only bundle's folder.
const ENROL_TOKEN_FILE: &str = "enrol.token";
