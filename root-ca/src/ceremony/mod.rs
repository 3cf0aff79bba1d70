//! Ceremony files: one reviewed TOML file says everything an operation will do. Unknown fields
//! are errors, so a typo in a reviewed file cannot silently change the ceremony. Relative paths
//! are relative to the ceremony file's folder.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Result, RootError};
use pki_core::keys::{default_module, TokenConfig};

mod templates;
#[cfg(test)]
mod tests;
mod validate;

pub use templates::*;
pub use validate::{parse_cidr, reason_code, CrossDirection, Invalid, RequestSource, Validate};

impl InitCeremony {
    /// The token attributes the root key is generated with: [key] backup.
    pub fn key_policy(&self) -> pki_core::keys::KeyPolicy {
        if self.key.backup {
            pki_core::keys::KeyPolicy::WrappedBackup
        } else {
            pki_core::keys::KeyPolicy::NeverExtractable
        }
    }
}

fn default_module_path() -> PathBuf {
    default_module().to_path_buf()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenSection {
    #[serde(default = "default_module_path")]
    pub module: PathBuf,
    pub token_label: String,
    pub key_label: String,
}

impl TokenSection {
    /// The token and key; `key_id` is the CKA_ID the root's index recorded at `init`.
    pub fn config(&self, key_id: Option<String>) -> TokenConfig {
        TokenConfig {
            module: self.module.clone(),
            token_label: self.token_label.clone(),
            key_label: self.key_label.clone(),
            key_id,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InitCeremony {
    #[serde(default)]
    pub allow_network: bool,
    pub token: TokenSection,
    pub key: KeySection,
    pub root: RootSubject,
    pub output: InitOutput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KeySection {
    #[serde(default = "default_root_alg")]
    pub algorithm: String,
    /// Generate the key so that `root-ca backup` can take it out of the token wrapped under
    /// the custody wrap key (sensitive, extractable only wrapped). Off by default: the key
    /// then never leaves the token and dies with it.
    #[serde(default)]
    pub backup: bool,
}

fn default_root_alg() -> String {
    "p384".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RootSubject {
    pub common_name: String,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default = "default_root_days")]
    pub days: u32,
    /// basicConstraints pathLenConstraint: 1 (default) leaves room for the intermediates
    /// only; 2 also for a cross certificate between this root and the intermediates, which a
    /// root rollover from or to this root needs (docs/root-rollover.md).
    #[serde(default = "default_path_length")]
    pub path_length: u8,
}

fn default_path_length() -> u8 {
    1
}

fn default_root_days() -> u32 {
    3653
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct InitOutput {
    /// The root's state folder (must not exist or be empty).
    pub dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignCeremony {
    #[serde(default)]
    pub allow_network: bool,
    /// Sign a request (same request ID or same key) that this root already signed. Off by
    /// default: a re-run after a failure must not make a second valid intermediate silently.
    #[serde(default)]
    pub allow_resign: bool,
    pub token: TokenSection,
    pub root_dir: PathBuf,
    pub request: RequestSection,
    #[serde(default)]
    pub certificate: CertificateSection,
    pub output: SignOutput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestSection {
    /// A PEM CSR file (e.g. made with OpenSSL)...
    #[serde(default)]
    pub csr: Option<PathBuf>,
    /// ...or the request bundle from `intermediate-ca request` (exactly one of the two).
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// SHA-256 of the CSR's SubjectPublicKeyInfo, read out by the requester at the ceremony.
    pub key_fingerprint: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertificateSection {
    /// Overrides the CSR's common name.
    #[serde(default)]
    pub common_name: Option<String>,
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    /// CIDR ranges, e.g. "10.0.0.0/8".
    #[serde(default)]
    pub permitted_ips: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignOutput {
    /// The intermediate certificate as PEM (optional with a bundle).
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    /// The response bundle, encrypted to the requester (required with a bundle).
    #[serde(default)]
    pub response: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RevokeCeremony {
    #[serde(default)]
    pub allow_network: bool,
    pub root_dir: PathBuf,
    /// Serial of the intermediate, hex as `openssl x509 -serial` prints it.
    pub serial: String,
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrlCeremony {
    #[serde(default)]
    pub allow_network: bool,
    pub token: TokenSection,
    pub root_dir: PathBuf,
    #[serde(default = "default_next_update")]
    pub next_update_days: u32,
    pub output: CrlOutput,
}

fn default_next_update() -> u32 {
    180
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrlOutput {
    pub crl: PathBuf,
}

/// `root-ca custody split` and `root-ca custody resplit`: who holds the shares, and how many
/// of them a ceremony needs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CustodyCeremony {
    #[serde(default)]
    pub allow_network: bool,
    pub root_dir: PathBuf,
    pub token: TokenSection,
    /// M: how many custodians every later ceremony needs.
    pub threshold: usize,
    /// Re-split only: draw a new custody secret (a new token PIN and a new backup wrap key),
    /// so that the shares of earlier generations open nothing any more. Backups made before
    /// need the old shares: make a new backup after it.
    #[serde(default)]
    pub new_secret: bool,
    #[serde(default, rename = "custodian")]
    pub custodians: Vec<CustodianSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CustodianSection {
    /// A short name: letters, digits, '-', '_' or '.', used in file names and the log.
    pub name: String,
    /// The custodian's age recipient (age1...), from `age-keygen` or `intermediate-ca new-identity`.
    pub recipient: String,
}

/// `root-ca backup`: the root key, wrapped under the custody wrap key, into one file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupCeremony {
    #[serde(default)]
    pub allow_network: bool,
    pub root_dir: PathBuf,
    pub token: TokenSection,
    pub output: BackupOutput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BackupOutput {
    /// The backup file (must not exist).
    pub backup: PathBuf,
}

/// `root-ca restore`: a backup unwrapped into a fresh token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RestoreCeremony {
    #[serde(default)]
    pub allow_network: bool,
    pub root_dir: PathBuf,
    /// The fresh token (its key label must be free); the PIN it was initialised with comes
    /// from --pin-file, ROOT_CA_PIN or a prompt, and is replaced by the custody PIN.
    pub token: TokenSection,
    pub input: RestoreInput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RestoreInput {
    pub backup: PathBuf,
}

/// `root-ca cross-sign`: one root's key certifies another root's subject and key, so that a
/// relying party trusting either root can build a path to what the other signs (RFC 4210 §4.4:
/// new-with-old, old-with-new).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrossSignCeremony {
    #[serde(default)]
    pub allow_network: bool,
    /// `new-with-old` (the old root certifies the new root's key) or `old-with-new` (the new
    /// root certifies the old root's key); checked against the two roots' start dates.
    pub direction: String,
    /// The root whose key signs, in the token below.
    pub signer_root_dir: PathBuf,
    /// The root whose subject and key are certified (only its root.crt is read).
    pub subject_root_dir: PathBuf,
    /// Lifetime in days; default: until the earlier of the two roots' expiry. Never past
    /// either root.
    #[serde(default)]
    pub days: Option<u32>,
    /// A second cross certificate for the same pair and direction is refused unless true.
    #[serde(default)]
    pub allow_resign: bool,
    /// The signer's token and key.
    pub token: TokenSection,
    pub output: CrossSignOutput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CrossSignOutput {
    /// The cross certificate as PEM (must not exist).
    pub certificate: PathBuf,
}

/// A ceremony file as read: its contents, the folder relative paths start from, and the
/// SHA-256 of the exact bytes reviewed, which the ceremony log records.
pub struct Loaded<T> {
    pub c: T,
    pub base: PathBuf,
    pub sha256: String,
}

/// Reads a ceremony file, rejecting unknown fields, checks its content ([`Validate`]), and
/// resolves relative paths.
pub fn load<T: DeserializeOwned + Validate>(path: &Path) -> Result<Loaded<T>> {
    let bytes = pki_core::output::read(path)?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| RootError::Ceremony {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })?;
    let parsed: T = parse(path, &text)?;
    parsed.validate().map_err(|i| i.at(path))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Loaded {
        c: parsed,
        base,
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
    })
}

/// Parses a ceremony file's text (what [`load`] does after reading the file).
pub fn parse<T: DeserializeOwned>(what: &Path, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| RootError::Ceremony {
        path: what.to_path_buf(),
        reason: e.to_string().trim().replace('\n', " "),
    })
}

/// A path from a ceremony file, relative to the file's folder.
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
