//! `issuer serve`: the online issuing service of one CA folder.
//!
//! One process holds the unlocked intermediate. Connections are TLS 1.3; a client may present
//! a certificate of this PKI (renew, confirm) or none (enrol with a token, CRLs, health,
//! metrics). Every request is rate-limited per identity and written to the audit log before
//! its answer leaves. The CRLs are re-signed on a schedule and as soon as the ledger gains a
//! revocation (`issuer revoke` from the command line included). SIGHUP reloads the CA folder
//! (after an intermediate rotation) and the service certificate; SIGTERM or SIGINT stops
//! accepting, lets requests in flight finish, and exits.

mod admission;
mod audit;
mod core;
mod limit;
mod metrics;
mod metrics_listener;
mod process;
mod refusal;
mod routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use self::audit::{
    verify as verify_audit_log, Broken as AuditBroken, Verified as AuditVerified,
};
use self::core::Core;
pub use self::core::{token_hash, CrlSet, Unlock};
pub use self::limit::RateLimit;
pub use self::process::raise_open_files;
use crate::error::{ServiceError, ServiceResult};
use pki_core::group_sync::Ticket;

/// How the service runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The CA folder.
    pub ca_dir: PathBuf,
    /// Where to listen (port 0: any free port, printed at start).
    pub listen: SocketAddr,
    /// The service's certificate chain (leaf then intermediate), PEM.
    pub tls_cert: PathBuf,
    /// The service's private key, PEM.
    pub tls_key: PathBuf,
    /// The root certificate; None for the one pinned in the CA folder.
    pub root: Option<PathBuf>,
    /// Lifetime of the leaves the service issues, instead of the profile's (drills, tests).
    pub leaf_lifetime: Option<time::Duration>,
    /// The longest a new root CRL entry is held out of the etcd CRL while leaves still chain
    /// to the intermediate it revokes (see `pki_core::ca::RootHold`).
    pub root_crl_hold: time::Duration,
    /// Validity of each CRL signed, in days.
    pub crl_days: u32,
    /// The CRLs are re-signed at least this often.
    pub crl_refresh: Duration,
    /// How often the ledger is looked at for new revocations.
    pub revocation_poll: Duration,
    /// Per-identity rate limit.
    pub rate: RateLimit,
    /// How long requests in flight may take to finish at shutdown.
    pub drain: Duration,
    /// Connections one source (an IPv4 address, an IPv6 /64) may have open at once.
    pub max_per_source: usize,
    /// A plain-HTTP listener on a loopback address for `/metrics` and `/v1/health` (scrapes
    /// from the same host); with it, the TLS listener no longer answers `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Defaults for everything but the folder, address and certificate.
    pub fn new(ca_dir: PathBuf, listen: SocketAddr, tls_cert: PathBuf, tls_key: PathBuf) -> Self {
        Config {
            ca_dir,
            listen,
            tls_cert,
            tls_key,
            root: None,
            leaf_lifetime: None,
            root_crl_hold: pki_core::ca::DEFAULT_ROOT_CRL_HOLD,
            crl_days: 7,
            crl_refresh: Duration::from_secs(3600),
            revocation_poll: Duration::from_secs(1),
            rate: RateLimit::default(),
            drain: Duration::from_secs(30),
            max_per_source: 64,
            metrics_listen: None,
        }
    }
}

/// What every connection shares.
struct Shared {
    config: Config,
    core: Mutex<Core>,
    /// What anonymous requests read about the active intermediate, apart from the core's
    /// lock (which a signing may hold for long): updated at start and on every reload.
    snapshot: RwLock<Snapshot>,
    /// At most this many connections at once; more are closed at once.
    connections: Arc<tokio::sync::Semaphore>,
    /// Connections per source.
    sources: Arc<admission::Sources>,
    /// A reload is running (a second SIGHUP meanwhile is ignored).
    reloading: AtomicBool,
    crls: RwLock<CrlSet>,
    tls: RwLock<Arc<rustls::ServerConfig>>,
    metrics: metrics::Metrics,
    limiter: Mutex<limit::Limiter>,
    audit: audit::AuditLog,
    unlock: Box<Unlock>,
    degraded: AtomicBool,
    /// The last reload (SIGHUP) failed: the service still signs with the intermediate it had,
    /// which after a compromise rotation is the revoked one. Health answers 503 until a
    /// reload succeeds.
    reload_failed: Mutex<Option<String>>,
    draining: AtomicBool,
    /// The service's own certificate: when it is due for renewal, and its end (None when it
    /// cannot be read).
    own_cert: Mutex<Option<(OffsetDateTime, OffsetDateTime)>>,
    /// The per-agent gauges, refreshed every 15 s.
    agents: Mutex<Vec<metrics::AgentGauge>>,
    /// What the service saw of agents since the last write to the ledger: telemetry for
    /// `issuer fleet`, written once a second in one transaction (not one synced commit per
    /// request), and at shutdown.
    seen: Mutex<Vec<pki_core::ca::AgentSeen>>,
}

