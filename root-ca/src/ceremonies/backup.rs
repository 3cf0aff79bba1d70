//! `root-ca backup` and `root-ca restore`: the root key leaves its token only wrapped under
//! the custody wrap key (CKM_AES_KEY_WRAP_PAD inside the token), and comes back into a fresh
//! token the same way. Both need M custodians. The transport identity travels with it,
//! encrypted under a passphrase derived from the custody secret, and is sealed again by the
//! new token's own transport key.

use std::path::Path;

use pki_core::keys::{KeyBackup, PublicParts, Token};
use pki_core::output::{self, Mode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::log::check_log;
use super::{ceremony_record, check_output, recorded_key_id, root_key, say, Run};
use crate::airgap;
use crate::ceremony::{self, BackupCeremony, RestoreCeremony};
use crate::custody::{self, Quorum};
use crate::error::{Result, RootError};
use crate::pin;
use crate::state::RootDir;

const FORMAT: &str = "root-ca key backup v1";
const MECHANISM: &str = "CKM_AES_KEY_WRAP_PAD";

/// The backup file: everything but the wrap key, which custody holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BackupFile {
    format: String,
    root_fingerprint: String,
    key_label: String,
    key_id: String,
    algorithm: String,
    mechanism: String,
    /// The custody generation whose shares rebuild the wrap key.
    custody_generation: u32,
    /// The first 8 bytes of SHA-256 of the wrap key: a wrong quorum is named before unwrapping.
    wrap_key_check: String,
    public_key_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_ec_params: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_ec_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_modulus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_exponent: Option<String>,
    /// The private key, wrapped in the token (hex).
    wrapped_key: String,
    /// The transport identity, age-encrypted under a passphrase derived from the custody secret.
    transport_identity: String,
}

