//! `issuer`: parse arguments, run the command, report errors. Nothing else.
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

const TOOL: &str = "issuer";

mod cli;
mod commands;
mod error;
mod probe;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};

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
    let result = run(cli.command);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("issuer: error: {}", error::message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` means it ran and found problems (exit status 1).
fn run(command: Command) -> error::Result<bool> {
    let done = |r: error::Result<()>| r.map(|()| true);
    match command {
        Command::Issue(a) => done(commands::issue(&a)),
        Command::Batch(a) => done(commands::batch(
            &a.ca, &a.out, &a.file, a.threads, &a.secret,
        )),
        Command::Etcd(a) => done(commands::etcd(
            &a.ca,
            &a.cluster,
            &a.out,
            a.root.as_deref(),
            a.enrol_only.then_some(a.token_ttl.as_str()),
            &a.secret,
        )),
        Command::Revoke(a) => done(commands::revoke(&a.ca, &a.serial, &a.reason)),
        Command::Crl(a) => done(commands::crl(&a)),
        Command::Renew(a) => done(commands::renew(
            &a.ca,
            &a.expiring_within,
            a.dry_run,
            &a.secret,
        )),
        Command::Reissue(a) => done(commands::reissue(&a.ca, a.from, a.dry_run, &a.secret)),
        Command::CheckEtcd(a) => {
            let probe = a.probe();
            Ok(commands::check_etcd(
                &a.dir,
                a.warn_days,
                a.etcd_version,
                probe.as_ref(),
                a.json,
            ))
        }
        Command::List(a) => done(commands::list(&a.ca, a.expiring_within.as_deref(), a.json)),
        Command::Verify(a) => commands::verify(
            &a.root,
            &a.file,
            a.role.map(Into::into),
            a.key.as_deref(),
            a.warn_days,
            a.json,
        ),
        Command::Serve(a) => commands::serve(&a),
        Command::Token(cli::TokenCommand::Create(a)) => done(commands::token_create(&a)),
        Command::RootCrl(cli::RootCrlCommand::Release(a)) => {
            done(commands::root_crl_release(&a.ca))
        }
        Command::Audit(cli::AuditCommand::Verify(a)) => commands::audit_verify(&a.ca),
        Command::Fleet(a) => commands::fleet(&a.ca, &a.cluster, a.json),
        Command::Ledger(cli::LedgerCommand::Migrate(a)) => done(commands::ledger_migrate(&a)),
        Command::Ledger(cli::LedgerCommand::AcceptRestore(a)) => {
            done(commands::ledger_accept_restore(&a))
        }
        // Handled by cli::generate_docs before any command runs.
        Command::Completions { .. } | Command::Manpages { .. } => Ok(true),
    }
}

impl cli::CheckEtcdArgs {
    /// The live probe, when all four of its flags were given (clap requires them together).
    fn probe(&self) -> Option<probe::ProbeArgs<'_>> {
        match (&self.endpoint, &self.cacert, &self.cert, &self.key) {
            (Some(e), Some(r), Some(c), Some(k)) => Some(probe::ProbeArgs {
                endpoint: e,
                root: r,
                cert: c,
                key: k,
            }),
            _ => None,
        }
    }
}
