//! `issuer fleet`: every member and client of a cluster file as the CA host sees it — its
//! current leaf, its last renewal and confirmation, what the service last saw of its agent
//! (request, CRL fetched, refusals in a row) — and a state an operator acts on.

use super::*;
use pki_core::ca::{AgentSeen, FleetState, LeafRecord};
use pki_core::etcd::ClusterFile;

/// One entry of the fleet.
#[derive(Debug)]
struct Entry {
    entry: String,
    state: FleetState,
    serial: Option<String>,
    not_after: Option<String>,
    /// When the current leaf was issued by a renewal (None: issued by enrolment or the CLI).
    last_renewal: Option<String>,
    /// Whether that renewal was confirmed installed.
    confirmed: Option<bool>,
    last_seen: Option<String>,
    last_crl_number: Option<i64>,
    last_crl_fetch: Option<String>,
    refusals: i64,
    last_refusal: Option<String>,
}

fn state_of(
    current: Option<&LeafRecord>,
    seen: Option<&AgentSeen>,
    now: OffsetDateTime,
) -> FleetState {
    match current {
        None => FleetState::NeverEnrolled,
        Some(c) => FleetState::of(
            &c.status,
            c.not_before,
            c.not_after,
            seen.map_or(0, |s| s.refusals),
            now,
        ),
    }
}

/// The entry's current leaf: its newest active unexpired one, else its newest of any status
/// (a host whose re-enrolled leaf was revoked shows that revoked leaf, not an older expired one).
fn current_leaf<'a>(
    rows: &'a [LeafRecord],
    cn: &str,
    role: &str,
    now: OffsetDateTime,
) -> Option<&'a LeafRecord> {
    let mine = || rows.iter().filter(|r| r.subject == cn && r.profile == role);
    mine()
        .filter(|r| r.status == "active" && r.not_after > now)
        .max_by_key(|r| r.not_before)
        .or_else(|| {
            mine()
                .filter(|r| r.status != "void")
                .max_by_key(|r| r.not_before)
        })
}

pub fn fleet(ca_dir: &Path, cluster: &Path, json: bool) -> Result<bool> {
    let cluster = ClusterFile::load(cluster)?;
    let ca = open_ca(ca_dir)?;
    let ledger = ca.ledger()?;
    let rows = ledger.list(&ListFilter::default())?;
    let seen = ledger.agents_seen()?;
    let now = OffsetDateTime::now_utc();
    let at = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t)
            .map(fmt_time)
            .unwrap_or_default()
    };
    let entries: Vec<(String, &str)> = cluster
        .members
        .iter()
        .map(|m| (format!("member {}", m.name), m.name.as_str()))
        .chain(
            cluster
                .clients
                .iter()
                .map(|c| (format!("client {}", c.name), c.name.as_str())),
        )
        .collect();
    let mut out = Vec::new();
    for (entry, name) in entries {
        let role = if entry.starts_with("member") {
            "server"
        } else {
            "client"
        };
        let current = current_leaf(&rows, name, role, now);
        let s = seen.iter().find(|s| s.subject == name);
        let chain = match current {
            Some(c) => Some(ledger.chain_state(&c.serial, now)?),
            None => None,
        };
        let renewed = chain
            .as_ref()
            .zip(current)
            .filter(|(ch, c)| ch.root != c.serial);
        out.push(Entry {
            state: state_of(current, s, now),
            serial: current.map(|c| c.serial.clone()),
            not_after: current.map(|c| fmt_time(c.not_after)),
            // Its notBefore (backdated a little: clocks drift).
            last_renewal: renewed.map(|(_, c)| fmt_time(c.not_before)),
            confirmed: renewed.map(|(ch, _)| !ch.unconfirmed),
            last_seen: s.map(|s| at(s.at)),
            last_crl_number: s.and_then(|s| s.crl_number),
            last_crl_fetch: s.and_then(|s| s.crl_at).map(at),
            refusals: s.map_or(0, |s| s.refusals),
            last_refusal: s.and_then(|s| s.refused.clone()),
            entry,
        });
    }
    if json {
        let rows: Vec<serde_json::Value> = out
            .iter()
            .map(|e| {
                serde_json::json!({
                    "entry": e.entry, "state": e.state.as_str(), "serial": e.serial,
                    "not_after": e.not_after, "last_renewal": e.last_renewal,
                    "confirmed": e.confirmed, "last_seen": e.last_seen,
                    "last_crl_number": e.last_crl_number, "last_crl_fetch": e.last_crl_fetch,
                    "refusals": e.refusals, "last_refusal": e.last_refusal,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
    } else {
        println!(
            "{:<22} {:<14} {:<35} {:<21} {:<21} {:<9} {:<21} {:<5} REFUSALS",
            "ENTRY",
            "STATE",
            "SERIAL",
            "NOT AFTER",
            "LAST RENEWAL",
            "CONFIRMED",
            "LAST SEEN",
            "CRL"
        );
        let dash = || "-".to_string();
        for e in &out {
            println!(
                "{:<22} {:<14} {:<35} {:<21} {:<21} {:<9} {:<21} {:<5} {}",
                e.entry,
                e.state.as_str(),
                e.serial.clone().unwrap_or_else(dash),
                e.not_after.clone().unwrap_or_else(dash),
                e.last_renewal.clone().unwrap_or_else(dash),
                e.confirmed
                    .map_or_else(dash, |c| if c { "yes" } else { "no" }.into()),
                e.last_seen.clone().unwrap_or_else(dash),
                e.last_crl_number.map_or_else(dash, |n| n.to_string()),
                match &e.last_refusal {
                    Some(r) => format!("{} ({r})", e.refusals),
                    None => e.refusals.to_string(),
                }
            );
        }
    }
    // Overdue, failing, expired or revoked needs someone; never enrolled is shown.
    Ok(!out.iter().any(|e| e.state.needs_action()))
}
