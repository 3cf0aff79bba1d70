//! A fleet that runs itself, seen from the CA host: a 3-member etcd cluster halfway through a
//! rolling upgrade (two 3.4 members, one 3.5) and two clients, every host enrolled from an
//! enrolment-only bundle (no leaf key ever on the CA host), 30-second leaves renewed by the
//! agents' daemons, a writer running. One client is revoked and one member host stopped:
//! `issuer fleet` names the stopped host `renew overdue`, then `failing`, and the revoked
//! client `revoked`; the alert rules of `deploy/prometheus` fire for exactly those, judged by
//! `promtool` on the values the service exposed at that moment; meanwhile the service renews
//! its own 30-second TLS certificate (at 2/3 of its life, swapped in place: the old one
//! superseded in the ledger, openssl verifies the new one and the one served) and its clients
//! keep connecting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::etcd_cluster::{free_port_base, EtcdCluster, EtcdVersion, Etcdctl};
use e2e_tests::fixture::{ok, tool, OpensslCa};
use e2e_tests::service::Daemon;
use e2e_tests::trust_pki::openssl_verify;
use e2e_tests::writer::Writer;

use crate::service::{agent, serial, text_of, try_call};

/// Each entry's state as `issuer fleet --json` says it, and its exit code.
fn fleet(ca: &OpensslCa) -> (Option<i32>, BTreeMap<String, String>) {
    let o = ca.issuer(&["fleet", "--ca", "ca", "--cluster", "cluster.toml", "--json"]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text_of(&o)));
    let states = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["entry"].as_str().unwrap().to_string(),
                e["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (o.status.code(), states)
}

/// The state an agent's `pki_agent_state` series says is current.
fn metric_state(metrics: &str, entry: &str) -> Option<String> {
    let head = format!("pki_agent_state{{entry=\"{entry}\",state=\"");
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(&head)?;
        let (state, value) = rest.split_once("\"} ")?;
        (value.trim() == "1").then(|| state.to_string())
    })
}

/// A `promtool test rules` file: every sample of `metrics` held for 20 minutes (job "pki"),
/// and, at 15 minutes, exactly `firing` (alert name, entry, extra labels) among the agent
/// alerts.
fn promtool_case(metrics: &str, firing: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(
        "rule_files: [pki-alerts.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("pki_") && !l.contains("_total"))
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let series = match series.split_once('{') {
            Some((name, labels)) => format!("{name}{{job=\"pki\",{labels}"),
            None => format!("{series}{{job=\"pki\"}}"),
        };
        s.push_str(&format!(
            "      - series: '{series}'\n        values: '{value}x20'\n"
        ));
    }
    s.push_str(
        "    promql_expr_test:\n      - expr: ALERTS{alertstate=\"firing\",alertname=~\"PkiAgent.*|PkiRenewalOverdue|PkiLeafExpiringSoon\"}\n        eval_time: 15m\n        exp_samples:\n",
    );
    for (alert, entry, labels) in firing {
        let severity = match *alert {
            "PkiRenewalOverdue" | "PkiAgentRevoked" => "warning",
            _ => "critical",
        };
        s.push_str(&format!(
            "          - labels: 'ALERTS{{alertname=\"{alert}\",alertstate=\"firing\",entry=\"{entry}\",job=\"pki\",severity=\"{severity}\"{labels}}}'\n            value: 1\n"
        ));
    }
    s
}

fn promtool(dir: &Path, case: &str) -> (bool, String) {
    std::fs::copy(
        e2e_tests::fixture::workspace().join("deploy/prometheus/pki-alerts.yml"),
        dir.join("pki-alerts.yml"),
    )
    .unwrap();
    std::fs::write(dir.join("case.yml"), case).unwrap();
    let o = Command::new("promtool")
        .args(["test", "rules", "case.yml"])
        .current_dir(dir)
        .output()
        .expect("promtool (scripts/install-deps.sh installs prometheus)");
    (o.status.success(), text_of(&o))
}

