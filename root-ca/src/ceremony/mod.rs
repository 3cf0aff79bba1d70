//! Ceremony files: one reviewed TOML file says everything an operation will do. Unknown fields
//! are errors, so a typo in a reviewed file cannot silently change the ceremony. Relative paths
//! are relative to the ceremony file's folder.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Result, RootError};
use pki_core::keys::{default_module, TokenConfig};

#[cfg(test)]
mod tests;
mod validate;

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

pub const TEMPLATE_INIT: &str = r#"# root-ca init ceremony. Review and sign off this file before the ceremony.
# Run:  root-ca init THIS_FILE --dry-run   (shows what will be generated; touches nothing)
#       root-ca init THIS_FILE             (generates the key in the token and self-signs the root)

# Refuse to run while a network interface is up. Set to true only for rehearsals.
allow-network = false

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"   # the PKCS#11 module of the HSM
token-label = "root-ca"                      # the token (slot) label
key-label = "root-2026"                      # must not exist yet in the token

[key]
algorithm = "p384"                           # p384 (default), p256, rsa3072, rsa4096, ed25519
# true: the key can leave the token, wrapped only, for `root-ca backup` (see the runbook's
# trade-off); false (default): the key never leaves the token and dies with it.
backup = false

[root]
common-name = "Example Root CA 2026"
organization = "Example Ltd"                 # optional
country = "GB"                               # optional
days = 3653                                  # lifetime: default 10 years, at most 25
# 1: room for the intermediates only. 2: also for a cross certificate in the path, which a
# root rollover needs (OpenSSL and Go enforce a root's path length; docs/root-rollover.md).
path-length = 2

[output]
dir = "root"                                 # the root's state folder; must not exist or be empty
"#;

pub const TEMPLATE_SIGN: &str = r#"# root-ca sign ceremony: sign one intermediate CA certificate.
# Run:  root-ca sign THIS_FILE --dry-run   then   root-ca sign THIS_FILE

allow-network = false
# A request (request ID or key) this root already signed is refused unless this is true.
allow-resign = false
root-dir = "root"                            # the folder `root-ca init` created

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[request]
bundle = "request.age"                       # the request bundle from `intermediate-ca request`
# csr = "intermediate.csr"                   # or a plain PKCS#10 request (PEM) instead of a bundle
# SHA-256 of the request's public key, as the requester read it out over the phone:
#   openssl req -in intermediate.csr -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum
key-fingerprint = "AB:CD:..."

[certificate]
# common-name = "Example Intermediate CA 1" # default: the CN of the request
days = 1826                                  # default 5 years; never past the root
# Optional name constraints: what a stolen intermediate could still sign. They must cover
# every name its leaves carry, including the member names `issuer etcd` adds as DNS names.
# A constraint on one name type closes the other: DNS names only excludes every IP address
# (0.0.0.0/0, ::/0); IP ranges only excludes every DNS name.
# permitted-dns = ["etcd.example.internal"]
# permitted-ips = ["10.0.0.0/8"]

[output]
response = "response.age"                    # the response bundle for the requester; must not exist
certificate = "intermediate.crt"             # also the certificate as PEM (optional); must not exist
"#;

pub const TEMPLATE_REVOKE: &str = r#"# root-ca revoke ceremony: mark an intermediate revoked. The next `root-ca crl` lists it.
allow-network = false
root-dir = "root"
serial = "5A3F..."                           # the intermediate's serial (openssl x509 -serial -noout)
# unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
# cessationOfOperation, privilegeWithdrawn
reason = "keyCompromise"
"#;

pub const TEMPLATE_CRL: &str = r#"# root-ca crl ceremony: sign the root's CRL in the token.
allow-network = false
root-dir = "root"
next-update-days = 180                       # sign a new one before then

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[output]
crl = "root-crl.pem"                         # must not exist
"#;

pub const TEMPLATE_CUSTODY: &str = r#"# root-ca custody split / resplit ceremony: the token's user PIN and the backup wrap key,
# held M-of-N by custodians. Each custodian brings their age recipient (age-keygen -o me.txt
# prints it); their share is encrypted to it. Later ceremonies need `threshold` of them.
# Run:  root-ca custody split THIS_FILE --dry-run   then   root-ca custody split THIS_FILE
#       (the first split takes the token's current PIN from --pin-file, ROOT_CA_PIN or a prompt,
#        and replaces it: afterwards only the custodians can open the token)
#       root-ca custody resplit THIS_FILE --custodian-identity FILE ...   (a new set of custodians)

allow-network = false
root-dir = "root"
threshold = 3                                # M: custodians every later ceremony needs (2 or more)
# Re-split only: draw a new secret (new token PIN, new wrap key): earlier shares open nothing.
# Earlier backups then need earlier shares; make a new backup afterwards.
new-secret = false

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[[custodian]]
name = "alice"
recipient = "age1..."
[[custodian]]
name = "bob"
recipient = "age1..."
[[custodian]]
name = "carol"
recipient = "age1..."
[[custodian]]
name = "dave"
recipient = "age1..."
[[custodian]]
name = "erin"
recipient = "age1..."
"#;

pub const TEMPLATE_BACKUP: &str = r#"# root-ca backup ceremony: the root key, wrapped in the token under the custody wrap key
# (CKM_AES_KEY_WRAP_PAD), written to one file. Needs a root made with [key] backup = true and
# `threshold` custodians.
# Run:  root-ca backup THIS_FILE --custodian-identity FILE ...
allow-network = false
root-dir = "root"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[output]
backup = "root-key-backup.toml"              # must not exist
"#;

pub const TEMPLATE_RESTORE: &str = r#"# root-ca restore ceremony: a backup unwrapped into a fresh token, which then holds the same
# root key under the custody PIN. The fresh token's own PIN comes from --pin-file,
# ROOT_CA_PIN or a prompt; `threshold` custodians bring the wrap key.
# Run:  root-ca restore THIS_FILE --pin-file NEW_TOKEN_PIN --custodian-identity FILE ...
allow-network = false
root-dir = "root"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca-2"                    # the fresh token
key-label = "root-2026"                      # the label recorded in the backup

[input]
backup = "root-key-backup.toml"
"#;

pub const TEMPLATE_CROSS_SIGN: &str = r#"# root-ca cross-sign ceremony: one root's key certifies the other root (root rollover,
# docs/root-rollover.md). Run it twice, once per direction, each time with the signer's token:
#   new-with-old: the old root signs; a party that trusts only the old root reaches the new one
#   old-with-new: the new root signs; a party that trusts only the new root reaches the old one
# The cross certificate carries the certified root's exact subject and key, with the signer as
# issuer, and never outlives either root.
# Run:  root-ca cross-sign THIS_FILE --dry-run   then   root-ca cross-sign THIS_FILE

allow-network = false
direction = "new-with-old"                   # or "old-with-new"
signer-root-dir = "root"                     # the root whose key signs (the token below)
subject-root-dir = "root-2031"               # the root certified (only its root.crt is read)
# days = 1826                                # default: until the earlier root expires
# A second cross certificate for the same roots and direction is refused unless this is true.
allow-resign = false

[token]                                      # the signer's token and key
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[output]
certificate = "root-2031-by-root-2026.crt"   # must not exist
"#;
