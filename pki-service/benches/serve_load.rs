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
//! OpenBao's PKI engine (the peer teams choose for online issuing) with `--openbao
//! https://HOST:PORT --root ROOT.crt --role ROLE` and either `--token-file FILE` (a token with a
//! policy on `pki/sign/ROLE`; a new TLS connection per request, `POST /v1/pki/sign/ROLE` with
//! the CSR) or `--cert-login NAME` (each agent's own certificate: on one new mutual-TLS
//! connection, `POST /v1/auth/cert/login` then the same sign with the token it returned).
//!
//! ```text
//! cargo bench -p pki-service --bench serve_load -- --url https://127.0.0.1:PORT [--url …] \
//!     --root ROOT.crt --agents DIR [--concurrency 64] [--duration 10] [--label NAME]
//! cargo bench -p pki-service --bench serve_load -- --cfssl http://127.0.0.1:8888 \
//!     --agents DIR [--concurrency 1] [--duration 10] [--label NAME]
//! cargo bench -p pki-service --bench serve_load -- --openbao https://127.0.0.1:8200 \
//!     --root ROOT.crt --role agent (--token-file FILE | --cert-login NAME) --agents DIR [...]
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
    "usage: serve_load (--url https://HOST:PORT [--url ...] --root FILE | --cfssl http://HOST:PORT \
| --openbao https://HOST:PORT --root FILE --role ROLE (--token-file FILE | --cert-login NAME)) \
--agents DIR [--concurrency N] [--duration SECONDS] [--label TEXT] [--header]";

/// Whom the load goes to.
enum Target {
    /// `issuer serve`, over mutual TLS.
    Service {
        /// One or more instances: agent `i` goes to instance `i mod n`.
        endpoints: Vec<Endpoint>,
        agents: Vec<Agent>,
        /// The root, for the next identity of an agent.
        root: rustls::pki_types::CertificateDer<'static>,
    },
    /// `cfssl serve`, plain HTTP: (host, port) and the agents' CNs.
    Cfssl {
        host: String,
        port: u16,
        names: Vec<String>,
    },
    /// OpenBao's `pki/sign/ROLE`.
    OpenBao {
        endpoint: Endpoint,
        role: String,
        auth: BaoAuth,
        names: Vec<String>,
        /// Server authentication only (token mode).
        plain: Arc<rustls::ClientConfig>,
        /// Each agent's own certificate (login mode).
        agents: Vec<Arc<rustls::ClientConfig>>,
    },
}

/// One simulated agent of the service: its TLS identity now, and the chain and key it got
/// last (written back to its folder at the end, so the next run starts from them).
struct Agent {
    name: String,
    dir: PathBuf,
    tls: std::sync::Mutex<Arc<rustls::ClientConfig>>,
    renewed: std::sync::Mutex<Option<(String, String)>>,
    /// Set while one worker renews it: another takes the next agent instead (an agent never
    /// renews twice at once).
    busy: std::sync::atomic::AtomicBool,
}

/// How OpenBao requests are authorised.
enum BaoAuth {
    /// One token for every request (read from a file: never on a command line).
    Token(String),
    /// `auth/cert` login with the agent's certificate, role NAME, before each sign.
    CertLogin(String),
}

impl Target {
    fn agents(&self) -> usize {
        match self {
            Target::Service { agents, .. } => agents.len(),
            Target::Cfssl { names, .. } | Target::OpenBao { names, .. } => names.len(),
        }
    }
}

