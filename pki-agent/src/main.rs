//! `pki-agent`: parse arguments, run the command, report. Nothing else.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pki_agent::agent::Agent;
use pki_agent::config::Config;
use pki_agent::error::AgentResult;

/// Keeps this host's etcd certificates and CRL current through `issuer serve`.
#[derive(Parser, Debug)]
#[command(name = "pki-agent", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Obtain this host's first certificates with a one-time token (from `issuer token
    /// create`); the keys are made here and never leave the host.
    Enrol {
        /// The agent's configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// File whose first line is the token (never a command-line value).
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Replace the leaves this host has (revoked, superseded or expired: `status` says
        /// so) with new ones, swapped in as a renewal would.
        #[arg(long)]
        replace: bool,
    },
    /// Renew what is due, confirm renewals, install the CRL. Without --once, keeps doing so.
    /// Exit status: 0 done, 1 a failure, 2 a leaf within the danger window afterwards, 3 a
    /// leaf the service refused for good (revoked, superseded: re-enrol the host).
    Run {
        /// The agent's configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One pass, for a systemd timer or cron.
        #[arg(long)]
        once: bool,
        /// Renew every leaf in this pass, due or not (after a suspected key exposure).
        #[arg(long, requires = "once")]
        renew_now: bool,
    },
    /// Expiry, renewal time, last renewal attempt and its outcome, and CRL of each leaf. Exit
    /// status 3 when the service refused a leaf for good (revoked, superseded: re-enrol the
    /// host), else 2 when a leaf is within the danger window or the CRL is past its nextUpdate.
    Status {
        /// The agent's configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pki-agent: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn danger_code(agent: &Agent) -> ExitCode {
    match pki_agent::status::status(agent, time::OffsetDateTime::now_utc()).danger {
        true => ExitCode::from(2),
        false => ExitCode::SUCCESS,
    }
}

fn run(command: Command) -> AgentResult<ExitCode> {
    match command {
        Command::Enrol {
            config,
            token_file,
            replace,
        } => {
            let agent = Agent::new(Config::load(&config)?)?;
            let token = pki_core::output::read_secret_file(&token_file, "enrolment token")?;
            for l in agent.enrol(token.trim(), replace)? {
                println!(
                    "enrolled {} {} (serial {}, until {})",
                    l.role, l.subject, l.serial, l.not_after
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            once,
            renew_now,
        } => {
            let agent = Agent::new(Config::load(&config)?)?;
            let print = |r: &pki_agent::run::PassReport| {
                // A daemon's lines carry the time (a timer's run is stamped by its journal).
                let at = match once {
                    true => String::new(),
                    false => format!(
                        "{} ",
                        time::OffsetDateTime::now_utc()
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    ),
                };
                for line in &r.renewed {
                    println!("{at}renewed {line}");
                }
                if let Some(n) = r.crl_number {
                    println!("{at}CRL {n} installed");
                }
                for f in &r.failures {
                    eprintln!("{at}pki-agent: {f}");
                }
                for f in &r.refused {
                    eprintln!("{at}pki-agent: refused for good: {f}");
                }
            };
            if !once {
                pki_agent::run::daemon(&agent, print)?;
                eprintln!(
                    "pki-agent: the service refused every leaf for good: stopping (re-enrol the host with pki-agent enrol --replace and a new token, then start the agent again)"
                );
                return Ok(ExitCode::from(3));
            }
            let report = pki_agent::run::pass(&agent, true, renew_now)?;
            print(&report);
            if !report.failures.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            if !report.refused.is_empty() {
                return Ok(ExitCode::from(3));
            }
            Ok(danger_code(&agent))
        }
        Command::Status { config, json } => {
            let agent = Agent::new(Config::load(&config)?)?;
            let s = pki_agent::status::status(&agent, time::OffsetDateTime::now_utc());
            if json {
                println!("{}", serde_json::to_string_pretty(&s).expect("json"));
            } else {
                // RFC 3339 to the second, as the other times printed here.
                let at = |t: time::OffsetDateTime| {
                    t.replace_nanosecond(0)
                        .unwrap_or(t)
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                };
                let now = time::OffsetDateTime::now_utc();
                for l in &s.leaves {
                    match (&l.view, &l.error) {
                        (Some(v), _) => println!(
                            "{:<7} serial {} expires {} ({}) renews after {}{}",
                            l.role,
                            v.serial,
                            at(v.not_after),
                            if v.not_after <= now {
                                "EXPIRED".to_string()
                            } else {
                                format!("{} days", l.days_left.unwrap_or(0))
                            },
                            at(v.renew_after),
                            l.unconfirmed
                                .as_ref()
                                .map(|u| format!(", {u} unconfirmed"))
                                .unwrap_or_default()
                        ),
                        (None, e) => println!("{:<7} {}", l.role, e.clone().unwrap_or_default()),
                    }
                    if let Some(r) = &l.refused {
                        println!("{:<7} REFUSED for good by the service: {r}; re-enrol this host with a new token", "");
                    } else if l.consecutive_failures > 0 {
                        println!(
                            "{:<7} last attempt {} failed ({} in a row): {}",
                            "",
                            l.last_attempt.clone().unwrap_or_default(),
                            l.consecutive_failures,
                            l.last_error.clone().unwrap_or_default()
                        );
                    }
                }
                if let Some(c) = &s.crl {
                    match &c.installed {
                        Some(i) => println!(
                            "crl     number {} fetched {} next update {}",
                            i.number, i.fetched_at, i.next_update
                        ),
                        None => println!("crl     none installed yet"),
                    }
                }
            }
            Ok(if s.refused {
                ExitCode::from(3)
            } else if s.danger {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
