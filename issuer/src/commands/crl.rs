//! `issuer revoke` and `issuer crl`: recording revocations and publishing CRLs.

use super::*;

pub fn revoke(ca: &Path, serial: &str, reason: &str) -> Result<()> {
    pki_core::x509::Reason::parse(reason)?;
    let ca = open_ca(ca)?;
    let _lock = ca.lock_exclusive()?;
    let serial = pki_core::x509::Serial::from_hex(serial)
        .ok_or_else(|| Usage::SerialNotHex {
            serial: serial.to_string(),
        })?
        .to_hex();
    let mut ledger = ca.ledger()?;
    let rec = ledger.revoke(&serial, reason)?;
    // Whoever held this key could have renewed it through the service: those go too.
    for r in ledger.revoke_successors(&serial, reason)? {
        println!(
            "revoked {} leaf {} (serial {}, renewed from {serial} through issuer serve)",
            r.profile, r.subject, r.serial
        );
    }
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

/// `issuer crl`: sign and publish the CRLs the command line names.
pub fn crl(a: &crate::cli::CrlArgs) -> Result<()> {
    let secret = &a.secret;
    if a.out.is_none() && a.etcd_out.is_none() && a.etcd_bundle.is_none() {
        return Err(Usage::NothingToWrite.into());
    }
    if a.days == 0 || a.days > 366 {
        return Err(Usage::CrlDays { days: a.days }.into());
    }
    let ca = open_ca(&a.ca)?;
    // Held from drawing the CRL number to the last file written: a second `issuer crl` can
    // then never publish its (lower or higher) number in between.
    let _lock = ca.lock_exclusive()?;
    let (root, root_crl) = root_and_crl(&ca, a.root.as_deref(), a.root_crl.as_deref())?;
    if root_crl.is_some() && root.is_none() {
        return Err(Usage::RootCrlWithoutRoot.into());
    }
    let signer = secret.unlock_ca(&ca)?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    if let Some(out) = &a.out {
        let c = sign_direct_crl(&signer, &mut ledger, now, a.days)?;
        let (sel, number) = (c.selection, c.number);
        publish_crl(out, &c.der, CrlFormat::Pem)?;
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
        let mut targets: Vec<(PathBuf, CrlFormat)> = a
            .etcd_out
            .iter()
            .map(|p| (p.clone(), CrlFormat::for_etcd_path(p)))
            .collect();
        if let Some(b) = &a.etcd_bundle {
            targets.extend(pki_core::etcd::bundle_crl_paths(b));
        }
        // Every copy first, the report after: a closed stdout must not stop half the members
        // from getting the new CRL.
        for (t, format) in &targets {
            publish_crl(t, &c.der, *format)?;
        }
        // Only now may expired entries listed for the last time leave the next etcd CRL.
        c.selection.published(&mut ledger, c.number)?;
        for (t, format) in &targets {
            println!(
                "etcd CRL: {} ({}, {n} revoked serials{}; {})",
                t.display(),
                match format {
                    CrlFormat::Der => "DER",
                    CrlFormat::Pem => "PEM: etcd 3.6 cannot read it; point etcd at the DER file",
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
