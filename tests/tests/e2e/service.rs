//! `issuer serve` and `pki-agent`: renewal over mutual TLS, confirmation, enrolment with
//! one-time tokens, CRLs re-signed after a revocation, refusals, metrics, the audit log,
//! SIGHUP and SIGTERM. The service runs as its users run it, on a loopback port; openssl
//! checks every certificate and CRL it hands out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::fixture::{ok, run, OpensslCa};
use e2e_tests::openssl::openssl;
use e2e_tests::service::{agent_config, Service};
use e2e_tests::trust_pki::openssl_verify;
use pki_service::client::{request, Answer, Endpoint};
use serde_json::Value;

/// A CA, a bundle for members etcd-1..2 and clients app and backup, the service's own
/// certificate; the service is not started yet.
pub(crate) struct World {
    pub(crate) ca: OpensslCa,
    pub(crate) bundle: PathBuf,
    pub(crate) cluster: PathBuf,
}

pub(crate) fn world(dir: &Path) -> World {
    let ca = OpensslCa::new(dir);
    let bundle = dir.join("bundle");
    let cluster = dir.join("cluster.toml");
    let mut text = format!(
        "name = \"svc\"\netcd-version = \"3.5\"\ninstall-dir = \"{b}/nodes/{{name}}\"\n\
         client-install-dir = \"{b}/clients/{{name}}\"\ndata-dir = \"/var/lib/etcd/{{name}}\"\n",
        b = bundle.display()
    );
    for (i, name) in ["etcd-1", "etcd-2"].iter().enumerate() {
        text.push_str(&format!(
            "\n[[member]]\nname = \"{name}\"\nips = [\"127.0.0.1\"]\n\
             client-urls = [\"https://127.0.0.1:{}\"]\npeer-urls = [\"https://127.0.0.1:{}\"]\n",
            23790 + i,
            23800 + i
        ));
    }
    text.push_str("\n[[member]]\nname = \"etcd-3\"\nips = [\"127.0.0.3\"]\nclient-urls = [\"https://127.0.0.3:2379\"]\npeer-urls = [\"https://127.0.0.3:2380\"]\n");
    text.push_str("\n[[client]]\nname = \"root\"\nroles = []\n\n[[client]]\nname = \"app\"\nroles = [\"app-rw\"]\n\n[[client]]\nname = \"backup\"\nroles = [\"app-rw\"]\n");
    text.push_str("\n[[role]]\nname = \"app-rw\"\nreadwrite = [\"/app/\"]\n");
    std::fs::write(&cluster, text).unwrap();
    let root = ca.root.to_str().unwrap().to_string();
    ok(ca.issuer(&[
        "etcd",
        "--ca",
        "ca",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle",
        "--root",
        &root,
    ]));
    ok(ca.issuer(&[
        "issue",
        "server",
        "--ca",
        "ca",
        "--out",
        "svc",
        "--cn",
        "pki-service",
        "--ip",
        "127.0.0.1",
    ]));
    World {
        ca,
        bundle,
        cluster,
    }
}

pub(crate) fn start(w: &World, extra: &[&str]) -> Service {
    start_on(w, "127.0.0.1:0", extra)
}

pub(crate) fn start_on(w: &World, listen: &str, extra: &[&str]) -> Service {
    let root = w.ca.root.to_str().unwrap();
    let mut args = vec![
        "serve",
        "--ca",
        "ca",
        "--listen",
        listen,
        "--tls-cert",
        "svc/server.crt",
        "--tls-key",
        "svc/server.key",
        "--root",
        root,
    ];
    args.extend_from_slice(extra);
    Service::start(w.ca.issuer_command(&args), &w.ca.dir.join("serve.log"))
}

pub(crate) fn agent(dir: &Path, args: &[&str]) -> std::process::Output {
    run(dir, "pki-agent", args, &[])
}

