//! Running a fleet: a cluster whose every host enrols (no leaf key ever on the CA host), and
//! the warnings an operator needs on the way.

use std::os::unix::fs::PermissionsExt;

use e2e_tests::fixture::{ok, OpensslCa};
use e2e_tests::trust_pki::openssl_verify;

use crate::service::{agent, text_of};

/// `issuer etcd --enrol-only`: trust, env and agent files and a one-time token per entry, no
/// leaf and no key anywhere in the bundle or the ledger; a host enrols with its folder's token
/// (openssl verifies what it got); a second run keeps the unused tokens and mints none for the
/// enrolled host (a re-armed token would be a second live identity for whoever holds the folder);
/// `issuer token create` for an entry that has leaves says so. Refused without a service.
#[test]
fn an_enrolment_only_bundle_puts_no_key_on_the_ca_host() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = OpensslCa::new(d);
    let svc = e2e_tests::service::serve_ca(&ca, &[], &[]);
    let root = ca.root.to_str().unwrap().to_string();
    let bundle = d.join("bundle");
    // Where the hosts install their folders (the bundle is written on the CA host).
    let hosts = d.join("hosts");
    let cluster = |service: bool| {
        let mut text = format!(
            "name = \"fleet\"\netcd-version = \"3.5\"\ninstall-dir = \"{h}/nodes/{{name}}\"\n\
             client-install-dir = \"{h}/clients/{{name}}\"\ndata-dir = \"/var/lib/etcd/{{name}}\"\n",
            h = hosts.display()
        );
        if service {
            text.push_str(&format!("service = \"{}\"\n", svc.url()));
        }
        for i in 1..=2 {
            text.push_str(&format!(
                "\n[[member]]\nname = \"etcd-{i}\"\nips = [\"127.0.0.1\"]\n\
                 client-urls = [\"https://127.0.0.1:2379{i}\"]\npeer-urls = [\"https://127.0.0.1:2380{i}\"]\n"
            ));
        }
        text.push_str("\n[[client]]\nname = \"app\"\nroles = []\n");
        text
    };
    std::fs::write(d.join("plain.toml"), cluster(false)).unwrap();
    let o = ca.issuer(&[
        "etcd",
        "--ca",
        "ca",
        "--cluster",
        "plain.toml",
        "--out",
        "bundle",
        "--root",
        &root,
        "--enrol-only",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text_of(&o));
    assert!(
        text_of(&o).contains("names no `service`"),
        "{}",
        text_of(&o)
    );
    assert!(!bundle.exists(), "nothing written");

    std::fs::write(d.join("fleet.toml"), cluster(true)).unwrap();
    let before = ca.ledger();
    let out = ok(ca.issuer(&[
        "etcd",
        "--ca",
        "ca",
        "--cluster",
        "fleet.toml",
        "--out",
        "bundle",
        "--root",
        &root,
        "--enrol-only",
    ]));
    let files = e2e_tests::fixture::files_under(&bundle);
    let keys: Vec<_> = files
        .iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "key" || e == "crt")
                && !p.ends_with("ca.crt")
                && !p.ends_with("intermediate.crt")
        })
        .collect();
    assert!(keys.is_empty(), "no leaf or key in the bundle: {keys:?}");
    assert_eq!(ca.ledger(), before, "nothing issued: {out}");
    for dir in ["nodes/etcd-1", "nodes/etcd-2", "clients/app"] {
        let token = bundle.join(dir).join("enrol.token");
        let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{dir}");
        assert!(bundle.join(dir).join("pki-agent.toml").exists());
    }
    assert!(bundle.join("nodes/etcd-1/etcd.env").exists());
    assert!(
        out.contains("token   ") && out.contains("pki-agent enrol"),
        "{out}"
    );

    // The host of etcd-1 gets its folder and enrols with its token (the state file kept in
    // the test).
    let node = hosts.join("nodes/etcd-1");
    std::fs::create_dir_all(node.parent().unwrap()).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(bundle.join("nodes/etcd-1"))
        .arg(&node)
        .status()
        .unwrap();
    assert!(copied.success());
    let used_token = std::fs::read(bundle.join("nodes/etcd-1/enrol.token")).unwrap();
    let conf = d.join("etcd-1.toml");
    let text = std::fs::read_to_string(node.join("pki-agent.toml")).unwrap();
    let state = "/var/lib/pki-agent/fleet-etcd-1.json";
    assert!(text.contains(state), "{text}");
    std::fs::write(
        &conf,
        text.replace(state, d.join("etcd-1.json").to_str().unwrap()),
    )
    .unwrap();
    let token = node.join("enrol.token");
    let o = agent(
        d,
        &[
            "enrol",
            "--config",
            conf.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text_of(&o));
    for leaf in ["server.crt", "peer.crt"] {
        let (good, why) = openssl_verify(d, &ca.root, &node.join(leaf));
        assert!(good, "{leaf}: {why}");
    }

    // Again: no new token for etcd-1, whose host enrolled (its leaves are not in the bundle:
    // the ledger says so; a re-armed token would hand a second live identity to whoever holds
    // the folder); the other tokens are kept (unused, unexpired).
    let again = ok(ca.issuer(&[
        "etcd",
        "--ca",
        "ca",
        "--cluster",
        "fleet.toml",
        "--out",
        "bundle",
        "--root",
        &root,
        "--enrol-only",
    ]));
    assert!(
        again.contains("enrolled member etcd-1: active leaf/leaves")
            && again.contains("no new token"),
        "{again}"
    );
    assert_eq!(
        std::fs::read(bundle.join("nodes/etcd-1/enrol.token")).unwrap(),
        used_token,
        "etcd-1's used token left as it was: {again}"
    );
    assert_eq!(again.matches(" kept: ").count(), 2, "{again}");
    assert!(!again.contains("issued  "), "{again}");

    // A token for an entry that already has leaves: said, with what to do.
    let o = ca.issuer(&[
        "token",
        "create",
        "--ca",
        "ca",
        "--cluster",
        "fleet.toml",
        "--member",
        "etcd-1",
        "--out",
        d.join("again.token").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text_of(&o));
    let said = text_of(&o);
    assert!(
        said.contains("warning: member etcd-1 already has 2 active")
            && said.contains("revoke the old ones"),
        "{said}"
    );
}

/// Short drill leaves: with `--leaf-lifetime 2m` a fixed 7-day danger window made every
/// `status` and `run --once` exit 2 right after a renewal. The window now scales with the
/// lifetime (a tenth, at most 7 days) unless the file sets it. A daemon started on a 90-day
/// leaf notices the drill's leaf put beside it by a forced pass, and renews it in time.
#[test]
fn short_drill_leaves_are_not_in_danger_right_after_renewal() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = crate::service::world(d);
    let svc = crate::service::start(&w, &["--leaf-lifetime", "30s"]);
    let host = d.join("host");
    std::fs::create_dir_all(&host).unwrap();
    for f in ["client.crt", "client.key", "ca.crt"] {
        std::fs::copy(w.bundle.join("clients/app").join(f), host.join(f)).unwrap();
    }
    let conf = d.join("app.toml");
    let text = e2e_tests::service::agent_config(
        &svc.url(),
        &host.join("ca.crt"),
        &host.join("s.json"),
        &[("client", &host.join("client.crt"), &host.join("client.key"))],
        None,
    );
    std::fs::write(&conf, &text).unwrap();
    let c = conf.to_str().unwrap();
    // A daemon already runs on the bundle's 90-day leaf (it would sleep 10 minutes); the
    // drill's leaf is put in place beside it with a forced pass.
    let log = std::fs::File::create(d.join("daemon.log")).unwrap();
    let daemon = e2e_tests::service::Daemon(
        std::process::Command::new(e2e_tests::fixture::tool("pki-agent"))
            .args(["run", "--config", c])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    let o = agent(d, &["run", "--config", c, "--once", "--renew-now"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o));
    let forced = crate::service::serial(&host.join("client.crt"));
    let s = agent(d, &["status", "--config", c, "--json"]);
    assert_eq!(s.status.code(), Some(0), "{}", text_of(&s));
    let v: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
    let leaf = &v["leaves"][0];
    assert_eq!(
        leaf["next_attempt"].as_str().map(|t| &t[..19]),
        leaf["renew_after"].as_str().map(|t| &t[..19]),
        "nothing failed: the next attempt is the renewal time: {leaf}"
    );
    // The daemon saw the leaf change under it and renews the 30-second leaf at about 20 s
    // (it slept through it before: the drill's leaf expired).
    let t = std::time::Instant::now();
    while crate::service::serial(&host.join("client.crt")) == forced {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(28),
            "the daemon did not renew the replaced leaf: {}",
            std::fs::read_to_string(d.join("daemon.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(daemon);
    // Set in the file, the window is what it says: an hour covers a 30-second leaf.
    std::fs::write(&conf, text.replace("state = ", "danger = \"1h\"\nstate = ")).unwrap();
    let s = agent(d, &["status", "--config", c, "--json"]);
    assert_eq!(s.status.code(), Some(2), "{}", text_of(&s));
}

/// The units an operator installs pass systemd's own checks: `deploy/issuer-serve.service` and
/// the agent's pass, timer and daemon units `issuer etcd` writes (`systemd-analyze verify`,
/// with the tools' real paths), and systemd's security review scores each under 2.
#[test]
fn the_service_and_agent_units_pass_systemd_analyze() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let units = d.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let tool = |name: &str| e2e_tests::fixture::tool(name).display().to_string();
    let serve = std::fs::read_to_string(
        e2e_tests::fixture::workspace().join("deploy/issuer-serve.service"),
    )
    .unwrap()
    .replace("/usr/local/bin/issuer", &tool("issuer"));
    std::fs::write(units.join("issuer-serve.service"), serve).unwrap();
    let w = crate::service::world(d);
    let text = std::fs::read_to_string(&w.cluster).unwrap();
    std::fs::write(
        &w.cluster,
        format!("service = \"https://127.0.0.1:8443\"\n{text}"),
    )
    .unwrap();
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
    let node = w.bundle.join("nodes/etcd-1");
    for f in [
        "pki-agent-svc-etcd-1.service",
        "pki-agent-svc-etcd-1.timer",
        "pki-agent-svc-etcd-1-daemon.service",
    ] {
        let text = std::fs::read_to_string(node.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .replace("/usr/local/bin/pki-agent", &tool("pki-agent"));
        std::fs::write(units.join(f), text).unwrap();
    }
    let analyze = |args: &[&str], file: &str| {
        let o = std::process::Command::new("systemd-analyze")
            .args(args)
            .arg(units.join(file))
            .output()
            .expect("systemd-analyze (scripts/install-deps.sh installs systemd)");
        (o.status.success(), text_of(&o))
    };
    for f in [
        "issuer-serve.service",
        "pki-agent-svc-etcd-1.service",
        "pki-agent-svc-etcd-1.timer",
        "pki-agent-svc-etcd-1-daemon.service",
    ] {
        let (ok, out) = analyze(&["verify"], f);
        assert!(ok && out.trim().is_empty(), "verify {f}: {out}");
        if f.ends_with(".service") {
            let (ok, out) = analyze(&["security", "--offline=yes", "--threshold=20"], f);
            assert!(ok, "security {f}: {out}");
        }
    }
}

/// `issuer fleet` from the CA host: an agent that renewed and fetched its CRL is `ok` with its
/// renewal confirmed and the CRL number it holds; a revoked client is `revoked` with its
/// refusals counted; an entry nobody enrolled is `never enrolled`; a stopped agent's
/// 20-second leaf turns `renew overdue`, then `failing`, then `expired`, and the command exits
/// 1 for each (and for the revoked client).
#[test]
fn issuer_fleet_names_each_entry_state() {
    let _serial = e2e_tests::serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let w = crate::service::world(d);
    let svc = crate::service::start(&w, &["--leaf-lifetime", "20s"]);
    let text = std::fs::read_to_string(&w.cluster).unwrap();
    std::fs::write(
        &w.cluster,
        format!("{text}\n[[client]]\nname = \"newbie\"\nroles = []\n"),
    )
    .unwrap();
    let fleet = || {
        let o =
            w.ca.issuer(&["fleet", "--ca", "ca", "--cluster", "cluster.toml", "--json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text_of(&o)));
        (o.status.code(), v)
    };
    let entry = |v: &serde_json::Value, name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["entry"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))
            .clone()
    };
    // etcd-1's agent renews its leaves and fetches the CRL, then stops.
    let node = w.bundle.join("nodes/etcd-1");
    let conf = d.join("etcd-1.toml");
    std::fs::write(
        &conf,
        e2e_tests::service::agent_config(
            &svc.url(),
            &node.join("ca.crt"),
            &d.join("etcd-1.json"),
            &[
                ("server", &node.join("server.crt"), &node.join("server.key")),
                ("peer", &node.join("peer.crt"), &node.join("peer.key")),
            ],
            Some(&node.join("crl.der")),
        ),
    )
    .unwrap();
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
    assert!(o.status.success(), "{}", text_of(&o));
    let renewed_at = std::time::Instant::now();
    // The backup client is revoked; its leaf then asks three times.
    let backup = w.bundle.join("clients/backup");
    let serial = crate::service::serial(&backup.join("client.crt"));
    ok(w.ca.issuer(&["revoke", "--ca", "ca", &serial, "--reason", "keyCompromise"]));
    for i in 0..3 {
        let a = crate::service::call(
            svc.port,
            &w.ca.root,
            Some((&backup.join("client.crt"), &backup.join("client.key"))),
            "POST",
            "/v1/renew",
            None,
            Some(&crate::service::renew_body(&crate::service::csr_with(
                d,
                &format!("b{i}"),
                "/CN=backup",
                &[],
            ))),
        );
        assert_eq!(a.status, 403);
    }
    // The service writes what it saw of the agents once a second.
    let t = std::time::Instant::now();
    let (code, v) = loop {
        let (code, v) = fleet();
        if entry(&v, "client backup")["refusals"] == 3 || t.elapsed().as_secs() > 5 {
            break (code, v);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(code, Some(1), "a revoked client needs someone: {v}");
    let e1 = entry(&v, "member etcd-1");
    assert_eq!(e1["state"], "ok", "{e1}");
    assert_eq!(e1["confirmed"], true, "{e1}");
    assert!(
        e1["last_renewal"].is_string() && e1["last_crl_number"].is_u64(),
        "{e1}"
    );
    let b = entry(&v, "client backup");
    assert_eq!(b["state"], "revoked", "{b}");
    assert_eq!(b["refusals"], 3, "{b}");
    assert_eq!(b["last_refusal"], "revoked", "{b}");
    assert_eq!(entry(&v, "client newbie")["state"], "never enrolled");
    assert_eq!(
        entry(&v, "member etcd-2")["state"],
        "ok",
        "a 90-day leaf from the bundle"
    );

    // The agent stays stopped: overdue past 2/3 + 1/10 of the 20 s, failing in the last tenth.
    let wait_for = |state: &str, within: u64| loop {
        let (code, v) = fleet();
        let e = entry(&v, "member etcd-1");
        if e["state"] == state {
            assert_eq!(code, Some(1), "{v}");
            return;
        }
        assert!(
            renewed_at.elapsed().as_secs() < within,
            "never {state}: {e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    wait_for("renew overdue", 19);
    wait_for("failing", 21);
    // The same states as the service's per-entry metrics show them, and every metric the
    // alert rules use is one the service exposes.
    let metrics = loop {
        let m = crate::service::call(svc.port, &w.ca.root, None, "GET", "/metrics", None, None);
        let text = String::from_utf8_lossy(&m.body).into_owned();
        if text.contains("pki_agent_leaf_expiry_seconds{entry=\"etcd-1\"}") {
            break text;
        }
        assert!(
            renewed_at.elapsed().as_secs() < 40,
            "no per-agent gauges: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1000));
    };
    assert!(
        metrics.contains("pki_agent_refusals{entry=\"backup\"} 3"),
        "{metrics}"
    );
    let rules = std::fs::read_to_string(
        e2e_tests::fixture::workspace().join("deploy/prometheus/pki-alerts.yml"),
    )
    .unwrap();
    let used: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("pki_"))
        .collect();
    for name in used {
        assert!(
            metrics.contains(&format!("\n{name}")),
            "the rules use {name}, which the service does not expose"
        );
    }
    let o =
        w.ca.issuer(&["fleet", "--ca", "ca", "--cluster", "cluster.toml"]);
    let table = text_of(&o);
    assert_eq!(o.status.code(), Some(1), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("member etcd-1") && l.contains("failing")),
        "{table}"
    );
    // Once the leaf ran out, still exit 1: a check on the exit status keeps its alarm.
    wait_for("expired", 26);
}

/// The alert rules in the repository are valid and fire as their test says
/// (`promtool check rules`, `promtool test rules` with series written for it).
#[test]
fn the_alert_rules_pass_promtool() {
    let dir = e2e_tests::fixture::workspace().join("deploy/prometheus");
    for args in [
        ["check", "rules", "pki-alerts.yml"],
        ["test", "rules", "pki-alerts.test.yml"],
    ] {
        let o = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (scripts/install-deps.sh installs prometheus)");
        assert!(o.status.success(), "promtool {args:?}: {}", text_of(&o));
    }
}
