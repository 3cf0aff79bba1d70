//! M-of-N custody of the root's secrets. One random custody secret is generated inside a
//! ceremony and split with Feldman verifiable secret sharing; the token's user PIN and the
//! backup wrap key are derived from it, so neither exists anywhere but in the memory of a
//! ceremony that M custodians opened. Each share is encrypted to one custodian's age
//! recipient; the commitments that let anyone check a share stay in the root's state folder:
//!
//! ```text
//! custody/custody.toml               generation, threshold, commitments, custodians
//! custody/g<N>/<name>.share.age      the share of one custodian, age-encrypted to them (0600)
//! custody/g<N>/<name>.share.txt      the same, as a sheet to print and keep offline
//! ```

pub mod quorum;
mod sharing;

pub use quorum::{gather, prompt_allowed, Quorum};
pub use sharing::{combine, new_secret, share_number, split, verify, ShareBytes, SharingError};

use pki_core::keys::KeyError;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Result, RootError};
use crate::state::RootDir;

/// The scheme named in custody.toml: Feldman VSS over P-256 (vsss-rs).
pub const SCHEME: &str = "feldman-p256";

/// The custody secret rebuilt in memory; what it unlocks is derived from it, never stored.
pub struct CustodySecret(Zeroizing<[u8; 32]>);

impl CustodySecret {
    pub fn new(bytes: Zeroizing<[u8; 32]>) -> Self {
        CustodySecret(bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let mut h = Sha256::new();
        h.update(b"root-ca custody v1\0");
        h.update(purpose.as_bytes());
        h.update([0u8]);
        h.update(&self.0[..]);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&h.finalize());
        out
    }

