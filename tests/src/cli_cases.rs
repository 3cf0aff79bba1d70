//! Shared by the CLI case-file tests beside each binary (`<crate>/tests/cli.rs`).

use std::path::Path;
use std::process::Command;

/// A new subcommand comes with its `--help` case: every command that `bin --help` lists has a
/// `tests/cmd/help-COMMAND.toml` (or `help-COMMAND-SUB.toml` for a group) in the crate.
pub fn assert_every_subcommand_has_a_help_case(bin: &str, tool: &str) {
    let out = Command::new(bin)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("run {tool} --help: {e}"));
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
            "{tool} {c} has no tests/cmd/help-{c}.toml"
        );
    }
}
