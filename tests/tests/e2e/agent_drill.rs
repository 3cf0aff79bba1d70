//! The renewal and compromise drill: a real 3-member etcd cluster (3.4 and 3.5) whose members
//! and clients renew by themselves through `issuer serve` and a `pki-agent` daemon each,
//! leaves living 30 seconds, a writer running throughout. Then a client is revoked and every
//! member must refuse it within the agents' CRL interval. Then the intermediate is stolen: a
//! thief forges a `CN=root` client certificate under it that etcd accepts, and the runbook's
//! compromise rotation runs with one agent dead throughout (the `ops` client's, whose
//! command-line leaf of the stolen intermediate holds its root CRL entry back): the forged
//! certificate must be refused by every member within the hold plus the agents' CRL interval,
//! and never accepted again (polled every second); every etcd CRL the service serves after the
//! first listing the stolen intermediate lists it; the dead host comes back by `enrol
//! --replace`. Printed: rounds, the longest write gap, the revocation window, the timeline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::etcd_cluster::{
    free_port_base, presented_issuer, EtcdCluster, EtcdVersion, Etcdctl,
};
use e2e_tests::fixture::{ok, run, tool};
use e2e_tests::service::{Daemon, Service};
use e2e_tests::trust_pki::TrustPki;
use e2e_tests::writer::{error_window, Writer};

/// Leaf lifetime in the drill; the agents renew at about 2/3 of it.
const LIFETIME: &str = "30s";
/// Renewal rounds every leaf must go through.
const ROUNDS: usize = 4;
/// The service's root CRL hold in the compromise drill.
const HOLD: &str = "20s";
/// The agents' CRL interval.
const CRL_INTERVAL_SECS: u64 = 10;

fn serial_of(pem_file: &Path) -> Option<String> {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(pem_file)
        .output()
        .ok()?;
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .to_ascii_lowercase()
    })
}

/// The serial of the certificate `host:port` presents now.
fn served_serial(hostport: &str, client: &Path) -> String {
    let o = Command::new("bash")
        .arg("-c")
        .arg(
            "openssl s_client -connect \"$1\" -cert \"$2/client.crt\" -key \"$2/client.key\" \
             </dev/null 2>/dev/null | openssl x509 -noout -serial",
        )
        .arg("served")
        .arg(hostport)
        .arg(client)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .to_ascii_lowercase()
}