pub(crate) fn text_of(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The serial of the first certificate of a PEM file, lower-case hex as the ledger has it.
pub(crate) fn serial(file: &Path) -> String {
    let out = openssl(
        Path::new("."),
        &["x509", "-noout", "-serial", "-in", file.to_str().unwrap()],
    );
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

/// The `app` client's host: its folder `host-app` with the root, and an agent configuration
/// for its client leaf (not enrolled yet). Returns (configuration, certificate, key).
fn app_host(dir: &Path, w: &World, svc: &Service) -> (PathBuf, PathBuf, PathBuf) {
    let host = dir.join("host-app");
    let conf = dir.join("agent-app.toml");
    let (cert, key) = (host.join("client.crt"), host.join("client.key"));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::copy(&w.ca.root, host.join("ca.crt")).unwrap();
    std::fs::write(
        &conf,
        agent_config(
            &svc.url(),
            &host.join("ca.crt"),
            &host.join("state.json"),
            &[("client", &cert, &key)],
            None,
        ),
    )
    .unwrap();
    (conf, cert, key)
}

pub(crate) fn ledger_row(ca: &OpensslCa, serial: &str) -> Value {
    let rows: Value = serde_json::from_str(&ca.ledger()).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"].as_str().unwrap().trim_start_matches('0') == serial)
        .unwrap_or_else(|| panic!("no ledger row {serial}"))
        .clone()
}

/// One request with the library client, as an agent makes it: the service's answer, or why
/// there was none.
pub(crate) fn try_call(
    port: u16,
    root: &Path,
    identity: Option<(&Path, &Path)>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Result<Answer, pki_service::ServiceError> {
    let root_der = e2e_tests::openssl::cert_ders(root).remove(0);
    let ident = identity.map(|(c, k)| {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_file_iter(c)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (
            chain,
            rustls::pki_types::PrivateKeyDer::from_pem_file(k).unwrap(),
        )
    });
    let tls = pki_service::tls::client_config(&root_der.into(), ident).unwrap();
    let ep = Endpoint::parse(&format!("https://127.0.0.1:{port}")).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(request(
            &ep,
            Arc::new(tls),
            method,
            path,
            bearer,
            body.map(|b| b.as_bytes().to_vec()),
        ))
}

/// [`try_call`] that must get an answer.
pub(crate) fn call(
    port: u16,
    root: &Path,
    identity: Option<(&Path, &Path)>,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Answer {
    try_call(port, root, identity, method, path, bearer, body).unwrap()
}

fn csr(dir: &Path, name: &str) -> String {
    csr_with(dir, name, "/O=ignored", &[])
}

pub(crate) fn renew_body(csr_pem: &str) -> String {
    serde_json::json!({ "csr_pem": csr_pem }).to_string()
}

/// A member's agent renews server and peer over mutual TLS: new keys made on the host, both
/// files switched together, the old leaves superseded once confirmed, openssl verifies the new
/// chain and key; the CRL file is installed and re-fetched after a revocation with a higher
/// number that lists the serial; a revoked leaf is refused and counted.
#[test]
fn an_agent_renews_its_member_and_keeps_the_crl_current() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let w = world(tmp.path());
    let svc = start(&w, &[]);
    let node = w.bundle.join("nodes/etcd-1");
    let (server, peer) = (node.join("server.crt"), node.join("peer.crt"));
    let (old_server, old_peer) = (serial(&server), serial(&peer));
    let old_key = std::fs::read(node.join("server.key")).unwrap();
    let conf = tmp.path().join("agent-etcd-1.toml");
    std::fs::write(
        &conf,
        agent_config(
            &svc.url(),
            &node.join("ca.crt"),
            &tmp.path().join("state/etcd-1.json"),
            &[
                ("server", &server, &node.join("server.key")),
                ("peer", &peer, &node.join("peer.key")),
            ],
            Some(&node.join("crl.der")),
        ),
    )
    .unwrap();
    let c = conf.to_str().unwrap();

    // Nothing is due: a pass renews nothing, installs the CRL, exits 0.
    let o = agent(tmp.path(), &["run", "--config", c, "--once"]);
    assert!(o.status.success(), "{}", text_of(&o));
    assert!(!text_of(&o).contains("renewed"), "{}", text_of(&o));
    assert_eq!(serial(&server), old_server);
    let status: Value =
        serde_json::from_slice(&agent(tmp.path(), &["status", "--config", c, "--json"]).stdout)
            .unwrap();
    let first_crl = status["crl"]["number"].as_u64().unwrap();
    assert_eq!(status["danger"], false);
    assert!(
        status["leaves"][0]["days_left"].as_i64().unwrap() > 80,
        "{status}"
    );

    // Renewal now.
    let o = agent(tmp.path(), &["run", "--config", c, "--once", "--renew-now"]);
    assert!(o.status.success(), "{}", text_of(&o));
    let (new_server, new_peer) = (serial(&server), serial(&peer));
    assert_ne!(new_server, old_server);
    assert_ne!(new_peer, old_peer);
    assert_ne!(
        std::fs::read(node.join("server.key")).unwrap(),
        old_key,
        "a new key"
    );
    assert!(std::fs::symlink_metadata(&server).unwrap().is_symlink());
    let (good, out) = openssl_verify(tmp.path(), &w.ca.root, &server);
    assert!(good, "{out}");
    let pubkey = |args: &[&str]| openssl(tmp.path(), args);
    assert_eq!(
        pubkey(&["x509", "-noout", "-pubkey", "-in", server.to_str().unwrap()]),
        pubkey(&[
            "pkey",
            "-pubout",
            "-in",
            node.join("server.key").to_str().unwrap()
        ]),
        "the new certificate certifies the new key"
    );
    let x = openssl(
        tmp.path(),
        &["x509", "-noout", "-text", "-in", server.to_str().unwrap()],
    );
    assert!(
        x.contains("IP Address:127.0.0.1") && x.contains("CN = etcd-1"),
        "{x}"
    );
    // Old superseded (confirmed), new active, same names, recorded where the agent keeps it.
    assert_eq!(ledger_row(&w.ca, &old_server)["status"], "superseded");
    let row = ledger_row(&w.ca, &new_server);
    assert_eq!(row["status"], "active");
    assert_eq!(row["subject"], "etcd-1");
    assert!(
        row["cert_path"].as_str().unwrap().starts_with("agent:"),
        "{row}"
    );
    let s: Value =
        serde_json::from_slice(&agent(tmp.path(), &["status", "--config", c, "--json"]).stdout)
            .unwrap();
    assert!(s["leaves"][0]["last_renewal"].is_string(), "{s}");
    assert!(s["leaves"][0]["unconfirmed"].is_null(), "{s}");

    // The superseded leaf can renew nothing any more.
    let old_chain = tmp.path().join("old-server.crt");
    let old_dir = std::fs::read_dir(node.join(".pki-agent"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.strip_prefix("server.crt-")
                .is_some_and(|s| s.trim_start_matches('0') == old_server)
        })
        .expect("the old plain files are kept");
    std::fs::copy(old_dir.join("server.crt"), &old_chain).unwrap();
    let a = call(
        svc.port,
        &w.ca.root,
        Some((&old_chain, &old_dir.join("server.key"))),
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&csr(tmp.path(), "x"))),
    );
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("superseded"));

    // Revoke the new peer leaf: the next CRL (signed within seconds) lists it.
    ok(w.ca.issuer(&[
        "revoke",
        &new_peer,
        "--ca",
        "ca",
        "--reason",
        "keyCompromise",
    ]));
    std::thread::sleep(Duration::from_secs(4));
    let o = agent(tmp.path(), &["run", "--config", c, "--once"]);
    assert!(o.status.success(), "{}", text_of(&o));
    let s: Value =
        serde_json::from_slice(&agent(tmp.path(), &["status", "--config", c, "--json"]).stdout)
            .unwrap();
    assert!(s["crl"]["number"].as_u64().unwrap() > first_crl, "{s}");
    let crl = openssl(
        tmp.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-text",
            "-in",
            node.join("crl.der").to_str().unwrap(),
        ],
    );
    assert!(
        crl.to_ascii_lowercase()
            .replace(':', "")
            .contains(&new_peer),
        "{new_peer} in {crl}"
    );
    let verified = e2e_tests::openssl::try_openssl(
        tmp.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-in",
            node.join("crl.der").to_str().unwrap(),
            "-CAfile",
            w.bundle.join("intermediate.crt").to_str().unwrap(),
        ],
    );
    assert!(
        verified.0,
        "openssl checks the CRL's signature: {verified:?}"
    );

    // The revoked peer leaf is refused for good; the server leaf still renews; the pass
    // exits 3 (a permanent refusal: re-enrol the host).
    let o = agent(tmp.path(), &["run", "--config", c, "--once", "--renew-now"]);
    assert_eq!(o.status.code(), Some(3), "{}", text_of(&o));
    assert!(
        text_of(&o).contains("peer renewal") && text_of(&o).contains("revoked"),
        "{}",
        text_of(&o)
    );
    assert_ne!(serial(&server), new_server, "the server leaf was renewed");
    assert_eq!(
        serial(&peer),
        new_peer,
        "the revoked peer's files are untouched"
    );

    // Metrics count it all; the audit log has every request and the service stops on TERM.
    let m = call(svc.port, &w.ca.root, None, "GET", "/metrics", None, None);
    let m = String::from_utf8_lossy(&m.body).into_owned();
    assert!(m.contains("pki_renewed_total 3"), "{m}");
    assert!(m.contains("pki_refused_total{reason=\"revoked\"} 1"), "{m}");
    assert!(
        m.contains("pki_refused_total{reason=\"superseded\"} 1"),
        "{m}"
    );
    let audit = std::fs::read_to_string(w.ca.ca.join("audit.log")).unwrap();
    let peer_row = ledger_row(&w.ca, &new_peer);
    let ledger_serial = peer_row["serial"].as_str().unwrap();
    assert!(
        audit.contains(&format!("\"identity\":\"leaf:{ledger_serial}\"")),
        "{audit}"
    );
    assert!(audit
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    let status = svc.stop(Duration::from_secs(20));
    assert!(status.success(), "{status}");
}

