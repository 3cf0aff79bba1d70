//! The attacks of the network review, each as the review made it, now refused: one client
//! leaf renewing in a loop, a fake service under a second intermediate of the same root, a
//! flood of idle connections, audit lines that could be bloated or lost.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::service::agent_config;
use serde_json::Value;
use time::OffsetDateTime;

use crate::service::{agent, call, csr_with, renew_body, start, text_of, world};

/// The chain of an `Issued` answer and the key its CSR was made with, written as a pair.
fn save_issued(dir: &Path, name: &str, body: &[u8]) -> (std::path::PathBuf, std::path::PathBuf) {
    let v: Value = serde_json::from_slice(body).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    std::fs::write(&cert, v["chain_pem"].as_str().unwrap()).unwrap();
    (cert, dir.join(format!("{name}.key")))
}

fn sqlite(db: &Path, q: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(q).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The review's first high finding: the `app` client leaf renewed 3,630 times in 40 s, each
/// renewal a fresh identity, each renewal-before-confirmation a new etcd CRL entry. Now the
/// chain is the unit: replacing the unconfirmed successor stops at three listed entries
/// (`409 renewal-pending`), the chain's budget answers 429 with a matching `Retry-After`, and a
/// leaf used for renewal counts as installed, so the chain holds one unconfirmed successor.
#[test]
fn one_client_leaf_renewing_in_a_loop_adds_a_handful_of_crl_entries() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(&w, &[]);
    let app = w.bundle.join("clients/app");
    let first = (app.join("client.crt"), app.join("client.key"));
    let renew = |who: &(std::path::PathBuf, std::path::PathBuf), n: usize| {
        let csr = csr_with(d, &format!("r{n}"), "/CN=app", &[]);
        let a = call(
            svc.port,
            &w.ca.root,
            Some((&who.0, &who.1)),
            "POST",
            "/v1/renew",
            None,
            Some(&renew_body(&csr)),
        );
        let pair = (a.status == 200).then(|| save_issued(d, &format!("r{n}"), &a.body));
        (a, pair)
    };

    // The same leaf renews again and again without installing what it got: each time the
    // pending successor is replaced (and listed), until three are listed.
    let mut n = 0;
    for i in 1..=3 {
        n += 1;
        let (a, _) = renew(&first, n);
        assert_eq!(
            a.status,
            200,
            "replacement {i}: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    n += 1;
    let (a, latest) = renew(&first, n);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let mut current = latest.unwrap();
    n += 1;
    let (a, _) = renew(&first, n);
    let body = String::from_utf8_lossy(&a.body).into_owned();
    assert_eq!(a.status, 409, "{body}");
    assert!(body.contains("renewal-pending"), "{body}");
    assert!(svc
        .log_text()
        .contains("replaced successors on the etcd CRL"));

    // Then the chained attack for 15 s: the newest leaf renews (counting as installed), again
    // and again; the chain's budget is spent and the answers are 429 with a Retry-After that
    // says what the body says.
    let (mut renewed, mut limited) = (0, 0);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(15) {
        n += 1;
        let (a, pair) = renew(&current, n);
        match a.status {
            200 => {
                renewed += 1;
                current = pair.unwrap();
            }
            429 => {
                limited += 1;
                let body = String::from_utf8_lossy(&a.body).into_owned();
                let wait = a.retry_after.expect("Retry-After on a 429");
                assert!(
                    body.contains(&format!("try again in {wait} s")),
                    "{body} vs {wait}"
                );
            }
            s => panic!("{s}: {}", String::from_utf8_lossy(&a.body)),
        }
    }
    assert!(
        renewed <= 2,
        "the chain's budget: {renewed} renewals in 15 s"
    );
    assert!(limited > 10, "the loop was limited ({limited} 429s)");

    // What the ledger and the etcd CRL hold for CN=app now.
    let db = w.ca.ca.join("ledger.sqlite");
    let active: u32 = sqlite(
        &db,
        "SELECT COUNT(*) FROM leaves WHERE subject = 'app' AND status = 'active'",
    )
    .parse()
    .unwrap();
    assert!(active <= 2, "{active} live CN=app certificates");
    let unconfirmed: u32 = sqlite(
        &db,
        "SELECT COUNT(*) FROM renewals r JOIN leaves l ON l.serial = r.new_serial
         WHERE l.subject = 'app' AND l.status = 'active' AND r.confirmed_at IS NULL",
    )
    .parse()
    .unwrap();
    assert!(unconfirmed <= 1, "{unconfirmed} unconfirmed successors");
    let listed: Vec<String> = sqlite(
        &db,
        "SELECT serial FROM leaves WHERE subject = 'app' AND status = 'revoked'",
    )
    .lines()
    .map(String::from)
    .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    // The etcd CRL the service publishes lists exactly those (openssl reads it).
    let backup = w.bundle.join("clients/backup");
    let who = Some((backup.join("client.crt"), backup.join("client.key")));
    let who = who.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let a = call(
            svc.port,
            &w.ca.root,
            who,
            "GET",
            "/v1/crl/etcd?format=pem",
            None,
            None,
        );
        assert_eq!(a.status, 200);
        let crl = d.join("etcd.crl");
        std::fs::write(&crl, &a.body).unwrap();
        let text = e2e_tests::openssl::openssl(
            d,
            &["crl", "-noout", "-text", "-in", crl.to_str().unwrap()],
        );
        if text.matches("Serial Number:").count() >= 3 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(text.matches("Serial Number:").count(), 3, "{text}");
    for s in &listed {
        assert!(
            text.to_ascii_lowercase().contains(&s.to_ascii_lowercase()),
            "{s} listed: {text}"
        );
    }
}

/// A fake `issuer serve`: blocking rustls over std sockets, one connection at a time, every
/// request answered by `answer(method, path, body) -> (status, body)`. Counts the requests.
struct FakeService {
    port: u16,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type FakeAnswer = dyn Fn(&str, &str, &[u8]) -> (u16, Vec<u8>) + Send + Sync;

impl FakeService {
    fn start(tls: rustls::ServerConfig, answer: Box<FakeAnswer>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (requests, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (r, s, tls) = (requests.clone(), stop.clone(), Arc::new(tls));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                tcp.set_nonblocking(false).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let conn = rustls::ServerConnection::new(tls.clone()).unwrap();
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                if let Some((method, path, body)) = read_request(&mut stream) {
                    r.fetch_add(1, Ordering::Relaxed);
                    let (status, out) = answer(&method, &path, &body);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        out.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&out);
                    let _ = stream.flush();
                }
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
        });
        FakeService {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Method, path and body of one HTTP/1.1 request (None when the handshake or read failed).
fn read_request(s: &mut impl Read) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut first = head.lines().next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

/// A CA certificate and key made with rcgen, signed by `issuer`.
fn intermediate(
    cn: &str,
    not_before: OffsetDateTime,
    issuer: &rcgen::Issuer<'_, &rcgen::KeyPair>,
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = not_before;
    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(300);
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert, key)
}

/// The fake's TLS configuration: a 127.0.0.1 server certificate from `issuer` (whose
/// certificate, PEM, goes into the chain), clients verified against `root`.
fn fake_tls(
    issuer: &rcgen::Issuer<'_, &rcgen::KeyPair>,
    issuer_der: &[u8],
    root: &Path,
) -> rustls::ServerConfig {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "pki-service");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, issuer).unwrap();
    let chain = vec![
        cert.der().clone(),
        rustls::pki_types::CertificateDer::from(issuer_der.to_vec()),
    ];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let root = e2e_tests::openssl::cert_ders(root).remove(0);
    pki_service::tls::server_config(chain, key, &root.into()).unwrap()
}

/// The review's third high finding: a fake service under a second intermediate of the same
/// root (what a thief holds after the "our intermediate was stolen" rotation) got the agent to
/// renew onto its leaf and to install an empty CRL numbered 2^62, after which the real service
/// could not bring it back. Now: a fake whose TLS certificate comes from that intermediate is
/// refused in the handshake; a fake with a TLS certificate the agent trusts (the thief also
/// holds the current intermediate) gets its leaf and its CRL refused, because the agent pins the
/// generations it has seen and the intermediate is an older one it never saw; the files stay as
/// they were, and the real service renews and installs its CRL at once afterwards.
#[test]
fn a_fake_service_under_another_intermediate_of_our_root_gets_nothing_installed() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(&w, &[]);
    let host = d.join("host");
    std::fs::create_dir_all(&host).unwrap();
    for f in ["client.crt", "client.key", "ca.crt"] {
        std::fs::copy(w.bundle.join("clients/app").join(f), host.join(f)).unwrap();
    }
    let (cert, key, crl) = (
        host.join("client.crt"),
        host.join("client.key"),
        host.join("crl.pem"),
    );
    let conf_for = |url: &str, name: &str| {
        let conf = d.join(name);
        std::fs::write(
            &conf,
            agent_config(
                url,
                &host.join("ca.crt"),
                &host.join("state.json"),
                &[("client", &cert, &key)],
                Some(&crl),
            ),
        )
        .unwrap();
        conf
    };
    let real = conf_for(&svc.url(), "real.toml");
    let o = agent(
        d,
        &[
            "run",
            "--config",
            real.to_str().unwrap(),
            "--once",
            "--renew-now",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let files = || {
        [&cert, &key, &crl]
            .map(|p| std::fs::read(p).unwrap())
            .to_vec()
    };
    let before = files();
    let state_before: Value =
        serde_json::from_slice(&std::fs::read(host.join("state.json")).unwrap()).unwrap();
    let crl_number = state_before["crl"]["number"].as_u64().unwrap();

    // The thief's intermediate: signed by our root, a month old (an earlier generation).
    let root_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(w.ca.reference.join("ca-private/root.key")).unwrap(),
    )
    .unwrap();
    let root_der = e2e_tests::openssl::cert_ders(&w.ca.root).remove(0);
    let root_issuer = rcgen::Issuer::from_ca_cert_der(&root_der.into(), &root_key).unwrap();
    let (thief, thief_key) = intermediate(
        "Stolen Intermediate",
        OffsetDateTime::now_utc() - time::Duration::days(30),
        &root_issuer,
    );
    let thief_issuer = rcgen::Issuer::from_ca_cert_der(thief.der(), &thief_key).unwrap();
    let thief_pem = thief.pem();
    // What the fake serves: the thief's intermediate, leaves from it, a CRL numbered 2^62.
    let high_crl = rcgen::CertificateRevocationListParams {
        this_update: OffsetDateTime::now_utc() - time::Duration::minutes(1),
        next_update: OffsetDateTime::now_utc() + time::Duration::days(7),
        crl_number: rcgen::SerialNumber::from(1u64 << 62),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: rcgen::KeyIdMethod::PreSpecified(vec![7; 20]),
    }
    .signed_by(&thief_issuer)
    .unwrap()
    .der()
    .to_vec();
    let answer = {
        let thief_pem = thief_pem.clone();
        let thief_der = thief.der().to_vec();
        let thief_key = rcgen::KeyPair::from_pem(&thief_key.serialize_pem()).unwrap();
        move |method: &str, path: &str, body: &[u8]| -> (u16, Vec<u8>) {
            let issuer =
                rcgen::Issuer::from_ca_cert_der(&thief_der.clone().into(), &thief_key).unwrap();
            match (method, path) {
                ("GET", "/v1/ca") => (
                    200,
                    serde_json::to_vec(&serde_json::json!({
                        "generation": 9, "intermediate_pem": thief_pem
                    }))
                    .unwrap(),
                ),
                ("GET", p) if p.starts_with("/v1/crl/etcd") => (200, high_crl.clone()),
                ("POST", "/v1/renew") => {
                    let v: Value = serde_json::from_slice(body).unwrap();
                    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(
                        v["csr_pem"].as_str().unwrap(),
                    )
                    .unwrap();
                    // A leaf that passes the client profile: only its issuer gives it away.
                    let p = &mut csr.params;
                    p.is_ca = rcgen::IsCa::ExplicitNoCa;
                    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
                    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
                    p.use_authority_key_identifier_extension = true;
                    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
                    let leaf = csr.signed_by(&issuer).unwrap();
                    let serial = x509_parser::parse_x509_certificate(leaf.der())
                        .unwrap()
                        .1
                        .raw_serial_as_string()
                        .replace(':', "");
                    let issued = serde_json::json!({
                        "serial": serial, "role": "client", "subject": "app",
                        "chain_pem": format!("{}{}", leaf.pem(), thief_pem),
                        "not_after": "2027-01-01T00:00:00Z"
                    });
                    (200, serde_json::to_vec(&issued).unwrap())
                }
                _ => (404, b"{}".to_vec()),
            }
        }
    };
    let answer: Arc<FakeAnswer> = Arc::new(answer);

    // 1. The fake's TLS certificate comes from the thief's intermediate: refused in the
    //    handshake, before any request.
    let forward = |a: &Arc<FakeAnswer>| -> Box<FakeAnswer> {
        let a = a.clone();
        Box::new(move |m: &str, p: &str, b: &[u8]| a(m, p, b))
    };
    let fake = FakeService::start(
        fake_tls(&thief_issuer, thief.der(), &w.ca.root),
        forward(&answer),
    );
    let conf = conf_for(&format!("https://127.0.0.1:{}", fake.port), "fake1.toml");
    let o = agent(
        d,
        &[
            "run",
            "--config",
            conf.to_str().unwrap(),
            "--once",
            "--renew-now",
        ],
    );
    let text = text_of(&o);
    assert_ne!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("not trusted") && text.contains("never saw"),
        "{text}"
    );
    assert_eq!(
        fake.requests.load(Ordering::Relaxed),
        0,
        "no request was sent"
    );
    assert!(files() == before, "nothing installed");
    drop(fake);

    // 2. The fake's TLS certificate from the current intermediate (its key stolen too): the
    //    handshake passes, but the leaf and the CRL of the older, never-seen intermediate do not.
    let int_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(w.ca.reference.join("ca-private/intermediate.key")).unwrap(),
    )
    .unwrap();
    let int_der = e2e_tests::openssl::cert_ders(&w.ca.reference.join("intermediate.crt")).remove(0);
    let current = rcgen::Issuer::from_ca_cert_der(&int_der.clone().into(), &int_key).unwrap();
    let fake = FakeService::start(fake_tls(&current, &int_der, &w.ca.root), forward(&answer));
    let conf = conf_for(&format!("https://127.0.0.1:{}", fake.port), "fake2.toml");
    let o = agent(
        d,
        &[
            "run",
            "--config",
            conf.to_str().unwrap(),
            "--once",
            "--renew-now",
        ],
    );
    let text = text_of(&o);
    assert_ne!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("refused the certificate the service sent for client")
            && text.contains("Stolen Intermediate"),
        "the leaf: {text}"
    );
    assert!(
        text.contains("refused the CRL the service sent"),
        "the CRL: {text}"
    );
    assert!(
        fake.requests.load(Ordering::Relaxed) >= 3,
        "/v1/ca, renew, CRL were asked"
    );
    assert!(files() == before, "nothing installed");
    let state: Value =
        serde_json::from_slice(&std::fs::read(host.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["crl"]["number"].as_u64(), Some(crl_number));
    drop(fake);

    // 3. Back to the real service: it renews and its CRL is installed at once.
    let o = agent(
        d,
        &[
            "run",
            "--config",
            real.to_str().unwrap(),
            "--once",
            "--renew-now",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    assert_ne!(
        std::fs::read(&cert).unwrap(),
        before[0],
        "renewed by the real service"
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(host.join("state.json")).unwrap()).unwrap();
    assert!(state["crl"]["number"].as_u64().unwrap() >= crl_number);
    assert!(!state["trust"]["seen"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f.as_str() == Some(&pki_core::x509::fingerprint(thief.der()))));
}

/// The review's connection exhaustion: 1,030 silent sockets from one address made 21 of 25
/// health requests fail (a global cap of 1,024, a 10 s handshake timeout). Now one source holds
/// at most `--max-connections-per-source` (64) connections, the rest are closed at once, and a
/// socket that sends nothing is closed after 2 s; another client is served throughout. The
/// same service: its limits as `/proc` shows them (no core file, open files raised), and
/// `/metrics` on the loopback metrics listener only.
#[test]
fn idle_sockets_from_one_address_do_not_starve_others_and_metrics_stay_on_the_host() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(
        &w,
        &["--rate-burst", "100", "--metrics-listen", "127.0.0.1:0"],
    );
    pki_service::server::raise_open_files().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // 1,100 sockets from 127.0.0.2 that never say a word.
    let mut idle = Vec::new();
    rt.block_on(async {
        for _ in 0..1_100 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            if let Ok(c) = s
                .connect(format!("127.0.0.1:{}", svc.port).parse().unwrap())
                .await
            {
                idle.push(c);
            }
        }
    });
    assert!(idle.len() > 1_024, "{} sockets connected", idle.len());
    // Another client (127.0.0.1, with its certificate) meanwhile: every request answered.
    let backup = w.bundle.join("clients/backup");
    let who = Some((backup.join("client.crt"), backup.join("client.key")));
    let who = who.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let answered = (0..25)
        .filter(|_| {
            crate::service::try_call(svc.port, &w.ca.root, who, "GET", "/v1/health", None, None)
                .is_ok_and(|a| a.status == 200)
        })
        .count();
    assert_eq!(
        answered, 25,
        "health requests answered while the sockets sit idle"
    );
    // Within 3 s every idle socket was closed by the service (read gives end of file).
    let closed = rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut closed = 0;
        for mut c in idle {
            let mut b = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(3), c.read(&mut b)).await {
                closed += 1;
            }
        }
        closed
    });
    assert!(
        closed > 1_024,
        "{closed} idle sockets closed by the service"
    );

    // The process: no core file, the open-files limit raised to its hard limit.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", svc.child.id())).unwrap();
    let row = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .rev()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("Max core file size"), ["0", "0"], "{limits}");
    let files = row("Max open files");
    assert_eq!(files[0], files[1], "soft = hard: {limits}");
    assert!(
        svc.log_text().contains("not dumpable"),
        "{}",
        svc.log_text()
    );

    // /metrics: on the loopback listener in plain HTTP, counting the closed connections;
    // no longer on the TLS listener.
    let text = svc.scrape();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let refused: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pki_connections_refused_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(refused >= 900, "{refused} connections refused at once");
    let signed: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pki_crls_signed_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(signed >= 1, "the CRLs signed at start are counted");
    let a = call(svc.port, &w.ca.root, who, "GET", "/metrics", None, None);
    assert_eq!(a.status, 404);
    assert!(String::from_utf8_lossy(&a.body).contains("metrics listener"));
}