struct Options {
    urls: Vec<String>,
    cfssl: Option<String>,
    openbao: Option<String>,
    role: String,
    token_file: Option<PathBuf>,
    cert_login: Option<String>,
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
        openbao: None,
        role: "agent".into(),
        token_file: None,
        cert_login: None,
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
            "--openbao" => o.openbao = Some(value()),
            "--role" => o.role = value(),
            "--token-file" => o.token_file = Some(value().into()),
            "--cert-login" => o.cert_login = Some(value()),
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
    let targets = usize::from(!o.urls.is_empty())
        + usize::from(o.cfssl.is_some())
        + usize::from(o.openbao.is_some());
    if targets != 1 {
        die("give --url (once per instance), --cfssl or --openbao, one of the three");
    }
    if o.openbao.is_some() && o.token_file.is_some() == o.cert_login.is_some() {
        die("--openbao takes --token-file or --cert-login, one of the two");
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
    if let Some(url) = &o.openbao {
        return openbao_target(o, url, dirs);
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
            Agent {
                name,
                dir,
                tls: std::sync::Mutex::new(config),
                renewed: std::sync::Mutex::new(None),
                busy: std::sync::atomic::AtomicBool::new(false),
            }
        })
        .collect();
    Target::Service {
        endpoints,
        agents,
        root,
    }
}

fn openbao_target(o: &Options, url: &str, dirs: Vec<(String, PathBuf)>) -> Target {
    let endpoint = Endpoint::parse(url).unwrap_or_else(|e| die(e));
    let root_file = o
        .root
        .as_ref()
        .unwrap_or_else(|| die("--openbao needs --root"));
    let root = pki_service::tls::load_chain(root_file)
        .unwrap_or_else(|e| die(e))
        .remove(0);
    let mut plain = pki_service::tls::client_config(&root, None).unwrap_or_else(|e| die(e));
    plain.resumption = rustls::client::Resumption::disabled();
    let auth = match (&o.token_file, &o.cert_login) {
        (Some(f), _) => BaoAuth::Token(
            std::fs::read_to_string(f)
                .unwrap_or_else(|e| die(format!("{}: {e}", f.display())))
                .trim()
                .to_string(),
        ),
        (None, Some(name)) => BaoAuth::CertLogin(name.clone()),
        (None, None) => die("--openbao takes --token-file or --cert-login"),
    };
    let agents = match auth {
        BaoAuth::Token(_) => Vec::new(),
        BaoAuth::CertLogin(_) => dirs
            .iter()
            .map(|(_, dir)| {
                let chain = pki_service::tls::load_chain(&dir.join("client.crt"))
                    .unwrap_or_else(|e| die(e));
                let key =
                    pki_service::tls::load_key(&dir.join("client.key")).unwrap_or_else(|e| die(e));
                agent_tls(&root, chain, key).unwrap_or_else(|e| die(e))
            })
            .collect(),
    };
    Target::OpenBao {
        endpoint,
        role: o.role.clone(),
        auth,
        names: dirs.into_iter().map(|(n, _)| n).collect(),
        plain: Arc::new(plain),
        agents,
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

/// The certificate of an OpenBao sign answer, or what went wrong.
fn bao_signed(status: u16, body: &[u8]) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("status {status}, not JSON: {e}"))?;
    if status == 200 && v["data"]["certificate"].is_string() {
        Ok(())
    } else {
        Err(format!("status {status}: {}", v["errors"]))
    }
}

/// `auth/cert` login with the agent's certificate, then the sign with the token it got, on
/// one new mutual-TLS connection.
async fn bao_login_sign(
    ep: &Endpoint,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
    sign_path: &str,
    body: String,
) -> Result<(), String> {
    let server =
        rustls::pki_types::ServerName::try_from(ep.host.clone()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut post = async |path: &str, token: Option<&str>, body: String| {
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, &ep.host)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header("X-Vault-Token", t);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, login) = post(
        "/v1/auth/cert/login",
        None,
        serde_json::json!({ "name": name }).to_string(),
    )
    .await?;
    let v: serde_json::Value = serde_json::from_slice(&login)
        .map_err(|e| format!("login: status {status}, not JSON: {e}"))?;
    let token = v["auth"]["client_token"]
        .as_str()
        .ok_or_else(|| format!("login: status {status}: {}", v["errors"]))?
        .to_string();
    let (status, signed) = post(sign_path, Some(&token), body).await?;
    driver.abort();
    bao_signed(status, &signed)
}

