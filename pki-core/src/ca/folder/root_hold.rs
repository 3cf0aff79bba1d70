//! Which of the root CRL's entries go into the etcd CRL now, and which are held back for a
//! bounded time while leaves still chain to the intermediate an entry revokes.
//!
//! The rules (docs/rotation.md, "the root CRL hold"):
//! - **Monotonic.** Once an etcd CRL listing an entry has been published, every later etcd CRL
//!   lists it (until the revoked intermediate expires), whatever the ledger, the agents or the
//!   hold say. This folder's `root-crl-hold.toml` records, per entry, when it was first seen
//!   and the etcd CRL that first listed it.
//! - **Bounded.** Only an entry no etcd CRL has listed yet may be held, and only while some
//!   *unexpired, active* leaf of this folder chains to the intermediate it revokes (their
//!   agents move them to the new intermediate first), and never past `first seen + hold`.
//!   `issuer root-crl release` ends every hold at once.
//! - An entry for an intermediate this folder never had holds nothing back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::root_crl::RootCrl;
use super::CaDir;
use crate::ca::ledger::{LeafRecord, Ledger, ListFilter};
use crate::error::Result;
use crate::output::{self, Mode};

/// The default bound of a hold.
pub const DEFAULT_ROOT_CRL_HOLD: Duration = Duration::hours(1);

/// What this folder remembers of each root CRL entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldFile {
    #[serde(default, rename = "entry")]
    entries: Vec<HoldEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldEntry {
    /// The revoked certificate's serial, lower-case hex.
    serial: String,
    /// When this folder first saw it in an installed root CRL.
    #[serde(with = "time::serde::rfc3339")]
    first_seen: OffsetDateTime,
    /// The first etcd CRL that listed it; from then on every etcd CRL does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    published_in: Option<u64>,
    /// Set by `issuer root-crl release`: the hold ended by hand.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    released: bool,
}

/// One root CRL entry held out of the etcd CRL.
#[derive(Clone, Debug)]
pub struct HeldEntry {
    /// The revoked intermediate's serial, lower-case hex.
    pub serial: String,
    /// This folder's generations it revokes.
    pub generations: Vec<u32>,
    /// When the hold ends whatever the agents do.
    pub until: OffsetDateTime,
    /// The unexpired active leaves holding it back.
    pub holders: Vec<LeafRecord>,
}

/// What goes into the etcd CRL now.
#[derive(Clone, Debug, Default)]
pub struct RootHold {
    /// Entries held back (their serials are left out of the etcd CRL).
    pub held: Vec<HeldEntry>,
    state: HoldFile,
    path: PathBuf,
    /// Entries seen for the first time: saved by [`RootHold::published`].
    new_entries: bool,
}

impl RootHold {
    /// The serials (lower-case hex) to leave out.
    pub fn skip(&self) -> Vec<String> {
        self.held.iter().map(|h| h.serial.clone()).collect()
    }

    /// The number of leaves holding entries back (a leaf counts once per entry).
    pub fn holding_leaves(&self) -> usize {
        self.held.iter().map(|h| h.holders.len()).sum()
    }

    /// One line per held entry, naming every leaf that holds it and the way out.
    pub fn describe(&self) -> Vec<String> {
        self.held
            .iter()
            .map(|h| {
                let leaves: Vec<String> = h
                    .holders
                    .iter()
                    .map(|l| {
                        let mut names = l.dns.clone();
                        names.extend(l.ips.iter().cloned());
                        format!(
                            "{} {} CN={}{} (generation {}, until {})",
                            l.profile,
                            l.serial,
                            l.subject,
                            if names.is_empty() {
                                String::new()
                            } else {
                                format!(" [{}]", names.join(", "))
                            },
                            l.generation,
                            crate::x509::fmt_time(l.not_after)
                        )
                    })
                    .collect();
                format!(
                    "root CRL entry {} (generation {:?}) held out of the etcd CRL until {} by {} leaf(s) whose agent has not moved them to the active intermediate: {}; the hold ends by itself then, `issuer root-crl release` ends it now",
                    h.serial,
                    h.generations,
                    crate::x509::fmt_time(h.until),
                    h.holders.len(),
                    leaves.join("; ")
                )
            })
            .collect()
    }