/// The review's audit findings: five anonymous 404s with 60 KB paths added 300 KB; a failed
/// write still sent the answer; the lines were not tamper-evident. Now a line is bounded, an
/// edited line is found by `issuer audit verify`, and when the log cannot be written (here a
/// device that answers "no space left") a renewal hands out nothing and the next is refused
/// before anything is signed, while read-only requests are still answered.
#[test]
fn the_audit_log_is_bounded_chained_and_fails_closed() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(&w, &["--rate-burst", "100"]);
    let log = w.ca.ca.join("audit.log");
    let before = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let long = format!("/{}", "a".repeat(60_000));
    for _ in 0..5 {
        let a = call(svc.port, &w.ca.root, None, "GET", &long, None, None);
        assert_eq!(a.status, 404);
    }
    let grown = std::fs::metadata(&log).unwrap().len() - before;
    assert!(grown < 5 * 1_024, "5 long 404s added {grown} bytes");
    let app = w.bundle.join("clients/app");
    let me = Some((app.join("client.crt"), app.join("client.key")));
    let me = me.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let a = call(
        svc.port,
        &w.ca.root,
        me,
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&csr_with(d, "one", "/CN=app", &[]))),
    );
    assert_eq!(a.status, 200);
    drop(svc);
    let verified = e2e_tests::fixture::ok(w.ca.issuer(&["audit", "verify", "--ca", "ca"]));
    assert!(verified.contains("chain intact"), "{verified}");
    // One character of a recorded line changed: found, and the line named.
    let text = std::fs::read_to_string(&log).unwrap();
    let n = text.lines().count();
    let edited = text.replacen("\"status\":404", "\"status\":200", 1);
    let changed = text
        .lines()
        .zip(edited.lines())
        .position(|(a, b)| a != b)
        .unwrap();
    std::fs::write(&log, &edited).unwrap();
    let o = w.ca.issuer(&["audit", "verify", "--ca", "ca"]);
    let out = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!("line {}", changed + 2)) && out.contains("edited"),
        "the line after the edit no longer names its hash ({n} lines): {out}"
    );
    std::fs::write(&log, &text).unwrap();

    // The log on a device where every write fails.
    std::fs::remove_file(&log).unwrap();
    let made = Command::new("mknod")
        .arg(&log)
        .args(["c", "1", "7"])
        .status()
        .unwrap();
    assert!(made.success(), "mknod (the tests run as root)");
    let svc = start(&w, &["--rate-burst", "100"]);
    let rows = |ca: &e2e_tests::fixture::OpensslCa| {
        serde_json::from_str::<Value>(&ca.ledger())
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    let rows_before = rows(&w.ca);
    let renew = |name: &str| {
        call(
            svc.port,
            &w.ca.root,
            me,
            "POST",
            "/v1/renew",
            None,
            Some(&renew_body(&csr_with(d, name, "/CN=app", &[]))),
        )
    };
    let a = renew("two");
    let body = String::from_utf8_lossy(&a.body).into_owned();
    assert_eq!(a.status, 503, "{body}");
    assert!(
        body.contains("audit-unavailable") && body.contains("hands out nothing"),
        "{body}"
    );
    assert_eq!(
        rows(&w.ca),
        rows_before + 1,
        "signed, recorded, never delivered"
    );
    let a = renew("three");
    assert_eq!(a.status, 503);
    assert!(String::from_utf8_lossy(&a.body).contains("refuses requests that change"));
    assert_eq!(
        rows(&w.ca),
        rows_before + 1,
        "refused before anything was signed"
    );
    let h = call(svc.port, &w.ca.root, me, "GET", "/v1/health", None, None);
    assert_eq!(h.status, 200, "read-only requests are still answered");
    let m = call(svc.port, &w.ca.root, me, "GET", "/metrics", None, None);
    assert!(String::from_utf8_lossy(&m.body).contains("pki_audit_write_failures_total 3"));
    assert!(svc.log_text().contains("AUDIT LOG WRITE FAILED"));
}

