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
        Command::NewIdentity { file, force } => commands::new_identity(file, *force),
        Command::Import {
            cert,
            key,
            dir,
            secret,
        } => commands::import(cert, key, dir, secret),
        Command::Request {
            dir,
            to,
            to_file,
            out,
            cn,
            key,
            force,
            pkcs11_module,
            token,
            key_label,
            secret,
        } => commands::request(
            &commands::RequestArgs {
                dir,
                to: to.as_deref(),
                to_file: to_file.as_deref(),
                out,
                cn,
                key,
                force: *force,
                token: pkcs11_module
                    .as_ref()
                    .map(|m| pki_core::ca::folder::TokenLocation {
                        module: m.clone(),
                        token: token.clone().unwrap_or_default(),
                        key_label: key_label.clone().unwrap_or_default(),
                        key_id: None,
                    }),
            },
            secret,
        ),
        Command::Install {
            dir,
            root_fingerprint,
            response,
            secret,
        } => commands::install(dir, root_fingerprint, response, secret),
        Command::RootCrl { dir, file } => commands::root_crl(dir, file),
        Command::Status { dir, json } => commands::status(dir, *json),
        Command::Abandon { dir, request } => commands::abandon(dir, request),
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