/// A one-time token enrols exactly its entry, once, before it expires; the token never
/// reaches the audit log or the service's log; requests without the right credential are
/// refused and change nothing.
#[test]
fn a_token_enrols_its_entry_once() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let w = world(tmp.path());
    let svc = start(&w, &[]);
    let cl = w.cluster.to_str().unwrap();
    ok(w.ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        cl,
        "--client",
        "app",
        "--out",
        "tok",
    ]));
    let tok = std::fs::read_to_string(tmp.path().join("tok")).unwrap();
    let tok = tok.trim();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(tmp.path().join("tok"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !std::fs::read(w.ca.ca.join("ledger.sqlite"))
            .unwrap()
            .windows(tok.len())
            .any(|x| x == tok.as_bytes()),
        "stored hashed"
    );

    let (conf, cert, key) = app_host(tmp.path(), &w, &svc);
    let c = conf.to_str().unwrap();
    let o = agent(tmp.path(), &["enrol", "--config", c, "--token-file", "tok"]);
    assert!(o.status.success(), "{}", text_of(&o));
    let (good, out) = openssl_verify(tmp.path(), &w.ca.root, &cert);
    assert!(good, "{out}");
    let x = openssl(
        tmp.path(),
        &["x509", "-noout", "-subject", "-in", cert.to_str().unwrap()],
    );
    assert!(x.contains("CN=app") || x.contains("CN = app"), "{x}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let enrolled = serial(&cert);
    assert_eq!(
        ledger_row(&w.ca, &enrolled)["cert_path"],
        "agent:client app/client"
    );

    // Again: the host refuses to overwrite; another host with the same token gets nothing.
    let o = agent(tmp.path(), &["enrol", "--config", c, "--token-file", "tok"]);
    assert!(
        !o.status.success() && text_of(&o).contains("enrolled already"),
        "{}",
        text_of(&o)
    );
    let before = w.ca.ledger();
    let a = call(
        svc.port,
        &w.ca.root,
        None,
        "POST",
        "/v1/enrol",
        Some(tok),
        Some(
            &serde_json::json!({"csrs": [{"role": "client", "csr_pem": csr(tmp.path(), "a")}]})
                .to_string(),
        ),
    );
    assert_eq!(a.status, 403, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("bad-token"));
    // A member token wants server and peer CSRs; one CSR is a bad request, and the token
    // survives it.
    ok(w.ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        cl,
        "--member",
        "etcd-3",
        "--out",
        "tok3",
    ]));
    let tok3 = std::fs::read_to_string(tmp.path().join("tok3")).unwrap();
    let one = serde_json::json!({"csrs": [{"role": "server", "csr_pem": csr(tmp.path(), "b")}]})
        .to_string();
    let a = call(
        svc.port,
        &w.ca.root,
        None,
        "POST",
        "/v1/enrol",
        Some(tok3.trim()),
        Some(&one),
    );
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(w.ca.ledger(), before, "refusals record nothing");
    let two = serde_json::json!({"csrs": [
        {"role": "server", "csr_pem": csr(tmp.path(), "c")},
        {"role": "peer", "csr_pem": csr(tmp.path(), "d")}]})
    .to_string();
    let a = call(
        svc.port,
        &w.ca.root,
        None,
        "POST",
        "/v1/enrol",
        Some(tok3.trim()),
        Some(&two),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let e: Value = serde_json::from_slice(&a.body).unwrap();
    let server_pem = e["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["role"] == "server")
        .unwrap()["chain_pem"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(tmp.path().join("e3.crt"), &server_pem).unwrap();
    let x = openssl(tmp.path(), &["x509", "-noout", "-text", "-in", "e3.crt"]);
    assert!(
        x.contains("IP Address:127.0.0.3") && !x.contains("ignored"),
        "names from the cluster file, not the CSR: {x}"
    );

    // An expired token, an unknown member, a token for too long.
    ok(w.ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        cl,
        "--client",
        "backup",
        "--ttl",
        "1s",
        "--out",
        "tok-short",
    ]));
    std::thread::sleep(Duration::from_millis(2100));
    let short = std::fs::read_to_string(tmp.path().join("tok-short")).unwrap();
    let body = serde_json::json!({"csrs": [{"role": "client", "csr_pem": csr(tmp.path(), "e")}]})
        .to_string();
    let a = call(
        svc.port,
        &w.ca.root,
        None,
        "POST",
        "/v1/enrol",
        Some(short.trim()),
        Some(&body),
    );
    assert_eq!(a.status, 403);
    let o = w.ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        cl,
        "--member",
        "etcd-9",
    ]);
    assert!(
        !o.status.success() && text_of(&o).contains("no [[member]] named 'etcd-9'"),
        "{}",
        text_of(&o)
    );
    let o = w.ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        cl,
        "--client",
        "app",
        "--ttl",
        "2d",
    ]);
    assert!(
        !o.status.success() && text_of(&o).contains("24h"),
        "{}",
        text_of(&o)
    );
    // Renewal without a client certificate; an unknown path.
    let a = call(
        svc.port,
        &w.ca.root,
        None,
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&csr(tmp.path(), "f"))),
    );
    assert_eq!(a.status, 401);
    let a = call(svc.port, &w.ca.root, None, "GET", "/v1/nothing", None, None);
    assert_eq!(a.status, 404);
    // Health.
    let h: Value = serde_json::from_slice(
        &call(svc.port, &w.ca.root, None, "GET", "/v1/health", None, None).body,
    )
    .unwrap();
    assert_eq!(h["status"], "ok");

    let audit = std::fs::read_to_string(w.ca.ca.join("audit.log")).unwrap();
    for t in [tok, tok3.trim(), short.trim()] {
        assert!(!audit.contains(t), "a token reached the audit log");
        assert!(
            !svc.log_text().contains(t),
            "a token reached the service log"
        );
    }
    assert!(audit.contains("\"refused\":\"bad-token\""), "{audit}");
}

/// Rate limits apply per identity; SIGHUP reloads (a failed reload keeps serving).
#[test]
fn rate_limits_and_reload() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let w = world(tmp.path());
    let svc = start(&w, &["--rate-burst", "3", "--rate-per-minute", "1"]);
    let codes: Vec<u16> = (0..5)
        .map(|_| call(svc.port, &w.ca.root, None, "GET", "/v1/health", None, None).status)
        .collect();
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
    // Another identity (a leaf) has its own bucket.
    let node = w.bundle.join("nodes/etcd-2");
    let a = call(
        svc.port,
        &w.ca.root,
        Some((&node.join("server.crt"), &node.join("server.key"))),
        "GET",
        "/v1/health",
        None,
        None,
    );
    assert_eq!(a.status, 200);
    svc.signal("HUP");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        svc.log_text().contains("reloaded: generation 1 active"),
        "{}",
        svc.log_text()
    );
    // The identity file gone: the reload fails and the service goes on.
    std::fs::rename(&w.ca.identity, tmp.path().join("id.moved")).unwrap();
    svc.signal("HUP");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        svc.log_text()
            .contains("RELOAD FAILED, still signing with the intermediate loaded before"),
        "{}",
        svc.log_text()
    );
    let a = call(
        svc.port,
        &w.ca.root,
        Some((&node.join("peer.crt"), &node.join("peer.key"))),
        "GET",
        "/v1/health",
        None,
        None,
    );
    // Still serving, and saying loudly that the reload failed.
    assert_eq!(a.status, 503, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("reload-failed"));
    assert!(svc.stop(Duration::from_secs(20)).success());
}