/// Refused by the load generator itself: the agent was renewing already (not counted).
const BUSY: &str = "busy";

/// One renewal of a service agent, which then presents what it got.
async fn renew(
    agent: &Agent,
    endpoint: &Endpoint,
    root: &rustls::pki_types::CertificateDer<'static>,
) -> Result<Duration, String> {
    let tls = agent.tls.lock().expect("agent").clone();
    let (csr_pem, key_pem) = fresh_csr(&agent.name);
    let body = serde_json::to_vec(&RenewRequest { csr_pem }).expect("json");
    let start = Instant::now();
    let issued: Issued = request(endpoint, tls.clone(), "POST", RENEW, None, Some(body))
        .await
        .and_then(|a| a.json())
        .map_err(|e| e.to_string())?;
    let took = start.elapsed();
    if !issued.subject.contains(agent.name.as_str()) {
        return Err(format!(
            "asked for {}, got a leaf for {}",
            agent.name, issued.subject
        ));
    }
    // The next renewal of this agent presents what it got (outside the clock).
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    *agent.tls.lock().expect("agent") = agent_tls(root, chain, key)?;
    *agent.renewed.lock().expect("agent") = Some((issued.chain_pem, key_pem));
    Ok(took)
}

/// One renewal of agent `i`: the latency, or what went wrong.
async fn one(target: &Target, i: usize) -> Result<Duration, String> {
    match target {
        Target::Service {
            endpoints,
            agents,
            root,
        } => {
            let agent = &agents[i % agents.len()];
            if agent.busy.swap(true, Ordering::Acquire) {
                return Err(BUSY.into());
            }
            let result = renew(agent, &endpoints[i % endpoints.len()], root).await;
            agent.busy.store(false, Ordering::Release);
            result
        }
        Target::Cfssl { host, port, names } => {
            let start = Instant::now();
            cfssl_newcert(host, *port, &names[i % names.len()]).await?;
            Ok(start.elapsed())
        }
        Target::OpenBao {
            endpoint,
            role,
            auth,
            names,
            plain,
            agents,
        } => {
            let cn = &names[i % names.len()];
            let (csr_pem, _) = fresh_csr(cn);
            let body = serde_json::json!({ "csr": csr_pem, "common_name": cn }).to_string();
            let path = format!("/v1/pki/sign/{role}");
            let start = Instant::now();
            match auth {
                BaoAuth::Token(token) => {
                    let a = request(
                        endpoint,
                        plain.clone(),
                        "POST",
                        &path,
                        Some(token),
                        Some(body.into_bytes()),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    bao_signed(a.status, &a.body)?;
                }
                BaoAuth::CertLogin(name) => {
                    let tls = agents[i % agents.len()].clone();
                    bao_login_sign(endpoint, tls, name, &path, body).await?;
                }
            }
            Ok(start.elapsed())
        }
    }
}

/// Writes each service agent's last chain and key back to its folder (atomically, the key
/// 0600), so the next run presents leaves the service still honours.
fn save_renewed(target: &Target) {
    let Target::Service { agents, .. } = target else {
        return;
    };
    for a in agents {
        if let Some((chain, key)) = a.renewed.lock().expect("agent").take() {
            for (file, text, mode) in [("client.key", key, 0o600), ("client.crt", chain, 0o644)] {
                let tmp = a.dir.join(format!("{file}.new"));
                let written = std::fs::write(&tmp, text)
                    .and_then(|()| {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                    })
                    .and_then(|()| std::fs::rename(&tmp, a.dir.join(file)));
                if let Err(e) = written {
                    die(format!("{}: {e}", a.dir.join(file).display()));
                }
            }
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
            Err(e) if e == BUSY => {}
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
    save_renewed(&target);
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
