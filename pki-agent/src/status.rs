//! `pki-agent status`: each leaf's expiry and renewal time, the last renewal, the CRL's number
//! and age, and whether anything is inside the danger window.

use serde::Serialize;
use time::OffsetDateTime;

use crate::agent::{Agent, LeafView};
use crate::state::{CrlState, State};

/// The status of a host.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Per leaf.
    pub leaves: Vec<LeafStatus>,
    /// The CRL installed, when the agent installs one.
    pub crl: Option<CrlStatus>,
    /// A leaf has less than the danger window left (or is missing or expired), or the CRL is
    /// past its nextUpdate.
    pub danger: bool,
    /// A leaf the service refused for good (status exits 3).
    pub refused: bool,
}

/// One leaf.
#[derive(Debug, Serialize)]
pub struct LeafStatus {
    /// The role.
    pub role: String,
    /// What is on disk, when it can be read.
    #[serde(flatten)]
    pub view: Option<LeafView>,
    /// Days until it expires.
    pub days_left: Option<i64>,
    /// Why it could not be read.
    pub error: Option<String>,
    /// When the agent last renewed it.
    pub last_renewal: Option<String>,
    /// A renewal installed but not yet confirmed.
    pub unconfirmed: Option<String>,
    /// When the agent last tried to renew it.
    pub last_attempt: Option<String>,
    /// How that ended: `renewed`, `failed`, `refused`.
    pub last_outcome: Option<String>,
    /// Why it failed.
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// When the agent tries next (RFC 3339): the renewal time, or after a failure the daemon's
    /// backoff from the last attempt (a timer runs it at its next pass at the earliest); None
    /// once the service refused the leaf for good.
    pub next_attempt: Option<String>,
    /// The service refused this leaf for good (the code and serial): the agent no longer
    /// asks; the host must be re-enrolled.
    pub refused: Option<String>,
}

/// The CRL.
#[derive(Debug, Serialize)]
pub struct CrlStatus {
    /// What the state file says about it.
    #[serde(flatten)]
    pub installed: Option<CrlState>,
    /// Seconds since it was fetched.
    pub age_seconds: Option<i64>,
}

/// Reads the status of `agent`'s host at `now`.
pub fn status(agent: &Agent, now: OffsetDateTime) -> Status {
    let state = State::load(&agent.config.state).unwrap_or_default();
    let mut danger = false;
    let leaves = agent
        .config
        .leaves
        .iter()
        .map(|l| {
            let s = state.leaves.get(&l.role).cloned().unwrap_or_default();
            let (view, error) = match agent.view(l) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            };
            danger |= view.as_ref().is_none_or(|v| {
                v.not_after <= now + agent.config.danger_for(v.not_after - v.not_before)
            });
            // A refusal of another serial (the host got a new pair since) no longer holds.
            let refused = s.refused.clone().filter(|_| {
                view.as_ref()
                    .is_some_and(|v| crate::run::remembered_serial_is(&s, &v.serial))
            });
            let next_attempt = match (&refused, &view) {
                (None, Some(v)) => Some(next_attempt(&s, v, now)),
                _ => None,
            }
            .map(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            });
            LeafStatus {
                role: l.role.clone(),
                next_attempt,
                days_left: view.as_ref().map(|v| (v.not_after - now).whole_days()),
                view,
                error,
                last_renewal: s.last_renewal,
                unconfirmed: s.unconfirmed,
                last_attempt: s.last_attempt,
                last_outcome: s.last_outcome,
                last_error: s.last_error,
                consecutive_failures: s.consecutive_failures,
                refused,
            }
        })
        .collect::<Vec<LeafStatus>>();
    let refused = leaves.iter().any(|l| l.refused.is_some());
    let parse =
        |t: &str| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
    let crl = agent.config.crl.as_ref().map(|_| {
        let installed = state.crl.clone();
        danger |= installed
            .as_ref()
            .and_then(|c| parse(&c.next_update))
            .is_none_or(|next| next <= now);
        CrlStatus {
            age_seconds: installed
                .as_ref()
                .and_then(|c| parse(&c.fetched_at))
                .map(|t| (now - t).whole_seconds()),
            installed,
        }
    });
    Status {
        leaves,
        crl,
        danger,
        refused,
    }
}

/// When the agent tries leaf `v` next: its renewal time, or after failures in a row the
/// daemon's backoff from the last attempt (30 s doubling to 15 minutes, never longer than a
/// tenth of the life left, at least 1 s).
fn next_attempt(s: &crate::state::LeafState, v: &LeafView, now: OffsetDateTime) -> OffsetDateTime {
    let parse =
        |t: &str| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
    let failed_at = s
        .last_attempt
        .as_deref()
        .and_then(parse)
        .filter(|_| s.consecutive_failures > 0 && s.last_outcome.as_deref() == Some("failed"));
    match failed_at {
        None => v.renew_after,
        Some(at) => {
            let doubled = 30i64 << s.consecutive_failures.saturating_sub(1).min(5);
            let left = (v.not_after - now).whole_seconds().max(0) / 10;
            at + time::Duration::seconds(doubled.min(900).min(left.max(1)))
        }
    }
}
