//! The errors `root-ca` reports. Each says what to check next; none carries the PIN.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Core(#[from] pki_core::Error),

    #[error(transparent)]
    Token(#[from] pki_core::error::TokenError),

    #[error("the key '{key}' in the token is not the key of the root certificate {cert}: wrong token or wrong key-label")]
    TokenKeyMismatch { key: String, cert: PathBuf },

    #[error("ceremony file {path}: {reason}")]
    Ceremony { path: PathBuf, reason: String },

    #[error("ceremony file {path}: {invalid}; correct the ceremony file and run it again")]
    Field {
        path: PathBuf,
        invalid: crate::ceremony::Invalid,
    },

    #[error("network interface '{iface}' is up: root-ca runs only on an air-gapped machine. Take it down, or set allow-network = true in the ceremony file for a rehearsal")]
    NetworkUp { iface: String },

    #[error("cannot tell whether this machine is air-gapped: {reason}. root-ca refuses to run without knowing: make the kernel's interface list readable, or, for a rehearsal on a networked machine only, set allow-network = true in the ceremony file")]
    NetworkUnknown { reason: String },

    #[error("no PIN: pass --pin-file FILE, set ROOT_CA_PIN, or run on a terminal to be prompted")]
    NoPin,

    #[error("no security officer PIN: a backup needs the token's SO to import the trusted wrap key. Pass --so-pin-file FILE, set ROOT_CA_SO_PIN, or run on a terminal to be prompted")]
    NoSoPin,

    #[error("the pre-issuance check failed: {0}. Nothing was signed by the token")]
    Lint(String),

    #[error("the token's signature does not verify in software ({0}); nothing was written. Check the token")]
    BadTokenSignature(String),

    #[error("ceremony log {path}: record {line}: {reason}")]
    Log {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("{path}: already exists; a ceremony never overwrites a file. Move it away, or name another output in the ceremony file")]
    OutputExists { path: PathBuf },

    #[error("output folder {path}: {reason}; nothing was signed. Create it or fix the path in the ceremony file")]
    OutputFolder { path: PathBuf, reason: String },

    #[error("the ceremony file names {path} twice as an output; give each output its own path")]
    OutputTwice { path: PathBuf },

    #[error("this root already signed {what} as intermediate serial {serial} (see {index}); a second signature makes a second valid intermediate. Deliver {kept} instead, or set allow-resign = true in the ceremony file if a new certificate is really meant")]
    AlreadySigned {
        what: String,
        serial: String,
        index: PathBuf,
        kept: PathBuf,
    },

    #[error("intermediate serial {serial} was signed and recorded (index and log; certificate kept at {kept}), but {output} could not be written: {reason}. Fix the cause and deliver {kept}, or revoke serial {serial} with `root-ca revoke`")]
    Undelivered {
        serial: String,
        kept: PathBuf,
        output: PathBuf,
        reason: String,
    },

    #[error("CRL number {number} was signed and recorded (index and log), but {output} could not be written: {reason}. Fix the cause and run `root-ca crl` again: it signs CRL number {next}")]
    CrlUndelivered {
        number: u64,
        next: u64,
        output: PathBuf,
        reason: String,
    },

    #[error("the root's index {path} cannot be read ({reason}); the log cannot be checked against the head it records. Restore index.toml from version control")]
    IndexUnreadable { path: PathBuf, reason: String },

    #[error("request bundle {path}: {problem}; ask the requester for a new request bundle")]
    BadRequestBundle { path: PathBuf, problem: String },

    #[error("the request's key fingerprint is {got}, but the ceremony file expects {want}: this is not the request that was read out; stop and check with the requester")]
    FingerprintMismatch { got: String, want: String },

    #[error("an intermediate key must be P-256, P-384, Ed25519 or RSA of at least 3072 bits (the request's is {alg}); ask for a new request")]
    WeakRequestKey { alg: String },

    #[error("{path} is damaged")]
    SealedIdentityDamaged { path: PathBuf },

    #[error("this root never signed an intermediate with serial {serial}; see {index}")]
    UnknownSerial { serial: String, index: PathBuf },

    #[error("intermediate {serial} is already revoked ({reason})")]
    AlreadyRevoked { serial: String, reason: String },

    #[error("{path} is missing: is root-dir the folder `root-ca init` created?")]
    RootMissing { path: PathBuf },

    #[error("the request has no common name; set [certificate] common-name")]
    NoCommonName,

    #[error("{have} of the {need} custodian shares this ceremony needs were presented (custodians: {present}); nothing was done. Ask more custodians to take part: each passes --custodian-identity FILE with their own age identity, or types its path when prompted")]
    CustodyTooFewShares {
        have: usize,
        need: usize,
        present: String,
    },

    #[error("the identity {path} (recipient {recipient}) is not a custodian of custody generation {generation}; check custody/custody.toml for the custodians' recipients and use your own identity file")]
    CustodyUnknownIdentity {
        path: PathBuf,
        recipient: String,
        generation: u32,
    },

    #[error("custodian '{name}' presented their share twice; a share counts once. Ask another custodian to take part")]
    CustodyDuplicate { name: String },

    #[error("the share of custodian '{custodian}' (share {share}, {path}) is refused: {reason}. Nothing was done. Ask {custodian} to check it with `root-ca custody verify` and to restore the file from their printed sheet, or ask another custodian instead")]
    CustodyShareInvalid {
        custodian: String,
        share: u64,
        path: PathBuf,
        reason: String,
    },

    #[error("this root's token PIN is held in custody ({path}): --pin-file and ROOT_CA_PIN are not used. Unset them, and let the custodians present their shares with --custodian-identity FILE")]
    CustodyPinSource { path: PathBuf },

    #[error("this root has no custody ({path} is missing); set it up with `root-ca custody split` first")]
    CustodyMissing { path: PathBuf },

    #[error("custody is already set up for this root ({path}); to change the custodians or the threshold, run `root-ca custody resplit`")]
    CustodyExists { path: PathBuf },

    #[error("{path}: {reason}; restore custody/custody.toml from version control")]
    CustodyStateBad { path: PathBuf, reason: String },

    #[error("the root key was generated without backup (index.toml has no key-backup = true): it can never leave its token, and no backup of it can be made. A root meant to be backed up is made with [key] backup = true at init")]
    NotBackupKey,

    #[error("cross-sign: {reason}; nothing was signed")]
    CrossPair { reason: String },

    #[error("init failed after the root key was generated: {reason}; {cleanup}")]
    Unfinished { reason: String, cleanup: String },

    #[error("backup file {path}: {reason}")]
    BadBackup { path: PathBuf, reason: String },

    #[error("the backup in {backup} holds a key that is not the key of the root certificate {cert}; it is the backup of another root")]
    BackupMismatch { backup: PathBuf, cert: PathBuf },
}

