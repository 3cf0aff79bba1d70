//! `root-ca`: parse arguments, run the ceremony, report errors.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, Kind, LogCommand};
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
            };
            // `root-ca template sign | head` must not panic on the closed pipe.
            let text = text.strip_suffix('\n').unwrap_or(text);
            pki_core::output::stdout_line("root-ca", format_args!("{text}"));
            Ok(())
        }
        Command::Init(a) | Command::Sign(a) | Command::Revoke(a) | Command::Crl(a) => {
            let mut run = ceremonies::Run {
                dry_run: a.dry_run,
                pin_file: a.pin_file.as_deref(),
                out: &mut stdout,
            };
            match &cli.command {
                Command::Init(_) => ceremonies::init(&a.file, &mut run),
                Command::Sign(_) => ceremonies::sign(&a.file, &mut run),
                Command::Revoke(_) => ceremonies::revoke(&a.file, &mut run),
                _ => ceremonies::crl(&a.file, &mut run),
            }
        }
        Command::Log {
            command: LogCommand::Verify { dir },
        } => ceremonies::log_verify(dir, &mut stdout),
        // Handled by cli::generate_docs above.
        Command::Completions { .. } | Command::Manpages { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("root-ca: error: {}", e.message());
            ExitCode::FAILURE
        }
    }
}
