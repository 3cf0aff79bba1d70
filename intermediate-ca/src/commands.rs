//! What each `intermediate-ca` subcommand does, on top of pki-core.

use pki_core::bundle::{Bundle, BundleKind};
use pki_core::ca::{CaDir, NewKey, TokenLocation};
use pki_core::error::ResponseProblem;
use pki_core::keys::KeyAlgorithm;
use pki_core::keys::KeyError;
use pki_core::keys::{new_identity_file, KeySecret};
use pki_core::output;
use pki_core::x509::fmt_time;
use pki_core::x509::Subject;
use pki_core::Error;

use crate::error::{Result, Usage};
use time::OffsetDateTime;

use crate::cli::{
    AbandonArgs, ImportArgs, InstallArgs, NewIdentityArgs, RequestArgs, RootCrlArgs, SecretArgs,
    StatusArgs,
};

fn secret(args: &SecretArgs, confirm: bool) -> Result<KeySecret> {
    Ok(args.resolve("Passphrase for the CA key", confirm)?)
}

pub fn new_identity(a: &NewIdentityArgs) -> Result<()> {
    let (file, force) = (&a.file, a.force);
    let recipient = new_identity_file(file, force)?;
    println!("identity written to {} (mode 0600)", file.display());
    println!("recipient: {recipient}");
    Ok(())
}

pub fn import(a: &ImportArgs) -> Result<()> {
    let (cert, key, dir, secret_args) = (&a.cert, &a.key, &a.dir, &a.secret);
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

/// What a generation is: in service, waiting for the root's response, or past.
fn generation_state(ca: &CaDir, g: &pki_core::ca::GenerationState) -> &'static str {
    let staged = ca.staged().map(|s| s.id) == Some(g.id);
    match (
        ca.state.active == Some(g.id),
        staged,
        ca.cert_path(g.id).exists(),
    ) {
        (true, _, _) => "active",
        (_, true, _) => "staged",
        (_, _, true) => "retired",
        _ => "certificate missing",
    }
}

pub fn status(a: &StatusArgs) -> Result<()> {
    let (dir, json) = (&a.dir, a.json);
    let ca = CaDir::open(dir)?;
    let mut rows = Vec::new();
    for g in &ca.state.generations {
        let state = generation_state(&ca, g);
        let facts = ca.cert(g.id).ok();
        rows.push(serde_json::json!({
            "generation": g.id,
            "active": ca.state.active == Some(g.id),
            "state": state,
            "request_id": g.request_id,
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
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
        if r["state"] == "staged" {
            println!(
                "generation {} (staged): request {}, created {}\n  awaiting the root's response: `intermediate-ca install`, or give it up with `intermediate-ca abandon --dir {} --request {}`\n  key {}",
                r["generation"],
                s("request_id"),
                s("created"),
                dir.display(),
                s("request_id"),
                s("key_protection"),
            );
            continue;
        }
        println!(
            "generation {}{}: {}\n  fingerprint {}\n  valid {} .. {}\n  key {}",
            r["generation"],
            if r["active"] == true { " (active)" } else { "" },
            r["subject"].as_str().unwrap_or("<certificate unreadable>"),
            s("fingerprint"),
            s("not_before"),
            s("not_after"),
            s("key_protection"),
        );
    }
    Ok(())
}

/// Gives up the staged generation: its key is a private key, so it goes only on this explicit
/// command naming the request, and every removed path is printed.
pub fn abandon(a: &AbandonArgs) -> Result<()> {
    let (dir, request_id) = (&a.dir, a.request.as_str());
    // The folder's exclusive lock, then its state read afresh: no issuer command acts on a
    // generation list this command is changing.
    let _lock = CaDir::open(dir)?.lock_exclusive()?;
    let mut ca = CaDir::open(dir)?;
    let (g, removed) = ca.abandon_staged(request_id)?;
    println!(
        "abandoned generation {} (request {request_id}, created {})",
        g.id, g.created
    );
    for p in &removed {
        println!("  removed {}", p.display());
    }
    if let Some(loc) = &g.pkcs11 {
        println!(
            "the key stays in token '{}' under the label '{}': delete it there (e.g. pkcs11-tool --delete-object --type privkey --label '{}') before reusing the label",
            loc.token, loc.key_label, loc.key_label
        );
    }
    if let Some(active) = ca.state.active {
        println!("generation {active} stays active");
    }
    println!("a response to request {request_id}, if the root signs it anyway, can no longer be installed");
    Ok(())
}

/// The token to generate the key in, when `--pkcs11-module` is given (clap requires `--token`
/// and `--key-label` with it); `None` for a key in an age-encrypted file.
fn token_location(a: &RequestArgs) -> Option<TokenLocation> {
    a.pkcs11_module.as_ref().map(|m| TokenLocation {
        module: m.clone(),
        token: a.token.clone().unwrap_or_default(),
        key_label: a.key_label.clone().unwrap_or_default(),
        key_id: None,
    })
}

/// The identity the root's response is encrypted to. With an age identity it is that identity;
/// with a passphrase, a fresh one made for this request, which `request` keeps sealed with the
/// passphrase beside the staged key (a passphrase cannot be an age recipient).
enum ReplyIdentity<'a> {
    Given(&'a age::x25519::Identity),
    PerRequest(age::x25519::Identity),
}

impl ReplyIdentity<'_> {
    fn identity(&self) -> &age::x25519::Identity {
        match self {
            ReplyIdentity::Given(i) => i,
            ReplyIdentity::PerRequest(i) => i,
        }
    }
}

fn reply_identity_for_request(secret: &KeySecret) -> ReplyIdentity<'_> {
    match secret {
        KeySecret::Identity { identity, .. } => ReplyIdentity::Given(identity),
        KeySecret::Passphrase(_) => ReplyIdentity::PerRequest(age::x25519::Identity::generate()),
    }
}

/// The identity that opens the response to the staged request of `ca`.
fn reply_identity_for_install<'a>(ca: &CaDir, secret: &'a KeySecret) -> Result<ReplyIdentity<'a>> {
    use std::str::FromStr;
    match secret {
        KeySecret::Identity { identity, .. } => Ok(ReplyIdentity::Given(identity)),
        KeySecret::Passphrase(_) => {
            // The same refusal as `CaDir::install` makes for this case.
            let staged = ca
                .staged()
                .ok_or(Error::Response(ResponseProblem::NothingWaiting))?;
            let path = ca.reply_identity_path(staged.id);
            if !path.exists() {
                return Err(Error::ReplyNeedsIdentity {
                    generation: staged.id,
                }
                .into());
            }
            let text = secret.open(&path)?;
            let line = std::str::from_utf8(&text)
                .ok()
                .map(str::trim)
                .and_then(|l| age::x25519::Identity::from_str(l).ok())
                .ok_or_else(|| KeyError::Identity {
                    path: path.clone(),
                    reason: "not an age identity; the file is damaged".into(),
                })?;
            Ok(ReplyIdentity::PerRequest(line))
        }
    }
}

