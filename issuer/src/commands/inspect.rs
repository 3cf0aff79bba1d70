//! `issuer list` and `issuer verify`: reading the ledger and checking a certificate.

use super::*;

pub fn list(ca: &Path, expiring_within: Option<&str>, json: bool) -> Result<()> {
    let ca = open_ca(ca)?;
    let mut filter = ListFilter::default();
    if let Some(d) = expiring_within {
        filter.expiring_before = Some(after(d)?);
        filter.active_only = true;
    }
    let ledger = ca.ledger()?;
    let rows = ledger.list(&filter)?;
    let now = OffsetDateTime::now_utc();
    // An active leaf past its notAfter is shown as expired: it holds nothing and no one can
    // use it (the ledger keeps it active: nothing replaced or revoked it).
    let shown = |r: &pki_core::ca::LeafRecord| -> String {
        if r.status == "active" && r.not_after <= now {
            "expired".into()
        } else {
            r.status.clone()
        }
    };
    let held = root_crl_held(&ca, &ledger, now)?;
    // One buffered writer: stdout is line-buffered, and a million-row ledger would otherwise
    // cost a write per line.
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let res = (|| -> std::io::Result<()> {
        if json {
            let rows: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    let mut v = serde_json::to_value(r).expect("row serialises");
                    v["expired"] = serde_json::Value::Bool(r.not_after <= now);
                    v
                })
                .collect();
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
                shown(r),
                r.subject,
                fmt_time(r.not_after),
                names.join(",")
            )?;
        }
        for line in &held {
            writeln!(out, "{line}")?;
        }
        out.flush()
    })();
    match res {
        // A reader that stopped early (`issuer list | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.map_err(|e| Error::Io {
            path: PathBuf::from("<stdout>"),
            source: e,
        })?),
    }
}

/// The root CRL entries held out of the etcd CRL now (with the default hold; `issuer serve
/// --root-crl-hold` decides for the service), one line each naming the leaves that hold them.
fn root_crl_held(
    ca: &CaDir,
    ledger: &pki_core::ca::Ledger,
    now: OffsetDateTime,
) -> Result<Vec<String>> {
    let Ok(root) = pki_core::ca::pinned_root(ca) else {
        return Ok(Vec::new());
    };
    let Some(crl) = pki_core::ca::installed_root_crl(ca, &root)? else {
        return Ok(Vec::new());
    };
    let hold =
        pki_core::ca::root_crl_hold(ca, ledger, &crl, pki_core::ca::DEFAULT_ROOT_CRL_HOLD, now)?;
    Ok(hold.describe())
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
    let findings = x509::verify_leaf(&VerifyRequest {
        root_pem: &root_pem,
        chain_pem: &chain_pem,
        role,
        key_pem: key_pem.as_deref().map(String::as_str),
        warn_days,
        now: OffsetDateTime::now_utc(),
    });
    let ok = x509::passed(&findings);
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
