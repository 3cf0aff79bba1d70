//! The command-line contract of `intermediate-ca`, one case file per behaviour in `tests/cmd/`: each
//! `NAME.toml` gives the arguments, environment and stdin, and the expected exit status; the
//! expected output is inline or in `NAME.stdout` / `NAME.stderr`; `NAME.in/` holds the files
//! the command starts with. No token, no etcd, no network. After a deliberate change of
//! output, `TRYCMD=overwrite cargo test -p intermediate-ca --test cli` rewrites the expected files; review
//! the diff like code.

#[test]
fn cases() {
    trycmd::TestCases::new().case("tests/cmd/*.toml");
}

/// A new subcommand comes with its `--help` case.
#[test]
fn every_subcommand_has_a_help_case() {
    e2e_tests::cli_cases::assert_every_subcommand_has_a_help_case(
        env!("CARGO_BIN_EXE_intermediate-ca"),
        "intermediate-ca",
    );
}
