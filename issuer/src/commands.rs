//! What each `issuer` subcommand does, on top of pki-core.

use std::path::{Path, PathBuf};

use pki_core::ca_dir::CaDir;
use pki_core::cfssl;
use pki_core::csr::CheckedCsr;
use pki_core::issue::{IssuingCa, LeafKey, LeafPaths, LeafRequest};
use pki_core::ledger::ListFilter;
use pki_core::profile::{LeafRole, Profile, Subject, SubjectNames};
use pki_core::validity::{fmt_time, parse_duration};
use pki_core::verify::{self, VerifyRequest};
use pki_core::{output, Error, Result};
use time::OffsetDateTime;

use crate::cli::SecretArgs;

/// The options of `issuer issue`, as parsed.
pub struct IssueArgs {
    pub role: LeafRole,
    pub ca: PathBuf,
    pub out: PathBuf,
    pub cn: Option<String>,
    pub dns: Vec<String>,
    pub ip: Vec<std::net::IpAddr>,
    pub days: Option<u32>,
    pub key: Option<String>,
    pub csr: Option<PathBuf>,
    pub cfssl_json: Option<PathBuf>,
    pub ignore_requested_ca: bool,
    pub force: bool,
}

pub fn issue(a: &IssueArgs, secret: &SecretArgs) -> Result<()> {
    let role = a.role;
    let mut subject = None;
    let mut names = SubjectNames {
        dns: a.dns.clone(),
        ips: a.ip.clone(),
    };
    let mut alg = a.key.as_deref().map(str::parse).transpose()?;
    let mut csr = None;

    if let Some(path) = &a.cfssl_json {
        let req = cfssl::parse(&path.display().to_string(), &output::read_to_string(path)?)?;
        subject = Some(req.subject);
        names.dns.extend(req.names.dns);
        names.ips.extend(req.names.ips);
        alg = alg.or(req.key);
    }
    if let Some(path) = &a.csr {
        let what = path.display().to_string();
        let checked = CheckedCsr::from_pem(&what, &output::read(path)?)?;
        if checked.requested_ca && !a.ignore_requested_ca {
            return Err(Error::CsrRejected {
                what,
                reason: "it asks for CA:TRUE; leaves are never CAs. If this is expected, pass --ignore-requested-ca to issue a plain leaf".into(),
            });
        }
        let unapproved: Vec<String> = checked
            .requested_names
            .dns
            .iter()
            .filter(|d| !names.dns.iter().any(|n| n.eq_ignore_ascii_case(d)))
            .map(|d| format!("DNS:{d}"))
            .chain(
                checked
                    .requested_names
                    .ips
                    .iter()
                    .filter(|ip| !names.ips.contains(ip))
                    .map(|ip| format!("IP:{ip}")),
            )
            .collect();
        if !unapproved.is_empty() {
            return Err(Error::CsrRejected {
                what,
                reason: format!(
                    "it asks for names you did not approve ({}); the CA decides the names: pass each one with --dns/--ip if it is right",
                    unapproved.join(", ")
                ),
            });
        }
        if subject.is_none() && a.cn.is_none() {
            subject = checked.common_name.clone().map(Subject::cn);
        }
        csr = Some(checked);
    }
    if let Some(cn) = &a.cn {
        match &mut subject {
            Some(s) => s.common_name = cn.clone(),
            None => subject = Some(Subject::cn(cn.clone())),
        }
    }
    let subject = subject.ok_or_else(|| {
        Error::Policy(
            "no common name: pass --cn (the member name, or the etcd user for a client)".into(),
        )
    })?;
    names.validate()?;

    let key = match csr {
        Some(c) => LeafKey::Csr(Box::new(c)),
        None => LeafKey::Generate(alg.unwrap_or(Profile::EtcdServer.default_key())),
    };
    let paths = LeafPaths::new(&a.out, role);
    // Refuse existing outputs before the CA key is even unlocked.
    paths.ensure_absent(matches!(key, LeafKey::Generate(_)), a.force)?;

    let ca = CaDir::open(&a.ca)?;
    let secret = secret.resolve("Passphrase for the CA key", false)?;
    let signer = IssuingCa::open(&ca, &secret)?;
    let leaf = signer.sign_leaf(
        LeafRequest {
            role,
            subject,
            names,
            days: a.days,
            key,
        },
        OffsetDateTime::now_utc(),
    )?;
    output::create_dir(&a.out, 0o755)?;
    let mut ledger = ca.ledger()?;
    let rec = leaf.commit(&mut ledger, signer.generation, &paths, a.force)?;
    println!(
        "issued {role} certificate for {} (serial {}, {}, valid until {})",
        rec.subject,
        rec.serial,
        rec.key_alg,
        fmt_time(rec.not_after)
    );
    println!("  certificate chain: {}", paths.cert.display());
    if leaf.key_pem.is_some() {
        println!("  private key:       {} (0600)", paths.key.display());
    }
    Ok(())
}

/// The root certificate a CA folder chains to: `--root`, else the one pinned at install.
fn root_of(ca: &CaDir, root: Option<&Path>) -> Result<String> {
    let path = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ca.root_path());
    let pem = output::read_to_string(&path).map_err(|_| {
        Error::Policy(format!(
            "no root certificate at {}: pass --root ROOT.crt (an imported CA has no pinned root)",
            path.display()
        ))
    })?;
    Ok(pem)
}

