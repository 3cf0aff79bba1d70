//! Gathering M shares: each custodian, in turn, decrypts their own share with their own age
//! identity; each share is checked against the commitments before the next one is asked for,
//! so a bad share is named at once. The secret is rebuilt only in memory.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use pki_core::keys::KeySecret;
use zeroize::Zeroizing;

use super::{
    parse_share_text, share_path, CustodianEntry, CustodySecret, CustodyState, SharingError,
};
use crate::error::{Result, RootError};
use crate::state::RootDir;

/// The rebuilt secret and the custodians whose shares rebuilt it (for the ceremony log).
pub struct Quorum {
    pub secret: CustodySecret,
    pub custodians: Vec<String>,
}

/// Whether custodians can be asked for their identity files on this terminal.
pub fn prompt_allowed() -> bool {
    std::io::stdin().is_terminal()
}

/// Decrypts and checks the shares of the custodians whose identity files are given (or, with
/// none given and a terminal, asked for one after another), and rebuilds the secret.
pub fn gather(root: &RootDir, state: &CustodyState, identities: &[PathBuf]) -> Result<Quorum> {
    let mut shares: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let take = |path: &Path, shares: &mut Vec<_>, names: &mut Vec<String>| -> Result<()> {
        let (entry, share) = open_share(root, state, path)?;
        if names.contains(&entry.name) {
            return Err(RootError::CustodyDuplicate { name: entry.name });
        }
        names.push(entry.name.clone());
        shares.push(share);
        Ok(())
    };
    if identities.is_empty() && prompt_allowed() {
        let stdin = std::io::stdin();
        while names.len() < state.threshold {
            eprint!(
                "custodian {} of {}: path of your age identity file (empty line to stop): ",
                names.len() + 1,
                state.threshold
            );
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            if stdin.lock().read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                break;
            }
            take(Path::new(line.trim()), &mut shares, &mut names)?;
            eprintln!(
                "share of '{}' verified ({} of {})",
                names.last().map(String::as_str).unwrap_or(""),
                names.len(),
                state.threshold
            );
        }
    } else {
        for path in identities {
            take(path, &mut shares, &mut names)?;
        }
    }
    if names.len() < state.threshold {
        return Err(RootError::CustodyTooFewShares {
            have: names.len(),
            need: state.threshold,
            present: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    }
    let secret =
        super::combine(&shares, &state.commitment_bytes(), state.threshold).map_err(|e| {
            RootError::CustodyStateBad {
                path: super::state_path(root),
                reason: format!("the verified shares do not rebuild the committed secret ({e:?})"),
            }
        })?;
    Ok(Quorum {
        secret: CustodySecret::new(secret),
        custodians: names,
    })
}

/// One custodian's share: found by the identity's recipient, decrypted, its header checked
/// against the custody state, its value checked against the commitments.
pub fn open_share(
    root: &RootDir,
    state: &CustodyState,
    identity_path: &Path,
) -> Result<(CustodianEntry, Zeroizing<Vec<u8>>)> {
    let KeySecret::Identity { identity, .. } = KeySecret::from_identity_file(identity_path)? else {
        unreachable!("an identity file gives an identity")
    };
    let recipient = identity.to_public().to_string();
    let entry = state
        .custodians
        .iter()
        .find(|c| c.recipient == recipient)
        .cloned()
        .ok_or_else(|| RootError::CustodyUnknownIdentity {
            path: identity_path.to_path_buf(),
            recipient: recipient.clone(),
            generation: state.generation,
        })?;
    let path = share_path(root, &entry);
    let invalid = |reason: String| RootError::CustodyShareInvalid {
        custodian: entry.name.clone(),
        share: entry.share,
        path: path.clone(),
        reason,
    };
    let data = pki_core::output::read(&path).map_err(|e| invalid(e.to_string()))?;
    let plain = age::decrypt(&identity, &data).map_err(|e| {
        invalid(match e {
            age::DecryptError::NoMatchingKeys => {
                "it is not encrypted to this custodian's identity".into()
            }
            age::DecryptError::DecryptionFailed => {
                "the file is damaged or has been tampered with".into()
            }
            other => format!("not a readable age file ({other})"),
        })
    })?;
    let plain = Zeroizing::new(plain);
    let text = std::str::from_utf8(&plain).map_err(|_| invalid("it is not text".into()))?;
    let parsed = parse_share_text(text).map_err(invalid)?;
    if parsed.custodian != entry.name {
        return Err(invalid(format!(
            "it is the share of '{}', not of '{}'",
            parsed.custodian, entry.name
        )));
    }
    if parsed.generation != state.generation || parsed.root_fingerprint != state.root_fingerprint {
        return Err(invalid(format!(
            "it belongs to custody generation {} of root {}, not to generation {} of this root",
            parsed.generation, parsed.root_fingerprint, state.generation
        )));
    }
    if super::share_number(&parsed.share) != Some(entry.share) {
        return Err(invalid(format!(
            "its share number is not {} as custody.toml records",
            entry.share
        )));
    }
    super::verify(&parsed.share, &state.commitment_bytes(), state.threshold).map_err(|e| {
        invalid(match e {
            SharingError::NotOnPolynomial => format!(
                "it does not match the Feldman commitments of generation {} (altered, or from another split)",
                state.generation
            ),
            SharingError::Malformed => "its share value is malformed".into(),
            other => format!("{other:?}"),
        })
    })?;
    Ok((entry, parsed.share))
}
