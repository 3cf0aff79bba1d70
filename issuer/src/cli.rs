//! Command-line definitions of `issuer` (clap only; no behaviour here).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use pki_core::cli::SecretArgs;

/// Signs etcd leaf certificates with the online intermediate and keeps the ledger.
#[derive(Parser, Debug)]
#[command(name = "issuer", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Role {
    Server,
    Peer,
    Client,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Issue one etcd leaf: writes OUT/<role>.crt (leaf then intermediate) and, when the key is
    /// generated here, OUT/<role>.key (0600).
    Issue(IssueArgs),
    /// Issue many leaves from a TOML file of [[leaf]] tables (profile, cn, dns, ip, key, days);
    /// each goes to OUT/<cn>/. Crash-safe: re-running finishes an interrupted batch.
    Batch(BatchArgs),
    /// Write (or complete) an etcd bundle from a cluster file: per member server and peer
    /// certificates and an etcd.env, per client a certificate and an etcdctl.env, rbac.sh.
    /// Existing keys and certificates are never replaced: re-run after adding a member or client.
    Etcd(EtcdArgs),
    /// Find the known etcd TLS mistakes in a bundle or a member's folder (one line each).
    /// Exits non-zero when anything is wrong.
    CheckEtcd(CheckEtcdArgs),
    /// Revoke a leaf: the ledger records it, the next `issuer crl` lists it.
    Revoke(RevokeArgs),
    /// Sign and publish CRLs: the intermediate's own CRL (--out) and/or the etcd CRL file
    /// (--etcd-out FILE or --etcd-bundle DIR), which also carries the root's revocations.
    Crl(CrlArgs),
    /// Renew every live leaf that expires within a duration: same names and profile, new keys
    /// where we generated them, swapped into place beside the old files.
    Renew(RenewArgs),
    /// Re-issue every live leaf of an older intermediate generation under the active one (after
    /// a rotation), swapped into place; the old leaves are marked superseded.
    Reissue(ReissueArgs),
    /// List the leaves in the ledger.
    List(ListArgs),
    /// Verify a certificate file: chain to ROOT, profile conformance, key match, expiry.
    Verify(VerifyArgs),
    /// Run the online issuing service: agents renew their leaves over mutual TLS, enrol with
    /// one-time tokens and fetch CRLs; CRLs are re-signed on a schedule and after every
    /// revocation. SIGHUP reloads the CA folder, SIGTERM drains and stops.
    Serve(ServeArgs),
    /// One-time enrolment tokens for the online service.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The installed root CRL in the etcd CRL: end the hold of its new entries now.
    #[command(subcommand)]
    RootCrl(RootCrlCommand),
    /// The ledger: move it to PostgreSQL (several `issuer serve` hosts), or accept one restored
    /// from a backup.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// The service's audit log (audit.log in the CA folder).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Every member and client of a cluster file as the CA host sees it: current leaf, last
    /// renewal and its confirmation, what the service last saw of its agent (request, CRL
    /// number fetched, refusals in a row), and a state: ok, renew overdue, failing, expired,
    /// revoked, never enrolled. Exits 1 when any entry is overdue, failing, expired or revoked.
    Fleet(FleetArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write man pages for this tool and its subcommands into a folder.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

// The arguments of `issuer issue` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct IssueArgs {
    pub role: Role,
    /// The intermediate-ca folder to sign with.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Common name: the member name, or the etcd RBAC user for a client. Required with
    /// --csr or --cfssl-json when the request proposes a CN, and must equal it: a request's
    /// CN is never certified unless typed here.
    #[arg(long)]
    pub cn: Option<String>,
    /// DNS subject alternative name (repeatable).
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// IP subject alternative name (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ip: Vec<IpAddr>,
    /// Lifetime in days (default 90; never past the intermediate).
    #[arg(long)]
    pub days: Option<u32>,
    /// A lifetime shorter than a day for drills and tests (e.g. 30s, 2m; at least 10s).
    #[arg(long, value_name = "DURATION", conflicts_with = "days")]
    pub lifetime: Option<String>,
    /// Generate the key here: p256 (default), p384, ed25519, rsa2048, rsa3072, rsa4096.
    #[arg(long, value_name = "ALG", conflicts_with = "csr")]
    pub key: Option<String>,
    /// Certify the public key of this PKCS#10 CSR instead (the key stays with the requester).
    /// Every name it asks for must be passed with --dns/--ip, and its CN with --cn.
    #[arg(long, value_name = "FILE")]
    pub csr: Option<PathBuf>,
    /// Read CN, hosts and key algorithm from a cfssl CSR JSON (etcd's hack/tls-setup); its
    /// CN must be confirmed with --cn.
    #[arg(long, value_name = "FILE", conflicts_with = "csr")]
    pub cfssl_json: Option<PathBuf>,
    /// Issue a leaf even though the CSR asks for CA:TRUE (the request is ignored: the
    /// profile decides every extension).
    #[arg(long)]
    pub ignore_requested_ca: bool,
    /// Replace existing output files.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// The arguments of `issuer batch` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct BatchArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The batch file.
    pub file: PathBuf,
    /// Signing threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// The arguments of `issuer etcd` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct EtcdArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The cluster file (TOML): members, clients, proxies, roles, target etcd version.
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The bundle folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The root certificate (default: the root pinned in the CA folder at install).
    #[arg(long, value_name = "FILE")]
    pub root: Option<PathBuf>,
    /// Issue no leaf here (no key on the CA host): every member and client folder gets its
    /// trust file, env file, agent files and a one-time token (`enrol.token`, 0600) with which
    /// its host's `pki-agent enrol` obtains its leaves from `issuer serve`. Needs `service` in
    /// the cluster file; not for clusters with proxies.
    #[arg(long)]
    pub enrol_only: bool,
    /// With --enrol-only: how long each token works (at most 24h).
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        requires = "enrol_only"
    )]
    pub token_ttl: String,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// The arguments of `issuer check-etcd` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct CheckEtcdArgs {
    /// A bundle (with nodes/ and clients/) or one member's folder (with etcd.env).
    pub dir: PathBuf,
    /// Report certificates that expire within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: i64,
    /// Judge every member as running this etcd (3.4, 3.5, 3.6 or e.g. 3.6.5) instead of the
    /// version line of its etcd.env: check members before an upgrade.
    #[arg(long, value_name = "VERSION", value_parser = pki_core::etcd::EtcdVersion::parse)]
    pub etcd_version: Option<pki_core::etcd::EtcdVersion>,
    /// Also probe a running member: https://HOST:PORT (needs --cacert, --cert, --key).
    #[arg(long, value_name = "URL", requires_all = ["cacert", "cert", "key"])]
    pub endpoint: Option<String>,
    /// The root certificate to trust for --endpoint.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// A client chain file for --endpoint.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// The client's key for --endpoint.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

