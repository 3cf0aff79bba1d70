//! Load generator for `issuer serve`: simulated agents renew their leaves over mutual TLS.
//!
//! Each agent is a folder holding a chain (`client.crt`: leaf then intermediate) and its key
//! (`client.key`), as `issuer batch` writes them. Every renewal is what a real agent does: a
//! fresh P-256 key and CSR (made before the clock starts), a new TCP connection, a full TLS 1.3
//! handshake presenting the agent's own leaf (no session resumption: an agent renews every few
//! weeks), `POST /v1/renew`, and the JSON `Issued` parsed. The clock covers connect to parsed
//! answer. Agents are taken in turn by `--concurrency` workers, each agent once (the default)
//! or over and over for `--duration` seconds. An agent then renews from the leaf it got last, as
//! a real one does (the service refuses a leaf that keeps replacing unconfirmed renewals).
//!
//! The same loop measures the anchor, `cfssl serve`, with `--cfssl http://HOST:PORT`: plain
//! HTTP `POST /api/v1/cfssl/newcert` (cfssl makes the P-256 key), a new connection each time.
//!
//! ```text
//! cargo bench -p pki-service --bench serve_load -- --url https://127.0.0.1:PORT [--url …] \
//!     --root ROOT.crt --agents DIR [--concurrency 64] [--duration 10] [--label NAME]
//! cargo bench -p pki-service --bench serve_load -- --cfssl http://127.0.0.1:8888 \
//!     --agents DIR [--concurrency 1] [--duration 10] [--label NAME]
//! ```
//!
//! Prints one Markdown table row on stdout (`--header` prints the header first):
//! label, agents, concurrency, renewals, errors, renewals/s, p50, p99 and max latency in ms;
//! a summary and the first error, if any, on stderr.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use pki_service::client::{request, Endpoint};
use pki_service::protocol::{Issued, RenewRequest, RENEW};

const USAGE: &str =
    "usage: serve_load (--url https://HOST:PORT [--url ...] --root FILE | --cfssl http://HOST:PORT) \
--agents DIR [--concurrency N] [--duration SECONDS] [--label TEXT] [--header]";

/// Whom the load goes to.
enum Target {
    /// `issuer serve`, over mutual TLS.
    Service {
        /// One or more instances: agent `i` goes to instance `i mod n`.
        endpoints: Vec<Endpoint>,
        agents: Vec<(String, std::sync::Mutex<Arc<rustls::ClientConfig>>)>,
        /// The root, for the next identity of an agent.
        root: rustls::pki_types::CertificateDer<'static>,
    },
    /// `cfssl serve`, plain HTTP: (host, port) and the agents' CNs.
    Cfssl {
        host: String,
        port: u16,
        names: Vec<String>,
    },
}

impl Target {
    fn agents(&self) -> usize {
        match self {
            Target::Service { agents, .. } => agents.len(),
            Target::Cfssl { names, .. } => names.len(),
        }
    }
}

struct Options {
    urls: Vec<String>,
    cfssl: Option<String>,
    root: Option<PathBuf>,
    agents: PathBuf,
    concurrency: usize,
    duration: Option<Duration>,
    label: String,
    header: bool,
}

fn die(message: impl std::fmt::Display) -> ! {
    eprintln!("serve_load: {message}");
    eprintln!("{USAGE}");
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        urls: Vec::new(),
        cfssl: None,
        root: None,
        agents: PathBuf::new(),
        concurrency: 16,
        duration: None,
        label: String::new(),
        header: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(format!("{a} needs a value")))
        };
        match a.as_str() {
            // What `cargo bench` adds for a harness = false target.
            "--bench" => {}
            "--url" => o.urls.push(value()),
            "--cfssl" => o.cfssl = Some(value()),
            "--root" => o.root = Some(value().into()),
            "--agents" => o.agents = value().into(),
            "--concurrency" => {
                o.concurrency = value()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| die("--concurrency takes a positive number"))
            }
            "--duration" => {
                let s: f64 = value()
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0)
                    .unwrap_or_else(|| die("--duration takes a positive number of seconds"));
                o.duration = Some(Duration::from_secs_f64(s));
            }
            "--label" => o.label = value(),
            "--header" => o.header = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => die(format!("unknown argument {other}")),
        }
    }
    if o.agents.as_os_str().is_empty() {
        die("--agents is required");
    }
    if o.urls.is_empty() != o.cfssl.is_some() {
        die("give --url (once per instance) or --cfssl, one of the two");
    }
    o
}

/// The agent folders under `dir` (those holding `client.crt`), sorted by name.
fn agent_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| die(format!("{}: {e}", dir.display())))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("client.crt").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    if out.is_empty() {
        die(format!(
            "{} holds no agent folder (NAME/client.crt and NAME/client.key)",
            dir.display()
        ));
    }
    out
}

fn target(o: &Options) -> Target {
    let dirs = agent_dirs(&o.agents);
    if let Some(url) = &o.cfssl {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or_else(|| die("--cfssl takes http://HOST:PORT"))
            .trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
            .unwrap_or_else(|| die("--cfssl takes http://HOST:PORT"));
        let names = dirs.into_iter().map(|(n, _)| n).collect();
        return Target::Cfssl { host, port, names };
    }
    let endpoints = o
        .urls
        .iter()
        .map(|u| Endpoint::parse(u).unwrap_or_else(|e| die(e)))
        .collect();
    let root_file = o.root.as_ref().unwrap_or_else(|| die("--url needs --root"));
    let root = pki_service::tls::load_chain(root_file)
        .unwrap_or_else(|e| die(e))
        .remove(0);
    let agents = dirs
        .into_iter()
        .map(|(name, dir)| {
            let chain =
                pki_service::tls::load_chain(&dir.join("client.crt")).unwrap_or_else(|e| die(e));
            let key =
                pki_service::tls::load_key(&dir.join("client.key")).unwrap_or_else(|e| die(e));
            let config = agent_tls(&root, chain, key).unwrap_or_else(|e| die(e));
            (name, std::sync::Mutex::new(config))
        })
        .collect();
    Target::Service {
        endpoints,
        agents,
        root,
    }
}

