//! `root-ca init`: generate the root key in the token, self-sign the root certificate and
//! create the root's state folder.

use std::path::Path;

use pki_core::output::{self, Mode};
use pki_core::x509::CertFacts;
use pki_core::x509::Serial;
use pki_core::x509::{fmt_time, Validity};
use pki_core::x509::{Profile, Subject, SubjectNames};
use serde_json::json;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{ceremony_record, check_folder, describe_params, open_token, say, sign_checked, Run};
use crate::airgap;
use crate::ceremony::{self, InitCeremony};
use crate::error::{Result, RootError};
use crate::state::{RootDir, RootIndex};
use pki_core::error::TokenError;
use pki_core::keys::{Capabilities, KeyAttributes, KeyPolicy, Token, TokenKey};

pub fn init(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<InitCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let alg = c.algorithm().map_err(|i| i.at(file))?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.output.dir));
    check_new_root_dir(&dir)?;
    let mut subject = Subject::cn(c.root.common_name.clone());
    subject.organization.extend(c.root.organization.clone());
    subject.country.extend(c.root.country.clone());
    let validity = Validity::within_issuer(
        c.root.days,
        Profile::Root.max_days(),
        None,
        OffsetDateTime::now_utc(),
    )?;
    let serial = Serial::random();
    let mut params = Profile::Root.params(
        &subject,
        &SubjectNames::default(),
        &validity,
        &serial,
        alg,
        None,
    )?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(c.root.path_length));
    describe_params(
        run,
        &format!("root-ca init: new {alg} key '{}' in token '{}', self-signed root:", c.token.key_label, c.token.token_label),
        &subject,
        &validity,
        &serial,
        &[
            format!("extensions: basicConstraints critical CA:TRUE pathlen:{}; keyUsage critical keyCertSign, cRLSign; subjectKeyIdentifier", c.root.path_length),
            format!("state folder: {}", dir.path.display()),
        ],
    );
    // The token is opened for the dry run too: its capability table is the point of a
    // rehearsal on a new token (key templates are tried on session objects only).
    let token = open_token(run, &c.token, None, &dir, "init")?;
    let policy = c.key_policy();
    let caps = token.capabilities(alg);
    if run.dry_run {
        say(run, "drawn at signing time: the serial and the validity dates above are examples; the real ceremony draws a new random serial and starts the validity when the token signs");
        say(run, format!("\ncapability check:\n{}", caps.table()));
        refuse_unsupported(&token, &caps, policy)?;
        say(
            run,
            "dry run: nothing generated (the token was opened for the capability check only)",
        );
        return Ok(());
    }
    refuse_unsupported(&token, &caps, policy)?;
    // The transport key first: a token that cannot seal fails before the root key exists. A
    // transport key left by an interrupted run is reused only if it never left the token.
    let scheme = token.prepare_transport()?;
    let (key, attrs) = token.generate_with(alg, policy)?;
    let made = sign_checked(&params, Profile::Root, &key, None, &key)
        .and_then(|der| Ok(CertFacts::from_der("root certificate", &der)?))
        .and_then(|facts| write_root_dir(&dir, &token, &key, &facts).map(|r| (facts, r)));
    let (facts, recipient) = match made {
        Ok(done) => done,
        Err(e) => return Err(unfinished(&token, &c.token, &attrs.id, e)),
    };
    let mut index = RootIndex {
        token_label: c.token.token_label.clone(),
        key_label: c.token.key_label.clone(),
        key_id: Some(attrs.id.clone()),
        key_backup: policy == KeyPolicy::WrappedBackup,
        crl_number: 0,
        log_head: String::new(),
        intermediates: Vec::new(),
    };
    dir.log(
        &mut index,
        "key-generated",
        json!({ "token": c.token.token_label, "attributes": attrs, "backup": c.key.backup,
                "token_info": { "manufacturer": token.info.manufacturer, "model": token.info.model },
                "sign_mechanism": key.sign_path().describe(alg),
                "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
    )?;
    dir.log(
        &mut index,
        "root-signed",
        json!({ "serial": facts.serial.to_hex(), "subject": facts.subject, "fingerprint": facts.fingerprint,
                "not_before": fmt_time(facts.not_before), "not_after": fmt_time(facts.not_after) }),
    )?;
    dir.log(
        &mut index,
        "transport-identity-created",
        json!({ "recipient": recipient, "seal": scheme.name() }),
    )?;
    report(run, &dir, &facts, &recipient, &attrs, &index.log_head);
    Ok(())
}

/// `root-ca token check FILE`: the capability table of the token an init ceremony file names,
/// for the key it names; fails when the token cannot finish that ceremony. Nothing is
/// generated: key templates are tried on session objects, which vanish with the session.
pub fn token_check(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, .. } = ceremony::load::<InitCeremony>(file)?;
    let alg = c.algorithm().map_err(|i| i.at(file))?;
    let (pin, _) = crate::pin::for_root(
        &RootDir::new(&ceremony::resolve(Path::new("."), &c.output.dir)),
        run.pin_file,
        run.custodians,
    )?;
    let token = Token::open(&c.token.config(None), &pin)?;
    drop(pin);
    let caps = token.capabilities(alg);
    say(run, caps.table());
    refuse_unsupported(&token, &caps, c.key_policy())?;
    say(
        run,
        format!(
            "{} can run `root-ca init {}`{}",
            caps.token,
            file.display(),
            if c.key.backup {
                " with backup = true"
            } else {
                ""
            }
        ),
    );
    Ok(())
}

