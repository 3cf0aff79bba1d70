//! The command-line contract of `pki-agent`, one case file per behaviour in `tests/cmd/`: each
//! `NAME.toml` gives the arguments, environment and stdin, and the expected exit status; the
//! expected output is inline or in `NAME.stdout` / `NAME.stderr`; `NAME.in/` holds the files
//! the command starts with. No token, no etcd, no network. After a deliberate change of
//! output, `TRYCMD=overwrite cargo test -p pki-agent --test cli` rewrites the expected files; review
//! the diff like code.

use std::path::Path;
use std::process::Command;

#[test]
fn cases() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}

/// A new subcommand comes with its `--help` case: every command that `pki-agent --help` lists
/// has a `tests/cmd/help-COMMAND.toml` (or `help-COMMAND-SUB.toml` for a group).
#[test]
fn every_subcommand_has_a_help_case() {
    let out = Command::new(env!("CARGO_BIN_EXE_pki-agent"))
        .arg("--help")
        .output()
        .expect("run pki-agent --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(!commands.is_empty(), "no commands listed:\n{text}");
    let cases: Vec<String> = std::fs::read_dir(Path::new("tests/cmd"))
        .expect("tests/cmd")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for c in commands {
        assert!(
            cases.iter().any(|f| f == &format!("help-{c}.toml")
                || (f.starts_with(&format!("help-{c}-")) && f.ends_with(".toml"))),
            "pki-agent {c} has no tests/cmd/help-{c}.toml"
        );
    }
}
