//! The optional plain-HTTP listener for scrapes from the same host: `GET /metrics` and
//! `GET /v1/health`, nothing else, on a loopback address only. Prometheus then needs neither
//! the root certificate nor a share of the anonymous rate limit, and nobody off the host can
//! read the metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{log, routes, Shared};
use crate::error::{ServiceError, ServiceResult};
use crate::protocol;

/// Binds `addr` (refused unless loopback) and serves scrapes until the task is aborted.
pub(super) async fn start(
    shared: Arc<Shared>,
    addr: SocketAddr,
) -> ServiceResult<tokio::task::JoinHandle<()>> {
    if !addr.ip().is_loopback() {
        return Err(ServiceError::Listen {
            addr: addr.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the metrics listener is plain HTTP and takes a loopback address only (127.0.0.1:PORT or [::1]:PORT); scrape through the TLS listener otherwise",
            ),
        });
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().unwrap_or(addr);
    log(format_args!("metrics on http://{local}/metrics"));
    Ok(tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let s = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(s.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    }))
}

async fn answer(
    s: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, protocol::METRICS) => (
            200,
            "text/plain; version=0.0.4",
            routes::metrics_text(&s).into_bytes(),
        ),
        (&Method::GET, protocol::HEALTH) => {
            let h = routes::health(&s);
            let status = if h.status == "reload-failed" {
                503
            } else {
                200
            };
            (
                status,
                "application/json",
                serde_json::to_vec(&h).expect("json"),
            )
        }
        _ => (
            404,
            "text/plain",
            b"only GET /metrics and /v1/health here\n".to_vec(),
        ),
    };
    Ok(Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, kind)
        .body(Full::new(Bytes::from(body)))
        .expect("response"))
}