/// Refuses, before anything is generated, what the capability check says the token cannot
/// finish: the root key itself, its seal, or (with `backup = true`) the backup.
fn refuse_unsupported(token: &Token, caps: &Capabilities, policy: KeyPolicy) -> Result<()> {
    let mut needed = vec![
        ("init:", "hold the root key"),
        ("init: seal", "seal the root's transport identity"),
    ];
    if policy == KeyPolicy::WrappedBackup {
        needed.push((
            "backup:",
            "hold a root key that can be backed up (backup = true)",
        ));
    }
    let failing: Vec<_> = needed
        .into_iter()
        .filter_map(|(row, what)| {
            caps.row(row)
                .filter(|r| !r.verdict.supported())
                .map(|r| (row, what, r.verdict.why().to_string()))
        })
        .collect();
    if failing.is_empty() {
        return Ok(());
    }
    let backup_only = failing.len() == 1 && failing[0].0 == "backup:";
    Err(TokenError::Unsupported {
        token: token.config.token_label.clone(),
        what: failing.iter().map(|f| f.1).collect::<Vec<_>>().join(", nor "),
        why: match failing.as_slice() {
            [one] => one.2.clone(),
            many => many
                .iter()
                .map(|f| format!("to {}: {}", f.1, f.2))
                .collect::<Vec<_>>()
                .join("; "),
        },
        next: if backup_only {
            "Set backup = false in [key] (the key then dies with the token), or use a token whose capability check shows backup: yes (`root-ca init FILE --dry-run` prints it)".into()
        } else {
            "Use a token whose capability check shows these steps supported (`root-ca init FILE --dry-run` prints the table)".into()
        },
    }
    .into())
}

/// A failure after the key pair was generated: the pair is destroyed (no orphan key under the
/// label), or, when the token refuses that too, the message names the command that does.
fn unfinished(
    token: &Token,
    section: &ceremony::TokenSection,
    id_hex: &str,
    e: RootError,
) -> RootError {
    let id = hex::decode(id_hex).unwrap_or_default();
    let cleanup = match token.destroy_key_pair(&section.key_label, &id) {
        Ok(n) if n > 0 => format!("the key pair '{}' generated by this run was destroyed; the token is as before (run the ceremony again once the cause is fixed)", section.key_label),
        _ => format!(
            "the key pair '{label}' (CKA_ID {id_hex}) generated by this run is still in the token; remove it before running again: pkcs11-tool --module {module} --login --delete-object --type privkey --label {label} --id {id_hex}, and the same with --type pubkey",
            label = section.key_label,
            module = section.module.display(),
        ),
    };
    RootError::Unfinished {
        reason: e.to_string(),
        cleanup,
    }
}

/// The state folder must not exist or be empty, and its parent must take a new folder.
fn check_new_root_dir(dir: &RootDir) -> Result<()> {
    if dir.path.exists()
        && std::fs::read_dir(&dir.path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(RootError::OutputExists {
            path: dir.path.clone(),
        });
    }
    if let Some(parent) = dir.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        check_folder(parent)?;
    }
    Ok(())
}

/// Creates the transport identity, seals it with the token's AES key, and writes the state
/// folder: the root certificate, the sealed identity and its recipient. Returns the recipient.
fn write_root_dir(
    dir: &RootDir,
    token: &Token,
    key: &TokenKey,
    facts: &CertFacts,
) -> Result<String> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = Zeroizing::new(
        age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_string(),
    );
    let sealed = token.seal_transport(secret.as_bytes(), key)?;

    output::create_dir(&dir.path, 0o755)?;
    output::create_dir(&dir.path.join("intermediates"), 0o755)?;
    output::write_atomic(
        &dir.cert_path(),
        facts.pem().as_bytes(),
        Mode::Public,
        false,
    )
    .map_err(RootError::from_output)?;
    output::write_atomic(&dir.sealed_identity_path(), &sealed, Mode::Secret, false)
        .map_err(RootError::from_output)?;
    output::write_atomic(
        &dir.recipient_path(),
        format!("{recipient}\n").as_bytes(),
        Mode::Public,
        false,
    )
    .map_err(RootError::from_output)?;
    Ok(recipient)
}

/// What the operator writes down after the ceremony.
fn report(
    run: &mut Run<'_>,
    dir: &RootDir,
    facts: &CertFacts,
    recipient: &str,
    attrs: &KeyAttributes,
    log_head: &str,
) {
    say(
        run,
        format!("root certificate:     {}", dir.cert_path().display()),
    );
    say(
        run,
        format!("root fingerprint:     SHA256 {}", facts.fingerprint),
    );
    say(run, format!("transport recipient:  {recipient}"));
    say(run, format!("key attributes:       sensitive={} extractable={} never-extractable={} always-sensitive={}",
        attrs.sensitive, attrs.extractable, attrs.never_extractable, attrs.always_sensitive));
    if !attrs.usage_not_restricted.is_empty() {
        say(run, format!("key usage:            the token took the {} template and left {} on (recorded in the log); the toolkit only ever signs with the key",
            attrs.template, attrs.usage_not_restricted.join(", ")));
    }
    say(
        run,
        format!("ceremony log head:    {log_head} (write it down)"),
    );
}
