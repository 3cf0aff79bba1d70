//! Requests to answers: who is asking, whether they may, what they get, and the audit line.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::audit::AuditEntry;
use super::metrics::Gauges;
use super::refusal::Refused;
use super::{log, Shared};
use crate::protocol::{self, EnrolRequest, Health, RenewRequest};

/// A connection's context: the service, the peer, and the certificate it presented.
pub(super) struct Ctx {
    pub(super) shared: Arc<Shared>,
    pub(super) peer: SocketAddr,
    pub(super) client_cert: Option<Vec<u8>>,
    /// The presented leaf's serial, ledger form.
    pub(super) leaf: Option<String>,
    /// The presented leaf's CN: the agent's entry in the cluster file.
    pub(super) leaf_cn: Option<String>,
}

type Answer = Response<Full<Bytes>>;

/// What a request produced, for the answer and the audit line.
struct Outcome {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    crl_number: Option<u64>,
    refused: Option<Refused>,
    issued: Vec<String>,
    superseded: Option<String>,
}

impl Outcome {
    fn json<T: serde::Serialize>(v: &T) -> Self {
        Outcome {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(v).expect("json"),
            crl_number: None,
            refused: None,
            issued: Vec::new(),
            superseded: None,
        }
    }

    fn bytes(content_type: &'static str, body: Vec<u8>) -> Self {
        Outcome {
            content_type,
            body,
            ..Outcome::json(&())
        }
    }

    fn refused(r: Refused) -> Self {
        Outcome {
            status: r.status,
            body: serde_json::to_vec(&r.body()).expect("json"),
            refused: Some(r),
            ..Outcome::json(&())
        }
    }
}

