//! One pass (`run --once`, for a timer) and the daemon loop around it.

use std::time::Duration;

use time::OffsetDateTime;

use crate::agent::{Agent, LeafView};
use crate::error::AgentResult;
use crate::state::State;

/// What a pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// `role: old -> new` per renewal.
    pub renewed: Vec<String>,
    /// The CRL number installed, when fetched.
    pub crl_number: Option<u64>,
    /// The CRL was looked at without a failure (installed, or the one there kept).
    pub crl_checked: bool,
    /// The longest `Retry-After` the service asked for, in seconds.
    pub retry_after: Option<u64>,
    /// Failures, one line each; the pass went on past them.
    pub failures: Vec<String>,
    /// Whether any failure may pass if tried again (the service unreachable or busy).
    pub transient: bool,
    /// Leaves the service refused for good (revoked, superseded, unknown, expired), one line
    /// each: not asked about again until the host is re-enrolled.
    pub refused: Vec<String>,
}

/// Whether a remembered permanent refusal is about the leaf on disk now (a re-enrolment puts
/// a new serial there, and the refusal no longer applies).
pub(crate) fn remembered_serial_is(s: &crate::state::LeafState, serial: &str) -> bool {
    s.refused
        .as_deref()
        .is_some_and(|r| r.contains(&format!("(serial {serial})")))
}

/// Renews every leaf that is due, confirms unconfirmed renewals, fetches the CRL when
/// `fetch_crl`; `renew_now` renews every leaf. A failure of one leaf does not stop the others.
pub fn pass(agent: &Agent, fetch_crl: bool, renew_now: bool) -> AgentResult<PassReport> {
    let mut state = State::load(&agent.config.state)?;
    let mut report = PassReport::default();
    let now = OffsetDateTime::now_utc();
    let fail = |report: &mut PassReport, what: String, e: crate::error::AgentError| {
        if let crate::error::AgentError::Service(s) = &e {
            report.transient |= s.is_transient();
            report.retry_after = report.retry_after.max(s.retry_after());
        }
        report.failures.push(format!("{what}: {e}"));
    };
    // One look at the active intermediate: a leaf of another one (a rotation) renews now.
    let active = match agent.config.leaves.is_empty() {
        true => None,
        false => match agent.active_intermediate() {
            Ok(a) => Some(a),
            // An intermediate this host does not trust is said; an unreachable service is
            // not (nothing may be due).
            Err(e @ crate::error::AgentError::BadCertificate { .. }) => {
                fail(&mut report, "intermediate".into(), e);
                None
            }
            Err(_) => None,
        },
    };
    for l in &agent.config.leaves {
        if let Err(e) = agent.confirm(l, &mut state) {
            fail(&mut report, format!("{} confirmation", l.role), e);
        }
        let view = match agent.view(l) {
            Ok(v) => v,
            Err(e) => {
                fail(&mut report, l.role.clone(), e);
                continue;
            }
        };
        let rotated = active
            .as_deref()
            .is_some_and(|a| agent.issued_by_other(l, a));
        if view.renew_after > now && !renew_now && !rotated {
            continue;
        }
        // A leaf the service refused for good is not asked about again: the same answer
        // would come back, for ever (status shows it and exits 3).
        let remembered = state.leaves.get(&l.role).cloned().unwrap_or_default();
        if let Some(code) = remembered
            .refused
            .as_ref()
            .filter(|_| remembered_serial_is(&remembered, &view.serial))
        {
            report.refused.push(format!(
                "{}: the service refused serial {} for good ({code}); re-enrol this host with a new token (pki-agent enrol --replace)",
                l.role, view.serial
            ));
            continue;
        }
        let at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        match agent.renew(l, &mut state) {
            Ok(new) => {
                let s = state.leaves.entry(l.role.clone()).or_default();
                s.last_attempt = Some(at);
                s.last_outcome = Some("renewed".into());
                s.last_error = None;
                s.consecutive_failures = 0;
                s.refused = None;
                agent.save(&mut state)?;
                report
                    .renewed
                    .push(format!("{}: {} -> {}", l.role, view.serial, new.serial))
            }
            Err(e) => {
                let permanent = match &e {
                    crate::error::AgentError::Service(s) => {
                        s.permanent_refusal().map(str::to_string)
                    }
                    _ => None,
                };
                let s = state.leaves.entry(l.role.clone()).or_default();
                s.last_attempt = Some(at);
                s.last_outcome = Some(
                    if permanent.is_some() {
                        "refused"
                    } else {
                        "failed"
                    }
                    .into(),
                );
                s.last_error = Some(e.to_string());
                s.consecutive_failures += 1;
                s.refused = permanent.map(|code| format!("{code} (serial {})", view.serial));
                let refused = s.refused.is_some();
                agent.save(&mut state)?;
                if refused {
                    report.refused.push(format!("{} renewal: {e}", l.role));
                } else {
                    fail(&mut report, format!("{} renewal", l.role), e)
                }
            }
        }
    }
    if fetch_crl && agent.config.crl.is_some() {
        match agent.fetch_crl(&mut state) {
            Ok(n) => {
                report.crl_number = n;
                report.crl_checked = true;
            }
            Err(e) => fail(&mut report, "CRL".into(), e),
        }
    }
    Ok(report)
}