/// With `service` in the cluster file, `issuer etcd` gives every member and client folder a
/// `pki-agent.toml` and systemd units; the configuration works as written (only its state
/// path moved into the test's folder): the agent renews the member's leaves and installs its
/// CRL, and the client's configuration names the client's files.
#[test]
fn issuer_etcd_writes_working_agent_files() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let w = world(tmp.path());
    let svc = start(&w, &[]);
    let text = std::fs::read_to_string(&w.cluster).unwrap();
    std::fs::write(&w.cluster, format!("service = \"{}\"\n{text}", svc.url())).unwrap();
    let root = w.ca.root.to_str().unwrap().to_string();
    ok(w.ca.issuer(&[
        "etcd",
        "--ca",
        "ca",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle",
        "--root",
        &root,
    ]));
    let node = w.bundle.join("nodes/etcd-2");
    let conf = std::fs::read_to_string(node.join("pki-agent.toml")).unwrap();
    assert!(
        conf.contains(&format!("service = \"{}\"", svc.url())),
        "{conf}"
    );
    // Units named for the cluster and the entry: a host that is a member and a client (or in
    // two clusters) installs both. Hardened: systemd's own review of the unit scores it
    // below 2 ("OK"); the configuration is read-only although its folder is writable.
    let unit_file = node.join("pki-agent-svc-etcd-2.service");
    let unit = std::fs::read_to_string(&unit_file).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart=/usr/local/bin/pki-agent run --once --config {}/pki-agent.toml",
            node.display()
        )) && unit.contains("User=etcd")
            && unit.contains(&format!("ReadOnlyPaths={}/pki-agent.toml", node.display())),
        "{unit}"
    );
    assert!(
        conf.contains("state = \"/var/lib/pki-agent/svc-etcd-2.json\""),
        "{conf}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit_file)
        .output()
        .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
    let report = String::from_utf8_lossy(&security.stdout).into_owned();
    assert!(
        security.status.success() && report.contains("Overall exposure level"),
        "{report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
    let timer = std::fs::read_to_string(node.join("pki-agent-svc-etcd-2.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=10min") && timer.contains("[Install]"));
    let app_unit =
        std::fs::read_to_string(w.bundle.join("clients/app/pki-agent-svc-app.service")).unwrap();
    assert!(app_unit.contains("User=root") && app_unit.contains("CapabilityBoundingSet=\n"));
    let client = std::fs::read_to_string(w.bundle.join("clients/app/pki-agent.toml")).unwrap();
    assert!(client.contains(&format!("{}/clients/app/client.crt", w.bundle.display())));
    assert!(
        !client.contains("[crl]"),
        "a client installs no CRL: {client}"
    );

    let moved = tmp.path().join("etcd-2.toml");
    let state = tmp.path().join("agent-state/etcd-2.json");
    std::fs::write(
        &moved,
        conf.replace(
            "/var/lib/pki-agent/svc-etcd-2.json",
            state.to_str().unwrap(),
        ),
    )
    .unwrap();
    let before = serial(&node.join("server.crt"));
    let o = agent(
        tmp.path(),
        &[
            "run",
            "--config",
            moved.to_str().unwrap(),
            "--once",
            "--renew-now",
        ],
    );
    assert!(o.status.success(), "{}", text_of(&o));
    assert_ne!(serial(&node.join("server.crt")), before);
    let (good, out) = openssl_verify(tmp.path(), &w.ca.root, &node.join("peer.crt"));
    assert!(good, "{out}");
    assert!(state.exists());
    // Run again with nothing changed: the agent files are not rewritten.
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let written = mtime(&node.join("pki-agent.toml"));
    std::thread::sleep(Duration::from_millis(20));
    ok(w.ca.issuer(&[
        "etcd",
        "--ca",
        "ca",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle",
        "--root",
        &root,
    ]));
    assert_eq!(mtime(&node.join("pki-agent.toml")), written);
}

/// A CSR made by openssl with `subj` and optional extra `-addext` arguments, and its key.
pub(crate) fn csr_with(dir: &Path, name: &str, subj: &str, addext: &[&str]) -> String {
    let key = dir.join(format!("{name}.key"));
    let out = dir.join(format!("{name}.csr"));
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
        "-subj",
        subj,
    ];
    for a in addext {
        args.extend_from_slice(&["-addext", a]);
    }
    openssl(dir, &args);
    std::fs::read_to_string(out).unwrap()
}

/// The same CSR with one byte of its signature changed: no proof of possession.
fn tampered(csr_pem: &str) -> String {
    let mut der = e2e_tests::openssl::pem_blocks(csr_pem).remove(0).1;
    let last = der.len() - 3;
    der[last] ^= 0x01;
    e2e_tests::openssl::pem_encode("CERTIFICATE REQUEST", &der)
}