fn wrap_key_check(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

pub fn backup(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<BackupCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    if !index.key_backup {
        return Err(RootError::NotBackupKey);
    }
    let state = custody::load(&dir)?;
    let out = ceremony::resolve(&base, &c.output.backup);
    check_output(&out)?;
    say(
        run,
        format!(
            "root-ca backup: key '{}' of root SHA256 {}, wrapped in token '{}' with {MECHANISM} under the custody wrap key ({} of {} custodians)",
            c.token.key_label, root.fingerprint, c.token.token_label, state.threshold, state.custodians.len()
        ),
    );
    say(run, format!("  backup file: {}", out.display()));
    say(
        run,
        "  the token's security officer imports the wrap key as a trusted key (CKA_TRUSTED): the SO PIN is needed",
    );
    if run.dry_run {
        say(run, "dry run: nothing written, the token was not opened");
        return Ok(());
    }
    let quorum = quorum(&dir, run)?;
    let so_pin = pin::resolve_so(run.so_pin_file)?;
    let user_pin = quorum.secret.token_pin();
    let token = Token::open(
        &c.token.config(recorded_key_id(&index, &c.token)),
        &user_pin,
    )?;
    log_quorum(&dir, &quorum, state.generation, "backup")?;
    let key = root_key(&token, &c.token, &dir, &root)?;
    let wrap = quorum.secret.wrap_key();
    let wrapped = token.backup_key(&key, &wrap, &user_pin, &so_pin)?;
    drop(so_pin);
    // `key`'s handle is stale after the security officer's login: only objects looked up
    // afresh are used from here on.
    let sealed = output::read(&dir.sealed_identity_path())?;
    let transport = token.open_transport(&sealed, &root.spki_der)?;
    let transport_enc =
        custody::encrypt_with_passphrase(&quorum.secret.transport_backup_passphrase(), &transport)?;
    let mut f = BackupFile {
        format: FORMAT.into(),
        root_fingerprint: root.fingerprint.clone(),
        key_label: wrapped.label.clone(),
        key_id: hex::encode(&wrapped.id),
        algorithm: pki_core::keys::Signer::key_algorithm(&key).to_string(),
        mechanism: MECHANISM.into(),
        custody_generation: state.generation,
        wrap_key_check: wrap_key_check(&wrap),
        public_key_type: String::new(),
        public_ec_params: None,
        public_ec_point: None,
        public_modulus: None,
        public_exponent: None,
        wrapped_key: hex::encode(&wrapped.wrapped),
        transport_identity: String::from_utf8_lossy(&transport_enc).into_owned(),
    };
    match &wrapped.public {
        PublicParts::Ec { params, point } | PublicParts::EcEdwards { params, point } => {
            f.public_key_type = match wrapped.public {
                PublicParts::Ec { .. } => "ec".into(),
                _ => "ec-edwards".into(),
            };
            f.public_ec_params = Some(hex::encode(params));
            f.public_ec_point = Some(hex::encode(point));
        }
        PublicParts::Rsa { modulus, exponent } => {
            f.public_key_type = "rsa".into();
            f.public_modulus = Some(hex::encode(modulus));
            f.public_exponent = Some(hex::encode(exponent));
        }
    }
    let text = toml::to_string(&f).expect("backup serialises");
    output::write_atomic(&out, text.as_bytes(), Mode::Secret, false)
        .map_err(RootError::from_output)?;
    dir.log(
        &mut index,
        "root-key-backed-up",
        json!({ "file": out.display().to_string(), "sha256": hex::encode(Sha256::digest(text.as_bytes())),
                "key_label": f.key_label, "key_id": f.key_id, "mechanism": MECHANISM,
                "custody_generation": state.generation, "custodians": quorum.custodians,
                "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
    )?;
    say(
        run,
        format!(
            "backup written: {} (0600; keep copies offline, apart from the token)",
            out.display()
        ),
    );
    say(
        run,
        format!("ceremony log head: {} (write it down)", index.log_head),
    );
    Ok(())
}

pub fn restore(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<RestoreCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let state = custody::load(&dir)?;
    let path = ceremony::resolve(&base, &c.input.backup);
    let (f, backup) = read_backup(&path)?;
    if f.root_fingerprint != root.fingerprint {
        return Err(RootError::BackupMismatch {
            backup: path,
            cert: dir.cert_path(),
        });
    }
    if backup.label != c.token.key_label {
        return Err(RootError::BadBackup {
            path,
            reason: format!(
                "it holds key '{}', but the ceremony file names key-label '{}'; name the backup's label",
                backup.label, c.token.key_label
            ),
        });
    }
    say(
        run,
        format!(
            "root-ca restore: key '{}' of root SHA256 {} from {} into token '{}'; the token's PIN then becomes the custody PIN ({} of {} custodians)",
            backup.label, root.fingerprint, path.display(), c.token.token_label, state.threshold, state.custodians.len()
        ),
    );
    if run.dry_run {
        say(run, "dry run: nothing restored, the token was not opened");
        return Ok(());
    }
    // The fresh token's own PIN, then the custodians: the wrap key and the PIN to set.
    let fresh_pin = pin::resolve(run.pin_file)?;
    let quorum = quorum(&dir, run)?;
    let wrap = quorum.secret.wrap_key();
    if wrap_key_check(&wrap) != f.wrap_key_check {
        return Err(RootError::BadBackup {
            path,
            reason: format!(
                "it was made under the wrap key of custody generation {}, which these shares (generation {}) do not rebuild; bring the custodians of that generation",
                f.custody_generation, state.generation
            ),
        });
    }
    let token = Token::open(&c.token.config(Some(f.key_id.clone())), &fresh_pin)?;
    let key = token.restore_key(&backup, &wrap)?;
    if key.spki_der() != root.spki_der {
        return Err(RootError::BackupMismatch {
            backup: path,
            cert: dir.cert_path(),
        });
    }
    let transport = open_transport_backup(&path, &f, &quorum)?;
    token.prepare_transport()?;
    let sealed = token.seal_transport(&transport, &key)?;
    token.change_user_pin(&fresh_pin, &quorum.secret.token_pin())?;
    drop(fresh_pin);
    let old_sealed = output::read(&dir.sealed_identity_path()).unwrap_or_default();
    output::write_atomic(&dir.sealed_identity_path(), &sealed, Mode::Secret, true)?;
    log_quorum(&dir, &quorum, state.generation, "restore")?;
    index = dir.index()?;
    let old_token = std::mem::replace(&mut index.token_label, c.token.token_label.clone());
    index.key_backup = true;
    dir.log(
        &mut index,
        "root-key-restored",
        json!({ "token": c.token.token_label, "previous_token": old_token,
                "key_label": backup.label, "key_id": f.key_id,
                "backup_sha256": hex::encode(Sha256::digest(output::read(&path)?)),
                "transport_sealed_before": hex::encode(Sha256::digest(&old_sealed)),
                "custodians": quorum.custodians,
                "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
    )?;
    say(run, format!("restored: token '{}' holds the root key (public key matches {}); its user PIN is now the custody PIN", c.token.token_label, dir.cert_path().display()));
    say(
        run,
        format!(
            "transport identity sealed again by the new token: {}",
            dir.sealed_identity_path().display()
        ),
    );
    say(
        run,
        format!("ceremony log head: {} (write it down)", index.log_head),
    );
    Ok(())
}

fn quorum(dir: &RootDir, run: &Run<'_>) -> Result<Quorum> {
    let state = custody::load(dir)?;
    custody::gather(dir, &state, run.custodians)
}

fn log_quorum(dir: &RootDir, q: &Quorum, generation: u32, purpose: &str) -> Result<()> {
    let mut index = dir.index()?;
    dir.log(
        &mut index,
        "custody-quorum",
        json!({ "for": purpose, "generation": generation, "custodians": q.custodians }),
    )
}

fn read_backup(path: &Path) -> Result<(BackupFile, KeyBackup)> {
    let bad = |reason: String| RootError::BadBackup {
        path: path.to_path_buf(),
        reason,
    };
    let text = output::read_to_string(path)?;
    let f: BackupFile =
        toml::from_str(&text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
    if f.format != FORMAT || f.mechanism != MECHANISM {
        return Err(bad(format!(
            "format '{}' with mechanism '{}' is not a backup this root-ca reads",
            f.format, f.mechanism
        )));
    }
    let hex_field = |name: &str, v: &Option<String>| -> Result<Vec<u8>> {
        v.as_deref()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| bad(format!("{name} is missing or not hex")))
    };
    let public = match f.public_key_type.as_str() {
        "ec" => PublicParts::Ec {
            params: hex_field("public-ec-params", &f.public_ec_params)?,
            point: hex_field("public-ec-point", &f.public_ec_point)?,
        },
        "ec-edwards" => PublicParts::EcEdwards {
            params: hex_field("public-ec-params", &f.public_ec_params)?,
            point: hex_field("public-ec-point", &f.public_ec_point)?,
        },
        "rsa" => PublicParts::Rsa {
            modulus: hex_field("public-modulus", &f.public_modulus)?,
            exponent: hex_field("public-exponent", &f.public_exponent)?,
        },
        other => return Err(bad(format!("public-key-type '{other}' is unknown"))),
    };
    let backup = KeyBackup {
        label: f.key_label.clone(),
        id: hex::decode(&f.key_id).map_err(|_| bad("key-id is not hex".into()))?,
        wrapped: hex::decode(&f.wrapped_key).map_err(|_| bad("wrapped-key is not hex".into()))?,
        public,
    };
    Ok((f, backup))
}

fn open_transport_backup(path: &Path, f: &BackupFile, q: &Quorum) -> Result<Zeroizing<Vec<u8>>> {
    let pass = q.secret.transport_backup_passphrase();
    let id = age::scrypt::Identity::new(age::secrecy::SecretString::from(pass.to_string()));
    age::decrypt(&id, f.transport_identity.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| RootError::BadBackup {
            path: path.to_path_buf(),
            reason: format!("its transport identity cannot be decrypted ({e})"),
        })
}
