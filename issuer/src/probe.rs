//! `issuer check-etcd --endpoint`: what the seed's `openssl s_client` step checks, against a
//! running member: the handshake with a client certificate, the chain the server sends, whether
//! its SANs cover the host, expiry, and whether the member demands a client certificate.
//! Live TLS lives here, in `issuer`, so that pki-core (and root-ca) link no networking code.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pki_core::x509::{Finding, Level};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What to probe with.
pub struct ProbeArgs<'a> {
    pub endpoint: &'a str,
    pub root: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

fn finding(level: Level, check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        level,
        check,
        detail: detail.into(),
    }
}

/// The chain a server presented, and what normal verification said about it.
type SeenChain = (Vec<CertificateDer<'static>>, Result<(), String>);

/// Verifies like a normal client, but records the outcome and the chain instead of aborting,
/// so one probe reports every problem.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<SeenChain>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map(|_| ())
            .map_err(|e| e.to_string());
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        *self.seen.lock().expect("lock") = Some((chain, verdict));
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Presents our certificate (or none) and records whether the server asked for one.
#[derive(Debug)]
struct RecordingResolver {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    asked: Mutex<bool>,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        *self.asked.lock().expect("lock") = true;
        self.key.clone()
    }
    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

struct Outcome {
    handshake: Result<(), String>,
    asked_for_cert: bool,
    /// After the handshake: did the server close or alert when we read?
    read_error: Option<String>,
    seen: Option<SeenChain>,
}

fn connect(
    host: &str,
    port: u16,
    roots: Arc<rustls::RootCertStore>,
    key: Option<Arc<rustls::sign::CertifiedKey>>,
) -> Result<Outcome, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = Arc::new(RecordingVerifier {
        inner,
        seen: Mutex::new(None),
    });
    let resolver = Arc::new(RecordingResolver {
        key,
        asked: Mutex::new(false),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_cert_resolver(resolver.clone());
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("'{host}': {e}"))?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut handshake = Ok(());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            handshake = Err(e.to_string());
            break;
        }
    }
    let mut read_error = None;
    if handshake.is_ok() {
        // A TLS 1.3 server checks the client certificate after our Finished: its verdict
        // arrives as an alert on the first read. Ask something harmless and look.
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let _ = tls.write_all(
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let mut buf = [0u8; 256];
        match tls.read(&mut buf) {
            Ok(0) => read_error = Some("connection closed by the server".into()),
            Ok(_) => {}
            Err(e) => read_error = Some(e.to_string()),
        }
    }
    let asked_for_cert = *resolver.asked.lock().expect("lock");
    let seen = verifier.seen.lock().expect("lock").take();
    Ok(Outcome {
        handshake,
        asked_for_cert,
        read_error,
        seen,
    })
}

/// The trust anchors and the client identity a probe presents.
type Identity = (Arc<rustls::RootCertStore>, Arc<rustls::sign::CertifiedKey>);

/// Reads the probe's root, client chain and key.
fn load_identity(a: &ProbeArgs<'_>) -> Result<Identity, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(a.root).map_err(|e| format!("{}: {e}", a.root.display()))?
    {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| format!("{}: {e}", a.root.display()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(a.cert)
        .map_err(|e| format!("{}: {e}", a.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", a.cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(a.key).map_err(|e| format!("{}: {e}", a.key.display()))?;
    let signing =
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok((
        Arc::new(roots),
        Arc::new(rustls::sign::CertifiedKey::new(chain, signing)),
    ))
}

/// What the server's certificate chain says: complete, verified for `host`, not about to expire.
fn server_findings(
    out: &mut Vec<Finding>,
    chain: &[CertificateDer<'static>],
    verdict: &Result<(), String>,
    host: &str,
    root: &std::path::Path,
) {
    out.push(if chain.len() < 2 {
        finding(Level::Fail, "chain", "the server sends only its leaf: clients with a root-only trust file fail (facts D1); server.crt must hold leaf then intermediate")
    } else {
        finding(Level::Ok, "chain", format!("the server sends {} certificates (leaf + intermediate)", chain.len()))
    });
    out.push(match verdict {
        Ok(()) => finding(
            Level::Ok,
            "verify",
            format!("the server certificate chains to the root and its SANs cover {host}"),
        ),
        Err(e) => finding(
            Level::Fail,
            "verify",
            format!("{e} (root = {}, host = {host})", root.display()),
        ),
    });
    if let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&chain[0]) {
        let not_after = leaf.validity().not_after.to_datetime();
        let left = (not_after - time::OffsetDateTime::now_utc()).whole_days();
        out.push(if left < 30 {
            finding(
                Level::Warn,
                "expiry",
                format!("the server certificate expires in {left} days"),
            )
        } else {
            finding(
                Level::Ok,
                "expiry",
                format!("the server certificate is valid for {left} more days"),
            )
        });
    }
}

/// Probes a running member; one finding per check.
pub fn probe(a: &ProbeArgs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(rest) = a.endpoint.strip_prefix("https://") else {
        return vec![finding(
            Level::Fail,
            "endpoint",
            format!("'{}' must be https://HOST:PORT", a.endpoint),
        )];
    };
    let hostport = rest.trim_end_matches('/');
    let (host, port) = match hostport
        .rsplit_once(':')
        .map(|(h, p)| (h.trim_matches(['[', ']']), p.parse::<u16>()))
    {
        Some((h, Ok(p))) => (h.to_string(), p),
        _ => {
            return vec![finding(
                Level::Fail,
                "endpoint",
                format!("'{}' must be https://HOST:PORT", a.endpoint),
            )]
        }
    };
    let (roots, key) = match load_identity(a) {
        Ok(v) => v,
        Err(e) => return vec![finding(Level::Fail, "inputs", e)],
    };

    match connect(&host, port, roots.clone(), Some(key)) {
        Err(e) => out.push(finding(Level::Fail, "connect", e)),
        Ok(o) => {
            match (&o.handshake, &o.read_error) {
                (Err(e), _) => out.push(finding(
                    Level::Fail,
                    "handshake",
                    format!("with our client certificate: {e}"),
                )),
                (Ok(()), Some(e)) if e.contains("alert") => out.push(finding(
                    Level::Fail,
                    "handshake",
                    format!("the member rejected our client certificate after the handshake: {e}"),
                )),
                _ => out.push(finding(
                    Level::Ok,
                    "handshake",
                    format!("TLS with {host}:{port} using our client certificate"),
                )),
            }
            if let Some((chain, verdict)) = &o.seen {
                server_findings(&mut out, chain, verdict, &host, a.root);
            }
            out.push(if o.asked_for_cert {
                finding(
                    Level::Ok,
                    "client-auth",
                    "the member asks for a client certificate",
                )
            } else {
                finding(
                    Level::Fail,
                    "client-auth",
                    "the member did not ask for a client certificate: --client-cert-auth is off",
                )
            });
        }
    }
    // Without a certificate the member must refuse (client-cert-auth on).
    if let Ok(o) = connect(&host, port, roots, None) {
        let refused = o.handshake.is_err()
            || o.read_error
                .as_deref()
                .map(|e| e.contains("alert") || e.contains("closed"))
                .unwrap_or(false);
        out.push(if refused {
            finding(
                Level::Ok,
                "no-cert",
                "without a client certificate the member refuses the connection",
            )
        } else {
            finding(
                Level::Fail,
                "no-cert",
                "the member served a client that presented no certificate",
            )
        });
    }
    out
}
