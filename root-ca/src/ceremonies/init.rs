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
use pki_core::keys::{KeyAttributes, KeyPolicy, Token};

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
    if run.dry_run {
        say(run, "drawn at signing time: the serial and the validity dates above are examples; the real ceremony draws a new random serial and starts the validity when the token signs");
        say(run, "dry run: nothing generated, the token was not opened");
        return Ok(());
    }

    let token = open_token(run, &c.token, None, &dir, "init")?;
    // A transport key left in the token is reused only if it never left it: checked before
    // the root key exists, so a refusal leaves nothing new in the token.
    token.check_transport_key()?;
    let policy = c.key_policy();
    let (key, attrs) = token.generate_with(alg, policy)?;
    let der = sign_checked(&params, Profile::Root, &key, None, &key)?;
    let facts = CertFacts::from_der("root certificate", &der)?;

    let recipient = write_root_dir(&dir, &token, &facts)?;
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
        json!({ "recipient": recipient }),
    )?;
    report(run, &dir, &facts, &recipient, &attrs, &index.log_head);
    Ok(())
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
fn write_root_dir(dir: &RootDir, token: &Token, facts: &CertFacts) -> Result<String> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = Zeroizing::new(
        age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_string(),
    );
    let sealed = token.seal_transport(secret.as_bytes())?;

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
    say(
        run,
        format!("ceremony log head:    {log_head} (write it down)"),
    );
}