/// What the review tried and the service refused, kept refused: TLS 1.2 and an h2-only client
/// fail the handshake; headers sent slowly are cut at the 10-second header timeout; a URI past
/// 64 KiB gets 414 and a body past 64 KiB a 400; four concurrent enrolments with one token get
/// exactly one 200.
#[test]
fn what_the_review_saw_refused_stays_refused() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(&w, &["--rate-burst", "100"]);
    let port = svc.port;
    // Slow headers, in the background while the rest runs.
    let root = w.ca.root.clone();
    let slow = std::thread::spawn(move || {
        let t = Instant::now();
        let rest = raw_tls(port, &root, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n");
        (t.elapsed(), rest)
    });
    let s_client = |extra: &[&str]| {
        let o = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (o.status.success(), text_of(&o))
    };
    let (ok12, out12) = s_client(&["-tls1_2"]);
    assert!(!ok12 && out12.contains("alert protocol version"), "{out12}");
    let (okh2, outh2) = s_client(&["-tls1_3", "-alpn", "h2"]);
    assert!(
        !okh2 && outh2.contains("no application protocol"),
        "{outh2}"
    );
    // Past what an HTTP client library will even send: written on the TLS stream by hand.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(70_000));
    let answer = raw_tls(port, &w.ca.root, long.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
    let big = format!("{{\"csrs\": \"{}\"}}", "b".repeat(70_000));
    let a = call(
        port,
        &w.ca.root,
        None,
        "POST",
        "/v1/enrol",
        Some("x"),
        Some(&big),
    );
    let body = String::from_utf8_lossy(&a.body).into_owned();
    assert!(
        a.status == 400 && body.contains("length limit"),
        "{} {body}",
        a.status
    );

    // One token, four enrolments at once.
    let token_file = d.join("backup.token");
    e2e_tests::fixture::ok(w.ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        "cluster.toml",
        "--client",
        "backup",
        "--out",
        token_file.to_str().unwrap(),
    ]));
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let bodies: Vec<String> = (0..4)
        .map(|i| {
            let csr = csr_with(d, &format!("enrol{i}"), "/CN=backup", &[]);
            serde_json::json!({"csrs": [{"role": "client", "csr_pem": csr}]}).to_string()
        })
        .collect();
    let root = w.ca.root.clone();
    let statuses: Vec<u16> = bodies
        .into_iter()
        .map(|b| {
            let (root, token) = (root.clone(), token.clone());
            std::thread::spawn(move || {
                call(
                    port,
                    &root,
                    None,
                    "POST",
                    "/v1/enrol",
                    Some(&token),
                    Some(&b),
                )
                .status
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        3,
        "{statuses:?}"
    );

    let (took, rest) = slow.join().unwrap();
    assert!(
        took >= Duration::from_secs(9) && took <= Duration::from_secs(14),
        "slow headers cut after {took:?}: {rest}"
    );
    assert!(!rest.contains("200 OK"), "{rest}");
}

/// Writes `bytes` on a TLS connection to the service (no client certificate) and reads until
/// the service closes it; what it answered.
fn raw_tls(port: u16, root: &Path, bytes: &[u8]) -> String {
    let root_der = e2e_tests::openssl::cert_ders(root).remove(0);
    let tls = pki_service::tls::client_config(&root_der.into(), None).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(tls), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(bytes).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    String::from_utf8_lossy(&rest).into_owned()
}
