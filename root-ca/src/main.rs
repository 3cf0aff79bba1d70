//! `root-ca`: parse arguments, run the ceremony, report errors.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{BackupArgs, Cli, Command, CustodyCommand, Kind, LogCommand, RunArgs, TokenCommand};
use root_ca::{ceremonies, ceremony};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(done) = cli::generate_docs(&cli.command) {
        return match done {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut stdout = std::io::stdout();
    let result = match &cli.command {
        Command::Template { kind } => {
            let text = match kind {
                Kind::Init => ceremony::TEMPLATE_INIT,
                Kind::Sign => ceremony::TEMPLATE_SIGN,
                Kind::Revoke => ceremony::TEMPLATE_REVOKE,
                Kind::Crl => ceremony::TEMPLATE_CRL,
                Kind::CrossSign => ceremony::TEMPLATE_CROSS_SIGN,
                Kind::Custody => ceremony::TEMPLATE_CUSTODY,
                Kind::Backup => ceremony::TEMPLATE_BACKUP,
                Kind::Restore => ceremony::TEMPLATE_RESTORE,
            };
            // `root-ca template sign | head` must not panic on the closed pipe.
            let text = text.strip_suffix('\n').unwrap_or(text);
            pki_core::output::stdout_line("root-ca", format_args!("{text}"));
            Ok(())
        }
        Command::Init(a)
        | Command::Sign(a)
        | Command::Revoke(a)
        | Command::Crl(a)
        | Command::CrossSign(a)
        | Command::Backup(BackupArgs { run: a, .. })
        | Command::Restore(a)
        | Command::Custody {
            command: CustodyCommand::Split(a) | CustodyCommand::Resplit(a),
        } => {
            let ceremony: fn(
                &std::path::Path,
                &mut ceremonies::Run<'_>,
            ) -> root_ca::error::Result<()> = match &cli.command {
                Command::Init(_) => ceremonies::init,
                Command::Sign(_) => ceremonies::sign,
                Command::Revoke(_) => ceremonies::revoke,
                Command::Crl(_) => ceremonies::crl,
                Command::CrossSign(_) => ceremonies::cross_sign,
                Command::Backup(_) => ceremonies::backup,
                Command::Restore(_) => ceremonies::restore,
                Command::Custody {
                    command: CustodyCommand::Split(_),
                } => ceremonies::custody_split,
                _ => ceremonies::custody_resplit,
            };
            let so_pin_file = match &cli.command {
                Command::Backup(b) => b.so_pin_file.as_deref(),
                _ => None,
            };
            run_ceremony(a, so_pin_file, ceremony, &mut stdout)
        }
        Command::Token {
            command: TokenCommand::Check(t),
        } => {
            let a = RunArgs {
                file: t.file.clone(),
                dry_run: false,
                pin_file: t.pin_file.clone(),
                custodian_identities: Vec::new(),
            };
            run_ceremony(&a, None, ceremonies::token_check, &mut stdout)
        }
        Command::Custody {
            command: CustodyCommand::Verify { root_dir, identity },
        } => ceremonies::custody_verify(root_dir, identity, &mut stdout),
        Command::Log {
            command: LogCommand::Verify { dir },
        } => ceremonies::log_verify(dir, &mut stdout),
        // Handled by cli::generate_docs above.
        Command::Completions { .. } | Command::Manpages { .. } => Ok(()),
    };
    report(result)
}

fn run_ceremony(
    a: &RunArgs,
    so_pin_file: Option<&std::path::Path>,
    ceremony: fn(&std::path::Path, &mut ceremonies::Run<'_>) -> root_ca::error::Result<()>,
    stdout: &mut std::io::Stdout,
) -> root_ca::error::Result<()> {
    let mut run = ceremonies::Run {
        dry_run: a.dry_run,
        pin_file: a.pin_file.as_deref(),
        custodians: &a.custodian_identities,
        so_pin_file,
        out: stdout,
    };
    ceremony(&a.file, &mut run)
}

fn report(result: root_ca::error::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("root-ca: error: {}", e.message());
            ExitCode::FAILURE
        }
    }
}
