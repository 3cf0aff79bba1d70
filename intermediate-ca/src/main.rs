//! `intermediate-ca`: parse arguments, run the command, report errors. Nothing else.
#![forbid(unsafe_code)]

mod cli;
mod commands;

use clap::Parser;
use cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::NewIdentity { file, force } => commands::new_identity(file, *force),
        Command::Import {
            cert,
            key,
            dir,
            secret,
        } => commands::import(cert, key, dir, secret),
        Command::Status { dir, json } => commands::status(dir, *json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("intermediate-ca: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