// The library's concept errors reach this tool through its `Error` (converted at the edge).
impl From<pki_core::keys::KeyError> for RootError {
    fn from(e: pki_core::keys::KeyError) -> Self {
        Self::Core(e.into())
    }
}

impl From<pki_core::x509::X509Error> for RootError {
    fn from(e: pki_core::x509::X509Error) -> Self {
        Self::Core(e.into())
    }
}

impl RootError {
    /// The message `root-ca` prints: where the fix is in the ceremony file, it says where.
    pub fn message(&self) -> String {
        use pki_core::error::TokenError;
        let module = |e: &TokenError| {
            format!("{e}. Check the path in [token] module of the ceremony file ({SOFTHSM_HINT})")
        };
        match self {
            RootError::Token(e @ TokenError::Module { .. }) => module(e),
            RootError::Core(pki_core::Error::Token(e @ TokenError::Module { .. })) => module(e),
            other => other.to_string(),
        }
    }

    /// Ceremonies have no --force: an existing output gets the ceremony's own next step.
    pub fn from_output(e: pki_core::Error) -> Self {
        match e {
            pki_core::Error::OutputExists { path } => RootError::OutputExists { path },
            other => RootError::Core(other),
        }
    }

    pub fn pkcs11(op: &'static str, e: impl std::fmt::Display) -> Self {
        RootError::Token(pki_core::error::TokenError::failed(op, e))
    }
}

/// Where Debian's softhsm2 package puts the module, for the message about a wrong module path.
pub const SOFTHSM_HINT: &str =
    "SoftHSM2: /usr/lib/softhsm/libsofthsm2.so from the softhsm2 package";

pub type Result<T, E = RootError> = std::result::Result<T, E>;
