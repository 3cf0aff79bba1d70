//! One request to the service over (mutual) TLS: what an agent, a test or the benchmark does.
//! A new connection per request: an agent asks a few times a day.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;

use crate::error::{ServiceError, ServiceResult};
use crate::protocol::{Refusal, CRL_NUMBER_HEADER};

/// Longest a connection, handshake or answer may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (a CRL of many entries is the largest).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// Where the service is: `https://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, as the service certificate names it.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `https://HOST:PORT` (an IPv6 host in brackets); only https is accepted.
    pub fn parse(url: &str) -> ServiceResult<Self> {
        let bad = |reason: &'static str| ServiceError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("must start with https://"))?
            .trim_end_matches('/');
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (h, p) = v6.split_once("]:").ok_or_else(|| bad("needs a port"))?;
                (h, p)
            }
            None => rest.rsplit_once(':').ok_or_else(|| bad("needs a port"))?,
        };
        if host.is_empty() || host.contains('/') {
            return Err(bad("has no host"));
        }
        let port = port.parse().map_err(|_| bad("port is not a number"))?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }

    /// The URL, for messages.
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// An answer: status, the CRL number header when present, and the body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The `X-CRL-Number` header, parsed.
    pub crl_number: Option<u64>,
    /// The `Retry-After` header in seconds, when the service sent one (a 429).
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as `T` for a 2xx status; the service's refusal as an error otherwise.
    pub fn json<T: DeserializeOwned>(self) -> ServiceResult<T> {
        self.success()?;
        serde_json::from_slice(&self.body).map_err(|e| ServiceError::BadAnswer(e.to_string()))
    }

    /// The refusal as an error unless the status is 2xx.
    pub fn success(&self) -> ServiceResult<()> {
        if (200..300).contains(&self.status) {
            return Ok(());
        }
        let r: Refusal = serde_json::from_slice(&self.body).unwrap_or_else(|_| Refusal {
            error: "unknown".into(),
            reason: String::from_utf8_lossy(&self.body)
                .chars()
                .take(200)
                .collect(),
        });
        Err(ServiceError::Refused {
            status: self.status,
            error: r.error,
            reason: r.reason,
            retry_after: self.retry_after,
        })
    }
}

/// Sends one request: `body` as JSON when given, `bearer` as `Authorization: Bearer`.
pub async fn request(
    ep: &Endpoint,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
) -> ServiceResult<Answer> {
    tokio::time::timeout(TIMEOUT, exchange(ep, tls, method, path, bearer, body))
        .await
        .map_err(|_| ServiceError::Unreachable {
            url: ep.url(),
            reason: format!("no answer within {} s", TIMEOUT.as_secs()),
        })?
}

async fn exchange(
    ep: &Endpoint,
    tls: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
) -> ServiceResult<Answer> {
    let unreachable = |reason: String| ServiceError::Unreachable {
        url: ep.url(),
        reason,
    };
    // hyper's "connection error" hides the TLS alert a refused certificate gets; say it.
    let with_causes = |e: &dyn std::error::Error| {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        text
    };
    let name = ServerName::try_from(ep.host.clone())
        .map_err(|e| unreachable(format!("'{}' is not a host name: {e}", ep.host)))?;
    let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(format!("TLS: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, &ep.host);
    if let Some(token) = bearer {
        req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| ServiceError::BadAnswer(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(with_causes(&e)))?;
    let status = res.status().as_u16();
    let crl_number = res
        .headers()
        .get(CRL_NUMBER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let retry_after = res
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let body = Limited::new(res.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| unreachable(format!("reading the answer: {}", with_causes(&*e))))?
        .to_bytes()
        .to_vec();
    driver.abort();
    Ok(Answer {
        status,
        crl_number,
        retry_after,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_bad_ones_are_refused() {
        let e = Endpoint::parse("https://ca.example:8443/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("ca.example", 8443));
        let e = Endpoint::parse("https://[::1]:9").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.url()),
            ("::1", 9, "https://[::1]:9".into())
        );
        for bad in [
            "http://a:1",
            "https://a",
            "https://:1",
            "https://a:x",
            "https://a/b:1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