pub fn request(a: &RequestArgs) -> Result<()> {
    let secret_args = &a.secret;
    let alg: KeyAlgorithm = a.key.parse()?;
    if matches!(alg, KeyAlgorithm::Rsa(b) if b < 3072) {
        return Err(Usage::WeakIntermediateKey { algorithm: alg }.into());
    }
    let to = match (a.to.as_deref(), a.to_file.as_deref()) {
        (Some(t), _) => t.trim().to_string(),
        (None, Some(f)) => output::read_to_string(f)?.trim().to_string(),
        (None, None) => return Err(Usage::NoRecipient.into()),
    };
    // Validate the recipient before anything is generated.
    Bundle::new(BundleKind::IntermediateRequest, &Bundle::new_request_id()).seal(&to)?;
    output::ensure_absent(&a.out, a.force)?;
    let secret = secret(secret_args, true)?;
    let reply = reply_identity_for_request(&secret);
    let reply_to = reply.identity().to_public().to_string();
    let mut ca = CaDir::open_or_create(&a.dir)?;
    // Staging changes the generation list of an existing folder: exclusive lock, state read
    // afresh under it. A folder being created has no issuer to race with.
    let _lock = if ca.state.generations.is_empty() {
        None
    } else {
        let lock = ca.lock_exclusive()?;
        ca = CaDir::open(&a.dir)?;
        Some(lock)
    };
    let token = match token_location(a) {
        Some(loc) => {
            let pin = pki_core::keys::token_pin(secret_args.pin_file.as_deref())?;
            Some((
                pki_core::keys::Token::open(&loc.config(), &pin).map_err(Error::from)?,
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
        &Subject::cn(a.cn.as_str()),
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
    if let ReplyIdentity::PerRequest(identity) = &reply {
        use age::secrecy::ExposeSecret;
        let text = zeroize::Zeroizing::new(format!("{}\n", identity.to_string().expose_secret()));
        output::write_atomic(
            &ca.reply_identity_path(staged.generation),
            &secret.seal(text.as_bytes())?,
            output::Mode::Secret,
            false,
        )?;
    }
    let sealed = staged.bundle.seal(&to)?;
    output::write_atomic(&a.out, &sealed, output::Mode::Public, a.force)?;
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

pub fn install(a: &InstallArgs) -> Result<()> {
    let (dir, root_fingerprint, response, secret_args) =
        (&a.dir, &a.root_fingerprint, &a.response, &a.secret);
    // The folder's exclusive lock, then its state read afresh: no issuer command acts on a
    // generation list this command is changing.
    let _lock = CaDir::open(dir)?.lock_exclusive()?;
    let mut ca = CaDir::open(dir)?;
    let secret = secret(secret_args, false)?;
    let reply = reply_identity_for_install(&ca, &secret)?;
    let bundle = Bundle::open(
        &response.display().to_string(),
        &output::read(response)?,
        reply.identity(),
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

pub fn root_crl(a: &RootCrlArgs) -> Result<()> {
    let (dir, file) = (&a.dir, &a.file);
    // The folder's exclusive lock, then its state read afresh: no issuer command acts on a
    // generation list this command is changing.
    let _lock = CaDir::open(dir)?.lock_exclusive()?;
    let ca = CaDir::open(dir)?;
    let done = pki_core::ca::install_root_crl(&ca, file)?;
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
        "a running `issuer serve` on this folder puts it into its etcd CRL at its next reload (kill -HUP), holding new entries at most its --root-crl-hold while agents move their hosts; without the service, publish it: issuer crl --ca {} --etcd-bundle BUNDLE",
        dir.display()
    );
    Ok(())
}
