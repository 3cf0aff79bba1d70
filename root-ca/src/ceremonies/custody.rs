//! `root-ca custody split | resplit | verify`: the token PIN (and the backup wrap key derived
//! beside it) put in the hands of M-of-N custodians, a new set of custodians, and a custodian
//! checking their own share.

use std::io::Write;
use std::path::{Path, PathBuf};

use pki_core::error::TokenError;
use pki_core::keys::{Token, TokenKey, CUSTODY_PIN_LEN};
use pki_core::output::{self, Mode};
use serde_json::json;
use zeroize::Zeroizing;

use super::log::check_log;
use super::{ceremony_record, recorded_key_id, root_key, say, Run};
use crate::airgap;
use crate::ceremony::{self, CustodyCeremony};
use crate::custody::{self, CustodianEntry, CustodySecret, CustodyState};
use crate::error::{Result, RootError};
use crate::pin;
use crate::state::RootDir;

/// The first split: the token's current PIN (from the operator) is replaced by one derived
/// from a new custody secret, which is split among the custodians.
pub fn custody_split(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<CustodyCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    if custody::is_active(&dir) {
        return Err(RootError::CustodyExists {
            path: custody::state_path(&dir),
        });
    }
    check_generation_folder(&dir, 1)?;
    describe(run, "split", &c, &dir, 1);
    if run.dry_run {
        say(run, "dry run: nothing generated, the token was not opened");
        return Ok(());
    }
    let old_pin = pin::resolve(run.pin_file)?;
    let token = Token::open(&c.token.config(recorded_key_id(&index, &c.token)), &old_pin)?;
    refuse_short_pins(&token)?;
    root_key(&token, &c.token, &dir, &root)?;
    let secret = CustodySecret::new(custody::new_secret());
    let state = write_split(&dir, &c, &secret, 1, &root.fingerprint)?;
    if let Err(e) = token.change_user_pin(&old_pin, &secret.token_pin()) {
        // The token still takes the old PIN: the shares would open nothing.
        let _ = std::fs::remove_dir_all(custody::folder(&dir));
        return Err(e.into());
    }
    dir.log(
        &mut index,
        "custody-split",
        split_record(&state, file, &sha256, c.allow_network, None),
    )?;
    report(run, &dir, &state, &index.log_head);
    say(run, "the token's user PIN was replaced: the old PIN no longer opens it. Destroy every copy of it (PIN files, ROOT_CA_PIN)");
    Ok(())
}

/// The custody PIN has [`CUSTODY_PIN_LEN`] characters: a token whose PIN range excludes it
/// is refused before anything is written or the PIN changed.
fn refuse_short_pins(token: &Token) -> Result<()> {
    let (min, max) = (token.info.min_pin, token.info.max_pin);
    if (min..=max).contains(&CUSTODY_PIN_LEN) {
        return Ok(());
    }
    Err(TokenError::Unsupported {
        token: token.config.token_label.clone(),
        what: "hold a custody PIN".into(),
        why: format!("it takes user PINs of {min}..{max} characters and the custody PIN has {CUSTODY_PIN_LEN} (128 bits as hex)"),
        next: "Keep the PIN out of custody on this token (guard the PIN file instead), or use a token whose capability check shows custody split: yes".into(),
    }
    .into())
}