// The arguments of `issuer serve` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The intermediate-ca folder to sign with.
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// Address to listen on, as IP:PORT (port 0 picks a free one and prints it).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// The service's own certificate chain (a server leaf of this CA for the service's host
    /// name or address, then the intermediate), e.g. from `issuer issue server`.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// The service certificate's private key.
    #[arg(long, value_name = "FILE")]
    pub tls_key: PathBuf,
    /// The root certificate, when the CA folder has none pinned (an imported CA).
    #[arg(long, value_name = "FILE")]
    pub root: Option<PathBuf>,
    /// Lifetime of the leaves the service issues (e.g. 2m, 12h), instead of the profile's 90
    /// days: for renewal drills and tests. At least 10s.
    #[arg(long, value_name = "DURATION")]
    pub leaf_lifetime: Option<String>,
    /// Validity of each CRL the service signs, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub crl_days: u32,
    /// Re-sign the CRLs at least this often (e.g. 1h, 30m), besides after every revocation.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub crl_refresh: String,
    /// Requests one identity (a leaf, or an address for requests without a certificate) may
    /// make at once.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_burst: u32,
    /// Requests one identity may make per minute, sustained.
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_per_minute: u32,
    /// Connections one source (an IPv4 address, an IPv6 /64) may have open at once; more are
    /// closed at once. Raise it for a proxy or a load generator in front of the service.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_source: u32,
    /// Also serve GET /metrics and /v1/health in plain HTTP on this loopback address (e.g.
    /// 127.0.0.1:9464) for a scraper on the same host; the TLS listener then no longer
    /// answers /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The longest a new entry of the installed root CRL stays out of the etcd CRL while
    /// unexpired leaves still chain to the intermediate it revokes, so their agents move them
    /// first (e.g. 10m, 1h). Entries an etcd CRL has listed are listed for ever after.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub root_crl_hold: String,
    /// A file naming age identity files, one path per line, tried in order to unlock the
    /// active intermediate; re-read at start and at every SIGHUP, so that a new generation
    /// protected by a new identity (a compromise rotation) is loaded by adding its file here.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["identity", "passphrase_file"])]
    pub identity_list: Option<PathBuf>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a one-time enrolment token for one member or client of a cluster file: it
    /// obtains exactly that entry's leaves (a member: server and peer; a client: its client
    /// leaf) once, before it expires. The token is printed once and stored only as a hash.
    Create(TokenCreateArgs),
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain of audit.log: every line names the SHA-256 of the line before it,
    /// so an edited, removed, inserted or reordered line is found and named. Prints the line
    /// count and the head hash (write it down: a later truncation then shows too). Exits 1 on a
    /// broken chain.
    Verify(AuditVerifyArgs),
}