    /// Records that etcd CRL `number` listed every entry of the root CRL not held back, and
    /// saves the folder's record (atomically). Call it once the CRL is signed.
    pub fn published(&mut self, number: u64) -> Result<()> {
        let held: Vec<String> = self.skip();
        let mut changed = self.new_entries;
        for e in self.state.entries.iter_mut() {
            if e.published_in.is_none() && !held.contains(&e.serial) {
                e.published_in = Some(number);
                changed = true;
            }
        }
        if changed {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let text = toml::to_string(&self.state).expect("hold state serialises");
        output::write_atomic(
            &self.path,
            format!("# Root CRL entries as this folder's etcd CRLs list them (written by issuer; do not edit).\n{text}").as_bytes(),
            Mode::Public,
            true,
        )
    }
}

/// The record of `serial`, made (first seen `now`) when this folder has none yet.
fn entry<'a>(state: &'a mut HoldFile, serial: &str, now: OffsetDateTime) -> &'a mut HoldEntry {
    match state.entries.iter().position(|e| e.serial == serial) {
        Some(i) => &mut state.entries[i],
        None => {
            state.entries.push(HoldEntry {
                serial: serial.to_string(),
                first_seen: now,
                published_in: None,
                released: false,
            });
            state.entries.last_mut().expect("pushed")
        }
    }
}

fn hold_path(ca: &CaDir) -> PathBuf {
    ca.path.join("root-crl-hold.toml")
}

fn load(ca: &CaDir) -> Result<HoldFile> {
    let path = hold_path(ca);
    if !path.exists() {
        return Ok(HoldFile::default());
    }
    let text = String::from_utf8_lossy(&output::read(&path)?).into_owned();
    toml::from_str(&text).map_err(|e| crate::error::Error::NotCaDir {
        path: ca.path.clone(),
        reason: format!(
            "{}: {e}; it records which root CRL entries etcd CRLs already listed: restore it from a backup of the folder (deleting it would let entries already listed be held again)",
            path.display()
        ),
    })
}

/// Decides which entries of `crl` are held back at `now`, with holds bounded by `hold`. Reads
/// only: entries seen for the first time are recorded by [`RootHold::published`].
pub fn decide(
    ca: &CaDir,
    ledger: &Ledger,
    crl: &RootCrl,
    hold: Duration,
    now: OffsetDateTime,
) -> Result<RootHold> {
    let mut state = load(ca)?;
    let before = state.entries.len();
    // The entries that may still be held: never listed, not released, within their deadline.
    let mut candidates = Vec::new();
    for serial in crl.revoked_serials() {
        let entry = entry(&mut state, &serial, now);
        let until = entry.first_seen + hold;
        if entry.published_in.is_none() && !entry.released && now < until {
            candidates.push((serial, until));
        }
    }
    let mut held = Vec::new();
    if !candidates.is_empty() {
        // Only then the generations' certificates and their unexpired active leaves.
        let mut generations_of: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for g in &ca.state.generations {
            if let Ok(cert) = ca.cert(g.id) {
                if crl.revocation_of(&cert).is_some() {
                    generations_of
                        .entry(cert.serial.to_hex())
                        .or_default()
                        .push(g.id);
                }
            }
        }
        for (serial, until) in candidates {
            let generations = generations_of.get(&serial).cloned().unwrap_or_default();
            let mut holders = Vec::new();
            for g in &generations {
                holders.extend(
                    ledger
                        .list(&ListFilter {
                            active_only: true,
                            generation: Some(*g),
                            ..Default::default()
                        })?
                        .into_iter()
                        .filter(|l| l.not_after > now),
                );
            }
            if !holders.is_empty() {
                held.push(HeldEntry {
                    serial,
                    generations,
                    until,
                    holders,
                });
            }
        }
    }
    let new_entries = state.entries.len() > before;
    Ok(RootHold {
        held,
        state,
        path: hold_path(ca),
        new_entries,
    })
}

/// `issuer root-crl release`: ends the hold of every entry of the installed root CRL now; the
/// next etcd CRL lists them all. Returns the serials released.
pub fn release(ca: &CaDir, crl: &RootCrl, now: OffsetDateTime) -> Result<Vec<String>> {
    let mut state = load(ca)?;
    let mut released = Vec::new();
    for serial in crl.revoked_serials() {
        let e = entry(&mut state, &serial, now);
        if e.published_in.is_none() && !e.released {
            e.released = true;
            released.push(serial);
        }
    }
    let out = RootHold {
        held: Vec::new(),
        state,
        path: hold_path(ca),
        new_entries: true,
    };
    out.save()?;
    Ok(released)
}