/// The identity a request is limited and audited under.
fn identity(ctx: &Ctx, req: &Request<Incoming>) -> String {
    if let Some(serial) = &ctx.leaf {
        return format!("leaf:{serial}");
    }
    if let Some(token) = bearer(req) {
        return format!("token:{}", &super::token_hash(token)[..16]);
    }
    super::limit::address_bucket(ctx.peer.ip())
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Answers one request; never fails (a failure is an answer).
pub(super) async fn route(ctx: Arc<Ctx>, req: Request<Incoming>) -> Result<Answer, Infallible> {
    let who = identity(&ctx, &req);
    // Limited by what the handshake proved (a leaf) or by address; never by a bearer token,
    // which anyone can make up.
    let bucket = match who.starts_with("leaf:") {
        true => who.clone(),
        false => super::limit::address_bucket(ctx.peer.ip()),
    };
    let action = super::audit::bounded_action(&format!("{} {}", req.method(), req.uri().path()));
    // Every POST changes state (a leaf issued, a renewal confirmed, a token used).
    let changes_state = req.method() == Method::POST;
    let mut outcome = if ctx.shared.draining.load(Ordering::SeqCst) {
        Outcome::refused(Refused::draining())
    } else if changes_state && ctx.shared.audit.failing() {
        Outcome::refused(Refused::audit_unavailable(false))
    } else {
        let limited = ctx
            .shared
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(&bucket, Instant::now());
        match limited {
            Err(wait) => Outcome::refused(Refused::rate_limited(wait)),
            Ok(()) => dispatch(&ctx, req).await,
        }
    };
    let shared = ctx.shared.clone();
    let peer = ctx.peer.to_string();
    let status = outcome.status;
    let (code, issued, superseded) = (
        outcome.refused.as_ref().map(|r| r.code),
        outcome.issued.clone(),
        outcome.superseded.clone(),
    );
    // A refused flood is counted (metrics), not written line by line to the CA folder's disk.
    let audit = code != Some("rate-limited");
    let (line_who, line_action) = (who.clone(), action.clone());
    // What the fleet view shows of this agent: its last request, CRL fetched, refusals.
    let seen = match (&ctx.leaf, &ctx.leaf_cn) {
        (Some(serial), Some(cn)) if audit => Some(pki_core::ca::AgentSeen {
            subject: cn.clone(),
            // After a renewal, the leaf the agent holds now.
            serial: match (status, issued.first()) {
                (200, Some(new)) => new.clone(),
                _ => serial.clone(),
            },
            action: action.clone(),
            at: OffsetDateTime::now_utc().unix_timestamp(),
            crl_number: match (outcome.status, action.starts_with("GET /v1/crl/etcd")) {
                (200, true) => outcome.crl_number.map(|n| n as i64),
                _ => None,
            },
            crl_at: None,
            refused: code.map(str::to_string),
            refusals: 0,
        }),
        _ => None,
    };
    if let Some(seen) = seen {
        let mut queue = shared.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a ledger that cannot be written for long loses telemetry, not memory.
        if queue.len() < 100_000 {
            queue.push(seen);
        }
    }
    let audited = tokio::task::spawn_blocking(move || {
        if !audit {
            return Ok(());
        }
        shared
            .audit
            .append(&AuditEntry {
                time: OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                peer,
                identity: &line_who,
                action: line_action,
                status,
                refused: code,
                issued,
                superseded,
            })
            .map(|_| ())
    })
    .await
    .expect("join");
    if let Err(e) = audited {
        ctx.shared
            .metrics
            .audit_failures
            .fetch_add(1, Ordering::Relaxed);
        log(format_args!("AUDIT LOG WRITE FAILED ({action} from {who}, answered {status}): {e}; state-changing requests are refused until a line can be written"));
        // Fail closed: what changed state is not handed out without its audit line. A leaf
        // issued here stays in the ledger as an unconfirmed renewal that was never delivered
        // (the next renewal replaces it); a used token stays used.
        if changes_state && outcome.status == 200 {
            outcome = Outcome::refused(Refused::audit_unavailable(true));
        }
    }
    if let Some(r) = &outcome.refused {
        ctx.shared.metrics.refused(r.code);
        if let Some(detail) = &r.log_detail {
            log(format_args!("{action} from {who}: {detail}"));
        }
    }
    let mut res = Response::builder()
        .status(outcome.status)
        .header(hyper::header::CONTENT_TYPE, outcome.content_type);
    if let Some(n) = outcome.crl_number {
        res = res.header(protocol::CRL_NUMBER_HEADER, n.to_string());
    }
    if let Some(wait) = outcome.refused.as_ref().and_then(|r| r.retry_after) {
        res = res.header(hyper::header::RETRY_AFTER, wait.to_string());
    }
    Ok(res
        .body(Full::new(Bytes::from(outcome.body)))
        .expect("response"))
}

async fn dispatch(ctx: &Arc<Ctx>, req: Request<Incoming>) -> Outcome {
    let path = req.uri().path().to_string();
    let pem = req.uri().query() == Some("format=pem");
    match (req.method().clone(), path.as_str()) {
        (Method::GET, protocol::HEALTH) => {
            let h = health(&ctx.shared);
            let mut o = Outcome::json(&h);
            // A monitor that reads only the status code sees a failed reload too.
            if h.status == "reload-failed" {
                o.status = 503;
            }
            o
        }
        (Method::GET, protocol::CA) => {
            let snap = ctx
                .shared
                .snapshot
                .read()
                .unwrap_or_else(|p| p.into_inner());
            Outcome::json(&snap.info)
        }
        (Method::GET, protocol::METRICS) if ctx.shared.config.metrics_listen.is_some() => {
            Outcome::refused(Refused::metrics_elsewhere())
        }
        (Method::GET, protocol::METRICS) => {
            let text = metrics_text(&ctx.shared);
            Outcome::bytes("text/plain; version=0.0.4", text.into_bytes())
        }
        (Method::GET, protocol::CRL_ETCD) => crl(&ctx.shared, true, pem),
        (Method::GET, protocol::CRL_DIRECT) => crl(&ctx.shared, false, true),
        (Method::POST, protocol::RENEW) => renew(ctx, req).await,
        (Method::POST, protocol::CONFIRM) => confirm(ctx).await,
        (Method::POST, protocol::ENROL) => enrol(ctx, req).await,
        _ => Outcome::refused(Refused::not_found()),
    }
}

/// The exposition text of `/metrics`.
pub(super) fn metrics_text(s: &Shared) -> String {
    s.metrics.render(&gauges(s), OffsetDateTime::now_utc())
}

/// Read without the core's lock: a scrape never waits for a signing.
fn gauges(s: &Shared) -> Gauges {
    let snap = s.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone();
    let c = s.crls.read().unwrap_or_else(|p| p.into_inner());
    Gauges {
        crl_this_update: c.this_update,
        crl_next_update: c.next_update,
        crl_number: c.etcd_number,
        root_crl_withheld: c.root_crl_withheld,
        root_entries_held: c.root_entries_held.len(),
        intermediate_not_after: snap.not_after,
        agents: s.agents.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        own_cert_not_after: s
            .own_cert
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|(_, end)| end),
        generation: snap.info.generation,
        reload_failed: s
            .reload_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some(),
    }
}