// The arguments of `issuer fleet`.
#[derive(Args, Debug)]
pub struct FleetArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The cluster file whose members and clients are listed.
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    #[arg(long)]
    pub json: bool,
}

// The arguments of `issuer audit verify`.
#[derive(Args, Debug)]
pub struct AuditVerifyArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum RootCrlCommand {
    /// End the hold of every entry of the installed root CRL now: the service's next etcd CRL
    /// (within a second) lists them all, even where leaves still chain to a revoked
    /// intermediate; those hosts are cut off until they are re-issued or re-enrolled. Run it
    /// on every CA host that serves this folder.
    Release(RootCrlReleaseArgs),
}

// The arguments of `issuer root-crl release`.
#[derive(Args, Debug)]
pub struct RootCrlReleaseArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Copy the folder's SQLite ledger into an empty PostgreSQL database in one transaction,
    /// read every row back and compare it with the source, then point ca.toml at the database.
    /// ledger.sqlite is left as it was. Run again, it finds the same rows and changes nothing;
    /// a database holding other rows is refused.
    Migrate(LedgerMigrateArgs),
    /// Accept the ledger as it is now after it was refused as older than what this host saw
    /// (restored from a backup): only once the revocations it lost are revoked again.
    AcceptRestore(LedgerAcceptArgs),
}

// The arguments of `issuer ledger migrate` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct LedgerMigrateArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The ledger to copy: `sqlite` (the folder's ledger.sqlite) or an SQLite file.
    #[arg(long, value_name = "SQLITE", default_value = "sqlite")]
    pub from: String,
    /// The database: postgres://USER@HOST:PORT/DATABASE (no password in it).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The file holding the database password (0600); else PGPASSFILE or ~/.pgpass.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The CA file the database's TLS certificate chains to (TLS is then required).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

// The arguments of `issuer ledger accept-restore`.
#[derive(Args, Debug)]
pub struct LedgerAcceptArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// Confirms that every revocation the restored ledger lost was revoked again.
    #[arg(long)]
    pub revocations_replayed: bool,
}