/// Every refusal has its status and records nothing: another CN, extra SANs, a CSR whose
/// signature does not verify, the key being renewed, a certificate from another CA (refused in
/// the handshake), an expired leaf (`403 expired`).
#[test]
fn refusals_record_nothing() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(&w, &["--leaf-lifetime", "12s"]);
    let node = w.bundle.join("nodes/etcd-1");
    let me = Some((node.join("server.crt"), node.join("server.key")));
    let me = me.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let before = w.ca.ledger();
    let cases: Vec<(String, u16, &str)> = vec![
        (csr_with(d, "cn", "/CN=etcd-2", &[]), 403, "policy"),
        (
            csr_with(d, "san", "/CN=etcd-1", &["subjectAltName=DNS:evil.example"]),
            403,
            "policy",
        ),
        (
            tampered(&csr_with(d, "pop", "/CN=etcd-1", &[])),
            400,
            "bad-csr",
        ),
        ("not a CSR".into(), 400, "bad-csr"),
    ];
    for (csr_pem, status, code) in &cases {
        let a = call(
            svc.port,
            &w.ca.root,
            me,
            "POST",
            "/v1/renew",
            None,
            Some(&renew_body(csr_pem)),
        );
        let body = String::from_utf8_lossy(&a.body).into_owned();
        assert_eq!((a.status, body.contains(code)), (*status, true), "{body}");
    }
    // The key of the leaf being renewed.
    let own = d.join("own.csr");
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            node.join("server.key").to_str().unwrap(),
            "-subj",
            "/CN=etcd-1",
            "-out",
            own.to_str().unwrap(),
        ],
    );
    let a = call(
        svc.port,
        &w.ca.root,
        me,
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&std::fs::read_to_string(&own).unwrap())),
    );
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("key-reused"));
    assert_eq!(w.ca.ledger(), before, "refusals record nothing");

    // A client certificate of another CA: the handshake fails, nothing is answered.
    let other = d.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let sh = |script: &str| {
        let o = Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(&other)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj /CN=Other -days 2 2>/dev/null");
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout l.key -out l.csr -subj /CN=etcd-1 2>/dev/null");
    sh("printf 'extendedKeyUsage=clientAuth\\n' > ext; openssl x509 -req -in l.csr -CA ca.crt -CAkey ca.key -days 1 -extfile ext -out l.crt 2>/dev/null");
    let body = renew_body(&csr_with(d, "o", "/CN=etcd-1", &[]));
    let (other_cert, other_key) = (other.join("l.crt"), other.join("l.key"));
    let e = try_call(
        svc.port,
        &w.ca.root,
        Some((&other_cert, &other_key)),
        "POST",
        "/v1/renew",
        None,
        Some(&body),
    )
    .expect_err("another CA's certificate is refused");
    assert!(
        matches!(e, pki_service::ServiceError::Unreachable { .. })
            && e.to_string().contains("alert"),
        "{e}"
    );

    // An expired leaf: renewed to a 12-second leaf, then presented after it expired.
    let host = d.join("host");
    std::fs::create_dir_all(&host).unwrap();
    for f in ["client.crt", "client.key", "ca.crt"] {
        std::fs::copy(w.bundle.join("clients/app").join(f), host.join(f)).unwrap();
    }
    let conf = d.join("app.toml");
    let (cert, key) = (host.join("client.crt"), host.join("client.key"));
    std::fs::write(
        &conf,
        agent_config(
            &svc.url(),
            &host.join("ca.crt"),
            &host.join("s.json"),
            &[("client", &cert, &key)],
            None,
        ),
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let o = agent(d, &["run", "--config", c, "--once", "--renew-now"]);
    assert!(
        o.status.code() == Some(0) || o.status.code() == Some(2),
        "{}",
        text_of(&o)
    );
    let short = serial(&cert);
    std::thread::sleep(Duration::from_secs(13));
    let after_expiry = w.ca.ledger();
    let o = agent(d, &["run", "--config", c, "--once", "--renew-now"]);
    assert_eq!(o.status.code(), Some(3), "{}", text_of(&o));
    assert!(
        text_of(&o).contains("403 expired") && text_of(&o).contains("enrol again"),
        "an expired leaf gets a status and the next step: {}",
        text_of(&o)
    );
    assert_eq!(
        serial(&cert),
        short,
        "the expired leaf's files are left as they are"
    );
    assert_eq!(w.ca.ledger(), after_expiry);
    // The ledger still counts the expired leaf active; `issuer list` shows it expired.
    let list = ok(w.ca.issuer(&["list", "--ca", "ca"]));
    assert!(
        list.lines()
            .any(|l| l.trim_start_matches('0').starts_with(&short) && l.contains(" expired ")),
        "{list}"
    );
    let s = agent(d, &["status", "--config", c, "--json"]);
    assert_eq!(
        s.status.code(),
        Some(3),
        "an expired leaf the service refused for good: status exits 3 (it is also in the danger window)"
    );
    let json: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(json["danger"], true, "{json}");
    assert!(
        json["leaves"][0]["refused"]
            .as_str()
            .unwrap()
            .starts_with("expired"),
        "{json}"
    );
}

/// The service down for longer than the renewal point: the agent keeps the working
/// certificate, says it is in the danger window, and renews once the service is back.
#[test]
fn an_outage_keeps_certificates_and_the_agent_catches_up() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    // Below the ephemeral range: free again for the second start on the same address.
    let port = e2e_tests::serial::low_port();
    let listen = format!("127.0.0.1:{port}");
    let svc = start_on(&w, &listen, &["--leaf-lifetime", "30s"]);
    let node = w.bundle.join("nodes/etcd-1");
    let conf = d.join("a.toml");
    let text = agent_config(
        &svc.url(),
        &node.join("ca.crt"),
        &d.join("s.json"),
        &[("server", &node.join("server.crt"), &node.join("server.key"))],
        Some(&node.join("crl.der")),
    );
    std::fs::write(
        &conf,
        text.replace("state = ", "danger = \"14s\"\nstate = "),
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let o = agent(d, &["run", "--config", c, "--once", "--renew-now"]);
    assert!(o.status.success(), "{}", text_of(&o));
    let live = serial(&node.join("server.crt"));
    assert!(svc.stop(Duration::from_secs(20)).success());
    // Past the renewal point and inside the 14-second danger window.
    std::thread::sleep(Duration::from_secs(22));
    let o = agent(d, &["run", "--config", c, "--once"]);
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o));
    assert!(
        text_of(&o).contains("cannot reach the service"),
        "{}",
        text_of(&o)
    );
    assert_eq!(
        serial(&node.join("server.crt")),
        live,
        "the working certificate stays"
    );
    let s = agent(d, &["status", "--config", c, "--json"]);
    assert_eq!(s.status.code(), Some(2), "{}", text_of(&s));
    let v: Value = serde_json::from_slice(&s.stdout).unwrap();
    assert_eq!(v["danger"], true, "{v}");
    // The failure and when the agent tries next: a tenth of the ~8 s left, at least 1 s.
    let leaf = &v["leaves"][0];
    assert_eq!(leaf["last_outcome"], "failed", "{leaf}");
    assert_eq!(leaf["consecutive_failures"], 1, "{leaf}");
    let at = |k: &str| {
        time::OffsetDateTime::parse(
            leaf[k].as_str().unwrap_or_else(|| panic!("{k}: {leaf}")),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        at("next_attempt") - at("last_attempt"),
        time::Duration::seconds(1),
        "{leaf}"
    );
    // The service is back on the same address: the next pass renews.
    let svc = start_on(&w, &listen, &["--leaf-lifetime", "30s"]);
    let o = agent(d, &["run", "--config", c, "--once"]);
    assert!(o.status.success(), "{}", text_of(&o));
    assert_ne!(serial(&node.join("server.crt")), live);
    drop(svc);
}