/// A new set of custodians (or a new threshold): M custodians of the current generation
/// rebuild the secret, which is split again (or, with new-secret, replaced).
pub fn custody_resplit(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<CustodyCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let old = custody::load(&dir)?;
    let generation = old.generation + 1;
    check_generation_folder(&dir, generation)?;
    describe(run, "resplit", &c, &dir, generation);
    if c.new_secret {
        say(run, "  new secret: the token PIN and the backup wrap key change; earlier shares and backups open nothing afterwards");
    }
    if run.dry_run {
        say(run, "dry run: nothing generated, the token was not opened");
        return Ok(());
    }
    let quorum = custody::gather(&dir, &old, run.custodians)?;
    let old_pin = quorum.secret.token_pin();
    let token = Token::open(&c.token.config(recorded_key_id(&index, &c.token)), &old_pin)?;
    refuse_short_pins(&token)?;
    let _key: TokenKey = root_key(&token, &c.token, &dir, &root)?;
    let secret = if c.new_secret {
        CustodySecret::new(custody::new_secret())
    } else {
        CustodySecret::new(Zeroizing::new(*quorum.secret.bytes()))
    };
    let state = write_split(&dir, &c, &secret, generation, &root.fingerprint)?;
    if c.new_secret {
        if let Err(e) = token.change_user_pin(&old_pin, &secret.token_pin()) {
            let _ = std::fs::remove_dir_all(custody::folder(&dir).join(format!("g{generation}")));
            custody::save(&dir, &old, true)?;
            return Err(e.into());
        }
    }
    // The previous generation's share files go: with the same secret, M of them would still
    // open the token (see the runbook: printed copies must be destroyed too).
    let _ = std::fs::remove_dir_all(custody::folder(&dir).join(format!("g{}", old.generation)));
    dir.log(
        &mut index,
        "custody-resplit",
        split_record(
            &state,
            file,
            &sha256,
            c.allow_network,
            Some((&quorum.custodians, old.generation, c.new_secret)),
        ),
    )?;
    report(run, &dir, &state, &index.log_head);
    if c.new_secret && index.key_backup {
        say(run, "the backup wrap key changed: make a new backup now (root-ca backup) and destroy the earlier backup files");
    }
    Ok(())
}

/// A custodian checks their own share against the commitments, without revealing it.
pub fn custody_verify(root_dir: &Path, identity: &Path, out: &mut dyn Write) -> Result<()> {
    let dir = RootDir::new(root_dir);
    let state = custody::load(&dir)?;
    let (entry, _share) = custody::quorum::open_share(&dir, &state, identity)?;
    let _ = writeln!(
        out,
        "share {} of custodian '{}' is valid: custody generation {}, {} of {}, root SHA256 {}, commitments digest {}",
        entry.share,
        entry.name,
        state.generation,
        state.threshold,
        state.custodians.len(),
        state.root_fingerprint,
        state.commitments_digest()
    );
    Ok(())
}

fn check_generation_folder(dir: &RootDir, generation: u32) -> Result<()> {
    let folder = custody::folder(dir).join(format!("g{generation}"));
    if folder.exists() {
        return Err(RootError::OutputExists { path: folder });
    }
    Ok(())
}

fn describe(run: &mut Run<'_>, what: &str, c: &CustodyCeremony, dir: &RootDir, generation: u32) {
    say(
        run,
        format!(
            "root-ca custody {what}: token PIN and backup wrap key, {} of {} custodians, generation {generation}",
            c.threshold,
            c.custodians.len()
        ),
    );
    for (i, cu) in c.custodians.iter().enumerate() {
        say(
            run,
            format!(
                "  share {}: {} ({}) -> {}",
                i + 1,
                cu.name,
                cu.recipient,
                custody::folder(dir)
                    .join(custody::share_file(generation, &cu.name))
                    .display()
            ),
        );
    }
}

