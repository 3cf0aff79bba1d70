//! What each `issuer` subcommand does, on top of pki-core.

use std::path::{Path, PathBuf};

use pki_core::ca::folder::CaDir;
use pki_core::ca::issuing::{IssuingCa, LeafKey, LeafPaths, LeafRequest};
use pki_core::ca::ledger::ListFilter;
use pki_core::ca::lifecycle;
use pki_core::ca::policy;
use pki_core::etcd::cfssl;
use pki_core::x509::certs::CertFacts;
use pki_core::x509::conformance::{self, VerifyRequest};
use pki_core::x509::csr::CheckedCsr;
use pki_core::x509::profile::{LeafRole, Profile, Subject, SubjectNames};
use pki_core::x509::validity::{fmt_time, parse_duration};
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

    // The CN is the etcd user a certificate logs in as: a request file may propose one, but
    // only the operator's --cn is certified (issue 12, item 3).
    let mut cn = a.cn.clone();
    if let Some(path) = &a.cfssl_json {
        let what = path.display().to_string();
        let req = cfssl::parse(&what, &output::read_to_string(path)?)?;
        cn = policy::approve_cn(&what, Some(&req.subject.common_name), a.cn.as_deref())?;
        subject = Some(req.subject);
        names.dns.extend(req.names.dns);
        names.ips.extend(req.names.ips);
        alg = alg.or(req.key);
    }
    if let Some(path) = &a.csr {
        let what = path.display().to_string();
        let checked = CheckedCsr::from_pem(&what, &output::read(path)?)?;
        let approved = policy::approve_csr(
            &what,
            &checked,
            &policy::Approval {
                cn: a.cn.as_deref(),
                names: &names,
                ignore_requested_ca: a.ignore_requested_ca,
            },
        )?;
        cn = approved.or(cn);
        csr = Some(checked);
    }
    if let Some(cn) = cn {
        match &mut subject {
            Some(s) => s.common_name = cn,
            None => subject = Some(Subject::cn(cn)),
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

    let ca = open_ca(&a.ca)?;
    let _lock = ca.lock_shared()?;
    // The gate again inside sign_leaf; asking it here first spares a PIN for a refusal.
    policy::Gate::for_ca(&ca)?.check(role, &subject, &names)?;
    let signer = secret.unlock_ca(&ca)?;
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

pub fn batch(
    ca_dir: &Path,
    out: &Path,
    file: &Path,
    threads: Option<usize>,
    secret: &SecretArgs,
) -> Result<()> {
    use std::io::{IsTerminal, Write};
    let batch = pki_core::ca::batch::BatchFile::parse(
        &file.display().to_string(),
        &output::read_to_string(file)?,
    )?;
    let ca = open_ca(ca_dir)?;
    let _lock = ca.lock_shared()?;
    let signer = secret.unlock_ca(&ca)?;
    let mut ledger = ca.ledger()?;
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let report = pki_core::ca::batch::run(
        &signer,
        &mut ledger,
        &batch,
        out,
        threads,
        OffsetDateTime::now_utc(),
        |done, total| {
            if tty {
                let width = 40;
                let filled = (done * width).checked_div(total).unwrap_or(width);
                eprint!(
                    "\r[{}{}] {done}/{total}",
                    "#".repeat(filled),
                    " ".repeat(width - filled)
                );
                let _ = std::io::stderr().flush();
            }
        },
    )?;
    if tty {
        eprintln!();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "batch {}: {} issued, {} already done, {} stale ledger rows voided, in {:.2} s ({:.0} leaves/s)",
        out.display(),
        report.issued,
        report.skipped,
        report.voided,
        secs,
        report.issued as f64 / secs.max(1e-9)
    );
    if report.repaired > 0 {
        println!(
            "  {} file(s) at a final name were not a complete leaf (cut short before the final sync) and were issued again",
            report.repaired
        );
    }
    if report.swept > 0 {
        println!(
            "  {} temp file(s) left by a killed run removed",
            report.swept
        );
    }
    if !report.missing_elsewhere.is_empty() {
        eprintln!(
            "issuer: warning: {} leaf/leaves recorded active under {} have no file there (moved or deployed?); they are not in this batch file and were left active:",
            report.missing_elsewhere.len(),
            out.display()
        );
        for m in &report.missing_elsewhere {
            eprintln!("  {m}");
        }
    }
    Ok(())
}

/// Opens a CA folder and warns (on stderr) when its active intermediate or the root CRL it
/// holds is close to expiry: every issuer command says so, not only `list`.
fn open_ca(path: &Path) -> Result<CaDir> {
    let ca = CaDir::open(path)?;
    for w in pki_core::ca::lifecycle::expiry_warnings(&ca, OffsetDateTime::now_utc()) {
        eprintln!("issuer: warning: {w}");
    }
    Ok(ca)
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
    let ca = open_ca(ca_dir)?;
    let _lock = ca.lock_exclusive()?;
    // Before the PIN and before the CRL number is drawn: a refused bundle changes nothing.
    pki_core::etcd::gate_every_leaf(&cluster, &policy::Gate::for_ca(&ca)?)?;
    let root_pem = root_of(&ca, root)?;
    let root_facts = CertFacts::from_pem("root certificate", root_pem.as_bytes())?;
    let signer = secret.unlock_ca(&ca)?;
    pki_core::keys::sigcheck::verify_certificate(&signer.cert.der, &root_facts.spki_der).map_err(
        |_| {
            Error::Policy(format!(
                "the active intermediate ({}) is not signed by the root {}; pass the right --root",
                signer.cert.subject, root_facts.subject
            ))
        },
    )?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    // A bundle made before crl.der (it has only crl.pem) gets a fresh DER CRL here; its
    // crl.pem stays for members whose etcd.env still names it (check-etcd reports them).
    let etcd_crl = if out.join(pki_core::etcd::ETCD_CRL_FILE).exists() {
        None
    } else {
        let (_, root_crl) = root_and_crl(&ca, root, None)?;
        let pair = root_crl.as_deref().map(|c| (&root_facts, c));
        Some(etcd_crl(&ca, &signer, &mut ledger, pair, now, 30)?)
    };
    let crl_der = etcd_crl.as_ref().map(|c| c.der.clone()).unwrap_or_default();
    let report = pki_core::etcd::build_bundle(
        &cluster,
        out,
        pki_core::etcd::BundleInputs {
            ca: &signer,
            ledger: &mut ledger,
            root_pem: root_facts.pem().as_str(),
            crl_der: &crl_der,
            now,
        },
    )?;
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
    Ok(())
}

/// A signed etcd CRL, not yet published.
struct EtcdCrl {
    der: Vec<u8>,
    number: u64,
    selection: lifecycle::Selection,
}

/// The etcd CRL (indirect, see pki-core's crl module).
fn etcd_crl<S: pki_core::keys::signer::Signer>(
    ca: &CaDir,
    signer: &IssuingCa<S>,
    ledger: &mut pki_core::ca::ledger::Ledger,
    root: Option<(&CertFacts, &[u8])>,
    now: OffsetDateTime,
    days: u32,
) -> Result<EtcdCrl> {
    let now = now.replace_nanosecond(0).expect("ns");
    let selection = lifecycle::etcd_entries(ca, ledger, signer.generation, root, now)?;
    let number = ledger.next_crl_number()?;
    let der = signer.sign_crl(
        &selection.entries,
        number,
        now,
        now + time::Duration::days(days as i64),
        true,
    )?;
    Ok(EtcdCrl {
        der,
        number,
        selection,
    })
}

/// "N entries, B bytes": what a written CRL costs every etcd connection (docs/crl.md).
fn crl_size(entries: usize, bytes: usize) -> String {
    format!("{entries} entries, {bytes} bytes")
}

/// The root certificate and, when there is one, the root CRL (verified later against it).
fn root_and_crl(
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
            pki_core::x509::certs::pem_blocks(&crl_path.display().to_string(), &bytes, "X509 CRL")?;
        Some(blocks.into_iter().next().expect("one block"))
    } else {
        None
    };
    Ok((root_facts, crl))
}

pub fn revoke(ca: &Path, serial: &str, reason: &str) -> Result<()> {
    pki_core::x509::crl::Reason::parse(reason)?;
    let ca = open_ca(ca)?;
    let _lock = ca.lock_exclusive()?;
    let serial = pki_core::x509::serial::Serial::from_hex(serial)
        .ok_or_else(|| Error::input("serial", format!("'{serial}' is not hex")))?
        .to_hex();
    let rec = ca.ledger()?.revoke(&serial, reason)?;
    println!(
        "revoked {} leaf {} (serial {serial}, reason {reason})",
        rec.profile, rec.subject
    );
    println!("publish it: issuer crl --ca {} --etcd-bundle BUNDLE (etcd re-reads the CRL file on every connection)", ca.path.display());
    if rec.profile == "peer" {
        println!("a revoked peer certificate does not evict its member (etcd facts C7): run `etcdctl member remove` for {}", rec.subject);
    }
    Ok(())
}

pub struct CrlArgs {
    pub ca: PathBuf,
    pub out: Option<PathBuf>,
    pub etcd_out: Option<PathBuf>,
    pub etcd_bundle: Option<PathBuf>,
    pub root_crl: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub days: u32,
}

pub fn crl(a: &CrlArgs, secret: &SecretArgs) -> Result<()> {
    if a.out.is_none() && a.etcd_out.is_none() && a.etcd_bundle.is_none() {
        return Err(Error::Policy(
            "nothing to write: pass --out, --etcd-out or --etcd-bundle".into(),
        ));
    }
    if a.days == 0 || a.days > 366 {
        return Err(Error::Policy("--days must be between 1 and 366".into()));
    }
    let ca = open_ca(&a.ca)?;
    // Held from drawing the CRL number to the last file written: a second `issuer crl` can
    // then never publish its (lower or higher) number in between.
    let _lock = ca.lock_exclusive()?;
    let (root, root_crl) = root_and_crl(&ca, a.root.as_deref(), a.root_crl.as_deref())?;
    if root_crl.is_some() && root.is_none() {
        return Err(Error::Policy(
            "a root CRL needs the root certificate to check it: pass --root".into(),
        ));
    }
    let signer = secret.unlock_ca(&ca)?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    if let Some(out) = &a.out {
        let t = now.replace_nanosecond(0).expect("ns");
        let sel = lifecycle::direct_entries(&ledger, signer.generation, t)?;
        let number = ledger.next_crl_number()?;
        let der = signer.sign_crl(
            &sel.entries,
            number,
            t,
            t + time::Duration::days(a.days as i64),
            false,
        )?;
        lifecycle::publish_crl(out, &der, lifecycle::CrlFormat::Pem)?;
        sel.published(&mut ledger, number)?;
        println!(
            "CRL {number} of the intermediate: {} ({} revoked; {})",
            out.display(),
            sel.entries.len(),
            crl_size(
                sel.entries.len(),
                std::fs::metadata(out).map_or(0, |m| m.len() as usize)
            )
        );
    }
    if a.etcd_out.is_some() || a.etcd_bundle.is_some() {
        let root_pair = match (&root, &root_crl) {
            (Some(r), Some(c)) => Some((r, c.as_slice())),
            _ => None,
        };
        let c = etcd_crl(&ca, &signer, &mut ledger, root_pair, now, a.days)?;
        let n = c.selection.entries.len();
        let mut targets: Vec<(PathBuf, lifecycle::CrlFormat)> = a
            .etcd_out
            .iter()
            .map(|p| (p.clone(), lifecycle::CrlFormat::for_etcd_path(p)))
            .collect();
        if let Some(b) = &a.etcd_bundle {
            targets.extend(pki_core::etcd::upkeep::bundle_crl_paths(b));
        }
        // Every copy first, the report after: a closed stdout must not stop half the members
        // from getting the new CRL.
        for (t, format) in &targets {
            lifecycle::publish_crl(t, &c.der, *format)?;
        }
        // Only now may expired entries listed for the last time leave the next etcd CRL.
        c.selection.published(&mut ledger, c.number)?;
        for (t, format) in &targets {
            println!(
                "etcd CRL: {} ({}, {n} revoked serials{}; {})",
                t.display(),
                match format {
                    lifecycle::CrlFormat::Der => "DER",
                    lifecycle::CrlFormat::Pem =>
                        "PEM: etcd 3.6 cannot read it; point etcd at the DER file",
                },
                if root_pair.is_some() {
                    ", root CRL included"
                } else {
                    ", no root CRL"
                },
                crl_size(n, std::fs::metadata(t).map_or(0, |m| m.len() as usize))
            );
        }
    }
    Ok(())
}

fn replace_all(
    ca: &CaDir,
    recs: Vec<pki_core::ca::ledger::LeafRecord>,
    dry_run: bool,
    secret: &SecretArgs,
    what: &str,
) -> Result<()> {
    if recs.is_empty() {
        println!("nothing to {what}");
        return Ok(());
    }
    for r in &recs {
        println!(
            "{what} {} {} (serial {}, expires {}) at {}",
            r.profile,
            r.subject,
            r.serial,
            fmt_time(r.not_after),
            r.cert_path
        );
    }
    if dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    // Every successor passes the gate before the first is replaced: a rotation to a narrower
    // intermediate must not stop half-way.
    let gate = policy::Gate::for_ca(ca)?;
    for r in &recs {
        let (role, subject, names) = policy::ledger_request(r)?;
        gate.check(role, &subject, &names)?;
    }
    let signer = secret.unlock_ca(ca)?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    let mut done = 0;
    let mut replaced = Vec::new();
    for r in &recs {
        let new = lifecycle::replace_leaf(&signer, &mut ledger, r, now)?;
        println!(
            "  {} -> {} (generation {}, valid until {})",
            r.serial,
            new.serial,
            new.generation,
            fmt_time(new.not_after)
        );
        replaced.push(PathBuf::from(&new.cert_path));
        done += 1;
    }
    for f in pki_core::etcd::upkeep::refresh_bundle_intermediates(&replaced, &signer.cert)? {
        println!(
            "  {} now holds the issuing intermediate ({})",
            f.display(),
            signer.cert.subject
        );
    }
    println!(
        "{done} leaf/leaves replaced in place; etcd picks up new leaf files on the next handshake"
    );
    Ok(())
}

pub fn renew(ca_dir: &Path, within: &str, dry_run: bool, secret: &SecretArgs) -> Result<()> {
    let ca = open_ca(ca_dir)?;
    // Taken before the leaves are listed: a second renewal waits, then finds them renewed.
    let _lock = (!dry_run).then(|| ca.lock_exclusive()).transpose()?;
    let filter = ListFilter {
        expiring_before: Some(after(within)?),
        active_only: true,
        generation: None,
    };
    let recs = ca.ledger()?.list(&filter)?;
    replace_all(&ca, recs, dry_run, secret, "renew")
}

/// Now plus a duration the user typed, refused (not a panic) when it leaves the calendar.
fn after(duration: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::now_utc()
        .checked_add(parse_duration(duration)?)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| {
            Error::BadValidity(format!(
                "'{duration}' reaches past the year 9999; give a shorter duration such as 30d"
            ))
        })
}