// The arguments of `issuer token create` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct TokenCreateArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The cluster file that names the member or client.
    #[arg(long, value_name = "FILE")]
    pub cluster: PathBuf,
    /// The member ([[member]] name) the token enrols.
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with = "client",
        required_unless_present = "client"
    )]
    pub member: Option<String>,
    /// The client ([[client]] name) the token enrols.
    #[arg(long, value_name = "NAME")]
    pub client: Option<String>,
    /// How long the token works (at most 24h).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: String,
    /// Write the token to this new file (0600) instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

// The arguments of `issuer revoke` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The serial, hex as `issuer list` or `openssl x509 -serial` prints it.
    pub serial: String,
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
    /// cessationOfOperation, privilegeWithdrawn.
    #[arg(long)]
    pub reason: String,
}

// The arguments of `issuer crl` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct CrlArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The intermediate's direct CRL (standard; for any validator).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The etcd CRL file, listing revoked leaves and revoked intermediates: DER (what every
    /// etcd from 3.4 to 3.6 reads), or PEM if FILE ends in .pem (etcd 3.6 cannot read that).
    #[arg(long, value_name = "FILE")]
    pub etcd_out: Option<PathBuf>,
    /// Install the etcd CRL file into a bundle: BUNDLE/crl.der and every nodes/*/crl.der (DER),
    /// and every crl.pem left by older bundles (PEM) until etcd.env names crl.der.
    #[arg(long, value_name = "DIR")]
    pub etcd_bundle: Option<PathBuf>,
    /// The root's CRL (default: the one installed from the last response bundle).
    #[arg(long, value_name = "FILE")]
    pub root_crl: Option<PathBuf>,
    /// The root certificate (default: the root pinned in the CA folder).
    #[arg(long, value_name = "FILE")]
    pub root: Option<PathBuf>,
    /// nextUpdate, in days from now.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// The arguments of `issuer renew` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct RenewArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// e.g. 30d, 12h, 2w.
    #[arg(long, value_name = "DURATION")]
    pub expiring_within: String,
    /// Show what would be renewed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// The arguments of `issuer reissue` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct ReissueArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// The generation whose leaves are re-issued (see `intermediate-ca status`).
    #[arg(long, value_name = "GENERATION")]
    pub from: u32,
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
}

// The arguments of `issuer list` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long, value_name = "DIR")]
    pub ca: PathBuf,
    /// Only leaves that expire within this duration (e.g. 30d, 12h).
    #[arg(long, value_name = "DURATION")]
    pub expiring_within: Option<String>,
    #[arg(long)]
    pub json: bool,
}

// The arguments of `issuer verify` (a plain comment: the variant's doc is its help).
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The root certificate (the only trust anchor).
    #[arg(long, value_name = "ROOT")]
    pub root: PathBuf,
    /// The chain file (leaf then intermediate).
    pub file: PathBuf,
    /// The role the certificate must conform to.
    #[arg(long)]
    pub role: Option<Role>,
    /// The private key that must match the certificate.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Warn when the certificate expires within this many days.
    #[arg(long, default_value_t = 30)]
    pub warn_days: i64,
    #[arg(long)]
    pub json: bool,
}

impl From<Role> for pki_core::x509::LeafRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Server => pki_core::x509::LeafRole::Server,
            Role::Peer => pki_core::x509::LeafRole::Peer,
            Role::Client => pki_core::x509::LeafRole::Client,
        }
    }
}

/// The hidden doc-generation subcommands; None for every other command.
pub fn generate_docs(command: &Command) -> Option<std::io::Result<()>> {
    use pki_core::cli::generated_docs;
    match command {
        Command::Completions { shell } => Some(generated_docs::completions::<Cli>(*shell)),
        Command::Manpages { dir } => Some(generated_docs::manpages::<Cli>(dir)),
        _ => None,
    }
}
