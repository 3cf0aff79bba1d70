//! `issuer issue` and `issuer batch`: leaves one at a time or many at once.

use super::*;

/// `issuer issue`: one leaf, as the command line asks for it.
pub fn issue(a: &crate::cli::IssueArgs) -> Result<()> {
    let secret = &a.secret;
    let role = LeafRole::from(a.role);
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
        let req = parse_cfssl(&what, &output::read_to_string(path)?)?;
        cn = approve_cn(&what, Some(&req.subject.common_name), a.cn.as_deref())?;
        subject = Some(req.subject);
        names.dns.extend(req.names.dns);
        names.ips.extend(req.names.ips);
        alg = alg.or(req.key);
    }
    if let Some(path) = &a.csr {
        let what = path.display().to_string();
        let checked = CheckedCsr::from_pem(&what, &output::read(path)?)?;
        let approved = approve_csr(
            &what,
            &checked,
            &Approval {
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
    let subject = subject.ok_or(Usage::NoCommonName)?;
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
    Gate::for_ca(&ca)?.check(role, &subject, &names)?;
    let mut signer = secret.unlock_ca(&ca)?;
    if let Some(text) = &a.lifetime {
        let life = parse_duration(text)?;
        if life < time::Duration::seconds(10) || life > time::Duration::days(825) {
            return Err(Usage::Lifetime {
                lifetime: text.clone(),
            }
            .into());
        }
        signer = signer.with_leaf_lifetime(life);
    }
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
    let batch = pki_core::ca::BatchFile::parse(
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
    let report = pki_core::ca::run_batch(
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
