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
    let result = match cli.command {
        Command::Issue {
            role,
            ca,
            out,
            cn,
            dns,
            ip,
            days,
            key,
            csr,
            cfssl_json,
            ignore_requested_ca,
            force,
            secret,
        } => commands::issue(
            &commands::IssueArgs {
                role: role.into(),
                ca,
                out,
                cn,
                dns,
                ip,
                days,
                key,
                csr,
                cfssl_json,
                ignore_requested_ca,
                force,
            },
            &secret,
        )
        .map(|()| true),
        Command::Batch {
            ca,
            out,
            file,
            threads,
            secret,
        } => commands::batch(&ca, &out, &file, threads, &secret).map(|()| true),
        Command::Etcd {
            ca,
            cluster,
            out,
            root,
            secret,
        } => commands::etcd(&ca, &cluster, &out, root.as_deref(), &secret).map(|()| true),
        Command::Revoke { serial, ca, reason } => {
            commands::revoke(&ca, &serial, &reason).map(|()| true)
        }
        Command::Crl {
            ca,
            out,
            etcd_out,
            etcd_bundle,
            root_crl,
            root,
            days,
            secret,
        } => commands::crl(
            &commands::CrlArgs {
                ca,
                out,
                etcd_out,
                etcd_bundle,
                root_crl,
                root,
                days,
            },
            &secret,
        )
        .map(|()| true),
        Command::Renew {
            ca,
            expiring_within,
            dry_run,
            secret,
        } => commands::renew(&ca, &expiring_within, dry_run, &secret).map(|()| true),
        Command::Reissue {
            ca,
            from,
            dry_run,
            secret,
        } => commands::reissue(&ca, from, dry_run, &secret).map(|()| true),
        Command::CheckEtcd {
            dir,
            warn_days,
            etcd_version,
            endpoint,
            cacert,
            cert,
            key,
            json,
        } => {
            let probe = match (&endpoint, &cacert, &cert, &key) {
                (Some(e), Some(r), Some(c), Some(k)) => Some(probe::ProbeArgs {
                    endpoint: e,
                    root: r,
                    cert: c,
                    key: k,
                }),
                _ => None,
            };
            Ok(commands::check_etcd(
                &dir,
                warn_days,
                etcd_version,
                probe.as_ref(),
                json,
            ))
        }
        Command::List {
            ca,
            expiring_within,
            json,
        } => commands::list(&ca, expiring_within.as_deref(), json).map(|()| true),
        Command::Verify {
            root,
            file,
            role,
            key,
            warn_days,
            json,
        } => commands::verify(
            &root,
            &file,
            role.map(Into::into),
            key.as_deref(),
            warn_days,
            json,
        ),
        // Handled by cli::generate_docs above.
        Command::Completions { .. } | Command::Manpages { .. } => Ok(true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("issuer: error: {e}");
            ExitCode::FAILURE
        }
    }
}
