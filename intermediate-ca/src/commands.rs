//! What each `intermediate-ca` subcommand does, on top of pki-core.

use std::path::Path;

use pki_core::ca_dir::CaDir;
use pki_core::keyfile::{self, KeySecret};
use pki_core::validity::fmt_time;
use pki_core::{output, Result};

use crate::cli::SecretArgs;

fn secret(args: &SecretArgs, confirm: bool) -> Result<KeySecret> {
    args.resolve("Passphrase for the CA key", confirm)
}

pub fn new_identity(file: &Path, force: bool) -> Result<()> {
    let recipient = keyfile::new_identity_file(file, force)?;
    println!("identity written to {} (mode 0600)", file.display());
    println!("recipient: {recipient}");
    Ok(())
}

pub fn import(cert: &Path, key: &Path, dir: &Path, secret_args: &SecretArgs) -> Result<()> {
    let cert_pem = output::read(cert)?;
    let key_pem = zeroize::Zeroizing::new(output::read_to_string(key)?);
    let secret = secret(secret_args, true)?;
    let ca = CaDir::import(dir, &cert_pem, &key_pem, &secret)?;
    let facts = ca.cert(1)?;
    println!(
        "imported {} as generation 1 of {}",
        facts.subject,
        dir.display()
    );
    println!("  fingerprint (SHA-256): {}", facts.fingerprint);
    println!("  valid until:           {}", fmt_time(facts.not_after));
    println!(
        "  key at rest:           {} ({})",
        ca.key_path(1).display(),
        secret.description()
    );
    println!(
        "the original key file {} is still in clear: shred it once you have checked the import",
        key.display()
    );
    Ok(())
}

pub fn status(dir: &Path, json: bool) -> Result<()> {
    let ca = CaDir::open(dir)?;
    let mut rows = Vec::new();
    for g in &ca.state.generations {
        let facts = ca.cert(g.id).ok();
        rows.push(serde_json::json!({
            "generation": g.id,
            "active": ca.state.active == Some(g.id),
            "source": g.source,
            "created": g.created,
            "key_protection": g.key_protection,
            "subject": facts.as_ref().map(|f| f.subject.clone()),
            "fingerprint": facts.as_ref().map(|f| f.fingerprint.clone()),
            "serial": facts.as_ref().map(|f| f.serial.to_hex()),
            "not_before": facts.as_ref().map(|f| fmt_time(f.not_before)),
            "not_after": facts.as_ref().map(|f| fmt_time(f.not_after)),
        }));
    }
    let issued = ca.ledger()?.count()?;
    if json {
        let doc = serde_json::json!({ "dir": dir, "active": ca.state.active, "leaves_issued": issued, "generations": rows });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return Ok(());
    }
    println!("CA folder {}: {issued} leaves in the ledger", dir.display());
    for r in rows {
        println!(
            "generation {}{}: {}\n  fingerprint {}\n  valid {} .. {}\n  key {}",
            r["generation"],
            if r["active"] == true { " (active)" } else { "" },
            r["subject"].as_str().unwrap_or("<certificate unreadable>"),
            r["fingerprint"].as_str().unwrap_or("-"),
            r["not_before"].as_str().unwrap_or("-"),
            r["not_after"].as_str().unwrap_or("-"),
            r["key_protection"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}
