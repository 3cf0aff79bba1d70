//! What each `intermediate-ca` subcommand does, on top of pki-core.

use std::path::Path;

use pki_core::algorithm::KeyAlgorithm;
use pki_core::bundle::{Bundle, BundleKind};
use pki_core::ca_dir::{CaDir, NewKey};
use pki_core::keyfile::{self, KeySecret};
use pki_core::profile::Subject;
use pki_core::validity::fmt_time;
use pki_core::Error;
use pki_core::{output, Result};
use time::OffsetDateTime;

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

pub struct RequestArgs<'a> {
    pub dir: &'a Path,
    pub to: Option<&'a str>,
    pub to_file: Option<&'a Path>,
    pub out: &'a Path,
    pub cn: &'a str,
    pub key: &'a str,
    pub force: bool,
    /// Generate the key in this token instead of a file.
    pub token: Option<pki_core::ca_dir::TokenLocation>,
}

fn identity_of(secret: &KeySecret) -> Result<&age::x25519::Identity> {
    match secret {
        KeySecret::Identity { identity, .. } => Ok(identity),
        KeySecret::Passphrase(_) => Err(Error::Policy(
            "enrolment needs an age identity (--identity or PKI_AGE_IDENTITY): the root encrypts its response to it".into(),
        )),
    }
}

pub fn request(a: &RequestArgs<'_>, secret_args: &SecretArgs) -> Result<()> {
    let alg: KeyAlgorithm = a.key.parse()?;
    if matches!(alg, KeyAlgorithm::Rsa(b) if b < 3072) {
        return Err(Error::Policy(
            "an intermediate key must be p384, p256, ed25519, rsa3072 or rsa4096".into(),
        ));
    }
    let to = match (a.to, a.to_file) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => output::read_to_string(f)?.trim().to_string(),
        (None, None) => {
            return Err(Error::Policy(
                "pass --to RECIPIENT or --to-file FILE".into(),
            ))
        }
    };
    // Validate the recipient before anything is generated.
    Bundle::new(BundleKind::IntermediateRequest, &Bundle::new_request_id()).seal(&to)?;
    output::ensure_absent(a.out, a.force)?;
    let secret = secret(secret_args, true)?;
    let reply_to = identity_of(&secret)?.to_public().to_string();
    let mut ca = CaDir::open_or_create(a.dir)?;
    let token = match &a.token {
        Some(loc) => {
            let pin = pki_core::unlock::token_pin(secret_args.pin_file.as_deref())?;
            Some((
                pki_core::pkcs11::Token::open(&loc.config(), &pin)?,
                loc.clone(),
            ))
        }
        None => None,
    };
    let new_key = match &token {
        Some((t, loc)) => NewKey::Token(t, loc.clone()),
        None => NewKey::File(&secret),
    };
    let staged = ca.stage_request(
        alg,
        &Subject::cn(a.cn),
        new_key,
        &reply_to,
        OffsetDateTime::now_utc(),
    )?;
    if let Some((_, loc)) = &token {
        println!(
            "key generated in token '{}' as '{}' (sensitive, not extractable)",
            loc.token, loc.key_label
        );
    }
    let sealed = staged.bundle.seal(&to)?;
    output::write_atomic(a.out, &sealed, output::Mode::Public, a.force)?;
    println!(
        "request bundle: {} (generation {}, request {})",
        a.out.display(),
        staged.generation,
        staged.bundle.request_id
    );
    println!(
        "CSR key fingerprint (SHA-256 of the public key): {}",
        staged.key_fingerprint
    );
    println!("read this fingerprint out to the root ceremony; it goes into the sign ceremony file as key-fingerprint");
    if let Some(active) = ca.state.active {
        println!("generation {active} stays active until the response is installed");
    }
    Ok(())
}

pub fn install(
    dir: &Path,
    root_fingerprint: &str,
    response: &Path,
    secret_args: &SecretArgs,
) -> Result<()> {
    let mut ca = CaDir::open(dir)?;
    let secret = secret(secret_args, false)?;
    let identity = identity_of(&secret)?;
    let bundle = Bundle::open(
        &response.display().to_string(),
        &output::read(response)?,
        identity,
        BundleKind::IntermediateResponse,
    )?;
    let id = ca.install(&bundle, root_fingerprint, OffsetDateTime::now_utc())?;
    let facts = ca.cert(id)?;
    println!("installed generation {id}: {}", facts.subject);
    println!("  fingerprint: {}", facts.fingerprint);
    println!("  valid until: {}", fmt_time(facts.not_after));
    println!("generation {id} is now active; issue with it, then `issuer reissue` the leaves of older generations");
    Ok(())
}

pub fn root_crl(dir: &Path, file: &Path) -> Result<()> {
    let ca = CaDir::open(dir)?;
    let done = pki_core::root_crl::install(&ca, file)?;
    let next = done
        .crl
        .next_update
        .map(fmt_time)
        .unwrap_or_else(|| "never".into());
    if done.replaced {
        println!(
            "installed root CRL {} (next update {next}) as {}",
            done.crl.number_text(),
            done.path.display()
        );
    } else {
        println!(
            "root CRL {} is already installed in {}; nothing changed",
            done.crl.number_text(),
            done.path.display()
        );
    }
    for g in &done.revoked_generations {
        if ca.state.active == Some(*g) {
            println!("the root revoked the ACTIVE intermediate (generation {g}): `issuer` refuses to issue from it; enrol a new intermediate, install it, then `issuer reissue --from {g}`");
        } else {
            println!("the root revoked generation {g} (not active)");
        }
    }
    println!(
        "publish it to etcd: issuer crl --ca {} --etcd-bundle BUNDLE",
        dir.display()
    );
    Ok(())
}