#[test]
fn an_agents_only_fleet_shows_a_stopped_host_and_a_revoked_client() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let svc = e2e_tests::service::serve_ca(
        &ca,
        &["--lifetime", "30s"],
        &["--leaf-lifetime", "30s", "--metrics-listen", "127.0.0.1:0"],
    );
    // The certificate it started with (it renews it itself at 20 s).
    let svc_first = serial(&d.join("svc/server.crt"));
    let root = ca.root.to_str().unwrap().to_string();

    // The enrolment-only bundle: no leaf and no key in it, nothing in the ledger.
    let bundle = d.join("bundle");
    let base = free_port_base(29100, 3);
    std::fs::write(
        d.join("cluster.toml"),
        e2e_tests::drill::cluster_text(
            "fleet",
            "3.4",
            &bundle,
            &d.join("data"),
            base,
            &svc.url(),
            &["app", "backup"],
        ),
    )
    .unwrap();
    let before = ca.ledger();
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
        "--enrol-only",
    ]));
    let listed = e2e_tests::fixture::files_under(&bundle);
    let secret: Vec<_> = listed
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            (name.ends_with(".key") || name.ends_with(".crt"))
                && name != "ca.crt"
                && name != "intermediate.crt"
        })
        .collect();
    assert!(secret.is_empty(), "leaf or key in the bundle: {secret:?}");
    assert_eq!(ca.ledger(), before, "nothing issued for the bundle");
    let (_, states) = fleet(&ca);
    assert!(states.values().all(|s| s == "never enrolled"), "{states:?}");

    // Every host enrols with its folder's token and makes one pass.
    let states_dir = d.join("agents");
    std::fs::create_dir_all(&states_dir).unwrap();
    let hosts: Vec<(String, PathBuf)> = (1..=3)
        .map(|i| (format!("etcd-{i}"), bundle.join(format!("nodes/etcd-{i}"))))
        .chain(["app", "backup"].map(|c| (c.to_string(), bundle.join("clients").join(c))))
        .collect();
    let mut confs = BTreeMap::new();
    for (name, folder) in &hosts {
        let conf = e2e_tests::drill::agent_conf(folder, &states_dir, "fleet", name, None);
        let token = folder.join("enrol.token");
        let c = conf.to_str().unwrap();
        let o = agent(
            d,
            &[
                "enrol",
                "--config",
                c,
                "--token-file",
                token.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{name}: {}", text_of(&o));
        let o = agent(d, &["run", "--once", "--config", c]);
        assert!(o.status.success(), "{name}: {}", text_of(&o));
        confs.insert(name.clone(), conf);
    }
    let enrolled = Instant::now();
    for leaf in [
        "nodes/etcd-2/server.crt",
        "nodes/etcd-3/peer.crt",
        "clients/app/client.crt",
    ] {
        let (good, why) = openssl_verify(d, &ca.root, &bundle.join(leaf));
        assert!(good, "{leaf}: {why}");
    }

    // The cluster: etcd-1 and etcd-3 on 3.4, etcd-2 on 3.5; a writer as `app`.
    let mut cluster = EtcdCluster::start_mixed(
        &bundle,
        &d.join("logs"),
        &[EtcdVersion::V3_4, EtcdVersion::V3_5, EtcdVersion::V3_4],
    );
    let eps = cluster.endpoints();
    let appctl = Etcdctl::new(&bundle.join("clients/app"), &eps, EtcdVersion::V3_4);
    appctl.wait_healthy(3, Duration::from_secs(40), &mut cluster);
    let (good, status) = appctl.try_run(&["endpoint", "status", "-w", "json"]);
    assert!(
        good && EtcdVersion::V3_4.members_serving(&status) == 2
            && EtcdVersion::V3_5.members_serving(&status) == 1,
        "two 3.4 members and one 3.5: {status}"
    );
    // etcd-3's host stops (its member and its agent); the writer uses the two others.
    {
        let m = &mut cluster.members[2];
        let _ = m.child.kill();
        let _ = m.child.wait();
    }
    let mut wctl = appctl.clone();
    wctl.endpoints = format!(
        "{},{}",
        cluster.members[0].client_url, cluster.members[1].client_url
    );
    wctl.dial_timeout = "1s";
    wctl.command_timeout = "2s";
    let writer = Writer::start(wctl);
    let mut daemons = Vec::new();
    for name in ["etcd-1", "etcd-2", "app", "backup"] {
        let log = std::fs::File::create(states_dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(tool("pki-agent"))
            .args(["run", "--config", confs[name].to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        daemons.push(Daemon(child));
    }
    // The backup client is revoked.
    let backup_serial = serial(&bundle.join("clients/backup/client.crt"));
    ok(ca.issuer(&[
        "revoke",
        "--ca",
        "ca",
        &backup_serial,
        "--reason",
        "keyCompromise",
    ]));

    // Until the stopped host is failing: health asked every 3 s (none may fail across the
    // service's own renewal); the fleet read every 500 ms; the metrics and the fleet compared
    // while etcd-3 is overdue and again when it is failing.
    let agent_logs = || {
        confs
            .keys()
            .map(|n| {
                let t = std::fs::read_to_string(states_dir.join(format!("{n}.log")));
                format!("--- {n}\n{}", t.unwrap_or_default())
            })
            .collect::<String>()
    };
    let (mut asked, mut failed, mut round) = (0, Vec::<String>::new(), 0);
    let mut checked: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut seen_states = Vec::new();
    while checked.len() < 2 {
        // About every 3 s, anonymous (within the per-address limit; with the app's identity
        // it would eat into its agent's budget).
        if round % 10 == 0 {
            asked += 1;
            match try_call(svc.port, &ca.root, None, "GET", "/v1/health", None, None) {
                Ok(a) if a.status == 200 => {}
                Ok(a) => failed.push(format!(
                    "{}: {}",
                    a.status,
                    String::from_utf8_lossy(&a.body)
                )),
                Err(e) => failed.push(e.to_string()),
            }
        }
        round += 1;
        let m1 = svc.scrape();
        let (code, states) = fleet(&ca);
        let m2 = svc.scrape();
        let e3 = states["member etcd-3"].clone();
        if seen_states.last() != Some(&e3) {
            seen_states.push(e3.clone());
        }
        let agreed = metric_state(&m1, "etcd-3").as_deref() == Some(e3.replace(' ', "_").as_str())
            && metric_state(&m2, "etcd-3") == metric_state(&m1, "etcd-3")
            && metric_state(&m1, "backup").as_deref() == Some("revoked");
        if (e3 == "renew overdue" || e3 == "failing") && agreed && !checked.contains_key(&e3) {
            assert_eq!(code, Some(1), "{states:?}");
            assert_eq!(states["client backup"], "revoked", "{states:?}");
            for ok_one in ["member etcd-1", "member etcd-2", "client app"] {
                assert_eq!(states[ok_one], "ok", "{states:?}\n{}", agent_logs());
            }
            checked.insert(e3.clone(), (m1, format!("{states:?}")));
        }
        assert!(
            enrolled.elapsed() < Duration::from_secs(45),
            "etcd-3 went through {seen_states:?} (compared: {:?}); agents:\n{}\nservice:\n{}",
            checked.keys().collect::<Vec<_>>(),
            agent_logs(),
            svc.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        seen_states
            .iter()
            .filter(|s| *s != "ok")
            .collect::<Vec<_>>(),
        ["renew overdue", "failing"],
        "the stopped host's states in order"
    );

    // The alert rules, on what the service exposed: exactly the stopped host and the
    // revoked client.
    let (metrics, _) = &checked["renew overdue"];
    let (good, out) = promtool(
        d,
        &promtool_case(
            metrics,
            &[
                ("PkiRenewalOverdue", "etcd-3", ",state=\"renew_overdue\""),
                ("PkiAgentRevoked", "backup", ",state=\"revoked\""),
            ],
        ),
    );
    assert!(good, "while etcd-3 is overdue: {out}\n{metrics}");
    let (metrics, _) = &checked["failing"];
    let (good, out) = promtool(
        d,
        &promtool_case(
            metrics,
            &[
                ("PkiAgentFailing", "etcd-3", ",state=\"failing\""),
                ("PkiLeafExpiringSoon", "etcd-3", ""),
                ("PkiAgentRevoked", "backup", ",state=\"revoked\""),
            ],
        ),
    );
    assert!(good, "while etcd-3 is failing: {out}\n{metrics}");

    // The revoked client's daemon stopped after its refusal, with status 3 (its unit is not
    // restarted: the host re-enrols).
    let t = Instant::now();
    let stopped = loop {
        if let Some(status) = daemons[3].0.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the revoked client's daemon still runs:\n{}",
            agent_logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(stopped.code(), Some(3), "{}", agent_logs());
    assert!(
        agent_logs().contains("refused every leaf for good: stopping"),
        "{}",
        agent_logs()
    );
    // The service renewed its own certificate once, and no health request failed.
    assert!(
        failed.is_empty(),
        "{} of {asked} health requests failed: {failed:?}",
        failed.len()
    );
    let svc_now = serial(&d.join("svc/server.crt"));
    assert_ne!(svc_now, svc_first);
    let (good, why) = openssl_verify(d, &ca.root, &d.join("svc/server.crt"));
    assert!(good, "{why}");
    let served = e2e_tests::openssl::openssl(
        d,
        &[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", svc.port),
            "-CAfile",
            &root,
            "-verify_return_error",
        ],
    );
    assert!(served.contains("Verify return code: 0"), "{served}");
    let rows: serde_json::Value = serde_json::from_str(&ca.ledger()).unwrap();
    let status = |serial: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["serial"].as_str().unwrap().trim_start_matches('0') == serial)
            .map(|r| r["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status(&svc_first).as_deref(), Some("superseded"));
    assert_eq!(status(&svc_now).as_deref(), Some("active"));
    assert!(
        metrics.contains("\npki_service_cert_renewals_total 1\n"),
        "{metrics}"
    );
    // The agents renewed through it: every running host's leaf is a renewed one.
    let (_, states) = fleet(&ca);
    let o = ca.issuer(&["fleet", "--ca", "ca", "--cluster", "cluster.toml", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for e in v.as_array().unwrap() {
        let renewed = e["last_renewal"].is_string();
        match e["entry"].as_str().unwrap() {
            "member etcd-1" | "member etcd-2" | "client app" => {
                assert!(renewed && e["confirmed"] == true, "{e}\n{}", agent_logs())
            }
            _ => assert!(!renewed, "{e}"),
        }
    }
    assert_eq!(states["client backup"], "revoked");
    let (attempts, _) = writer.finish();
    let acked = attempts.iter().filter(|a| a.acked).count();
    assert!(
        acked > 50 && acked * 10 >= attempts.len() * 9,
        "the app kept writing: {acked} of {} acknowledged",
        attempts.len()
    );
    println!(
        "fleet drill: etcd-3 went {seen_states:?} in {:.0?} after enrolment; {asked} health \
         requests across the service's own renewal, none failed; the writer: {acked} of {} \
         acknowledged; promtool agreed twice",
        enrolled.elapsed(),
        attempts.len()
    );
    drop(daemons);
    assert!(svc.stop(Duration::from_secs(20)).success());
}