    /// The token's user PIN: 32 hex digits (128 bits), within every token's PIN length.
    pub fn token_pin(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.derive("token user PIN")[..16]))
    }

    /// The passphrase (age scrypt) the transport identity is encrypted with inside a backup.
    pub fn transport_backup_passphrase(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.derive("backup transport identity")[..]))
    }

    /// The AES-256 key the root key is wrapped under for a backup.
    pub fn wrap_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive("backup wrap key")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CustodyState {
    /// 1 at the first split, one more at every re-split.
    pub generation: u32,
    /// M: how many custodians a ceremony needs.
    pub threshold: usize,
    pub scheme: String,
    /// SHA-256 fingerprint of the root certificate the shares belong to.
    pub root_fingerprint: String,
    /// Feldman commitments, compressed SEC1 points in hex: the generator, then g^secret, then
    /// one per further polynomial coefficient (M+1 in all).
    pub commitments: Vec<String>,
    #[serde(rename = "custodian")]
    pub custodians: Vec<CustodianEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CustodianEntry {
    pub name: String,
    /// The custodian's age recipient, to which their share is encrypted.
    pub recipient: String,
    /// The share's number (its x coordinate).
    pub share: u64,
    /// The encrypted share, relative to the custody folder.
    pub file: String,
}

impl CustodyState {
    pub fn commitment_bytes(&self) -> Vec<Vec<u8>> {
        self.commitments
            .iter()
            .map(|c| hex::decode(c).unwrap_or_default())
            .collect()
    }

    /// A short hash of the commitments, printed on every share sheet and by `custody verify`.
    pub fn commitments_digest(&self) -> String {
        let mut h = Sha256::new();
        for c in &self.commitment_bytes() {
            h.update(c);
        }
        hex::encode(&h.finalize()[..8])
    }

    pub fn names(&self) -> Vec<String> {
        self.custodians.iter().map(|c| c.name.clone()).collect()
    }
}

pub fn folder(root: &RootDir) -> PathBuf {
    root.path.join("custody")
}

pub fn state_path(root: &RootDir) -> PathBuf {
    folder(root).join("custody.toml")
}

/// Whether this root's PIN is held in custody.
pub fn is_active(root: &RootDir) -> bool {
    state_path(root).exists()
}

pub fn load(root: &RootDir) -> Result<CustodyState> {
    let p = state_path(root);
    if !p.exists() {
        return Err(RootError::CustodyMissing { path: p });
    }
    let text = pki_core::output::read_to_string(&p)?;
    let bad = |reason: String| RootError::CustodyStateBad {
        path: p.clone(),
        reason,
    };
    let s: CustodyState =
        toml::from_str(&text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
    if s.scheme != SCHEME {
        return Err(bad(format!("unknown scheme '{}'", s.scheme)));
    }
    if s.threshold == 0 || s.threshold > s.custodians.len() {
        return Err(bad(format!(
            "threshold {} with {} custodians",
            s.threshold,
            s.custodians.len()
        )));
    }
    if s.commitments.len() != s.threshold + 1
        || s.commitments.iter().any(|c| hex::decode(c).is_err())
    {
        return Err(bad(format!(
            "it must hold {} commitments in hex",
            s.threshold + 1
        )));
    }
    Ok(s)
}

pub fn save(root: &RootDir, state: &CustodyState, replace: bool) -> Result<()> {
    let text = toml::to_string(state).expect("custody state serialises");
    pki_core::output::write_atomic(
        &state_path(root),
        text.as_bytes(),
        pki_core::output::Mode::Public,
        replace,
    )
    .map_err(RootError::from_output)?;
    Ok(())
}

/// The share file of one custodian, relative to the custody folder.
pub fn share_file(generation: u32, name: &str) -> String {
    format!("g{generation}/{name}.share.age")
}

/// The text inside an encrypted share: who it belongs to, and the share.
pub fn share_plaintext(state: &CustodyState, name: &str, share: &[u8]) -> Zeroizing<String> {
    let share_hex = Zeroizing::new(hex::encode(share));
    Zeroizing::new(format!(
        "root-ca custody share\nversion: 1\nroot-fingerprint: {}\ngeneration: {}\ncustodian: {name}\nthreshold: {} of {}\nshare: {}\n",
        state.root_fingerprint,
        state.generation,
        state.threshold,
        state.custodians.len(),
        share_hex.as_str()
    ))
}

/// Reads the fields of a decrypted share; the caller compares them with the state.
pub struct ShareText {
    pub root_fingerprint: String,
    pub generation: u32,
    pub custodian: String,
    pub share: ShareBytes,
}

pub fn parse_share_text(text: &str) -> std::result::Result<ShareText, String> {
    let mut lines = text.lines();
    if lines.next() != Some("root-ca custody share") {
        return Err("it is not a root-ca custody share".into());
    }
    let mut field = |name: &str| -> std::result::Result<String, String> {
        let line = lines.next().unwrap_or("");
        line.strip_prefix(&format!("{name}: "))
            .map(str::to_string)
            .ok_or_else(|| format!("its '{name}' line is missing"))
    };
    if field("version")? != "1" {
        return Err("it has an unknown version".into());
    }
    let root_fingerprint = field("root-fingerprint")?;
    let generation = field("generation")?
        .parse()
        .map_err(|_| "its generation is not a number".to_string())?;
    let custodian = field("custodian")?;
    let _threshold = field("threshold")?;
    let share = Zeroizing::new(
        hex::decode(Zeroizing::new(field("share")?).as_str())
            .map_err(|_| "its share is not hex".to_string())?,
    );
    Ok(ShareText {
        root_fingerprint,
        generation,
        custodian,
        share,
    })
}

/// The printable sheet of one share: the armoured age file with what a custodian needs to
/// know to check it later, without anything secret in clear.
pub fn share_sheet(state: &CustodyState, entry: &CustodianEntry, armored: &str) -> String {
    format!(
        "root-ca custody share sheet\n\
         custodian:          {}\n\
         share number:       {}\n\
         threshold:          {} of {}\n\
         custody generation: {}\n\
         root fingerprint:   SHA256 {}\n\
         commitments digest: {}\n\
         encrypted to:       {}\n\
         \n\
         Keep this sheet offline. Only the identity of the recipient above can read the share;\n\
         `root-ca custody verify` checks it against the root's commitments without revealing it.\n\
         To use it from paper, type the block below into {} in the root's custody folder.\n\
         \n{}",
        entry.name,
        entry.share,
        state.threshold,
        state.custodians.len(),
        state.generation,
        state.root_fingerprint,
        state.commitments_digest(),
        entry.recipient,
        entry.file,
        armored
    )
}

/// The path of a custodian's encrypted share.
pub fn share_path(root: &RootDir, entry: &CustodianEntry) -> PathBuf {
    folder(root).join(Path::new(&entry.file))
}

/// Encrypts to one age recipient, ASCII-armoured (printable, and readable by the `age` CLI).
pub fn encrypt_armored(recipient: &dyn age::Recipient, plain: &[u8]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient))
        .map_err(|e| age_error(e.to_string()))?;
    armor_with(enc, plain)
}

/// Encrypts with an age passphrase (scrypt), ASCII-armoured.
pub fn encrypt_with_passphrase(passphrase: &str, plain: &[u8]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_user_passphrase(age::secrecy::SecretString::from(
        passphrase.to_string(),
    ));
    armor_with(enc, plain)
}

fn armor_with(enc: age::Encryptor, plain: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| age_error(e.to_string()))?;
    let mut w = enc
        .wrap_output(armor)
        .map_err(|e| age_error(e.to_string()))?;
    w.write_all(plain)
        .and_then(|()| w.finish())
        .and_then(|a| a.finish())
        .map_err(|e| age_error(e.to_string()))?;
    Ok(out)
}

fn age_error(reason: String) -> RootError {
    RootError::Core(
        KeyError::Age {
            op: "encryption",
            reason,
        }
        .into(),
    )
}