/// Runs passes: the next one when a leaf is due, the CRL interval has passed or a leaf file
/// was replaced; after a failure, again after a backoff that doubles from 30 s up to 15
/// minutes, never longer than a tenth of the shortest life left (at least 1 s), never shorter
/// than a `Retry-After` the service sent. Returns once the service refused every leaf for
/// good (revoked, superseded, expired, unknown): the host must be re-enrolled.
pub fn daemon(agent: &Agent, mut print: impl FnMut(&PassReport)) -> AgentResult<()> {
    let crl_every = agent
        .config
        .crl_interval()
        .unwrap_or(Duration::from_secs(600));
    // A tenth of the shortest life left (at least 1 s): no wait between attempts is longer,
    // so a leaf near its end is tried often enough to be renewed before it expires.
    let near_end = || {
        let now = OffsetDateTime::now_utc();
        let left = agent
            .config
            .leaves
            .iter()
            .filter_map(|l| agent.view(l).ok())
            .map(|v| (v.not_after - now).whole_seconds().max(0) as u64)
            .min()
            .unwrap_or(3000);
        Duration::from_secs((left / 10).max(1))
    };
    let first_backoff = || near_end().min(Duration::from_secs(30));
    let mut backoff = first_backoff();
    let mut last_crl: Option<std::time::Instant> = None;
    let mut last_refused: Vec<String> = Vec::new();
    let mut last_crl_number = None;
    loop {
        let fetch = last_crl.is_none_or(|t| t.elapsed() >= crl_every);
        let mut report = pass(agent, fetch, false)?;
        // A permanent refusal is said once, not at every pass; so is a CRL number.
        if report.refused == last_refused {
            report.refused.clear();
        } else {
            last_refused = report.refused.clone();
        }
        if report.crl_number.is_some() {
            if report.crl_number == last_crl_number {
                report.crl_number = None;
            } else {
                last_crl_number = report.crl_number;
            }
        }
        print(&report);
        if all_refused_for_good(agent) {
            return Ok(());
        }
        if fetch && report.crl_checked {
            last_crl = Some(std::time::Instant::now());
        }
        let wait = if report.failures.is_empty() {
            backoff = first_backoff();
            // Without a CRL to keep, the next pass is the next renewal (looked at again
            // after the CRL interval at the latest): not once a second.
            let crl_due = match agent.config.crl {
                None => crl_every,
                Some(_) => {
                    last_crl.map_or(Duration::ZERO, |t| crl_every.saturating_sub(t.elapsed()))
                }
            };
            next_wake(agent, crl_due.max(Duration::from_secs(1)))
        } else {
            let w = backoff;
            backoff = (backoff * 2).min(Duration::from_secs(900));
            // A little spread so a fleet does not retry in step; never sooner than the
            // service asked.
            let w =
                w + Duration::from_millis(rand::random::<u64>() % (w.as_millis() as u64 / 5 + 1));
            w.min(near_end())
                .max(Duration::from_secs(report.retry_after.unwrap_or(0)))
        };
        sleep_watching(agent, wait);
    }
}

/// Whether the service refused every leaf on disk for good: nothing is left for the daemon
/// to do until the host is re-enrolled.
fn all_refused_for_good(agent: &Agent) -> bool {
    let state = State::load(&agent.config.state).unwrap_or_default();
    agent
        .config
        .leaves
        .iter()
        .all(|l| refused_for_good(&state, &l.role, &agent.view(l)))
}

/// Whether the service refused the leaf on disk now (`view`) for good.
fn refused_for_good(state: &State, role: &str, view: &AgentResult<LeafView>) -> bool {
    match (state.leaves.get(role), view) {
        (Some(s), Ok(v)) => remembered_serial_is(s, &v.serial),
        _ => false,
    }
}

/// How often a sleeping daemon looks at its leaf files.
const WATCH: Duration = Duration::from_secs(5);

/// Sleeps `wait`, reading the leaf files every [`WATCH`]: a leaf replaced meanwhile (`enrol
/// --replace`, `run --once --renew-now` beside the daemon) ends the sleep, so the next
/// renewal time is the new leaf's, not the one the daemon saw before.
fn sleep_watching(agent: &Agent, wait: Duration) {
    let serials = || {
        agent
            .config
            .leaves
            .iter()
            .map(|l| agent.view(l).ok().map(|v| v.serial))
            .collect::<Vec<_>>()
    };
    let before = serials();
    let end = std::time::Instant::now() + wait;
    loop {
        let now = std::time::Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep((end - now).min(WATCH));
        if serials() != before {
            return;
        }
    }
}

/// Until the earliest renewal, at most `crl_due` (when the next CRL fetch is due). A leaf the
/// service refused for good is not waited for: nothing will renew it.
fn next_wake(agent: &Agent, crl_due: Duration) -> Duration {
    let now = OffsetDateTime::now_utc();
    let mut wait = crl_due;
    let state = State::load(&agent.config.state).unwrap_or_default();
    for l in &agent.config.leaves {
        let view = agent.view(l);
        if refused_for_good(&state, &l.role, &view) {
            continue;
        }
        if let Ok(v) = view {
            let until = (v.renew_after - now).max(time::Duration::seconds(1));
            wait = wait.min(Duration::from_secs(until.whole_seconds() as u64));
        }
    }
    wait
}