/// kill -9 of the service while several agents renew: every certificate an agent received
/// is in the ledger, no serial repeats, and the service starts again on the same folder.
#[test]
fn kill_9_under_load_loses_no_issued_certificate() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(
        &w,
        &["--rate-burst", "100000", "--rate-per-minute", "1000000"],
    );
    let identities: Vec<(PathBuf, PathBuf)> = ["etcd-1", "etcd-2", "etcd-3"]
        .iter()
        .flat_map(|m| {
            let n = w.bundle.join("nodes").join(m);
            [
                (n.join("server.crt"), n.join("server.key")),
                (n.join("peer.crt"), n.join("peer.key")),
            ]
        })
        .collect();
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = svc.port;
    let handles: Vec<_> = identities
        .into_iter()
        .enumerate()
        .map(|(i, (cert, key))| {
            let (received, stop, root) = (received.clone(), stop.clone(), w.ca.root.clone());
            let cn = if i < 2 {
                "etcd-1"
            } else if i < 4 {
                "etcd-2"
            } else {
                "etcd-3"
            };
            let dir = d.join(format!("load-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            // Each thread renews as an agent does: from the leaf it got last.
            std::thread::spawn(move || {
                let (mut cert, mut key) = (cert, key);
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let csr = csr_with(&dir, &format!("k{n}"), &format!("/CN={cn}"), &[]);
                    let body = renew_body(&csr);
                    let mine = Some((cert.as_path(), key.as_path()));
                    match try_call(port, &root, mine, "POST", "/v1/renew", None, Some(&body)) {
                        Ok(a) if a.status == 200 => {
                            let i: pki_service::protocol::Issued =
                                serde_json::from_slice(&a.body).unwrap();
                            cert = dir.join(format!("k{n}.crt"));
                            key = dir.join(format!("k{n}.key"));
                            std::fs::write(&cert, &i.chain_pem).unwrap();
                            received.lock().unwrap().push(i.serial);
                        }
                        _ => {}
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let t = std::time::Instant::now();
    while received.lock().unwrap().len() < 20 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no renewals under load"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    svc.signal("KILL");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let got = received.lock().unwrap().clone();
    let unique: std::collections::BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a serial was returned twice");
    let ledger: Value = serde_json::from_str(&w.ca.ledger()).unwrap();
    let recorded: std::collections::BTreeSet<String> = ledger
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["serial"].as_str().unwrap().to_string())
        .collect();
    for s in &got {
        assert!(
            recorded.contains(s),
            "certificate {s} was returned but is not in the ledger"
        );
    }
    println!(
        "kill -9 under load: {} certificates received, all in the ledger",
        got.len()
    );
    drop(svc);
    let again = start(&w, &[]);
    let backup = w.bundle.join("clients/backup");
    let a = call(
        again.port,
        &w.ca.root,
        Some((&backup.join("client.crt"), &backup.join("client.key"))),
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&csr_with(d, "after", "/CN=backup", &[]))),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}

/// Rotations with the service and an agent running. First: the root revokes intermediate 1,
/// intermediate 2 is installed, `issuer reissue` moves the command-line leaves (the service's
/// own among them) but leaves a leaf kept by an agent alone, and SIGHUP reloads. The new root
/// CRL entry stays out of the etcd CRL while an active leaf still chains to intermediate 1;
/// the agent renews its leaf at once because the active intermediate changed; then the etcd
/// CRL lists intermediate 1. Second and third, with the agent dead: intermediate 1 stays
/// listed in every etcd CRL served (monotonic, checked on every poll), the new entry is held
/// and the log and `issuer list` name the leaf holding it; `issuer root-crl release` ends the
/// hold at once, and a hold nobody releases ends at its deadline (`--root-crl-hold`).
#[test]
fn a_rotation_moves_agents_before_the_old_intermediate_is_refused() {
    let _serial = e2e_tests::serial::exclusive();
    let p = e2e_tests::trust_pki::TrustPki::new();
    p.enrol(1, Default::default());
    p.service_cert();
    ok(p.issuer(&[
        "issue", "client", "--ca", "ica", "--out", "host", "--cn", "app",
    ]));
    std::fs::copy(p.path("root/root.crt"), p.path("host/ca.crt")).unwrap();
    let mut cmd = Command::new(e2e_tests::fixture::tool("issuer"));
    cmd.args([
        "serve",
        "--ca",
        "ica",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "svc/server.crt",
        "--tls-key",
        "svc/server.key",
        "--rate-burst",
        "1000",
        "--rate-per-minute",
        "100000",
        "--root-crl-hold",
        &format!("{HOLD_SECS}s"),
    ])
    .current_dir(&p.d)
    .env("PKI_AGE_IDENTITY", p.path("id.txt"))
    .env("SOFTHSM2_CONF", &p.conf);
    let svc = Service::start(cmd, &p.path("serve.log"));
    let root = p.path("root/root.crt");
    let (cert, key) = (p.path("host/client.crt"), p.path("host/client.key"));
    // A leaf the command line wrote into a folder that has agent files: its host's agent
    // keeps it, so `issuer reissue` must leave it alone.
    ok(p.issuer(&[
        "issue",
        "client",
        "--ca",
        "ica",
        "--out",
        "agent-host",
        "--cn",
        "app2",
    ]));
    std::fs::write(
        p.path("agent-host/pki-agent.toml"),
        "# written by issuer etcd\n",
    )
    .unwrap();
    let app2 = p.serial_of("agent-host/client.crt");
    let conf = p.path("agent.toml");
    std::fs::write(
        &conf,
        agent_config(
            &svc.url(),
            &p.path("host/ca.crt"),
            &p.path("state.json"),
            &[("client", &cert, &key)],
            None,
        ),
    )
    .unwrap();
    let c = conf.to_str().unwrap();
    let o = agent(&p.d, &["run", "--config", c, "--once", "--renew-now"]);
    assert!(o.status.success(), "{}", text_of(&o));
    let issuer_of = |f: &Path| {
        openssl(
            &p.d,
            &["x509", "-noout", "-issuer", "-in", f.to_str().unwrap()],
        )
    };
    assert!(issuer_of(&cert).contains("Trust Intermediate 1"));

    // The root revokes 1 and signs its CRL; 2 is signed and installed with that CRL.
    let int1 = p.serial_of("intermediate-1.crt");
    p.root_revokes("intermediate-1.crt");
    p.root_crl("root-crl-1.pem");
    let r2 = p.request_and_sign(2, Default::default());
    ok(p.install(&r2));
    let out = ok(p.issuer(&["reissue", "--ca", "ica", "--from", "1"]));
    assert!(
        out.contains("left to their hosts' agents") && out.contains(&app2),
        "reissue names the agent's leaf it leaves alone:\n{out}"
    );
    assert!(out.contains("hosts that need hands"), "{out}");
    let listed = ok(p.issuer(&["list", "--ca", "ica", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["serial"] == app2.as_str())
        .expect("app2 in the ledger");
    assert_eq!(
        row["status"], "active",
        "reissue superseded an agent's leaf: {row}"
    );
    // Out of the way for what follows (its agent is not running in this test).
    ok(p.issuer(&["revoke", &app2, "--ca", "ica", "--reason", "superseded"]));
    svc.signal("HUP");
    let t = std::time::Instant::now();
    while !svc.log_text().contains("reloaded: generation 2 active") {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", svc.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Whether the etcd CRL the service serves now lists `serial`.
    let serial_listed = |serial: &str| {
        let a = call(
            svc.port,
            &root,
            None,
            "GET",
            "/v1/crl/etcd?format=pem",
            None,
            None,
        );
        std::fs::write(p.path("etcd-crl.pem"), &a.body).unwrap();
        let text = openssl(&p.d, &["crl", "-noout", "-text", "-in", "etcd-crl.pem"]);
        text.to_ascii_lowercase()
            .replace(':', "")
            .contains(serial.trim_start_matches('0'))
    };
    let crl_lists_int1 = || serial_listed(&int1);
    let metric = || {
        let m = call(svc.port, &root, None, "GET", "/metrics", None, None);
        String::from_utf8_lossy(&m.body).into_owned()
    };
    assert!(
        metric().contains("pki_root_crl_withheld_leaves 1"),
        "{}",
        metric()
    );
    assert!(
        !crl_lists_int1(),
        "intermediate 1 is not refused while the agent's leaf needs it"
    );
    assert!(
        svc.log_text().contains("held out of the etcd CRL until")
            && svc.log_text().contains("CN=app"),
        "the log names the leaf holding the entry: {}",
        svc.log_text()
    );

    // A plain pass: the agent sees the new intermediate and renews at once.
    let o = agent(&p.d, &["run", "--config", c, "--once"]);
    assert!(o.status.success(), "{}", text_of(&o));
    assert!(
        issuer_of(&cert).contains("Trust Intermediate 2"),
        "{}: {}",
        issuer_of(&cert),
        text_of(&o)
    );
    let t = std::time::Instant::now();
    while !crl_lists_int1() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the etcd CRL never listed intermediate 1"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        metric().contains("pki_root_crl_withheld_leaves 0"),
        "{}",
        metric()
    );

    // From here the agent is dead. Every etcd CRL the service serves must list intermediate 1.
    let rotate = |n: u32| {
        p.root_revokes(&format!("intermediate-{}.crt", n - 1));
        p.root_crl(&format!("root-crl-{n}.pem"));
        let r = p.request_and_sign(n, Default::default());
        ok(p.install(&r));
        ok(p.issuer(&["reissue", "--ca", "ica", "--from", &(n - 1).to_string()]));
        let before = svc.log_text().matches("reloaded: generation").count();
        svc.signal("HUP");
        let t = std::time::Instant::now();
        while svc.log_text().matches("reloaded: generation").count() == before {
            assert!(t.elapsed() < Duration::from_secs(20), "{}", svc.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Watches the served CRL until `serial` is listed (or `limit` passes), asserting on every
    // poll that intermediate 1 is still there; returns how long it took.
    let until_listed = |serial: &str, limit: Duration| {
        let t = std::time::Instant::now();
        loop {
            assert!(
                serial_listed(&int1),
                "an etcd CRL left intermediate 1 out again"
            );
            if serial_listed(serial) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < limit,
                "{serial} not listed within {limit:?}: {}",
                svc.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    };

    // Rotation 2 with the agent dead: the entry for intermediate 2 is held, intermediate 1
    // stays listed; the hold is named, then released by hand.
    let int2 = p.serial_of("intermediate-2.crt");
    rotate(3);
    assert!(
        serial_listed(&int1) && !serial_listed(&int2),
        "{}",
        svc.log_text()
    );
    assert!(
        metric().contains("pki_root_crl_entries_held 1"),
        "{}",
        metric()
    );
    let list = ok(p.issuer(&["list", "--ca", "ica"]));
    assert!(
        list.contains(&format!("root CRL entry {int2}")) && list.contains("CN=app"),
        "issuer list names the held entry and its leaf:\n{list}"
    );
    let out = ok(p.issuer(&["root-crl", "release", "--ca", "ica"]));
    assert!(out.contains("released 1 entry"), "{out}");
    let took = until_listed(&int2, Duration::from_secs(10));
    eprintln!("released by hand: intermediate 2 listed {took:?} after `issuer root-crl release`");

    // Rotation 3, nobody releases: the hold ends at its deadline. The holder is a leaf of
    // generation 3 whose (dead) agent keeps it.
    ok(p.issuer(&[
        "issue",
        "client",
        "--ca",
        "ica",
        "--out",
        "agent-host3",
        "--cn",
        "app3",
    ]));
    std::fs::write(
        p.path("agent-host3/pki-agent.toml"),
        "# written by issuer etcd\n",
    )
    .unwrap();
    let int3 = p.serial_of("intermediate-3.crt");
    rotate(4);
    assert!(
        !serial_listed(&int3) && serial_listed(&int2),
        "{}",
        svc.log_text()
    );
    let took = until_listed(&int3, Duration::from_secs(HOLD_SECS + 15));
    eprintln!(
        "hold of {HOLD_SECS}s: intermediate 3 listed {took:?} after the reload, no agent alive"
    );
    assert!(serial_listed(&int2) && serial_listed(&int1));
}

/// The root CRL hold of the rotation test's service.
const HOLD_SECS: u64 = 20;

/// A host whose leaf is revoked: its agent's renewal is refused for good, the agent records it
/// and stops asking (`run` and `status` exit 3, the status names the refusal, once per leaf),
/// `enrol` without `--replace` says what to do, and `enrol --replace` with a new token brings
/// the host back.
#[test]
fn a_revoked_agent_stops_asking_and_enrol_replace_brings_it_back() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let w = world(tmp.path());
    let svc = start(&w, &[]);
    let cl = w.cluster.to_str().unwrap();
    let token = |name: &str| {
        ok(w.ca.issuer(&[
            "token",
            "create",
            "--ca",
            "ca",
            "--cluster",
            cl,
            "--client",
            "app",
            "--out",
            name,
        ]));
    };
    token("tok1");
    let (conf, cert, _key) = app_host(tmp.path(), &w, &svc);
    let c = conf.to_str().unwrap();
    let o = agent(
        tmp.path(),
        &["enrol", "--config", c, "--token-file", "tok1"],
    );
    assert!(o.status.success(), "{}", text_of(&o));
    let first = serial(&cert);
    let row = ledger_row(&w.ca, &first);
    ok(w.ca.issuer(&[
        "revoke",
        row["serial"].as_str().unwrap(),
        "--ca",
        "ca",
        "--reason",
        "keyCompromise",
    ]));

    // Refused for good: exit 3, remembered, not asked again.
    let o = agent(tmp.path(), &["run", "--config", c, "--once", "--renew-now"]);
    assert_eq!(o.status.code(), Some(3), "{}", text_of(&o));
    assert!(text_of(&o).contains("refused for good"), "{}", text_of(&o));
    let o = agent(tmp.path(), &["status", "--config", c, "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text_of(&o));
    let json = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        json.matches("\"role\"").count(),
        1,
        "one role key per leaf:\n{json}"
    );
    let s: Value = serde_json::from_str(&json).unwrap();
    let leaf = &s["leaves"][0];
    assert_eq!(leaf["last_outcome"], "refused", "{json}");
    assert!(
        leaf["refused"].as_str().unwrap().starts_with("revoked"),
        "{json}"
    );
    assert_eq!(leaf["consecutive_failures"], 1, "{json}");
    let refusals = || {
        let m = call(svc.port, &w.ca.root, None, "GET", "/metrics", None, None);
        String::from_utf8_lossy(&m.body)
            .lines()
            .find(|l| l.starts_with("pki_refused_total{reason=\"revoked\"}"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let before = refusals();
    let o = agent(tmp.path(), &["run", "--config", c, "--once", "--renew-now"]);
    assert_eq!(o.status.code(), Some(3), "{}", text_of(&o));
    assert_eq!(
        refusals(),
        before,
        "the agent asked again after a permanent refusal"
    );

    // enrol says what to do; --replace with a new token brings the host back.
    token("tok2");
    let o = agent(
        tmp.path(),
        &["enrol", "--config", c, "--token-file", "tok2"],
    );
    assert!(
        !o.status.success() && text_of(&o).contains("enrol --replace"),
        "{}",
        text_of(&o)
    );
    let o = agent(
        tmp.path(),
        &["enrol", "--config", c, "--token-file", "tok2", "--replace"],
    );
    assert!(o.status.success(), "{}", text_of(&o));
    assert_ne!(serial(&cert), first);
    let (good, out) = openssl_verify(tmp.path(), &w.ca.root, &cert);
    assert!(good, "{out}");
    let o = agent(tmp.path(), &["status", "--config", c, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let o = agent(tmp.path(), &["run", "--config", c, "--once", "--renew-now"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
}

/// SIGHUP loads a generation protected by a new identity once its file is added to the
/// service's --identity-list; before that, the reload fails loudly: health answers 503
/// `reload-failed` and the metric says so, while the service keeps serving.
#[test]
fn sighup_loads_a_new_identity_from_the_identity_list_and_a_failed_reload_is_visible() {
    let _serial = e2e_tests::serial::exclusive();
    let p = e2e_tests::trust_pki::TrustPki::new();
    p.enrol(1, Default::default());
    p.service_cert();
    std::fs::write(
        p.path("ids.list"),
        format!("# identities\n{}\n", p.path("id.txt").display()),
    )
    .unwrap();
    let mut cmd = Command::new(e2e_tests::fixture::tool("issuer"));
    cmd.args([
        "serve",
        "--ca",
        "ica",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "svc/server.crt",
        "--tls-key",
        "svc/server.key",
        "--identity-list",
        "ids.list",
    ])
    .current_dir(&p.d)
    .env_remove("PKI_AGE_IDENTITY")
    .env("SOFTHSM2_CONF", &p.conf);
    let svc = Service::start(cmd, &p.path("serve.log"));
    let root = p.path("root/root.crt");
    let health = || call(svc.port, &root, None, "GET", "/v1/health", None, None);
    assert_eq!(health().status, 200);

    // Generation 2 under a new identity (the thief may hold the old one).
    p.enrol_under_new_identity(2, "id2.txt");
    let reloads = |what: &str| svc.log_text().matches(what).count();
    let wait_log = |what: &str, n: usize| {
        let t = std::time::Instant::now();
        while reloads(what) < n {
            assert!(t.elapsed() < Duration::from_secs(20), "{}", svc.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    svc.signal("HUP");
    wait_log("RELOAD FAILED", 1);
    let h = health();
    assert_eq!(h.status, 503, "{}", String::from_utf8_lossy(&h.body));
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(body["status"], "reload-failed", "{body}");
    assert_eq!(body["generation"], 1, "still serving generation 1: {body}");
    let m = call(svc.port, &root, None, "GET", "/metrics", None, None);
    let m = String::from_utf8_lossy(&m.body).into_owned();
    assert!(
        m.contains("pki_reload_failed 1") && m.contains("pki_reload_failures_total 1"),
        "{m}"
    );

    // The new identity added to the list: the next SIGHUP loads generation 2.
    std::fs::write(
        p.path("ids.list"),
        format!(
            "{}\n{}\n",
            p.path("id.txt").display(),
            p.path("id2.txt").display()
        ),
    )
    .unwrap();
    svc.signal("HUP");
    wait_log("reloaded: generation 2 active", 1);
    let h = health();
    assert_eq!(h.status, 200, "{}", String::from_utf8_lossy(&h.body));
    let body: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(
        (body["status"].as_str(), body["generation"].as_u64()),
        (Some("ok"), Some(2))
    );
    let m = call(svc.port, &root, None, "GET", "/metrics", None, None);
    assert!(String::from_utf8_lossy(&m.body).contains("pki_reload_failed 0"));
}

/// A CRL published into a member's folder by hand (or by `issuer etcd`) after the service
/// signed its own is newer than what the service serves: the agent keeps it instead of
/// installing the service's older one, without failing, until the service serves a newer one:
/// the installed number never goes back.
#[test]
fn the_agent_never_replaces_a_newer_installed_crl_with_an_older_one() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let w = world(tmp.path());
    let svc = start(&w, &[]);
    let node = w.bundle.join("nodes/etcd-1");
    let crl = node.join("crl.der");
    ok(w.ca.issuer(&["crl", "--ca", "ca", "--etcd-out", crl.to_str().unwrap()]));
    let number = || {
        openssl(
            tmp.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-noout",
                "-crlnumber",
                "-in",
                crl.to_str().unwrap(),
            ],
        )
    };
    let by_hand = number();
    let conf = tmp.path().join("agent-etcd-1.toml");
    std::fs::write(
        &conf,
        agent_config(
            &svc.url(),
            &node.join("ca.crt"),
            &tmp.path().join("state/etcd-1.json"),
            &[("server", &node.join("server.crt"), &node.join("server.key"))],
            Some(&crl),
        ),
    )
    .unwrap();
    let parse = |s: String| {
        u64::from_str_radix(
            s.trim()
                .trim_start_matches("crlNumber=")
                .trim_start_matches("0x"),
            16,
        )
        .unwrap()
    };
    let pass = || {
        let o = agent(
            tmp.path(),
            &["run", "--config", conf.to_str().unwrap(), "--once"],
        );
        assert!(o.status.success(), "{}", text_of(&o));
        parse(number())
    };
    assert_eq!(
        pass(),
        parse(by_hand.clone()),
        "the newer CRL stays installed"
    );
    // Again: still kept, and not a failure (the file is not a floor for the service).
    assert_eq!(pass(), parse(by_hand.clone()));
    // The service's next CRL (after a revocation) is newer: installed.
    let other = ledger_row(&w.ca, &serial(&w.bundle.join("nodes/etcd-2/peer.crt")))["serial"]
        .as_str()
        .unwrap()
        .to_string();
    ok(w.ca.issuer(&["revoke", &other, "--ca", "ca", "--reason", "keyCompromise"]));
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        pass() > parse(by_hand.clone()),
        "the service's newer CRL is installed"
    );
}

/// Someone with write access to the database changes a member's server row into `CN=root`,
/// profile `client` (the network review's item 6): a renewal with that member's certificate
/// is refused (`403 ledger-mismatch`, logged), nothing is issued; with the row put back, the
/// same renewal succeeds.
#[test]
fn a_ledger_row_changed_in_the_database_does_not_become_another_identity() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = world(d);
    let svc = start(&w, &[]);
    let node = w.bundle.join("nodes/etcd-1");
    let me = Some((node.join("server.crt"), node.join("server.key")));
    let me = me.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let serial_hex = ledger_row(&w.ca, &serial(&node.join("server.crt")))["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let db = w.ca.ca.join("ledger.sqlite");
    let sql = |q: &str| {
        let o = Command::new("sqlite3").arg(&db).arg(q).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    sql(&format!(
        "UPDATE leaves SET subject = 'root', profile = 'client', dns = '[]', ips = '[]' WHERE serial = '{serial_hex}'"
    ));
    let before = w.ca.ledger();
    let a = call(
        svc.port,
        &w.ca.root,
        me,
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&csr(d, "tampered"))),
    );
    let body = String::from_utf8_lossy(&a.body).into_owned();
    assert_eq!(a.status, 403, "{body}");
    assert!(
        body.contains("ledger-mismatch") && body.contains("CN"),
        "{body}"
    );
    assert_eq!(w.ca.ledger(), before, "nothing was issued or recorded");
    assert!(svc
        .log_text()
        .contains("does not match the certificate presented"));

    // The row put back as it was: the renewal goes through.
    sql(&format!(
        "UPDATE leaves SET subject = 'etcd-1', profile = 'server', dns = '[\"etcd-1\"]', ips = '[\"127.0.0.1\"]' WHERE serial = '{serial_hex}'"
    ));
    let a = call(
        svc.port,
        &w.ca.root,
        me,
        "POST",
        "/v1/renew",
        None,
        Some(&renew_body(&csr(d, "fixed"))),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
}

/// A client's agent running as a daemon (no CRL to keep) asks the service nothing between
/// renewals: the production walk-through saw one anonymous `GET /v1/ca` a second, which used
/// up its address's rate limit for everyone behind it.
#[test]
fn a_client_agent_daemon_asks_nothing_between_renewals() {
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
    let conf = d.join("app.toml");
    std::fs::write(
        &conf,
        agent_config(
            &svc.url(),
            &host.join("ca.crt"),
            &host.join("s.json"),
            &[("client", &host.join("client.crt"), &host.join("client.key"))],
            None,
        ),
    )
    .unwrap();
    let lines = || {
        std::fs::read_to_string(w.ca.ca.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = lines();
    let mut daemon = Command::new(e2e_tests::fixture::tool("pki-agent"))
        .args(["run", "--config", conf.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(6));
    daemon.kill().unwrap();
    let _ = daemon.wait();
    let asked = lines() - before;
    assert!(
        (1..=2).contains(&asked),
        "{asked} requests in 6 s from an agent with nothing due"
    );
}