/// An agent's TLS with its chain and key.
fn agent_tls(
    root: &rustls::pki_types::CertificateDer<'static>,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut config =
        pki_service::tls::client_config(root, Some((chain, key))).map_err(|e| e.to_string())?;
    // A real agent is a new process every few weeks: a full handshake every time.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// A fresh P-256 key and a CSR for it with `cn` as subject, as an agent makes them: (CSR PEM,
/// key PEM).
fn fresh_csr(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .expect("CSR");
    (csr, key.serialize_pem())
}

/// One `POST /api/v1/cfssl/newcert` on a new plain connection; Err unless cfssl says success.
async fn cfssl_newcert(host: &str, port: u16, cn: &str) -> Result<(), String> {
    let body = serde_json::json!({
        "request": { "CN": cn, "hosts": [cn], "key": { "algo": "ecdsa", "size": 256 } }
    })
    .to_string();
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let req = hyper::Request::post("/api/v1/cfssl/newcert")
        .header(hyper::header::HOST, host)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let answer = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    driver.abort();
    let v: serde_json::Value =
        serde_json::from_slice(&answer).map_err(|e| format!("status {status}, not JSON: {e}"))?;
    if status == 200 && v["success"] == true && v["result"]["certificate"].is_string() {
        Ok(())
    } else {
        Err(format!(
            "status {status}: {}",
            v["errors"]
                .to_string()
                .chars()
                .take(200)
                .collect::<String>()
        ))
    }
}

/// One renewal of agent `i`: the latency, or what went wrong.
async fn one(target: &Target, i: usize) -> Result<Duration, String> {
    match target {
        Target::Service {
            endpoints,
            agents,
            root,
        } => {
            let (cn, slot) = &agents[i % agents.len()];
            let tls = slot.lock().expect("agent").clone();
            let endpoint = &endpoints[i % endpoints.len()];
            let (csr_pem, key_pem) = fresh_csr(cn);
            let body = serde_json::to_vec(&RenewRequest { csr_pem }).expect("json");
            let start = Instant::now();
            let issued: Issued = request(endpoint, tls.clone(), "POST", RENEW, None, Some(body))
                .await
                .and_then(|a| a.json())
                .map_err(|e| e.to_string())?;
            let took = start.elapsed();
            if !issued.subject.contains(cn.as_str()) {
                return Err(format!("asked for {cn}, got a leaf for {}", issued.subject));
            }
            // The next renewal of this agent presents what it got (outside the clock).
            use rustls::pki_types::pem::PemObject;
            let chain =
                rustls::pki_types::CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| e.to_string())?;
            *slot.lock().expect("agent") = agent_tls(root, chain, key)?;
            Ok(took)
        }
        Target::Cfssl { host, port, names } => {
            let start = Instant::now();
            cfssl_newcert(host, *port, &names[i % names.len()]).await?;
            Ok(start.elapsed())
        }
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

async fn worker(target: Arc<Target>, next: Arc<AtomicUsize>, deadline: Option<Instant>) -> Tally {
    let mut t = Tally::default();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if i >= target.agents() => break,
            _ => {}
        }
        match one(&target, i).await {
            Ok(took) => t.latencies.push(took),
            Err(e) => {
                t.errors += 1;
                t.first_error.get_or_insert(e);
            }
        }
    }
    t
}

/// The `p`-quantile (0..1) of sorted `v`, nearest rank, in ms.
fn quantile_ms(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1].as_secs_f64() * 1e3
}

fn main() {
    let o = options();
    let target = Arc::new(target(&o));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = o.duration.map(|d| started + d);
    let tallies: Vec<Tally> = runtime.block_on(async {
        let workers: Vec<_> = (0..o.concurrency)
            .map(|_| tokio::spawn(worker(target.clone(), next.clone(), deadline)))
            .collect();
        let mut out = Vec::new();
        for w in workers {
            out.push(w.await.expect("worker"));
        }
        out
    });
    let wall = started.elapsed();
    let mut latencies: Vec<Duration> = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tallies {
        latencies.extend(t.latencies);
        errors += t.errors;
        if first_error.is_none() {
            first_error = t.first_error;
        }
    }
    latencies.sort_unstable();
    let rate = latencies.len() as f64 / wall.as_secs_f64();
    let (p50, p99) = (quantile_ms(&latencies, 0.50), quantile_ms(&latencies, 0.99));
    let max = latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    if o.header {
        println!("| run | agents | concurrency | renewals | errors | renewals/s | p50 ms | p99 ms | max ms |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    println!(
        "| {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
        o.label,
        target.agents(),
        o.concurrency,
        latencies.len(),
        errors,
        rate,
        p50,
        p99,
        max
    );
    eprintln!(
        "serve_load {}: {} ok, {} errors in {:.2} s: {rate:.0}/s, p50 {p50:.1} ms, p99 {p99:.1} ms",
        o.label,
        latencies.len(),
        errors,
        wall.as_secs_f64()
    );
    if let Some(e) = first_error {
        eprintln!("serve_load {}: first error: {e}", o.label);
    }
}
