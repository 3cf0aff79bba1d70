//! One error type for the library. Every message says what went wrong *and* what to do next,
//! because these strings are what an operator reads at 3 a.m. Secrets never appear in them.

use std::path::PathBuf;

/// Errors of the PKI toolkit's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: already exists; refusing to overwrite it (pass --force to replace it)")]
    OutputExists { path: PathBuf },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what}: not valid PEM ({detail}); expected a '-----BEGIN {expected}-----' block")]
    MalformedPem {
        what: String,
        expected: &'static str,
        detail: String,
    },

    #[error("{what}: not a valid X.509 certificate ({detail})")]
    BadCertificate { what: String, detail: String },

    #[error("{what}: the CSR is not acceptable: {reason}")]
    CsrRejected { what: String, reason: String },

    #[error("weak or forbidden algorithm: {0}")]
    WeakAlgorithm(String),

    #[error(
        "unknown key algorithm '{0}'; use one of p256, p384, ed25519, rsa2048, rsa3072, rsa4096"
    )]
    UnknownAlgorithm(String),

    #[error(
        "the requested validity ends {requested}, after the issuer's certificate ends {issuer}; \
         a certificate never outlives its issuer: ask for fewer days or renew the issuer first"
    )]
    OutlivesIssuer { requested: String, issuer: String },

    #[error("the issuer certificate is not valid now (valid {not_before} to {not_after}); renew or rotate it first")]
    IssuerNotCurrent {
        not_before: String,
        not_after: String,
    },

    #[error("invalid validity: {0}")]
    BadValidity(String),

    #[error("{0}")]
    Policy(String),

    #[error("the private key does not match the certificate's public key ({0}); check that you passed the right pair")]
    KeyMismatch(String),

    #[error("{0}: not a CA certificate (basicConstraints CA:TRUE and keyUsage keyCertSign are required)")]
    NotCa(String),

    #[error("cannot decrypt {path}: {reason}")]
    KeyDecrypt { path: PathBuf, reason: String },

    #[error("no way to unlock the key at rest: pass --identity FILE, set PKI_AGE_IDENTITY, pass --passphrase-file FILE, or run on a terminal to be prompted")]
    NoKeySecret,

    #[error("{what} file {path} can be read or written by others (mode {mode:04o}); it holds a secret, so it is refused as ssh refuses an open key: run `chmod 600 {path}` (and check who has already read it)")]
    SecretFileOpen {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },

    #[error("{path}: no generation is waiting for a response, so there is nothing to abandon (`intermediate-ca status --dir {path}` shows the generations)")]
    NothingStaged { path: PathBuf },

    #[error("generation {generation} was requested with an age identity, not a passphrase: pass --identity FILE (the one given to `intermediate-ca request`)")]
    ReplyNeedsIdentity { generation: u32 },

    #[error("{path}: the staged generation {generation} belongs to request {staged}, not {given}; pass --request {staged} to abandon it (`intermediate-ca status` shows it)")]
    StagedRequestMismatch {
        path: PathBuf,
        generation: u32,
        staged: String,
        given: String,
    },

    #[error("{path}: not a CA folder managed by this toolkit ({reason}); create one with `intermediate-ca import` or `intermediate-ca request`")]
    NotCaDir { path: PathBuf, reason: String },

    #[error("ledger {path}: {reason}")]
    Ledger { path: PathBuf, reason: String },

    #[error("{what}: {reason}")]
    BadInput { what: String, reason: String },

    /// A cluster-file value that etcd, a shell or systemd would misread; `value` is already
    /// quoted and escaped for display.
    #[error("{file}: {field} = {value} {problem}; correct the cluster file and run again")]
    ClusterValue {
        file: String,
        field: String,
        value: String,
        problem: String,
    },

    #[error("signing failed: {0}")]
    Signing(String),

    #[error(transparent)]
    Token(#[from] TokenError),

    #[error("{path}: group or others may write to this folder (mode {mode:04o}), so anyone could plant or swap the files written into it; run `chmod go-w {path}` or choose a private folder")]
    UnsafeFolder { path: PathBuf, mode: u32 },

    #[error("another command is changing the CA folder {path} (it holds the folder's lock); wait for it to finish, then run this one again")]
    CaBusy { path: PathBuf },

    #[error("{path} already holds CRL number {on_disk} of this issuer, newer than the {new} just signed; nothing was replaced: run the command again to publish a newer one")]
    CrlNotNewer {
        path: PathBuf,
        on_disk: u64,
        new: u64,
    },

    #[error("{count} leaf/leaves of this batch cannot be skipped or issued again in {out}; nothing was issued or changed:\n{list}\nA certificate recorded active is never replaced silently: if it was deployed, leave it out of the batch file; if it is lost, revoke it (`issuer revoke SERIAL`) and run the batch again")]
    BatchConflict {
        out: PathBuf,
        count: usize,
        list: String,
    },

    #[error("{path}: the certificate (serial {serial}) was written and is recorded in the ledger, but a later step failed: {source}; check the folder, and if this certificate will not be used, revoke it (`issuer revoke {serial}`)")]
    IssuedButFailed {
        path: PathBuf,
        serial: String,
        #[source]
        source: Box<Error>,
    },

    #[error("injected failure at {point} ({path}); set only by tests through PKI_FAILPOINTS")]
    Injected { point: String, path: PathBuf },

    #[error("age identity {path}: {reason}")]
    Identity { path: PathBuf, reason: String },

    #[error(
        "{name} is outside the name constraints of the issuing CA '{issuer}' ({rule}): etcd, \
         openssl and every other validator would reject the certificate, so it was not issued. \
         Leave the name out, or have the root sign an intermediate whose constraints cover it \
         (docs/enrolment.md, section on name constraints)"
    )]
    NameNotPermitted {
        name: String,
        issuer: String,
        rule: String,
    },

    #[error(
        "the issuing CA '{issuer}' carries a name constraint this toolkit cannot check \
         ({constraint}); refusing to issue rather than sign a certificate validators may reject. \
         Use an intermediate constrained to DNS names and IP ranges only"
    )]
    UncheckableConstraint { issuer: String, constraint: String },

    #[error(
        "the active intermediate '{issuer}' (serial {serial}) is revoked by the root CRL {crl} \
         (revoked {revoked_at}): nothing is issued from a revoked CA. Enrol a new intermediate \
         (intermediate-ca request, root ceremony, intermediate-ca install), then \
         `issuer reissue` the leaves of this generation"
    )]
    IssuerRevoked {
        issuer: String,
        serial: String,
        crl: PathBuf,
        revoked_at: String,
    },

    #[error(
        "the intermediate in the response '{issuer}' (serial {serial}) is revoked by the root CRL \
         {crl} (revoked {revoked_at}): do not install it. Nothing was changed; the root must \
         sign a new request"
    )]
    InstallingRevoked {
        issuer: String,
        serial: String,
        crl: PathBuf,
        revoked_at: String,
    },

    #[error(
        "root CRL {crl}: {reason}; refusing to issue without a root CRL that verifies. Install \
         a good one with `intermediate-ca root-crl --dir CA_DIR FILE`"
    )]
    RootCrlUnusable { crl: PathBuf, reason: String },

    #[error(
        "{file}: CRL number {number} is not newer than the installed root CRL's ({installed}); \
         refusing to replace a root CRL with an older or different one of the same number. \
         Bring the latest CRL from the root ceremony"
    )]
    RootCrlNotNewer {
        file: PathBuf,
        number: String,
        installed: String,
    },

    #[error(
        "{what}: the request asks for CN={requested}, and no --cn was given; the CN is the \
         etcd user the certificate logs in as, so the operator must type it: pass --cn \
         {requested} if that is right"
    )]
    CnRequired { what: String, requested: String },

    #[error(
        "{what}: the request asks for CN={requested}, but --cn is {approved}; the CN is the etcd \
         user the certificate logs in as and is never taken from a request. Ask the requester \
         for a request with CN={approved}, or pass --cn {requested} if that user is right"
    )]
    CnMismatch {
        what: String,
        requested: String,
        approved: String,
    },

    #[error(
        "the {what} just signed does not verify with the public key of the issuing certificate \
         '{issuer}': the signing key is not that certificate's key (a wrong or substituted token \
         key?). Nothing was recorded or written; check the key with `intermediate-ca status`"
    )]
    SignatureCheckFailed { what: String, issuer: String },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn input(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::BadInput {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of a PKCS#11 token. Each says what to check next; none carries the PIN.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot load the PKCS#11 module {module}: {reason}. Check the path in [token] module / --pkcs11-module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so from the softhsm2 package)")]
    Module { module: PathBuf, reason: String },

    #[error("no token labelled '{label}' in {module} (tokens found: {found}). Check the token label, and SOFTHSM2_CONF for SoftHSM2")]
    NoToken {
        label: String,
        module: PathBuf,
        found: String,
    },

    #[error("token '{label}' refused the PIN (wrong PIN). Check the PIN source; repeated failures lock the token")]
    WrongPin { label: String },

    #[error(
        "token '{label}' is locked after too many wrong PINs; the security officer must unblock it"
    )]
    PinLocked { label: String },

    #[error("no private key labelled '{key}' in token '{token}'. Check the key label, or generate the key first")]
    NoKey { key: String, token: String },

    #[error("token '{token}' holds {count} {class} objects labelled '{key}'{id}; refusing to guess which one signs. Remove the objects not generated for this CA (pkcs11-tool --list-objects shows them)")]
    AmbiguousKey {
        key: String,
        token: String,
        class: &'static str,
        count: usize,
        /// ` with CKA_ID <hex>` when the lookup used the recorded ID, else empty.
        id: String,
    },

    #[error("the private and public objects labelled '{key}' in token '{token}' do not belong together ({reason}); refusing to sign. Check the token's objects with pkcs11-tool --list-objects")]
    KeyPairMismatch {
        key: String,
        token: String,
        reason: String,
    },

    #[error("key '{key}' in token '{token}' has {attribute}={value}: {why}; refusing to use it. Use a key generated inside the token by this toolkit")]
    WeakKey {
        key: String,
        token: String,
        attribute: &'static str,
        value: bool,
        why: &'static str,
    },

    #[error("token '{token}' already holds a key labelled '{key}'; refusing to create a second one. Choose a new key label")]
    KeyExists { key: String, token: String },

    #[error("PKCS#11 {op} failed: {reason}")]
    Pkcs11 { op: &'static str, reason: String },

    #[error("the token's signature is malformed: {0}")]
    BadSignature(String),

    #[error("{0}")]
    Refused(String),
}

impl TokenError {
    pub fn pkcs11(op: &'static str, e: impl std::fmt::Display) -> Self {
        TokenError::Pkcs11 {
            op,
            reason: e.to_string(),
        }
    }
}
