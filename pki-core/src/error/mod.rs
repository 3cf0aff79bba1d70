//! The library's error at its edge. Each concept folder owns its own error type —
//! [`KeyError`] (`keys/`), [`X509Error`] (`x509/`), [`TokenError`] (`keys/pkcs11/`) — and
//! [`Error`] wraps them (`Error::Key`, `Error::X509`, `Error::Token`) beside the errors of the
//! CA folder, the ledger, bundles and files, which are still here. Every message says what
//! went wrong *and* what to do next, because these strings are what an operator reads at 3 a.m.
//! Secrets never appear in them.

mod bundle;
mod cluster;
mod constructors;
mod input;
mod response;

use std::path::PathBuf;

pub use crate::keys::{KeyError, TokenError};
pub use crate::x509::X509Error;
pub use bundle::BundleProblem;
pub use cluster::ClusterRule;
pub use input::{BatchLeafProblem, CrlProblem, CsrProblem, KeyFileProblem, NameProblem};
pub use response::ResponseProblem;

/// Errors of the PKI toolkit's library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An output file already exists and `--force` was not given (checked before any work, and
    /// again by the final hard link of an atomic write).
    #[error("{path}: already exists; refusing to overwrite it")]
    OutputExists {
        /// The file that is already there.
        path: PathBuf,
    },

    /// A file system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The issuing CA certificate (or one being imported or installed) is not valid at the
    /// current time.
    #[error("the issuer certificate is not valid now (valid {not_before} to {not_after}); renew or rotate it first")]
    IssuerNotCurrent {
        /// The certificate's notBefore, RFC 3339.
        not_before: String,
        /// The certificate's notAfter, RFC 3339.
        not_after: String,
    },

    /// A CSR asks for names the operator did not approve.
    #[error("{what}: the CSR is not acceptable: it asks for names you did not approve ({names}); the CA decides the names")]
    UnapprovedNames {
        /// The request, as named in the message.
        what: String,
        /// The names not approved, `DNS:…`/`IP:…`, comma-separated.
        names: String,
    },

    /// A bundle leaf with only its certificate or only its key on disk.
    #[error(
        "{label}: only one of the certificate and key exists; move the leftover away and re-run"
    )]
    HalfLeaf {
        /// The leaf, as `FOLDER/ROLE`.
        label: String,
    },

    /// A bundle whose `ca.crt` holds none of the roots this run trusts.
    #[error("{path} holds another root than this CA's (and than the cluster file's also-trust roots): it is another PKI's bundle; write this one into another folder")]
    BundleOtherRoot {
        /// The bundle's trust file.
        path: PathBuf,
    },

    /// A cluster file's `also-trust` entry that is not a usable root.
    #[error("cluster file also-trust {path}: {problem}")]
    TrustRoot {
        /// The file named.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// A trust file change that drops a root some kept leaf may still chain to.
    #[error("{path} would stop trusting {root}, but {leaf} was not issued by this CA's intermediate and may chain to that root: members and clients holding it would be refused. Re-issue every leaf under the new chain first (a new bundle folder from the new intermediate, docs/root-rollover.md), install it everywhere, then drop the old root")]
    TrustDrop {
        /// The trust file that would change.
        path: PathBuf,
        /// The root that would be dropped.
        root: String,
        /// A kept leaf not issued by the current intermediate.
        leaf: PathBuf,
    },

    /// Another batch holds the output folder's lock.
    #[error("another `issuer batch` is writing into {out}; wait for it to finish, then re-run this one (it will skip what is done)")]
    BatchBusy {
        /// The batch's output folder.
        out: PathBuf,
    },

    /// A leaf that is revoked already.
    #[error("leaf {serial} is already revoked ({reason})")]
    AlreadyRevoked {
        /// Its serial.
        serial: String,
        /// The recorded reason.
        reason: String,
    },

    /// A CA folder without the pinned root a root CRL is checked against.
    #[error("{folder} has no pinned root certificate ({root}): a root CRL cannot be checked without it. Folders enrolled with `intermediate-ca install` have one; an imported CA has none")]
    NoPinnedRoot {
        /// The CA folder.
        folder: PathBuf,
        /// Where the pinned root would be.
        root: PathBuf,
    },

    /// A root CRL whose signature does not verify with the root's key.
    #[error("the root CRL is not signed by the root certificate; refusing to use it")]
    RootCrlNotByRoot,

    /// `import` into a folder that is already a managed CA folder.
    #[error("{path} is already a managed CA folder; import into a new, empty folder")]
    AlreadyManaged {
        /// The folder.
        path: PathBuf,
    },

    /// A new request while a generation still waits for its certificate.
    #[error("generation {generation} is already waiting for its certificate (request {request}); install its response first")]
    AlreadyStaged {
        /// The waiting generation.
        generation: u32,
        /// Its request ID.
        request: String,
    },

    /// A response bundle that must not be installed in this folder.
    #[error("{0}")]
    Response(ResponseProblem),

    /// A secret typed twice on the terminal differed between the two entries.
    #[error("the two entries of the {what} differ; nothing was changed: run the command again and type the same {what} twice")]
    EntriesDiffer {
        /// What was asked for (the prompt's label).
        what: String,
    },

    /// Abandoning a staged request in a CA folder where no generation is waiting for its
    /// response.
    #[error("{path}: no generation is waiting for a response, so there is nothing to abandon")]
    NothingStaged {
        /// The CA folder.
        path: PathBuf,
    },

    /// A response is opened with a passphrase, but its generation was requested with an age
    /// identity, so no reply identity sealed with a passphrase exists for it.
    #[error("generation {generation} was requested with an age identity, not a passphrase: its response opens only with that identity")]
    ReplyNeedsIdentity {
        /// The staged generation.
        generation: u32,
    },

    /// The request ID given to abandon a staged generation is not the one that generation
    /// was requested with.
    #[error("{path}: the staged generation {generation} belongs to request {staged}, not {given}")]
    StagedRequestMismatch {
        /// The CA folder.
        path: PathBuf,
        /// The staged generation.
        generation: u32,
        /// The request ID of the staged generation.
        staged: String,
        /// The request ID given.
        given: String,
    },

    /// A folder is not a usable CA folder: its `ca.toml` is missing, unreadable or invalid, or
    /// it has no active intermediate yet.
    #[error("{path}: not a CA folder managed by this toolkit ({reason}); create one with `intermediate-ca import` or `intermediate-ca request`")]
    NotCaDir {
        /// The folder.
        path: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },

    /// A ledger operation failed (an SQLite or PostgreSQL error, such as a serial recorded
    /// twice, or the database unreachable): nothing of the operation was recorded.
    #[error("ledger {ledger}: {reason}")]
    Ledger {
        /// The ledger file, or the database address (never its password).
        ledger: String,
        /// The database's message.
        reason: String,
    },

    /// A serial to revoke or renew that the ledger does not know.
    #[error(
        "no leaf with serial {serial} was issued from this CA folder's ledger (see `issuer list`)"
    )]
    UnknownSerial {
        /// The serial asked for.
        serial: String,
    },

    /// The ledger shows fewer CRL numbers or revocations than this host saw before: it was
    /// restored from an older backup, or is another database.
    #[error("ledger {ledger} is behind what this host saw ({mark}: CRL number {seen_crl}, {seen_revoked} revoked leaves; the ledger has CRL number {found_crl}, {found_revoked} revoked): it was restored from an older backup or is not this CA's database. Signing a CRL from it would un-revoke leaves. Restore the newest backup, or revoke again every leaf listed by the last CRL this CA published, then run `issuer ledger accept-restore`")]
    LedgerRolledBack {
        /// The ledger.
        ledger: String,
        /// The mark file of this host.
        mark: PathBuf,
        /// The CRL number this host saw.
        seen_crl: u64,
        /// The revoked leaves this host saw.
        seen_revoked: u64,
        /// The ledger's CRL number.
        found_crl: u64,
        /// The ledger's revoked leaves.
        found_revoked: u64,
    },

    /// The `ledger` settings of `ca.toml` cannot be used.
    #[error("{path}: ledger settings: {reason}")]
    LedgerConfig {
        /// The `ca.toml`.
        path: PathBuf,
        /// What is wrong, and what to write instead.
        reason: String,
    },

    /// A path that does not end in a file name (such as `..` or `/`), given where a file is
    /// written.
    #[error("{}: not a file name", .path.display())]
    NotAFileName {
        /// The path as given.
        path: PathBuf,
    },

    /// A file read as text that is not UTF-8.
    #[error("{}: not UTF-8 text", .path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },

    /// A batch or cluster file that is not valid TOML of its schema (unknown fields included).
    #[error("{what}: {detail}")]
    BadToml {
        /// The file, as named in the message.
        what: String,
        /// The TOML parser's complaint, on one line.
        detail: String,
    },

    /// A cluster file that breaks a rule across its values.
    #[error("{file}: {rule}")]
    ClusterRule {
        /// The cluster file, as named in the message.
        file: String,
        /// The rule it breaks.
        rule: ClusterRule,
    },

    /// A leaf of a batch file that cannot be issued.
    #[error("batch leaf {number} (cn '{cn}'): {problem}")]
    BatchLeaf {
        /// The leaf's position in the file, from 1.
        number: usize,
        /// Its CN as written.
        cn: String,
        /// Why it is refused.
        problem: BatchLeafProblem,
    },

    /// A cfssl CSR JSON document that does not parse.
    #[error("{what}: not a cfssl CSR JSON ({detail})")]
    NotCfsslJson {
        /// The document, as named in the message.
        what: String,
        /// The JSON parser's complaint.
        detail: String,
    },

    /// A cfssl `key` (`algo`, `size`) that the toolkit cannot generate.
    #[error("{what}: key algo '{algo}' {} is not supported; use ecdsa 256/384, ed25519 or rsa 2048/3072/4096", .size.map_or("without a size".to_string(), |s| format!("size {s}")))]
    CfsslKeyUnsupported {
        /// The document, as named in the message.
        what: String,
        /// The `algo` as written.
        algo: String,
        /// The `size`, when given.
        size: Option<u32>,
    },

    /// A bundle that cannot be opened or read.
    #[error("{what}: {problem}")]
    BadBundle {
        /// The bundle, as named in the message.
        what: String,
        /// What is wrong with it.
        problem: BundleProblem,
    },

    /// An IP address recorded in the ledger that does not parse: the ledger is damaged.
    #[error("ledger: the recorded IP address '{value}' does not parse; the ledger is damaged")]
    LedgerIp {
        /// The value as recorded.
        value: String,
    },

    /// A cluster-file value that etcd, a shell or systemd would misread; `value` is already
    /// quoted and escaped for display.
    #[error("{file}: {field} = {value} {problem}; correct the cluster file and run again")]
    ClusterValue {
        /// The cluster file.
        file: String,
        /// The field that holds the value.
        field: String,
        /// The value, quoted and escaped for display.
        value: String,
        /// How it would be misread.
        problem: String,
    },

    /// A thread of a batch that signs certificates ended without handing them over; nothing of
    /// its chunk was recorded or written.
    #[error("signing failed: a signing thread stopped before handing over its certificates; nothing of that chunk was recorded")]
    SigningThreadStopped,

    /// A PKCS#11 token operation failed; see [`TokenError`].
    #[error(transparent)]
    Token(#[from] TokenError),

    /// A folder that files are to be written into may be written by the group or others.
    #[error("{path}: group or others may write to this folder (mode {mode:04o}), so anyone could plant or swap the files written into it; run `chmod go-w {path}` or choose a private folder")]
    UnsafeFolder {
        /// The folder.
        path: PathBuf,
        /// Its permission bits (`mode & 0o7777`).
        mode: u32,
    },

    /// Another command kept the CA folder's lock for the whole wait (two minutes).
    #[error("another command is changing the CA folder {path} (it holds the folder's lock); wait for it to finish, then run this one again")]
    CaBusy {
        /// The CA folder.
        path: PathBuf,
    },

    /// Publishing a CRL would replace a file that holds a higher-numbered CRL of the same
    /// issuer.
    #[error("{path} already holds CRL number {on_disk} of this issuer, newer than the {new} just signed; nothing was replaced: run the command again to publish a newer one")]
    CrlNotNewer {
        /// The CRL file.
        path: PathBuf,
        /// The CRL number of the CRL in the file.
        on_disk: u64,
        /// The CRL number of the CRL just signed.
        new: u64,
    },

    /// A batch re-run found leaves recorded active (by a finished run or another command)
    /// whose files are missing or incomplete, or files that are no leaf of the ledger at a
    /// leaf's path; nothing was issued.
    #[error("{count} leaf/leaves of this batch cannot be skipped or issued again in {out}; nothing was issued or changed:\n{list}\nA certificate recorded active is never replaced silently: if it was deployed, leave it out of the batch file; if it is lost, revoke it (`issuer revoke SERIAL`) and run the batch again")]
    BatchConflict {
        /// The batch's output folder.
        out: PathBuf,
        /// How many conflicts were found.
        count: usize,
        /// One indented line per conflict.
        list: String,
    },

    /// A leaf was recorded and its certificate reached its final name, but a later step
    /// failed: the certificate exists and stays in the ledger.
    #[error("{path}: the certificate (serial {serial}) was written and is recorded in the ledger, but a later step failed: {source}; check the folder, and if this certificate will not be used, revoke it (`issuer revoke {serial}`)")]
    IssuedButFailed {
        /// The certificate file.
        path: PathBuf,
        /// The leaf's serial, hex.
        serial: String,
        /// The step that failed.
        #[source]
        source: Box<Error>,
    },

    /// A failure injected by a test at a failure point listed in `PKI_FAILPOINTS` (debug
    /// builds only; see [`crate::failpoint`]).
    #[error("injected failure at {point} ({path}); set only by tests through PKI_FAILPOINTS")]
    Injected {
        /// The failure point's name.
        point: String,
        /// The file the failing step was acting on (empty for a crash point).
        path: PathBuf,
    },

    /// The active intermediate is listed on the root CRL held in the CA folder.
    #[error(
        "the active intermediate '{issuer}' (serial {serial}) is revoked by the root CRL {crl} \
         (revoked {revoked_at}): nothing is issued from a revoked CA. Enrol a new intermediate \
         (intermediate-ca request, root ceremony, intermediate-ca install), then \
         `issuer reissue` the leaves of this generation"
    )]
    IssuerRevoked {
        /// The intermediate's subject.
        issuer: String,
        /// The intermediate's serial, hex.
        serial: String,
        /// The root CRL file that lists it.
        crl: PathBuf,
        /// When the root revoked it, RFC 3339.
        revoked_at: String,
    },

    /// The intermediate in a response bundle is listed on the response's root CRL or on the
    /// one the folder holds.
    #[error(
        "the intermediate in the response '{issuer}' (serial {serial}) is revoked by the root CRL \
         {crl} (revoked {revoked_at}): do not install it. Nothing was changed; the root must \
         sign a new request"
    )]
    InstallingRevoked {
        /// The intermediate's subject.
        issuer: String,
        /// The intermediate's serial, hex.
        serial: String,
        /// The root CRL file that lists it, or `root CRL in the response`.
        crl: PathBuf,
        /// When the root revoked it, RFC 3339.
        revoked_at: String,
    },

    /// The root CRL held in the CA folder cannot be trusted: unreadable, not issued or not
    /// signed by the pinned root, or there is no pinned root to check it against.
    #[error("root CRL {crl}: {reason}; refusing to issue without a root CRL that verifies")]
    RootCrlUnusable {
        /// The root CRL file.
        crl: PathBuf,
        /// Why it cannot be trusted.
        reason: String,
    },

    /// A root CRL being installed is not the installed one and its CRL number is not greater.
    #[error(
        "{file}: CRL number {number} is not newer than the installed root CRL's ({installed}); \
         refusing to replace a root CRL with an older or different one of the same number. \
         Bring the latest CRL from the root ceremony"
    )]
    RootCrlNotNewer {
        /// The root CRL file being installed.
        file: PathBuf,
        /// Its CRL number, decimal (`none` when absent).
        number: String,
        /// The installed root CRL's number, decimal (`none` when absent).
        installed: String,
    },

    /// A key, its secret or a signature failed; see [`KeyError`].
    #[error(transparent)]
    Key(#[from] KeyError),

    /// A certificate, CSR, CRL, name or profile was refused; see [`X509Error`].
    #[error(transparent)]
    X509(#[from] X509Error),
}

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