/// Splits `secret`, checks every share and a rebuild in memory, and writes the share files
/// and custody.toml. Returns the new state.
fn write_split(
    dir: &RootDir,
    c: &CustodyCeremony,
    secret: &CustodySecret,
    generation: u32,
    root_fingerprint: &str,
) -> Result<CustodyState> {
    let (shares, commitments) = custody::split(secret.bytes(), c.threshold, c.custodians.len())
        .map_err(|e| RootError::CustodyStateBad {
            path: custody::state_path(dir),
            reason: format!("splitting failed ({e:?})"),
        })?;
    let rebuilt = custody::combine(&shares[..c.threshold], &commitments, c.threshold);
    if rebuilt.as_deref().ok() != Some(secret.bytes()) {
        return Err(RootError::CustodyStateBad {
            path: custody::state_path(dir),
            reason: "the new shares do not rebuild the secret; nothing was written".into(),
        });
    }
    let custodians: Vec<CustodianEntry> = c
        .custodians
        .iter()
        .zip(&shares)
        .map(|(cu, s)| CustodianEntry {
            name: cu.name.clone(),
            recipient: cu.recipient.clone(),
            share: custody::share_number(s).unwrap_or(0),
            file: custody::share_file(generation, &cu.name),
        })
        .collect();
    let state = CustodyState {
        generation,
        threshold: c.threshold,
        scheme: custody::SCHEME.into(),
        root_fingerprint: root_fingerprint.to_string(),
        commitments: commitments.iter().map(hex::encode).collect(),
        custodians,
    };
    let folder = custody::folder(dir);
    if !folder.exists() {
        output::create_dir(&folder, 0o755)?;
    }
    let gen_folder = folder.join(format!("g{generation}"));
    output::create_dir(&gen_folder, 0o700)?;
    for (entry, share) in state.custodians.iter().zip(&shares) {
        custody::verify(share, &commitments, c.threshold).map_err(|e| {
            RootError::CustodyStateBad {
                path: custody::state_path(dir),
                reason: format!("a new share does not verify ({e:?}); nothing was used"),
            }
        })?;
        let plain = custody::share_plaintext(&state, &entry.name, share);
        let recipient: age::x25519::Recipient =
            entry.recipient.parse().map_err(|_| RootError::Ceremony {
                path: custody::state_path(dir),
                reason: format!("custodian '{}': bad recipient", entry.name),
            })?;
        let armored = custody::encrypt_armored(&recipient, plain.as_bytes())?;
        let path = custody::share_path(dir, entry);
        output::write_atomic(&path, &armored, Mode::Secret, false)
            .map_err(RootError::from_output)?;
        let sheet = custody::share_sheet(&state, entry, &String::from_utf8_lossy(&armored));
        output::write_atomic(&sheet_path(&path), sheet.as_bytes(), Mode::Secret, false)
            .map_err(RootError::from_output)?;
    }
    custody::save(dir, &state, generation > 1)?;
    Ok(state)
}

fn sheet_path(share: &Path) -> PathBuf {
    share.with_extension("txt")
}

fn split_record(
    state: &CustodyState,
    file: &Path,
    sha256: &str,
    allow_network: bool,
    resplit: Option<(&Vec<String>, u32, bool)>,
) -> serde_json::Value {
    let custodians: Vec<_> = state
        .custodians
        .iter()
        .map(|c| json!({ "name": c.name, "recipient": c.recipient, "share": c.share }))
        .collect();
    let mut v = json!({
        "generation": state.generation,
        "threshold": state.threshold,
        "scheme": state.scheme,
        "commitments_digest": state.commitments_digest(),
        "custodians": custodians,
        "ceremony": ceremony_record(file, sha256, allow_network),
    });
    if let Some((present, from, new_secret)) = resplit {
        v["previous_generation"] = json!(from);
        v["quorum"] = json!(present);
        v["new_secret"] = json!(new_secret);
    }
    v
}

fn report(run: &mut Run<'_>, dir: &RootDir, state: &CustodyState, log_head: &str) {
    say(
        run,
        format!(
            "custody generation {}: {} of {} custodians; commitments digest {} (each custodian writes it down)",
            state.generation,
            state.threshold,
            state.custodians.len(),
            state.commitments_digest()
        ),
    );
    for c in &state.custodians {
        let p = custody::share_path(dir, c);
        say(
            run,
            format!(
                "  {}: share {} in {} (printable: {})",
                c.name,
                c.share,
                p.display(),
                sheet_path(&p).display()
            ),
        );
    }
    say(
        run,
        format!("ceremony log head: {log_head} (write it down)"),
    );
}
