//! `intermediate-ca`: parse arguments, run the command, report errors. Nothing else.
#![forbid(unsafe_code)]

/// Every `println!` of this binary goes through [`pki_core::output::stdout_line`] (a textual
/// macro shadows std's for the modules below), so a closed stdout ends it quietly, not in a panic.
macro_rules! println {
    () => {
        pki_core::output::stdout_line($crate::TOOL, format_args!(""))
    };
    ($($arg:tt)*) => {
        pki_core::output::stdout_line($crate::TOOL, format_args!($($arg)*))
    };
}

const TOOL: &str = "intermediate-ca";

mod cli;
mod commands;
mod error;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
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
    let result = match &cli.command {
        Command::NewIdentity(a) => commands::new_identity(a),
        Command::Import(a) => commands::import(a),
        Command::Request(a) => commands::request(a),
        Command::Install(a) => commands::install(a),
        Command::RootCrl(a) => commands::root_crl(a),
        Command::Status(a) => commands::status(a),
        Command::Abandon(a) => commands::abandon(a),
        // Handled by cli::generate_docs above.
        Command::Completions { .. } | Command::Manpages { .. } => Ok(()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("intermediate-ca: error: {}", error::message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
