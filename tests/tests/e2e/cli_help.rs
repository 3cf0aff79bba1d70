//! The `--help` of every command and subcommand, pinned by snapshots (tests/snapshots).

use std::path::PathBuf;
use std::process::Command;

use e2e_tests::snapshot::{assert_snapshot, normalize};

fn built(name: &str) -> PathBuf {
    e2e_tests::fixture::tool(name)
}

const SCREENS: &[(&str, &[&str])] = &[
    ("root-ca", &[]),
    ("root-ca", &["template"]),
    ("root-ca", &["init"]),
    ("root-ca", &["sign"]),
    ("root-ca", &["revoke"]),
    ("root-ca", &["crl"]),
    ("root-ca", &["log", "verify"]),
    ("intermediate-ca", &[]),
    ("intermediate-ca", &["new-identity"]),
    ("intermediate-ca", &["import"]),
    ("intermediate-ca", &["request"]),
    ("intermediate-ca", &["install"]),
    ("intermediate-ca", &["root-crl"]),
    ("intermediate-ca", &["status"]),
    ("intermediate-ca", &["abandon"]),
    ("issuer", &[]),
    ("issuer", &["issue"]),
    ("issuer", &["batch"]),
    ("issuer", &["etcd"]),
    ("issuer", &["check-etcd"]),
    ("issuer", &["verify"]),
    ("issuer", &["list"]),
    ("issuer", &["revoke"]),
    ("issuer", &["crl"]),
    ("issuer", &["renew"]),
    ("issuer", &["reissue"]),
];

#[test]
fn help_screens_match_their_snapshots() {
    let mut failures = Vec::new();
    for (bin, sub) in SCREENS {
        let out = Command::new(built(bin))
            .args(*sub)
            .arg("--help")
            .output()
            .expect("run");
        assert!(out.status.success(), "{bin} {sub:?} --help failed");
        let text = normalize(&String::from_utf8_lossy(&out.stdout), &[]);
        let name = format!(
            "help-{bin}{}",
            sub.iter().map(|s| format!("-{s}")).collect::<String>()
        );
        if let Err(e) = std::panic::catch_unwind(|| assert_snapshot(&name, &text)) {
            failures.push(format!("{name}: {:?}", e.downcast_ref::<String>()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_subcommand_has_a_help_snapshot() {
    // A new subcommand must come with its snapshot: compare clap's list with SCREENS.
    for bin in ["root-ca", "intermediate-ca", "issuer"] {
        let out = Command::new(built(bin))
            .arg("--help")
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        let commands: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .collect();
        assert!(!commands.is_empty(), "{bin}: no commands listed");
        for c in commands {
            assert!(
                SCREENS
                    .iter()
                    .any(|(b, s)| *b == bin && s.first() == Some(&c)),
                "{bin} {c} has no --help snapshot in SCREENS"
            );
        }
    }
}

#[test]
fn completions_and_man_pages_come_from_clap() {
    let dir = tempfile::tempdir().unwrap();
    for bin in ["root-ca", "intermediate-ca", "issuer"] {
        let out = Command::new(built(bin))
            .args(["completions", "bash"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains(&format!("_{}", bin.replace('-', "__"))) || script.contains(bin),
            "{bin}: no completion function"
        );
        let st = Command::new(built(bin))
            .arg("manpages")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        let page = std::fs::read_to_string(dir.path().join(format!("{bin}.1"))).unwrap();
        assert!(page.contains(".TH"), "{bin}.1 is not a man page");
    }
    assert!(dir.path().join("issuer-check-etcd.1").exists());
    assert!(dir.path().join("root-ca-sign.1").exists());
}