pub fn etcd(
    ca_dir: &Path,
    cluster: &Path,
    out: &Path,
    root: Option<&Path>,
    secret: &SecretArgs,
) -> Result<()> {
    let cluster = pki_core::etcd::ClusterFile::load(cluster)?;
    let ca = CaDir::open(ca_dir)?;
    let root_pem = root_of(&ca, root)?;
    let root_facts = pki_core::certs::CertFacts::from_pem("root certificate", root_pem.as_bytes())?;
    let secret = secret.resolve("Passphrase for the CA key", false)?;
    let signer = IssuingCa::open(&ca, &secret)?;
    pki_core::sigcheck::verify_certificate(&signer.cert.der, &root_facts.spki_der).map_err(
        |_| {
            Error::Policy(format!(
                "the active intermediate ({}) is not signed by the root {}; pass the right --root",
                signer.cert.subject, root_facts.subject
            ))
        },
    )?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    let crl_pem = if out.join("crl.pem").exists() {
        String::new()
    } else {
        crl_pem(&signer, &mut ledger, now, 30)?
    };
    let report = pki_core::etcd::build_bundle(
        &cluster,
        out,
        pki_core::etcd::BundleInputs {
            ca: &signer,
            ledger: &mut ledger,
            root_pem: root_facts.pem().as_str(),
            crl_pem: &crl_pem,
            now,
        },
    )?;
    for i in &report.issued {
        println!("issued  {i}");
    }
    for k in &report.kept {
        println!("kept    {k} (already there; not replaced)");
    }
    println!(
        "bundle {}: {} issued, {} kept. Copy nodes/<member>/ to {} on each member and start etcd with its etcd.env;",
        out.display(),
        report.issued.len(),
        report.kept.len(),
        cluster.install_dir
    );
    println!(
        "then, once, as the root client: set -a; . clients/root/etcdctl.env; set +a; sh rbac.sh"
    );
    Ok(())
}

/// An intermediate-signed CRL of the ledger's revoked leaves, as PEM.
fn crl_pem<S: pki_core::signer::Signer>(
    signer: &IssuingCa<S>,
    ledger: &mut pki_core::ledger::Ledger,
    now: OffsetDateTime,
    days: i64,
) -> Result<String> {
    let revoked = ledger
        .revoked()?
        .into_iter()
        .filter_map(|(serial, _reason, at)| {
            pki_core::serial::Serial::from_hex(&serial).map(|s| rcgen::RevokedCertParams {
                serial_number: s.to_rcgen(),
                revocation_time: at,
                reason_code: None,
                invalidity_date: None,
            })
        })
        .collect();
    let number = ledger.next_crl_number()?;
    let now = now.replace_nanosecond(0).expect("ns");
    let der = signer.sign_crl(revoked, number, now, now + time::Duration::days(days))?;
    Ok(pki_core::certs::to_pem("X509 CRL", &der))
}

pub fn list(ca: &Path, expiring_within: Option<&str>, json: bool) -> Result<()> {
    let ca = CaDir::open(ca)?;
    let mut filter = ListFilter::default();
    if let Some(d) = expiring_within {
        filter.expiring_before = Some(OffsetDateTime::now_utc() + parse_duration(d)?);
        filter.active_only = true;
    }
    let rows = ca.ledger()?.list(&filter)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(());
    }
    println!(
        "{:<34} {:<7} {:<9} {:<22} {:<21} NAMES",
        "SERIAL", "PROFILE", "STATUS", "SUBJECT", "NOT AFTER"
    );
    for r in &rows {
        let names: Vec<String> = r.dns.iter().cloned().chain(r.ips.iter().cloned()).collect();
        println!(
            "{:<34} {:<7} {:<9} {:<22} {:<21} {}",
            r.serial,
            r.profile,
            r.status,
            r.subject,
            fmt_time(r.not_after),
            names.join(",")
        );
    }
    Ok(())
}

/// Returns whether every check passed.
pub fn verify(
    root: &Path,
    file: &Path,
    role: Option<LeafRole>,
    key: Option<&Path>,
    warn_days: i64,
    json: bool,
) -> Result<bool> {
    let root_pem = output::read(root)?;
    let chain_pem = output::read(file)?;
    let key_pem = key
        .map(output::read_to_string)
        .transpose()?
        .map(zeroize::Zeroizing::new);
    let findings = verify::verify_leaf(&VerifyRequest {
        root_pem: &root_pem,
        chain_pem: &chain_pem,
        role,
        key_pem: key_pem.as_deref().map(String::as_str),
        warn_days,
        now: OffsetDateTime::now_utc(),
    });
    let ok = verify::passed(&findings);
    if json {
        let doc = serde_json::json!({ "file": file, "passed": ok, "findings": findings });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        println!("{}:", file.display());
        for f in &findings {
            println!("  {f}");
        }
        println!("{}", if ok { "PASSED" } else { "FAILED" });
    }
    Ok(ok)
}

/// Returns whether the folder passed every check.
pub fn check_etcd(dir: &Path, warn_days: i64, json: bool) -> bool {
    let findings = pki_core::etcd_check::check_dir(
        dir,
        pki_core::etcd_check::CheckOptions {
            warn_days,
            now: OffsetDateTime::now_utc(),
        },
    );
    let ok = verify::passed(&findings);
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
