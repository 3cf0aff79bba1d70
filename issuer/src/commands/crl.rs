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
    println!("an `issuer serve` on this folder signs and serves the new CRL within a second (its agents install it at their next CRL fetch); without one, publish it: issuer crl --ca {} --etcd-bundle BUNDLE (etcd re-reads the CRL file on every connection)", ca.path.display());
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
        // A CRL published by hand lists every entry of the root CRL (no hold): recorded, so
        // that the service's later etcd CRLs keep listing them (revocation is monotonic).
        let root_pair = match (&root, &root_crl) {
            (Some(r), Some(c)) => Some((r, c.as_slice(), &[][..])),
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
        if let (Some(r), Some(der)) = (&root, &root_crl) {
            record_root_published(&ca, &ledger, r, der, c.number, now)?;
        }
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

/// Records that etcd CRL `number` listed every entry of the root CRL `der` (see
/// `pki_core::ca::RootHold`): no later etcd CRL, the service's included, leaves them out.
pub(super) fn record_root_published(
    ca: &pki_core::ca::CaDir,
    ledger: &pki_core::ca::Ledger,
    root: &pki_core::x509::CertFacts,
    der: &[u8],
    number: u64,
    now: OffsetDateTime,
) -> Result<()> {
    let crl = pki_core::ca::RootCrl::parse("root CRL", der, root)?;
    pki_core::ca::root_crl_hold(ca, ledger, &crl, time::Duration::ZERO, now)?.published(number)?;
    Ok(())
}

/// `issuer root-crl release`: every entry of the installed root CRL goes into the next etcd
/// CRL, held or not.
pub fn root_crl_release(dir: &Path) -> Result<()> {
    let ca = open_ca(dir)?;
    let _lock = ca.lock_exclusive()?;
    let root = pki_core::ca::pinned_root(&ca)?;
    let Some(crl) = pki_core::ca::installed_root_crl(&ca, &root)? else {
        println!(
            "no root CRL is installed in {}: nothing is held",
            ca.path.display()
        );
        return Ok(());
    };
    let released = pki_core::ca::release_root_crl_hold(&ca, &crl, OffsetDateTime::now_utc())?;
    if released.is_empty() {
        println!(
            "every entry of root CRL {} is in the etcd CRL already: nothing was held",
            crl.number_text()
        );
    } else {
        println!(
            "released {} entr{} of root CRL {} ({}): a running `issuer serve` lists them in its next etcd CRL; `issuer crl --etcd-bundle` lists them now",
            released.len(),
            if released.len() == 1 { "y" } else { "ies" },
            crl.number_text(),
            released.join(", ")
        );
    }
    Ok(())
}