pub fn reissue(ca_dir: &Path, from: u32, dry_run: bool, secret: &SecretArgs) -> Result<()> {
    let ca = open_ca(ca_dir)?;
    let _lock = (!dry_run).then(|| ca.lock_exclusive()).transpose()?;
    let active = ca.active()?;
    if from == active {
        return Err(Error::Policy(format!(
            "generation {from} is the active one; install the new intermediate first (intermediate-ca install), then re-issue from the old generation"
        )));
    }
    if !ca.state.generations.iter().any(|g| g.id == from) {
        return Err(Error::Policy(format!(
            "this CA folder has no generation {from}"
        )));
    }
    let filter = ListFilter {
        expiring_before: None,
        active_only: true,
        generation: Some(from),
    };
    let recs = ca.ledger()?.list(&filter)?;
    replace_all(&ca, recs, dry_run, secret, "reissue")
}

pub fn list(ca: &Path, expiring_within: Option<&str>, json: bool) -> Result<()> {
    let ca = open_ca(ca)?;
    let mut filter = ListFilter::default();
    if let Some(d) = expiring_within {
        filter.expiring_before = Some(after(d)?);
        filter.active_only = true;
    }
    let rows = ca.ledger()?.list(&filter)?;
    // One buffered writer: stdout is line-buffered, and a million-row ledger would otherwise
    // cost a write per line.
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let res = (|| -> std::io::Result<()> {
        if json {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(
            out,
            "{:<34} {:<7} {:<10} {:<22} {:<21} NAMES",
            "SERIAL", "PROFILE", "STATUS", "SUBJECT", "NOT AFTER"
        )?;
        for r in &rows {
            let names: Vec<&str> = r
                .dns
                .iter()
                .chain(r.ips.iter())
                .map(String::as_str)
                .collect();
            writeln!(
                out,
                "{:<34} {:<7} {:<10} {:<22} {:<21} {}",
                r.serial,
                r.profile,
                r.status,
                r.subject,
                fmt_time(r.not_after),
                names.join(",")
            )?;
        }
        out.flush()
    })();
    match res {
        // A reader that stopped early (`issuer list | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| Error::Io {
            path: PathBuf::from("<stdout>"),
            source: e,
        }),
    }
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
    let findings = conformance::verify_leaf(&VerifyRequest {
        root_pem: &root_pem,
        chain_pem: &chain_pem,
        role,
        key_pem: key_pem.as_deref().map(String::as_str),
        warn_days,
        now: OffsetDateTime::now_utc(),
    });
    let ok = conformance::passed(&findings);
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
pub fn check_etcd(
    dir: &Path,
    warn_days: i64,
    etcd_version: Option<pki_core::etcd::EtcdVersion>,
    probe: Option<&crate::probe::ProbeArgs<'_>>,
    json: bool,
) -> bool {
    let mut findings = pki_core::etcd::check::check_dir(
        dir,
        pki_core::etcd::check::CheckOptions {
            warn_days,
            now: OffsetDateTime::now_utc(),
            etcd_version,
        },
    );
    if let Some(p) = probe {
        findings.extend(crate::probe::probe(p));
    }
    let ok = conformance::passed(&findings);
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
