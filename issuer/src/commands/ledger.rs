//! `issuer ledger migrate` and `issuer ledger accept-restore`.

use pki_core::ca::{copy_ledger, CaDir, Ledger, LedgerLocation};
use std::path::PathBuf;

use crate::cli::{LedgerAcceptArgs, LedgerMigrateArgs};
use crate::error::{Result, Usage};

pub fn ledger_migrate(a: &LedgerMigrateArgs) -> Result<()> {
    let mut ca = CaDir::open(&a.ca)?;
    let from_path = match a.from.as_str() {
        "sqlite" => ca.ledger_path(),
        other => PathBuf::from(other),
    };
    if !from_path.is_file() {
        return Err(Usage::MigrateSource { path: from_path }.into());
    }
    if !(a.to.starts_with("postgres://") || a.to.starts_with("postgresql://")) {
        return Err(Usage::MigrateTarget { to: a.to.clone() }.into());
    }
    let target = LedgerLocation::resolve(
        &a.ca.join("ca.toml"),
        ca.ledger_path(),
        Some(&a.to),
        a.password_file.as_deref(),
        a.tls_ca.as_deref(),
    )?;
    if !matches!(target, LedgerLocation::Postgres(_)) {
        return Err(Usage::MigrateTarget { to: a.to.clone() }.into());
    }
    let source = Ledger::open(&from_path)?;
    let mut dest = Ledger::connect(&target, None)?;
    let report = copy_ledger(&source, &mut dest)?;
    let points_here = ca.state.ledger.as_deref() == Some(a.to.as_str());
    if !points_here {
        ca.set_ledger(&a.to, a.password_file.as_deref(), a.tls_ca.as_deref())?;
    }
    let what = format!(
        "{} leaves ({} revoked), {} other rows, CRL number {}",
        report.leaves, report.revoked, report.other_rows, report.crl_number
    );
    if report.already_done {
        println!(
            "{} already holds exactly the rows of {} ({what}): nothing copied",
            target.describe(),
            from_path.display()
        );
    } else {
        println!(
            "copied {what} from {} to {}; every row read back equal",
            from_path.display(),
            target.describe()
        );
    }
    if points_here {
        println!("{}/ca.toml already names this database", a.ca.display());
    } else {
        println!(
            "{}/ca.toml now names this database; {} is left as it was (keep it as the \
             pre-migration copy; nothing writes to it any more)",
            a.ca.display(),
            from_path.display()
        );
    }
    Ok(())
}

pub fn ledger_accept_restore(a: &LedgerAcceptArgs) -> Result<()> {
    if !a.revocations_replayed {
        return Err(Usage::AcceptRestoreUnconfirmed.into());
    }
    let ca = CaDir::open(&a.ca)?;
    let mark = ca.ledger_mark();
    // Opened without the mark: the point is to look at the ledger the mark refuses.
    let mut ledger = Ledger::connect(&ca.ledger_location()?, None)?;
    // CRL numbers go on from the highest this host published, never below it: agents and
    // relying parties refuse a CRL numbered lower than the one they hold.
    let seen = mark.seen_crl_number()?;
    ledger.load(&pki_core::ca::LedgerDump {
        crl_number: seen,
        ..Default::default()
    })?;
    let crl = ledger.last_crl_number()?;
    let revoked = ledger.revocation_mark()?.count;
    mark.reset()?;
    println!(
        "accepted {} as it is now ({revoked} revoked leaves; CRL numbers go on after {crl}); \
         {} was reset",
        ledger.describe(),
        mark.path().display()
    );
    Ok(())
}
