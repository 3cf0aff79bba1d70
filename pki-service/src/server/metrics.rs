//! Counters and gauges, in the Prometheus text format at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pki_core::ca::FleetState;
use time::OffsetDateTime;

/// What the service counts.
#[derive(Default)]
pub struct Metrics {
    /// Leaves issued by enrolment.
    pub enrolled: AtomicU64,
    /// Leaves issued by renewal.
    pub renewed: AtomicU64,
    /// Renewals confirmed.
    pub confirmed: AtomicU64,
    /// CRLs signed.
    pub crls_signed: AtomicU64,
    /// SIGHUP reloads that failed.
    pub reload_failures: AtomicU64,
    /// Connections closed at once: their source's share or the service's slots were taken.
    pub connections_refused: AtomicU64,
    /// Audit lines that could not be written.
    pub audit_failures: AtomicU64,
    /// Renewals of the service's own certificate.
    pub own_renewals: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

/// One agent as the per-entry gauges show it (refreshed every 15 s from the ledger).
#[derive(Clone, Debug)]
pub struct AgentGauge {
    /// The leaf's CN: the cluster file's entry.
    pub entry: String,
    /// The leaf it last presented: its start and end.
    pub not_before: OffsetDateTime,
    /// Its end.
    pub not_after: OffsetDateTime,
    /// Its ledger status (`active`, `revoked`, ...).
    pub status: String,
    /// When the service last saw it.
    pub last_seen: OffsetDateTime,
    /// Refusals in a row.
    pub refusals: i64,
}

/// The gauges read at scrape time.
pub struct Gauges {
    /// Per agent.
    pub agents: Vec<AgentGauge>,
    /// thisUpdate of the CRLs served.
    pub crl_this_update: OffsetDateTime,
    /// nextUpdate of the CRLs served.
    pub crl_next_update: OffsetDateTime,
    /// The etcd CRL's number.
    pub crl_number: u64,
    /// End of the active intermediate.
    pub intermediate_not_after: OffsetDateTime,
    /// The active generation.
    pub generation: u32,
    /// Unexpired active leaves holding root CRL entries out of the etcd CRL.
    pub root_crl_withheld: usize,
    /// Root CRL entries held out of the etcd CRL.
    pub root_entries_held: usize,
    /// End of the service's own certificate, when it can be read.
    pub own_cert_not_after: Option<OffsetDateTime>,
    /// The last reload failed.
    pub reload_failed: bool,
}

impl Metrics {
    /// Counts a refusal under its code.
    pub fn refused(&self, code: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_default() += 1;
    }