/// The active intermediate as anonymous requests see it.
#[derive(Clone)]
struct Snapshot {
    info: crate::protocol::CaInfo,
    not_after: OffsetDateTime,
}

impl Snapshot {
    fn of(core: &Core) -> Self {
        Snapshot {
            info: core.ca_info(),
            not_after: core.intermediate_not_after(),
        }
    }
}

/// Connections served at once, at most (fewer when the open-files limit is lower).
const MAX_CONNECTIONS: usize = 1024;

/// Connections served at once under the process's open-files limit (each is a file; the
/// ledger, logs and listeners need a few more).
fn max_connections() -> usize {
    let files = process::open_files_limit().saturating_sub(64);
    (files.min(MAX_CONNECTIONS as u64) as usize).max(16)
}

/// A line on the service's log (stderr), with the time.
fn log(msg: impl std::fmt::Display) {
    let t = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    eprintln!("{t} issuer serve: {msg}");
}

/// The service's TLS configuration from its files, checked against the CA's root.
fn load_tls(config: &Config, root_der: &[u8]) -> ServiceResult<Arc<rustls::ServerConfig>> {
    let root = rustls::pki_types::CertificateDer::from(root_der.to_vec());
    let chain = crate::tls::load_chain(&config.tls_cert)?;
    crate::tls::check_service_chain(&config.tls_cert, &chain, &root)?;
    let key = crate::tls::load_key(&config.tls_key)?;
    Ok(Arc::new(crate::tls::server_config(chain, key, &root)?))
}

/// Runs the service until SIGTERM or SIGINT. `unlock` unlocks the active intermediate at start
/// and on every SIGHUP. `bound`, when given, receives the listening address.
pub async fn serve(
    config: Config,
    unlock: Box<Unlock>,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> ServiceResult<()> {
    let dir = config.ca_dir.clone();
    let root = config.root.clone();
    let life = config.leaf_lifetime;
    let days = config.crl_days;
    let hold = config.root_crl_hold;
    let rate = config.rate;
    // The ledger is used on blocking threads only (PostgreSQL's client blocks).
    let (opened, unlock) = tokio::task::spawn_blocking(move || {
        let opened = Core::open(&dir, root.as_deref(), life, &unlock).and_then(|mut core| {
            core.set_root_crl_hold(hold);
            core.set_rate_limit(rate);
            let crls = core.sign_crls(OffsetDateTime::now_utc(), days)?;
            Ticket::settle(core.durable_ticket(), &dir)?;
            Ok((core, crls))
        });
        (opened, unlock)
    })
    .await
    .expect("join");
    let (core, crls) = opened?;
    let tls = load_tls(&config, core.root_der())?;
    let audit = audit::AuditLog::open(&config.ca_dir.join("audit.log"))?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServiceError::Listen {
                addr: config.listen.to_string(),
                source,
            })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            addr: config.listen.to_string(),
            source,
        })?;
    log(format_args!(
        "listening on {local}: generation {}, etcd CRL {}{}",
        core.generation(),
        crls.etcd_number,
        match core.group_commit() {
            true => "; ledger commits synced in groups before each answer",
            false => "",
        }
    ));
    let metrics = metrics::Metrics::default();
    // The CRLs signed at start count as signed.
    metrics.crls_signed.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        limiter: Mutex::new(limit::Limiter::new(config.rate)),
        config,
        snapshot: RwLock::new(Snapshot::of(&core)),
        connections: Arc::new(tokio::sync::Semaphore::new(max_connections())),
        sources: Arc::new(admission::Sources::default()),
        reloading: AtomicBool::new(false),
        core: Mutex::new(core),
        crls: RwLock::new(crls),
        tls: RwLock::new(tls),
        metrics,
        audit,
        unlock,
        degraded: AtomicBool::new(false),
        reload_failed: Mutex::new(None),
        draining: AtomicBool::new(false),
        own_cert: Mutex::new(None),
        agents: Mutex::new(Vec::new()),
        seen: Mutex::new(Vec::new()),
    });
    note_own_cert(&shared);
    if let Some(tx) = bound {
        let _ = tx.send(local);
    }
    let scrapes = match shared.config.metrics_listen {
        Some(addr) => Some(metrics_listener::start(shared.clone(), addr).await?),
        None => None,
    };
    let crl_task = tokio::spawn(crl_loop(shared.clone()));
    let result = accept_loop(&shared, listener).await;
    crl_task.abort();
    if let Some(t) = scrapes {
        t.abort();
    }
    log("stopped");
    result
}

async fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) -> ServiceResult<()> {
    let sig = |k| signal(k).map_err(|e| ServiceError::TlsSetup(format!("signal handler: {e}")));
    let (mut term, mut int, mut hup) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Its source's share first, then one of the service's slots; without
                    // either, the connection is closed at once (agents retry later).
                    let Some(admitted) = shared.sources.admit(peer.ip(), shared.config.max_per_source)
                    else {
                        shared.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    match shared.connections.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let (s, stop) = (shared.clone(), stop_rx.clone());
                            conns.spawn(async move {
                                connection(s, tcp, peer, stop).await;
                                drop((permit, admitted));
                            });
                        }
                        Err(_) => {
                            shared.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(e) => {
                    log(format_args!("accept: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // In the background: accepting and SIGTERM go on while the key is unlocked.
                if !shared.reloading.swap(true, Ordering::SeqCst) {
                    let s = shared.clone();
                    tokio::spawn(async move {
                        reload(s.clone()).await;
                        s.reloading.store(false, Ordering::SeqCst);
                    });
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    shared.draining.store(true, Ordering::SeqCst);
    drop(listener);
    let _ = stop_tx.send(true);
    log(format_args!("draining {} connection(s)", conns.len()));
    let drained = tokio::time::timeout(shared.config.drain, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log(format_args!(
            "{} connection(s) cut after the drain time",
            conns.len()
        ));
    }
    write_seen(shared).await;
    Ok(())
}

/// SIGHUP: the CA folder again (a rotation makes a new generation active) and the service's
/// certificate files. A failed reload keeps everything as it was.
async fn reload(shared: Arc<Shared>) {
    let s = shared.clone();
    let done = tokio::task::spawn_blocking(move || -> ServiceResult<u32> {
        let mut core = Core::open(
            &s.config.ca_dir,
            s.config.root.as_deref(),
            s.config.leaf_lifetime,
            &s.unlock,
        )?;
        core.set_root_crl_hold(s.config.root_crl_hold);
        let tls = load_tls(&s.config, core.root_der())?;
        let crls = core.sign_crls(OffsetDateTime::now_utc(), s.config.crl_days)?;
        Ticket::settle(core.durable_ticket(), &s.config.ca_dir)?;
        let generation = core.generation();
        let snapshot = Snapshot::of(&core);
        {
            let mut old = s.core.lock().unwrap_or_else(|p| p.into_inner());
            core.inherit_limits(&mut old);
            *old = core;
        }
        *s.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
        *s.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
        *s.crls.write().unwrap_or_else(|p| p.into_inner()) = crls;
        note_own_cert(&s);
        Ok(generation)
    })
    .await
    .expect("join");
    let mut failed = shared
        .reload_failed
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match done {
        Ok(g) => {
            shared.metrics.crls_signed.fetch_add(1, Ordering::Relaxed);
            *failed = None;
            log(format_args!("reloaded: generation {g} active"))
        }
        Err(e) => {
            shared
                .metrics
                .reload_failures
                .fetch_add(1, Ordering::Relaxed);
            log(format_args!(
                "RELOAD FAILED, still signing with the intermediate loaded before (health now answers 503 until a reload succeeds): {e}"
            ));
            *failed = Some(e.to_string());
        }
    }
}

/// Writes what the service saw of agents since the last time, in one transaction.
async fn write_seen(shared: &Arc<Shared>) {
    let seen = std::mem::take(&mut *shared.seen.lock().unwrap_or_else(|p| p.into_inner()));
    if seen.is_empty() {
        return;
    }
    let s = shared.clone();
    let written = tokio::task::spawn_blocking(move || {
        s.core
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note_seen(&seen)
    })
    .await
    .expect("join");
    if let Err(e) = written {
        log(format_args!("could not record what the agents did: {e}"));
    }
}

/// Every 15 s, the per-agent gauges from the ledger (read on the blocking threads); with a
/// drill's short `--leaf-lifetime`, every thirtieth of it (at least every second), so a
/// renewed leaf does not show as overdue for a large part of its life.
async fn refresh_agent_gauges(shared: &Arc<Shared>) {
    let every = shared
        .config
        .leaf_lifetime
        .map_or(15, |l| (l.whole_seconds() / 30).clamp(1, 15));
    if OffsetDateTime::now_utc().unix_timestamp() % every != 0 {
        return;
    }
    let s = shared.clone();
    let read = tokio::task::spawn_blocking(move || {
        s.core
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .agent_gauges()
    })
    .await
    .expect("join");
    match read {
        Ok(g) => *shared.agents.lock().unwrap_or_else(|p| p.into_inner()) = g,
        Err(e) => log(format_args!(
            "could not read the agents for the metrics: {e}"
        )),
    }
}

/// Reads when the service's own certificate is due (at start, after a reload or a renewal).
fn note_own_cert(s: &Shared) {
    let core = s.core.lock().unwrap_or_else(|p| p.into_inner());
    let due = match core.own_cert_due(&s.config.tls_cert) {
        Ok(d) => Some(d),
        Err(e) => {
            log(format_args!(
                "cannot read the service's own certificate: {e}"
            ));
            None
        }
    };
    drop(core);
    *s.own_cert.lock().unwrap_or_else(|p| p.into_inner()) = due;
}

/// The service holds the CA: at 2/3 of its own certificate's life (or at once when another
/// generation issued it) it issues itself a successor, swaps it into place and loads it for
/// new connections; connections open keep theirs. A failure is logged and tried again in ten
/// minutes.
async fn renew_own_cert_when_due(shared: &Arc<Shared>) {
    let now = OffsetDateTime::now_utc();
    let due = *shared.own_cert.lock().unwrap_or_else(|p| p.into_inner());
    if due.is_none_or(|(at, _)| now < at) {
        return;
    }
    let s = shared.clone();
    let done = tokio::task::spawn_blocking(move || -> ServiceResult<(String, String)> {
        let mut core = s.core.lock().unwrap_or_else(|p| p.into_inner());
        let renewed = core.renew_own_cert(&s.config.tls_cert, &s.config.tls_key, now)?;
        let tls = load_tls(&s.config, core.root_der())?;
        let pending = core.durable_ticket();
        drop(core);
        Ticket::settle(pending, &s.config.ca_dir)?;
        *s.tls.write().unwrap_or_else(|p| p.into_inner()) = tls;
        note_own_cert(&s);
        Ok(renewed)
    })
    .await
    .expect("join");
    match done {
        Ok((old, new)) => {
            shared.metrics.own_renewals.fetch_add(1, Ordering::Relaxed);
            log(format_args!(
                "renewed the service's own certificate: {old} -> {new}, in {} (new connections use it)",
                shared.config.tls_cert.display()
            ))
        }
        Err(e) => {
            log(format_args!(
                "COULD NOT RENEW the service's own certificate ({}): {e}; trying again in 10 minutes",
                shared.config.tls_cert.display()
            ));
            if let Some((at, _)) = shared
                .own_cert
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                *at = now + time::Duration::minutes(10);
            }
        }
    }
}

/// Re-signs the CRLs when the ledger gained a revocation or the last ones are older than the
/// refresh interval; a failure marks the service degraded and is retried at the next poll.
async fn crl_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.revocation_poll);
    loop {
        tick.tick().await;
        renew_own_cert_when_due(&shared).await;
        write_seen(&shared).await;
        refresh_agent_gauges(&shared).await;
        let s = shared.clone();
        let res = tokio::task::spawn_blocking(move || -> pki_core::Result<Option<u64>> {
            let now = OffsetDateTime::now_utc();
            let (mark, signed_at, held, served) = {
                let c = s.crls.read().unwrap_or_else(|p| p.into_inner());
                (
                    c.mark,
                    c.this_update,
                    c.root_entries_held.clone(),
                    c.etcd_number.max(c.direct_number),
                )
            };
            let mut core = s.core.lock().unwrap_or_else(|p| p.into_inner());
            let stale = now - signed_at >= s.config.crl_refresh;
            // While root CRL entries are held back, the hold is looked at on every poll: an
            // entry goes into the etcd CRL as soon as its last leaf is replaced, or at its
            // deadline; and the leaves holding it are named in the log once a minute.
            let rotation_moved = !held.is_empty() && {
                let hold = core.root_crl_hold(now)?;
                if now.unix_timestamp() % 60 == 0 {
                    for line in hold.describe() {
                        log(format_args!("{line}"));
                    }
                }
                hold.skip() != held
            };
            // A CRL the command line signed meanwhile (`issuer crl`, `issuer etcd`) drew a
            // higher number: the service catches up, so that agents do not keep a CRL
            // installed by hand longer than needed (they never go back to an older one).
            // At most once a minute: instances sharing one ledger overtake each other.
            let overtaken =
                now - signed_at >= time::Duration::minutes(1) && core.last_crl_number()? > served;
            if !stale && !rotation_moved && !overtaken && core.revocation_mark()? == mark {
                return Ok(None);
            }
            let crls = core.sign_crls(now, s.config.crl_days)?;
            // Signing re-reads the installed root CRL: agents get it with `GET /v1/ca`.
            let snapshot = Snapshot::of(&core);
            let pending = core.durable_ticket();
            // Never the CRL lock while holding the core's (readers take them one at a time).
            drop(core);
            // The CRL number it drew is on disk before the CRL is served.
            Ticket::settle(pending, &s.config.ca_dir)?;
            *s.snapshot.write().unwrap_or_else(|p| p.into_inner()) = snapshot;
            let n = crls.etcd_number;
            *s.crls.write().unwrap_or_else(|p| p.into_inner()) = crls;
            Ok(Some(n))
        })
        .await
        .expect("join");
        match res {
            Ok(Some(n)) => {
                shared.degraded.store(false, Ordering::SeqCst);
                shared.metrics.crls_signed.fetch_add(1, Ordering::Relaxed);
                log(format_args!("signed etcd CRL {n}"));
            }
            Ok(None) => {}
            Err(e) => {
                shared.degraded.store(true, Ordering::SeqCst);
                log(format_args!("CRL signing failed, retrying: {e}"));
            }
        }
    }
}

/// One client connection: the TLS handshake, then HTTP/1.1 requests until the client closes
/// or the service drains.
async fn connection(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let config = shared.tls.read().unwrap_or_else(|p| p.into_inner()).clone();
    // A silent socket gives its slot back soon; the handshake then has the rest of 10 s.
    if !admission::first_byte(&tcp).await {
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        // A failed handshake (a certificate of another PKI, a port scan) answers nothing.
        _ => return,
    };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    // The leaf's serial in the ledger's form, once per connection (audit lines and
    // `issuer list` agree; the rate limit keys on it).
    let (leaf, leaf_cn) = client_cert
        .as_deref()
        .and_then(|der| {
            let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
            let cn = c
                .subject()
                .iter_common_name()
                .next()
                .and_then(|n| n.as_str().ok())
                .map(str::to_string);
            Some((
                Some(pki_core::x509::Serial::from_bytes(c.raw_serial()).to_hex()),
                cn,
            ))
        })
        .unwrap_or((None, None));
    let ctx = Arc::new(routes::Ctx {
        shared,
        peer,
        client_cert,
        leaf,
        leaf_cn,
    });
    let service = hyper::service::service_fn(move |req| routes::route(ctx.clone(), req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The CA folder's audit log path.
pub fn audit_log_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join("audit.log")
}

/// [`serve`] on a runtime of its own, for a command-line tool.
pub fn run(config: Config, unlock: Box<Unlock>) -> ServiceResult<()> {
    // Before the key is unlocked: nothing of it may reach a core file or another process.
    for line in process::harden() {
        log(line);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServiceError::TlsSetup(format!("runtime: {e}")))?;
    rt.block_on(serve(config, unlock, None))
}
