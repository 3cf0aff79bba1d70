//! Before a run issues anything: what is on disk at each planned leaf's final name, and how
//! the leaves and the ledger's rows under OUT sort into done, to do, voidable and conflicting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::file::Planned;
use super::{BatchReport, Run};
use crate::ca::issuing::LeafPaths;
use crate::ca::ledger::RowUnder;

/// What is at a planned leaf's final name.
enum OnDisk {
    /// A complete leaf: chain parses, key matches, and the ledger row with this serial is
    /// active at this path.
    Complete(String),
    /// Nothing there.
    Missing,
    /// Something that is no complete certificate (empty, cut short): nothing of value.
    Garbage(String),
    /// A certificate that is not a complete leaf of this ledger at this path.
    Foreign(String),
}

fn inspect(paths: &LeafPaths, rows: &[&RowUnder]) -> OnDisk {
    let bytes = match std::fs::read(&paths.cert) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return OnDisk::Missing,
        Err(e) => return OnDisk::Garbage(format!("unreadable ({e})")),
    };
    let what = paths.cert.display().to_string();
    let leaf = match crate::x509::certs::pem_blocks(&what, &bytes, "CERTIFICATE")
        .ok()
        .and_then(|b| b.into_iter().next())
        .map(|der| crate::x509::certs::CertFacts::from_der(&what, &der))
    {
        Some(Ok(facts)) => facts,
        _ => return OnDisk::Garbage("holds no complete certificate (empty or cut short)".into()),
    };
    let Some(row) = rows.iter().find(|r| r.fingerprint == leaf.fingerprint) else {
        return OnDisk::Foreign(
            "holds a certificate that the ledger does not record as active at this path".into(),
        );
    };
    let key_ok = std::fs::read_to_string(&paths.key)
        .ok()
        .and_then(|pem| crate::keys::signer::FileKey::from_pkcs8_pem("leaf key", &pem).ok())
        .is_some_and(|k| k.spki_der() == leaf.spki_der);
    if !key_ok {
        return OnDisk::Foreign(format!(
            "has no matching key: {} is missing, incomplete or another key",
            paths.key.display()
        ));
    }
    OnDisk::Complete(row.serial.clone())
}

/// [`inspect`] for every planned leaf, on `threads` threads: a re-run of a large batch reads
/// and parses every file it skips.
fn inspect_all<'r>(
    planned: &[Planned],
    here_of: &(dyn Fn(&Planned) -> (String, Vec<&'r RowUnder>) + Sync),
    threads: usize,
) -> Vec<OnDisk> {
    let per = planned.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = planned
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| inspect(&p.paths, &here_of(p).1))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("inspecting thread"))
            .collect()
    })
}

/// What the re-run found before issuing anything.
pub(super) struct Triage<'a> {
    pub(super) pending: Vec<&'a Planned>,
    pub(super) void: Vec<String>,
    pub(super) conflicts: Vec<String>,
}

/// Sorts the planned leaves into done and to-do, and the ledger's rows under OUT into kept,
/// voidable (an interrupted run's, without a complete file) and conflicting (a finished run's
/// or another command's, without a complete file: perhaps deployed, never replaced silently).
pub(super) fn triage<'a>(
    planned: &'a [Planned],
    rows: &[RowUnder],
    run: &Run<'_>,
    report: &mut BatchReport,
) -> Triage<'a> {
    let mut by_path: BTreeMap<&str, Vec<&RowUnder>> = BTreeMap::new();
    for r in rows {
        by_path.entry(r.cert_path.as_str()).or_default().push(r);
    }
    let here_of = |p: &Planned| {
        let abs = run.recorded_path(&p.paths.cert).display().to_string();
        let here = by_path.get(abs.as_str()).cloned().unwrap_or_default();
        (abs, here)
    };
    let states = inspect_all(planned, &here_of, run.threads);
    let mut t = Triage {
        pending: Vec::new(),
        void: Vec::new(),
        conflicts: Vec::new(),
    };
    let mut planned_paths = BTreeSet::new();
    for (p, state) in planned.iter().zip(states) {
        let (abs, here) = here_of(p);
        planned_paths.insert(abs);
        if let OnDisk::Complete(serial) = &state {
            report.skipped += 1;
            t.void.extend(
                here.iter()
                    .filter(|r| r.interrupted && &r.serial != serial)
                    .map(|r| r.serial.clone()),
            );
            continue;
        }
        let kept: Vec<&&RowUnder> = here.iter().filter(|r| !r.interrupted).collect();
        let where_ = p.paths.cert.display();
        for r in &kept {
            t.conflicts.push(format!(
                "  {} '{}' (serial {}): recorded active at {where_} by a finished run or another command, but {}",
                r.profile,
                r.subject,
                r.serial,
                match &state {
                    OnDisk::Missing => "the file is not there (moved or deployed?)".to_string(),
                    OnDisk::Garbage(why) | OnDisk::Foreign(why) => format!("the file {why}"),
                    OnDisk::Complete(_) => unreachable!(),
                }
            ));
        }
        if let (OnDisk::Foreign(why), true) = (&state, here.is_empty()) {
            t.conflicts.push(format!(
                "  {} '{}': {where_} {why}; move it away if it is not needed",
                p.role, p.subject.common_name
            ));
        }
        if !kept.is_empty() || (matches!(state, OnDisk::Foreign(_)) && here.is_empty()) {
            continue;
        }
        if !matches!(state, OnDisk::Missing) {
            report.repaired += 1;
        }
        t.void.extend(here.iter().map(|r| r.serial.clone()));
        t.pending.push(p);
    }
    for r in rows {
        if planned_paths.contains(&r.cert_path) || Path::new(&r.cert_path).exists() {
            continue;
        }
        if r.interrupted {
            t.void.push(r.serial.clone());
        } else {
            report.missing_elsewhere.push(format!(
                "{} '{}' (serial {}) at {}",
                r.profile, r.subject, r.serial, r.cert_path
            ));
        }
    }
    t
}