    /// The exposition text at `now`.
    pub fn render(&self, g: &Gauges, now: OffsetDateTime) -> String {
        let mut s = String::new();
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |s: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        counter(
            &mut s,
            "pki_enrolled_total",
            "Leaves issued by enrolment.",
            self.enrolled.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "pki_renewed_total",
            "Leaves issued by renewal.",
            self.renewed.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "pki_confirmed_total",
            "Renewals confirmed installed.",
            self.confirmed.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "pki_crls_signed_total",
            "CRL sets signed.",
            self.crls_signed.load(Ordering::Relaxed),
        );
        let _ = writeln!(s, "# HELP pki_refused_total Requests refused, by reason.\n# TYPE pki_refused_total counter");
        for (code, n) in self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(s, "pki_refused_total{{reason=\"{code}\"}} {n}");
        }
        gauge(
            &mut s,
            "pki_crl_number",
            "Number of the etcd CRL served.",
            g.crl_number as i64,
        );
        gauge(
            &mut s,
            "pki_crl_age_seconds",
            "Seconds since the CRLs served were signed.",
            (now - g.crl_this_update).whole_seconds(),
        );
        gauge(
            &mut s,
            "pki_crl_next_update_seconds",
            "Seconds until the CRLs served reach nextUpdate.",
            (g.crl_next_update - now).whole_seconds(),
        );
        gauge(
            &mut s,
            "pki_intermediate_expiry_seconds",
            "Seconds until the active intermediate expires.",
            (g.intermediate_not_after - now).whole_seconds(),
        );
        gauge(
            &mut s,
            "pki_generation",
            "The active generation of the CA folder.",
            g.generation as i64,
        );
        gauge(
            &mut s,
            "pki_root_crl_withheld_leaves",
            "Unexpired active leaves chaining to an intermediate a new root CRL entry revokes; that entry stays out of the etcd CRL while above 0, until its hold ends.",
            g.root_crl_withheld as i64,
        );
        gauge(
            &mut s,
            "pki_root_crl_entries_held",
            "Root CRL entries held out of the etcd CRL for now (bounded by --root-crl-hold).",
            g.root_entries_held as i64,
        );
        gauge(
            &mut s,
            "pki_reload_failed",
            "1 while the last SIGHUP reload failed (the service signs with what it loaded before).",
            i64::from(g.reload_failed),
        );
        counter(
            &mut s,
            "pki_reload_failures_total",
            "SIGHUP reloads that failed.",
            self.reload_failures.load(Ordering::Relaxed),
        );
        if let Some(end) = g.own_cert_not_after {
            gauge(
                &mut s,
                "pki_service_cert_expiry_seconds",
                "Seconds until the service's own TLS certificate expires (it renews itself at 2/3 of its life).",
                (end - now).whole_seconds(),
            );
        }
        // One series per agent, by its cluster-file entry.
        let per_agent =
            |s: &mut String, name: &str, help: &str, value: &dyn Fn(&AgentGauge) -> String| {
                let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
                for a in &g.agents {
                    let _ = writeln!(s, "{name}{{entry=\"{}\"}} {}", a.entry, value(a));
                }
            };
        per_agent(
            &mut s,
            "pki_agent_leaf_expiry_seconds",
            "Seconds until the leaf each agent last presented expires, by cluster-file entry.",
            &|a| (a.not_after - now).whole_seconds().to_string(),
        );
        per_agent(
            &mut s,
            "pki_agent_leaf_life_used_ratio",
            "Fraction of that leaf's lifetime passed (agents renew at about 0.67).",
            &|a| {
                let life = (a.not_after - a.not_before).as_seconds_f64().max(1.0);
                format!("{:.4}", (now - a.not_before).as_seconds_f64() / life)
            },
        );
        per_agent(
            &mut s,
            "pki_agent_leaf_lifetime_seconds",
            "Lifetime of that leaf (the agents' danger window is a tenth of it, at most 7 days).",
            &|a| (a.not_after - a.not_before).whole_seconds().to_string(),
        );
        per_agent(
            &mut s,
            "pki_agent_last_seen_seconds",
            "Seconds since the service last heard from each agent.",
            &|a| (now - a.last_seen).whole_seconds().to_string(),
        );
        per_agent(
            &mut s,
            "pki_agent_refusals",
            "Requests of each agent the service refused in a row.",
            &|a| a.refusals.to_string(),
        );
        // The state `issuer fleet` shows, one series per state (1 for the current one).
        let _ = writeln!(
            s,
            "# HELP pki_agent_state Each agent's state as issuer fleet shows it (1: the current one).\n# TYPE pki_agent_state gauge"
        );
        for a in &g.agents {
            let now_in = FleetState::of(&a.status, a.not_before, a.not_after, a.refusals, now);
            for state in FleetState::ALL {
                if state != FleetState::NeverEnrolled {
                    let _ = writeln!(
                        s,
                        "pki_agent_state{{entry=\"{}\",state=\"{}\"}} {}",
                        a.entry,
                        state.label(),
                        u8::from(state == now_in)
                    );
                }
            }
        }
        counter(
            &mut s,
            "pki_service_cert_renewals_total",
            "Renewals of the service's own TLS certificate.",
            self.own_renewals.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "pki_connections_refused_total",
            "Connections closed at once: their source had --max-connections-per-source open, or every slot was taken.",
            self.connections_refused.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "pki_audit_write_failures_total",
            "Audit lines that could not be written (state-changing requests were then refused).",
            self.audit_failures.load(Ordering::Relaxed),
        );
        s
    }
}