fn drill(v: EtcdVersion, start_port: u16) {
    let _serial = e2e_tests::serial::exclusive();
    let p = TrustPki::new();
    p.enrol(1, Default::default());
    let d = p.d.as_path();
    p.service_cert();
    // The service unlocks with the identity files listed here, re-read at every SIGHUP: a
    // compromise rotation protects the new generation with a new identity.
    std::fs::write(
        d.join("ids.list"),
        format!("{}\n", d.join("id.txt").display()),
    )
    .unwrap();
    let mut serve = std::process::Command::new(tool("issuer"));
    serve
        .args([
            "serve",
            "--ca",
            "ica",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "svc/server.crt",
            "--tls-key",
            "svc/server.key",
            "--leaf-lifetime",
            LIFETIME,
            "--crl-days",
            "1",
            "--identity-list",
            "ids.list",
            "--root-crl-hold",
            HOLD,
        ])
        .current_dir(d)
        .env_remove("PKI_AGE_IDENTITY");
    let svc = Service::start(serve, &d.join("serve.log"));
    let base = free_port_base(start_port, 3);
    let bundle = d.join("bundle");
    std::fs::write(
        d.join("cluster.toml"),
        e2e_tests::drill::cluster_text(
            "drill",
            v.minor(),
            &bundle,
            &d.join("data"),
            base,
            &svc.url(),
            &["root", "app", "ops"],
        ),
    )
    .unwrap();
    ok(p.issuer(&[
        "etcd",
        "--ca",
        "ica",
        "--cluster",
        "cluster.toml",
        "--out",
        "bundle",
    ]));
    let states = d.join("agents");
    std::fs::create_dir_all(&states).unwrap();
    let mut folders: Vec<(String, PathBuf)> = (1..=3)
        .map(|i| (format!("etcd-{i}"), bundle.join(format!("nodes/etcd-{i}"))))
        .collect();
    folders.push(("root".into(), bundle.join("clients/root")));
    folders.push(("app".into(), bundle.join("clients/app")));
    // The `ops` host's agent is dead throughout: it keeps the bundle's 90-day leaf of
    // intermediate 1.
    let ops_dir = bundle.join("clients/ops");
    let ops_conf = e2e_tests::drill::agent_conf(&ops_dir, &states, "drill", "ops", Some("5s"));
    let confs: Vec<(String, PathBuf)> = folders
        .iter()
        .map(|(n, f)| {
            (
                n.clone(),
                e2e_tests::drill::agent_conf(f, &states, "drill", n, Some("5s")),
            )
        })
        .collect();
    // The bundle's 90-day leaves become 30-second ones: one forced pass per host.
    for (name, conf) in &confs {
        let o = e2e_tests::fixture::run(
            d,
            "pki-agent",
            &[
                "run",
                "--once",
                "--renew-now",
                "--config",
                conf.to_str().unwrap(),
            ],
            &[],
        );
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    let mut cluster = EtcdCluster::start(&bundle, &d.join("logs"), v);
    let pids = cluster.pids();
    let eps = cluster.endpoints();
    let rootctl = Etcdctl::new(&bundle.join("clients/root"), &eps, v);
    rootctl.wait_healthy(3, Duration::from_secs(40), &mut cluster);
    rootctl.assert_release(3);
    let mut wctl = rootctl.clone();
    wctl.dial_timeout = "1s";
    wctl.command_timeout = "2s";
    let writer = Writer::start(wctl);
    let mut daemons: BTreeMap<String, Daemon> = BTreeMap::new();
    for (name, conf) in &confs {
        let log = std::fs::File::create(states.join(format!("{name}.log"))).unwrap();
        let child = Command::new(tool("pki-agent"))
            .args(["run", "--config", conf.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        daemons.insert(name.clone(), Daemon(child));
    }

    // Every leaf goes through ROUNDS renewals by itself.
    let mut leaf_files: Vec<PathBuf> = Vec::new();
    for (_, f) in &folders {
        for file in ["server.crt", "peer.crt", "client.crt"] {
            if f.join(file).exists() {
                leaf_files.push(f.join(file));
            }
        }
    }
    assert_eq!(leaf_files.len(), 8);
    let mut seen: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let t = Instant::now();
    loop {
        for f in &leaf_files {
            if let Some(s) = serial_of(f) {
                seen.entry(f.clone()).or_default().insert(s);
            }
        }
        if seen.len() == leaf_files.len() && seen.values().all(|s| s.len() > ROUNDS) {
            break;
        }
        let logs: String = confs
            .iter()
            .map(|(n, _)| {
                let log = std::fs::read_to_string(states.join(format!("{n}.log")));
                format!("--- {n}\n{}", log.unwrap_or_default())
            })
            .collect();
        assert!(
            t.elapsed() < Duration::from_secs(240),
            "not every leaf renewed {ROUNDS} times in 240 s: {:?}\nagents:\n{logs}\nservice:\n{}",
            seen.iter()
                .map(|(f, s)| (f.display().to_string(), s.len()))
                .collect::<Vec<_>>(),
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let rounds_took = t.elapsed();
    assert!(cluster.exited().is_empty(), "{}", cluster.log_tails(10));
    assert_eq!(cluster.pids(), pids, "no member restarted");
    // Each member serves the certificate now in its folder (read again per handshake).
    for (i, m) in cluster.members.iter().enumerate() {
        let file = bundle.join(format!("nodes/etcd-{}/server.crt", i + 1));
        let hostport = m.client_url.trim_start_matches("https://").to_string();
        let matched = (0..5).any(|_| {
            let want = serial_of(&file).unwrap();
            let got = served_serial(&hostport, &bundle.join("clients/root"));
            got == want || {
                std::thread::sleep(Duration::from_millis(300));
                false
            }
        });
        assert!(matched, "{} serves its renewed certificate", m.name);
    }

    // Revoke the app client (its agent stopped first, so the revoked leaf is the live one).
    drop(daemons.remove("app"));
    let app_dir = bundle.join("clients/app");
    let appctl = Etcdctl::new(&app_dir, &eps, v);
    let (good, out) = appctl.try_run(&["get", "/drill/0"]);
    assert!(good, "app works before its revocation: {out}");
    let serial = serial_of(&app_dir.join("client.crt")).unwrap();
    let serial = serial.trim_start_matches("serial=").to_string();
    ok(p.issuer(&[
        "revoke",
        &serial,
        "--ca",
        "ica",
        "--reason",
        "keyCompromise",
    ]));
    let revoked_at = Instant::now();
    let mut refused_by: BTreeMap<String, Duration> = BTreeMap::new();
    while refused_by.len() < 3 {
        for m in &cluster.members {
            if refused_by.contains_key(&m.name) {
                continue;
            }
            let mut one = appctl.clone();
            one.endpoints = m.client_url.clone();
            one.dial_timeout = "1s";
            one.command_timeout = "2s";
            if !one.try_run(&["get", "/drill/0"]).0 {
                refused_by.insert(m.name.clone(), revoked_at.elapsed());
            }
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(30),
            "members refusing the revoked client after 30 s: {refused_by:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let window = refused_by.values().max().copied().unwrap();

    // The writer lost no acknowledged write; the longest gap between acknowledged writes.
    let (attempts, stopped) = writer.finish();
    let (good, out) = rootctl.try_run(&["get", "/drill/", "--prefix"]);
    assert!(good, "{out}");
    let stored: BTreeSet<&str> = out.lines().collect();
    let acked: Vec<_> = attempts.iter().filter(|a| a.acked).collect();
    assert!(acked.len() > 50, "the writer kept writing: {}", acked.len());
    for a in &acked {
        assert!(
            stored.contains(format!("/drill/{}", a.n).as_str()),
            "acknowledged write /drill/{} lost",
            a.n
        );
    }
    let gap = error_window(&attempts, attempts[0].done, stopped);
    let failed = attempts.iter().filter(|a| !a.acked).count();
    println!(
        "{v}: {ROUNDS} renewal rounds of {} leaves in {:.0?} ({LIFETIME} leaves), no restart; \
         writer: {} acknowledged, {failed} failed, longest gap {gap:.0?}; \
         revoked client refused by every member within {window:.1?} ({refused_by:?})",
        leaf_files.len(),
        rounds_took,
        acked.len(),
    );
    // The bound: the agents' 10-second CRL interval, the service's 1-second revocation poll,
    // and the time to sign, fetch and install on a loaded 2-core machine.
    assert!(
        window < Duration::from_secs(25),
        "members refused the revoked client only after {window:?}; service:\n{}\nagents:\n{}",
        svc.log_text(),
        (1..=3)
            .map(
                |i| std::fs::read_to_string(states.join(format!("etcd-{i}.log")))
                    .unwrap_or_default()
            )
            .collect::<Vec<_>>()
            .join("---\n")
    );
    assert!(
        gap < Duration::from_secs(3),
        "renewals must not interrupt writes: longest gap {gap:?}"
    );
    compromise(&p, &svc, &cluster, &bundle, &ops_conf, &states, &eps, v);
    drop(daemons);
    assert!(svc.stop(Duration::from_secs(20)).success());
}

/// Whether `ctl` (with one member as endpoint) is accepted for a read.
fn accepted(ctl: &Etcdctl, endpoint: &str) -> bool {
    let mut one = ctl.clone();
    one.endpoints = endpoint.to_string();
    one.dial_timeout = "1s";
    one.command_timeout = "2s";
    one.try_run(&["get", "/drill/0"]).0
}

/// The compromise rotation of docs/rotation.md with agents running and the `ops` agent dead.
#[allow(clippy::too_many_arguments)]
fn compromise(
    p: &TrustPki,
    svc: &Service,
    cluster: &EtcdCluster,
    bundle: &Path,
    ops_conf: &Path,
    states: &Path,
    eps: &str,
    v: EtcdVersion,
) {
    let d = p.d.as_path();
    let rootctl = Etcdctl::new(&bundle.join("clients/root"), eps, v);
    let mut wctl = rootctl.clone();
    wctl.dial_timeout = "1s";
    wctl.command_timeout = "2s";
    let writer = Writer::start(wctl);
    // The thief copied generation 1's key and its identity: a CN=root client certificate
    // from a copy of the CA folder, unknown to the real ledger.
    let (good, out, err) = e2e_tests::fixture::sh(d, "cp", &["-a", "ica", "thief-ica"]);
    assert!(good, "{out}{err}");
    ok(p.issuer(&[
        "issue",
        "client",
        "--ca",
        "thief-ica",
        "--out",
        "thief",
        "--cn",
        "root",
    ]));
    std::fs::copy(bundle.join("clients/root/ca.crt"), d.join("thief/ca.crt")).unwrap();
    let thief = Etcdctl::new(&d.join("thief"), eps, v);
    let members: Vec<(String, String)> = cluster
        .members
        .iter()
        .map(|m| (m.name.clone(), m.client_url.clone()))
        .collect();
    for (name, url) in &members {
        assert!(
            accepted(&thief, url),
            "the forged certificate works on {name} before the rotation"
        );
    }
    let opsctl = Etcdctl::new(&bundle.join("clients/ops"), eps, v);
    assert!(
        accepted(&opsctl, &members[0].1),
        "ops works before the rotation"
    );

    // Hour 0 (docs/rotation.md): the root revokes intermediate 1 and signs its CRL with the
    // new intermediate, under a new identity; installed, listed for the service, reloaded.
    let int1 = p.serial_of("intermediate-1.crt");
    p.root_revokes("intermediate-1.crt");
    p.root_crl("root-crl-1.pem");
    p.enrol_under_new_identity(2, "id2.txt");
    std::fs::write(
        d.join("ids.list"),
        format!(
            "{}\n{}\n",
            d.join("id.txt").display(),
            d.join("id2.txt").display()
        ),
    )
    .unwrap();
    let reissue = ok(p.issuer(&[
        "reissue",
        "--ca",
        "ica",
        "--from",
        "1",
        "--identity",
        "id2.txt",
    ]));
    assert!(
        reissue.contains("left to their hosts' agents") && reissue.contains("client ops"),
        "reissue leaves the agents' leaves alone and names them:\n{reissue}"
    );
    svc.signal("HUP");
    let t0 = Instant::now();

    // Watch, once a second: which members refuse the forged certificate (never to accept it
    // again), which serve a leaf of intermediate 2, and every etcd CRL the service serves.
    let bound = Duration::from_secs(20 + CRL_INTERVAL_SECS + 15);
    let mut refused: BTreeMap<String, Duration> = BTreeMap::new();
    let mut moved: BTreeMap<String, Duration> = BTreeMap::new();
    let mut crls: BTreeMap<u64, bool> = BTreeMap::new();
    let mut first_listing: Option<(u64, Duration)> = None;
    let root_pem = d.join("root/root.crt");
    let watch = |refused: &mut BTreeMap<String, Duration>,
                 moved: &mut BTreeMap<String, Duration>,
                 crls: &mut BTreeMap<u64, bool>,
                 first_listing: &mut Option<(u64, Duration)>| {
        for (name, url) in &members {
            let ok_now = accepted(&thief, url);
            match refused.get(name) {
                Some(at) => assert!(
                    !ok_now,
                    "{name} accepted the forged certificate again {:?} after refusing it at {at:?}",
                    t0.elapsed()
                ),
                None if !ok_now => {
                    refused.insert(name.clone(), t0.elapsed());
                }
                None => {}
            }
            let hostport = url.trim_start_matches("https://");
            if !moved.contains_key(name)
                && presented_issuer(hostport, Some(&bundle.join("clients/root")))
                    .contains("Intermediate 2")
            {
                moved.insert(name.clone(), t0.elapsed());
            }
        }
        // The CRLs etcd enforces: every member's installed file, each second, and what the
        // service serves, every third second (anonymously, within the per-address limit; a
        // leaf's own bucket belongs to its agent).
        let mut texts: Vec<String> = members
            .iter()
            .map(|(name, _)| {
                let f = bundle.join(format!("nodes/{name}/crl.der"));
                let o = std::process::Command::new("openssl")
                    .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
                    .arg(&f)
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&o.stdout).to_ascii_lowercase()
            })
            .collect();
        if t0.elapsed().as_secs().is_multiple_of(3) {
            let a = e2e_tests::fixture::bash(&format!(
                "curl -sf --cacert {} https://127.0.0.1:{}/v1/crl/etcd?format=pem | openssl crl -noout -text",
                root_pem.display(),
                svc.port
            ))
            .output()
            .unwrap();
            texts.push(String::from_utf8_lossy(&a.stdout).to_ascii_lowercase());
        }
        for text in texts {
            if let Some(n) = text
                .lines()
                .skip_while(|l| !l.contains("x509v3 crl number"))
                .nth(1)
                .and_then(|l| l.trim().parse::<u64>().ok())
            {
                let lists = text.replace(':', "").contains(int1.trim_start_matches('0'));
                crls.insert(n, lists);
                if lists && first_listing.is_none() {
                    *first_listing = Some((n, t0.elapsed()));
                }
            }
        }
    };
    loop {
        watch(&mut refused, &mut moved, &mut crls, &mut first_listing);
        if refused.len() == members.len() && moved.len() == members.len() {
            break;
        }
        assert!(
            t0.elapsed() < bound,
            "after {bound:?}: forged refused by {refused:?}, members moved {moved:?}; service:\n{}",
            svc.log_text()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let forged_refused = refused.values().max().copied().unwrap();
    let all_moved = moved.values().max().copied().unwrap();
    assert!(
        svc.log_text().contains("held out of the etcd CRL") && svc.log_text().contains("CN=ops"),
        "the service named the dead host's leaf holding the entry:\n{}",
        svc.log_text()
    );

    // The dead host, as the runbook says: cut off once the hold ended; a new token and
    // `pki-agent enrol --replace` bring it back under intermediate 2.
    assert!(
        !accepted(&opsctl, &members[0].1),
        "ops is cut off with intermediate 1"
    );
    ok(p.issuer(&[
        "token",
        "create",
        "--ca",
        "ica",
        "--cluster",
        "cluster.toml",
        "--client",
        "ops",
        "--out",
        "ops.token",
    ]));
    let o = run(
        d,
        "pki-agent",
        &[
            "enrol",
            "--config",
            ops_conf.to_str().unwrap(),
            "--token-file",
            "ops.token",
            "--replace",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let back = Instant::now();
    while !accepted(&opsctl, &members[0].1) {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "ops did not come back"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // A few more seconds of watching: the forged certificate stays refused everywhere.
    let steady = Instant::now();
    while steady.elapsed() < Duration::from_secs(5) {
        watch(&mut refused, &mut moved, &mut crls, &mut first_listing);
        std::thread::sleep(Duration::from_secs(1));
    }
    let (first_n, listed_at) = first_listing.expect("an etcd CRL listed intermediate 1");
    for (n, lists) in &crls {
        assert!(
            *n < first_n || *lists,
            "etcd CRL {n}, served after CRL {first_n} listed intermediate 1, left it out: {crls:?}"
        );
    }
    let (attempts, stopped) = writer.finish();
    // Read back (retried: a read can meet the admin client's own renewal mid-swap).
    let mut read = rootctl.try_run(&["get", "/drill/", "--prefix"]);
    let t = Instant::now();
    while !read.0 && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_secs(1));
        read = rootctl.try_run(&["get", "/drill/", "--prefix"]);
    }
    let (good, out) = read;
    assert!(
        good,
        "{out}\nwriter: {} acknowledged, {} failed\nroot agent:\n{}\nmembers:\n{}",
        attempts.iter().filter(|a| a.acked).count(),
        attempts.iter().filter(|a| !a.acked).count(),
        std::fs::read_to_string(states.join("root.log")).unwrap_or_default(),
        cluster.log_tails(15)
    );
    let stored: BTreeSet<&str> = out.lines().collect();
    for a in attempts.iter().filter(|a| a.acked) {
        assert!(
            stored.contains(format!("/drill/{}", a.n).as_str()),
            "acknowledged write /drill/{} lost",
            a.n
        );
    }
    let gap = error_window(&attempts, attempts[0].done, stopped);
    println!(
        "{v} compromise rotation (hold {HOLD}, CRL interval {CRL_INTERVAL_SECS}s, ops agent dead): \
         every member on intermediate 2 after {all_moved:.1?} ({moved:?}); stolen intermediate \
         first listed in etcd CRL {first_n} after {listed_at:.1?}; forged CN=root refused by \
         every member after {forged_refused:.1?} ({refused:?}), never accepted again over \
         {:.0?}; etcd CRLs served {:?}; dead host re-enrolled; writer: {} acknowledged, \
         {} failed, longest gap {gap:.1?}",
        t0.elapsed(),
        crls.keys().collect::<Vec<_>>(),
        attempts.iter().filter(|a| a.acked).count(),
        attempts.iter().filter(|a| !a.acked).count(),
    );
    assert!(
        gap < Duration::from_secs(3),
        "the rotation must not interrupt writes: longest gap {gap:?}"
    );
}

#[test]
fn members_and_clients_renew_by_themselves_etcd_3_4() {
    drill(EtcdVersion::V3_4, 27100);
}

#[test]
fn members_and_clients_renew_by_themselves_etcd_3_5() {
    drill(EtcdVersion::V3_5, 28100);
}
