//! Review findings: the repository stands alone (22), the scripts find cargo's binaries (21).

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e_tests::fixture::workspace;
use e2e_tests::openssl::path_str as s;

/// Paths to the team's reference material outside the product. Spelled in pieces so that this
/// file does not match itself.
fn outside_paths() -> [String; 2] {
    [format!("..{}shared", '/'), format!("/work{}shared", '/')]
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn no_tracked_file_points_outside_the_repository() {
    let root = workspace();
    let mut found = Vec::new();
    for file in git(&root, &["ls-files", "-z"]).split('\0') {
        if file.is_empty() {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(file)) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.lines().enumerate() {
            if outside_paths().iter().any(|p| line.contains(p.as_str())) {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "tracked files point outside the repository:\n{}",
        found.join("\n")
    );
}

/// The files the end-to-end tests and the migration path take from the reference CA.
const REFERENCE_FILES: &[&str] = &[
    "ca.crt",
    "intermediate.crt",
    "crl.pem",
    "ca-private/root.key",
    "ca-private/intermediate.key",
    "ca-private/openssl.cnf",
    "nodes/etcd-1/server.crt",
    "nodes/etcd-3/peer.key",
    "clients/root/client.crt",
    "clients/app-user/client.key",
    "negative/rogue-ca/ca.crt",
    "negative/rogue-ca/client.crt",
    "negative/wrong-eku/client.crt",
    "negative/expired/client.crt",
    "negative/revoked/client.crt",
];

#[test]
fn a_clone_with_nothing_beside_it_makes_its_own_reference_ca() {
    // A clone of what is committed, alone in an empty folder: no sibling `shared/` to lean on.
    let t = tempfile::tempdir().unwrap();
    let clone = t.path().join("clone");
    git(
        t.path(),
        &[
            "clone",
            "--quiet",
            "--no-local",
            workspace().canonicalize().unwrap().to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let listing: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listing, ["clone"]);
    for script in [
        "scripts/openssl-reference-ca.sh",
        "scripts/etcd-acceptance.sh",
        "scripts/cargo-target-dir.sh",
        "docs/etcd-facts.md",
    ] {
        assert!(clone.join(script).is_file(), "{script} is not committed");
    }

    let out = t.path().join("ref");
    let o = Command::new("bash")
        .arg(clone.join("scripts/openssl-reference-ca.sh"))
        .arg(&out)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in REFERENCE_FILES {
        assert!(out.join(f).is_file(), "the reference CA has no {f}");
    }
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("ca-private"), 0o700);
    assert_eq!(mode("ca-private/root.key"), 0o600);
    assert_eq!(mode("nodes/etcd-1/server.key"), 0o600);

    // What a relying party sees: good chains verify, the bad fixtures do not.
    let verify = |leaf: &str| {
        Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(out.join("ca.crt"))
            .arg("-untrusted")
            .arg(out.join(leaf))
            .args(["-crl_check", "-CRLfile"])
            .arg(out.join("crl.pem"))
            .arg(out.join(leaf))
            .output()
            .unwrap()
    };
    assert!(verify("clients/root/client.crt").status.success());
    let revoked = verify("negative/revoked/client.crt");
    assert!(!revoked.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&revoked.stdout),
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(said.contains("certificate revoked"), "{said}");
    assert!(!verify("negative/expired/client.crt").status.success());

    // A second run never writes over the first.
    let again = Command::new("bash")
        .arg(clone.join("scripts/openssl-reference-ca.sh"))
        .arg(&out)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

fn target_dir_from(script: &Path, cwd: &Path, env: Option<&str>) -> PathBuf {
    let mut c = Command::new("bash");
    c.arg(script).current_dir(cwd);
    match env {
        Some(v) => c.env("CARGO_TARGET_DIR", v),
        None => c.env_remove("CARGO_TARGET_DIR"),
    };
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

#[test]
fn scripts_run_the_binaries_where_cargo_put_them() {
    let root = workspace().canonicalize().unwrap();
    let script = root.join("scripts/cargo-target-dir.sh");
    let t = tempfile::tempdir().unwrap();
    let cwd = t.path().canonicalize().unwrap();
    assert_eq!(
        target_dir_from(&script, &cwd, Some("/opt/elsewhere")),
        Path::new("/opt/elsewhere")
    );
    // Relative to where cargo runs, as `cargo build` itself resolves it.
    assert_eq!(target_dir_from(&script, &cwd, Some("rel")), cwd.join("rel"));
    assert_eq!(target_dir_from(&script, &cwd, None), root.join("target"));

    // No script guesses the folder any more.
    for s in [
        "softhsm/rehearse.sh",
        "scripts/demo.sh",
        "scripts/bench.sh",
        "scripts/gen-shell-docs.sh",
    ] {
        let text = std::fs::read_to_string(root.join(s)).unwrap();
        assert!(
            !text.contains("target/release"),
            "{s} runs target/release instead of asking cargo"
        );
        assert!(text.contains("cargo-target-dir.sh"), "{s}");
    }
}

// ------------------------------------------------------------------------------------------
// 18. Secret files open to the group or others are refused, as ssh refuses an open key
// ------------------------------------------------------------------------------------------

use e2e_tests::fixture::{fails_with, ok, run, softhsm_token, OpensslCa};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use e2e_tests::state::State;

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn identity_and_passphrase_files_open_to_others_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let ca = OpensslCa::new(d);
    let open_id = d.join("open-identity.txt");
    std::fs::copy(&ca.identity, &open_id).unwrap();
    chmod(&open_id, 0o644);
    let pass = d.join("open.pass");
    std::fs::write(&pass, "a long enough passphrase\n").unwrap();
    chmod(&pass, 0o644);
    let before = State::capture(d, &[&ca.ca]);

    let issue = [
        "issue",
        "client",
        "--ca",
        s(&ca.ca),
        "--out",
        "leaf",
        "--cn",
        "user",
    ];
    let with_flag = [&issue[..], &["--identity", s(&open_id)]].concat();
    let err = fails_with(run(d, "issuer", &with_flag, &[]), "chmod 600");
    assert_snapshot("trust-18-identity-644", &normalize(&err, &[d]));
    let err = fails_with(
        run(d, "issuer", &issue, &[("PKI_AGE_IDENTITY", &open_id)]),
        "chmod 600",
    );
    assert!(err.contains("open-identity.txt"), "{err}");

    let import = |dir: &str| {
        let r = &ca.reference;
        run(
            d,
            "intermediate-ca",
            &[
                "import",
                "--cert",
                s(&r.join("intermediate.crt")),
                "--key",
                s(&r.join("ca-private/intermediate.key")),
                "--dir",
                dir,
                "--passphrase-file",
                s(&pass),
            ],
            &[],
        )
    };
    let err = fails_with(import("pca"), "chmod 600");
    assert_snapshot("trust-18-passphrase-644", &normalize(&err, &[d]));
    before.assert_unchanged(&State::capture(d, &[&ca.ca]), "refused secret files");
    // Group access alone is enough to refuse.
    chmod(&pass, 0o640);
    let before = State::capture(d, &[&ca.ca]);
    fails_with(import("pca"), "(mode 0640)");
    let err = fails_with(
        run(d, "issuer", &issue, &[("PKI_PASSPHRASE_FILE", &pass)]),
        "chmod 600",
    );
    assert!(err.contains("passphrase file"), "{err}");
    before.assert_unchanged(&State::capture(d, &[&ca.ca]), "refused group-readable file");

    // Owner-only files work.
    chmod(&pass, 0o600);
    ok(import("pca"));
    chmod(&open_id, 0o400);
    ok(run(d, "issuer", &with_flag, &[]));
    assert!(d.join("leaf/client.crt").is_file());
}

#[test]
fn pin_files_open_to_others_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let conf = softhsm_token(&d.join("tok"));
    let pin = d.join("open.pin");
    std::fs::copy(d.join("tok/user.pin"), &pin).unwrap();
    chmod(&pin, 0o644);
    std::fs::write(
        d.join("init.toml"),
        "allow-network = true\n[token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
         token-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p384\"\n\
         [root]\ncommon-name = \"Pin Test Root\"\ndays = 3650\n[output]\ndir = \"root\"\n",
    )
    .unwrap();
    let before = State::capture(d, &[]);
    let init = || {
        run(
            d,
            "root-ca",
            &["init", "init.toml", "--pin-file", s(&pin)],
            &[("SOFTHSM2_CONF", &conf)],
        )
    };
    let err = fails_with(init(), "chmod 600");
    assert_snapshot("trust-18-pin-644", &normalize(&err, &[d]));
    before.assert_unchanged(&State::capture(d, &[]), "refused PIN file");
    chmod(&pin, 0o600);
    ok(init());
    assert!(d.join("root/root.crt").is_file());
}

// ------------------------------------------------------------------------------------------
// 14. The air-gap guard fails closed
// ------------------------------------------------------------------------------------------

/// `unshare -rm` with an empty tmpfs over /sys/class/net, then `prog args`: the machine's
/// interfaces are unchanged, only the sysfs view of them is masked.
fn masked_sysfs(dir: &Path, prog: &Path, args: &[&str], env: &[(&str, &Path)]) -> Command {
    let mut c = Command::new("unshare");
    c.args([
        "-rm",
        "sh",
        "-c",
        "mount -t tmpfs none /sys/class/net && exec \"$0\" \"$@\"",
    ])
    .arg(prog)
    .args(args)
    .current_dir(dir)
    .env_remove("ROOT_CA_PIN");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn a_masked_interface_list_refuses_the_ceremony() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let probe = masked_sysfs(d, Path::new("ls"), &["-A", "/sys/class/net"], &[])
        .output()
        .unwrap();
    assert!(
        probe.status.success() && probe.stdout.is_empty(),
        "this test needs `unshare -rm` (user and mount namespaces): {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let conf = softhsm_token(&d.join("tok"));
    let ceremony = |allow: bool| {
        format!(
            "allow-network = {allow}\n[token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
             token-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p256\"\n\
             [root]\ncommon-name = \"Air Gap Test Root\"\ndays = 3650\n[output]\ndir = \"root\"\n"
        )
    };
    std::fs::write(d.join("init.toml"), ceremony(false)).unwrap();
    let before = State::capture(d, &[]);
    let root_ca = e2e_tests::fixture::tool("root-ca");
    let args = ["init", "init.toml", "--pin-file", "tok/user.pin"];
    let o = masked_sysfs(d, &root_ca, &args, &[("SOFTHSM2_CONF", &conf)])
        .output()
        .unwrap();
    let err = fails_with(o, "cannot tell whether this machine is air-gapped");
    assert_snapshot("trust-14-masked-sysfs", &normalize(&err, &[d]));
    before.assert_unchanged(&State::capture(d, &[]), "masked /sys/class/net");

    // The explicit override is the ceremony file's allow-network.
    std::fs::write(d.join("init.toml"), ceremony(true)).unwrap();
    let o = masked_sysfs(d, &root_ca, &args, &[("SOFTHSM2_CONF", &conf)])
        .output()
        .unwrap();
    ok(o);
    assert!(d.join("root/root.crt").is_file());
}

// ------------------------------------------------------------------------------------------
// 19. intermediate-ca: staged generations shown and abandoned; passphrase-only folders enrol
// ------------------------------------------------------------------------------------------

/// A root on a throwaway token, made by the init ceremony; returns (token config, root
/// fingerprint as openssl prints it).
fn root_for_enrolment(d: &Path) -> (PathBuf, String) {
    let conf = softhsm_token(&d.join("tok"));
    std::fs::write(
        d.join("init.toml"),
        "allow-network = true\n[token]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
         token-label = \"root-ca\"\nkey-label = \"root\"\n[key]\nalgorithm = \"p256\"\n\
         [root]\ncommon-name = \"Enrolment Test Root\"\ndays = 3650\n[output]\ndir = \"root\"\n",
    )
    .unwrap();
    ok(run(
        d,
        "root-ca",
        &["init", "init.toml", "--pin-file", "tok/user.pin"],
        &[("SOFTHSM2_CONF", &conf)],
    ));
    let (good, fp, e) = e2e_tests::fixture::sh(
        d,
        "openssl",
        &[
            "x509",
            "-in",
            "root/root.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert!(good, "{e}");
    (conf, fp.trim().split('=').nth(1).unwrap().to_string())
}

/// The request ID and key fingerprint that `intermediate-ca request` printed.
fn request_facts(stdout: &str) -> (String, String) {
    let id = stdout
        .split(", request ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("request id")
        .to_string();
    let fp = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
        .expect("fingerprint")
        .to_string();
    (id, fp)
}

#[test]
fn passphrase_folders_enrol_and_staged_generations_are_shown_and_abandoned() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let (conf, root_fp) = root_for_enrolment(d);
    let pass = d.join("ca.pass");
    e2e_tests::secret::write_secret(&pass, "a passphrase for the CA key\n");
    let ica = |args: &[&str]| run(d, "intermediate-ca", args, &[]);
    let request = |out: &str| {
        ica(&[
            "request",
            "--dir",
            "ca",
            "--to-file",
            "root/transport.recipient",
            "--cn",
            "Passphrase Intermediate",
            "--out",
            out,
            "--passphrase-file",
            s(&pass),
        ])
    };

    // A passphrase alone is enough to request (no age identity anywhere).
    let (first, _) = request_facts(&ok(request("req-1.age")));
    let status = ok(ica(&["status", "--dir", "ca"]));
    assert!(!status.contains("unreadable"), "{status}");
    assert!(
        status.contains(&format!("generation 1 (staged): request {first}")),
        "{status}"
    );
    assert_snapshot("trust-19-status-staged", &normalize(&status, &[d]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(ica(&["status", "--dir", "ca", "--json"]))).unwrap();
    assert_eq!(json["generations"][0]["state"], "staged");
    assert_eq!(json["generations"][0]["request_id"], first.as_str());

    // Abandoning names the request: another ID is refused and changes nothing.
    let before = State::capture(d, &[]);
    let err = fails_with(
        ica(&["abandon", "--dir", "ca", "--request", "0123"]),
        "pass --request",
    );
    assert_snapshot("trust-19-abandon-other-request", &normalize(&err, &[d]));
    before.assert_unchanged(&State::capture(d, &[]), "abandon of another request");
    let out = ok(ica(&["abandon", "--dir", "ca", "--request", &first]));
    assert!(
        out.contains("removed ") && out.contains("intermediate.key.age"),
        "{out}"
    );
    assert!(!d.join("ca/generations/1").exists());
    let err = fails_with(
        ica(&["abandon", "--dir", "ca", "--request", &first]),
        "nothing to abandon",
    );
    assert_snapshot("trust-19-abandon-nothing", &normalize(&err, &[d]));

    // A new request, signed by the root, installs with the passphrase alone.
    let out = ok(request("req-2.age"));
    let (second, key_fp) = request_facts(&out);
    assert_ne!(first, second);
    std::fs::write(
        d.join("sign.toml"),
        format!(
            "allow-network = true\nroot-dir = \"root\"\n[token]\n\
             module = \"/usr/lib/softhsm/libsofthsm2.so\"\ntoken-label = \"root-ca\"\n\
             key-label = \"root\"\n[request]\nbundle = \"req-2.age\"\n\
             key-fingerprint = \"{key_fp}\"\n[certificate]\ndays = 365\n\
             [output]\nresponse = \"resp-2.age\"\n"
        ),
    )
    .unwrap();
    ok(run(
        d,
        "root-ca",
        &["sign", "sign.toml", "--pin-file", "tok/user.pin"],
        &[("SOFTHSM2_CONF", &conf)],
    ));
    ok(ica(&[
        "install",
        "--dir",
        "ca",
        "--root-fingerprint",
        &root_fp,
        "--passphrase-file",
        s(&pass),
        "resp-2.age",
    ]));
    let status = ok(ica(&["status", "--dir", "ca"]));
    assert!(
        status.contains("(active): CN=Passphrase Intermediate"),
        "{status}"
    );
    ok(run(
        d,
        "issuer",
        &[
            "issue",
            "client",
            "--ca",
            "ca",
            "--out",
            "leaf",
            "--cn",
            "app",
            "--passphrase-file",
            s(&pass),
        ],
        &[],
    ));
    let (good, _, e) = e2e_tests::fixture::sh(
        d,
        "openssl",
        &[
            "verify",
            "-CAfile",
            "root/root.crt",
            "-untrusted",
            "leaf/client.crt",
            "leaf/client.crt",
        ],
    );
    assert!(good, "{e}");
}

#[test]
fn the_acceptance_script_fails_a_bundle_it_cannot_accept() {
    // Two members and open key modes: refused by the static checks, before any etcd starts.
    let t = tempfile::tempdir().unwrap();
    let bundle = t.path().join("two");
    let o = Command::new("bash")
        .arg(workspace().join("scripts/openssl-reference-ca.sh"))
        .arg(&bundle)
        .env("NODES", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("bash")
        .arg(workspace().join("scripts/etcd-acceptance.sh"))
        .arg(&bundle)
        .env("DEADLINE", "60")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("FAIL layout: missing nodes/* (3 member folders needed, 2 found)"),
        "{out}"
    );
    assert!(out.contains("stopping:"), "{out}");
    assert!(!out.contains("cluster-start"), "{out}");
    let last = out.lines().last().unwrap_or("");
    assert!(last.ends_with(" passed, 1 failed"), "{last}");
}