pub(super) fn health(s: &Shared) -> Health {
    let g = gauges(s);
    let rfc = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let reload_error = s
        .reload_failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Health {
        status: if reload_error.is_some() {
            "reload-failed".into()
        } else if s.degraded.load(Ordering::SeqCst) {
            "degraded".into()
        } else {
            "ok".into()
        },
        reload_error,
        generation: g.generation,
        intermediate_not_after: rfc(g.intermediate_not_after),
        crl_number: g.crl_number,
        crl_next_update: rfc(g.crl_next_update),
    }
}

fn crl(s: &Shared, etcd: bool, pem: bool) -> Outcome {
    let c = s.crls.read().unwrap_or_else(|p| p.into_inner());
    let (der, number) = match etcd {
        true => (c.etcd_der.clone(), c.etcd_number),
        false => (c.direct_der.clone(), c.direct_number),
    };
    let mut o = if pem {
        let text = pem::encode(&pem::Pem::new("X509 CRL", der));
        Outcome::bytes("application/x-pem-file", text.into_bytes())
    } else {
        Outcome::bytes("application/pkix-crl", der)
    };
    o.crl_number = Some(number);
    o
}

async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Refused> {
    let read = Limited::new(req.into_body(), protocol::MAX_BODY).collect();
    let bytes = tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .map_err(|_| Refused::bad_request("request body: not received within 10 s"))?
        .map_err(|e| Refused::bad_request(format!("request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Refused::bad_request(format!("request body: {e}")))
}

fn presented(ctx: &Ctx) -> Result<Vec<u8>, Refused> {
    ctx.client_cert.clone().ok_or_else(|| {
        Refused::unauthenticated(
            "this request needs the client certificate being renewed or confirmed",
        )
    })
}

/// Runs a blocking operation on the core.
async fn with_core<T: Send + 'static>(
    ctx: &Arc<Ctx>,
    op: impl FnOnce(&mut super::core::Core, OffsetDateTime) -> Result<T, Refused> + Send + 'static,
) -> Result<T, Refused> {
    let shared = ctx.shared.clone();
    tokio::task::spawn_blocking(move || {
        let (out, pending) = {
            let mut core = shared.core.lock().unwrap_or_else(|p| p.into_inner());
            let out = op(&mut core, OffsetDateTime::now_utc());
            (out, core.durable_ticket())
        };
        // What this request changed is on disk before it answers (one sync for every
        // request that committed meanwhile).
        if let Some(p) = pending {
            p.wait().map_err(Refused::internal)?;
        }
        out
    })
    .await
    .map_err(Refused::internal)?
}

async fn renew(ctx: &Arc<Ctx>, req: Request<Incoming>) -> Outcome {
    let run = async {
        let cert = presented(ctx)?;
        let r: RenewRequest = body(req).await?;
        with_core(ctx, move |core, now| core.renew(&cert, &r.csr_pem, now)).await
    };
    match run.await {
        Ok((issued, old)) => {
            ctx.shared.metrics.renewed.fetch_add(1, Ordering::Relaxed);
            let mut o = Outcome::json(&issued);
            o.issued = vec![issued.serial];
            o.superseded = None;
            log(format_args!("renewed {old} -> {}", o.issued[0]));
            o
        }
        Err(r) => Outcome::refused(r),
    }
}

async fn confirm(ctx: &Arc<Ctx>) -> Outcome {
    let run = async {
        let cert = presented(ctx)?;
        with_core(ctx, move |core, now| core.confirm(&cert, now)).await
    };
    match run.await {
        Ok(c) => {
            ctx.shared.metrics.confirmed.fetch_add(1, Ordering::Relaxed);
            let mut o = Outcome::json(&c);
            o.superseded = c.superseded;
            o
        }
        Err(r) => Outcome::refused(r),
    }
}

async fn enrol(ctx: &Arc<Ctx>, req: Request<Incoming>) -> Outcome {
    let Some(token) = bearer(&req).map(|t| zeroize::Zeroizing::new(t.to_string())) else {
        return Outcome::refused(Refused::unauthenticated(
            "enrolment needs its one-time token in the Authorization: Bearer header",
        ));
    };
    let run = async {
        let r: EnrolRequest = body(req).await?;
        with_core(ctx, move |core, now| core.enrol(&token, &r, now)).await
    };
    match run.await {
        Ok(e) => {
            let n = e.leaves.len() as u64;
            ctx.shared.metrics.enrolled.fetch_add(n, Ordering::Relaxed);
            let mut o = Outcome::json(&e);
            o.issued = e.leaves.iter().map(|l| l.serial.clone()).collect();
            log(format_args!(
                "enrolled {}: {}",
                e.entry,
                o.issued.join(", ")
            ));
            o
        }
        Err(r) => Outcome::refused(r),
    }
}
