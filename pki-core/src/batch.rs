//! `issuer batch`: many leaves in one run, at crypto speed, crash-safe.
//!
//! Leaves go through in chunks: sign (on every core) → commit the chunk to the ledger in one
//! transaction → write each file by temp-file-and-rename. A leaf is therefore always in the
//! ledger before its file exists, and a file is never half-written. Files are made durable
//! once, at the end, with one `syncfs` of the output filesystem instead of one fsync per file.
//! Re-running a batch skips the leaves whose files exist, and voids ledger rows that a crash
//! left without a file (those certificates never left the machine).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::algorithm::KeyAlgorithm;
use crate::error::{Error, Result};
use crate::issue::{IssuedLeaf, IssuingCa, LeafKey, LeafPaths, LeafRequest};
use crate::ledger::{LeafRecord, Ledger};
use crate::output::{self, Mode};
use crate::profile::{LeafRole, Subject, SubjectNames};
use crate::signer::Signer;

/// The batch file: one `[[leaf]]` table per leaf.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    #[serde(rename = "leaf", default)]
    pub leaves: Vec<BatchLeaf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLeaf {
    pub profile: String,
    pub cn: String,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub ip: Vec<IpAddr>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub days: Option<u32>,
}

/// A checked leaf of the batch.
struct Planned {
    role: LeafRole,
    subject: Subject,
    names: SubjectNames,
    alg: KeyAlgorithm,
    days: Option<u32>,
    paths: LeafPaths,
}

/// What a batch run did.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub issued: usize,
    pub skipped: usize,
    pub voided: usize,
}

impl BatchFile {
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        toml::from_str(text)
            .map_err(|e| Error::input(what, e.to_string().trim().replace('\n', " ")))
    }
}

fn plan(file: &BatchFile, out: &Path) -> Result<Vec<Planned>> {
    let mut seen = BTreeSet::new();
    let mut v = Vec::with_capacity(file.leaves.len());
    for (i, l) in file.leaves.iter().enumerate() {
        let at = |r: String| Error::input(format!("batch leaf {} (cn '{}')", i + 1, l.cn), r);
        let role: LeafRole = l.profile.parse().map_err(|e: Error| at(e.to_string()))?;
        if l.cn.is_empty()
            || l.cn.starts_with('.')
            || l.cn.contains('/')
            || l.cn.chars().any(|c| c.is_control())
        {
            return Err(at(
                "the cn names the output folder: no '/', no leading '.', not empty".into(),
            ));
        }
        if !seen.insert((l.cn.clone(), role)) {
            return Err(at("appears twice with the same profile".into()));
        }
        let names = SubjectNames {
            dns: l.dns.clone(),
            ips: l.ip.clone(),
        };
        names.validate().map_err(|e| at(e.to_string()))?;
        let alg = match &l.key {
            Some(k) => k.parse().map_err(|e: Error| at(e.to_string()))?,
            None => role.profile().default_key(),
        };
        v.push(Planned {
            role,
            subject: Subject::cn(l.cn.clone()),
            names,
            alg,
            days: l.days,
            paths: LeafPaths::new(&out.join(&l.cn), role),
        });
    }
    Ok(v)
}

fn write_chunk(signed: &[IssuedLeaf], chunk: &[&Planned]) -> Result<()> {
    for (leaf, p) in signed.iter().zip(chunk) {
        let dir = p.paths.cert.parent().expect("leaf folder");
        if !dir.is_dir() {
            output::create_dir(dir, 0o755)?;
        }
        if let Some(key) = &leaf.key_pem {
            output::write_unsynced(&p.paths.key, key.as_bytes(), Mode::Secret)?;
        }
        output::write_unsynced(&p.paths.cert, leaf.chain_pem.as_bytes(), Mode::Public)?;
    }
    Ok(())
}

fn sign_chunk<S: Signer + Sync>(
    ca: &IssuingCa<S>,
    chunk: &[&Planned],
    threads: usize,
    now: OffsetDateTime,
) -> Result<Vec<IssuedLeaf>> {
    let per = chunk.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = chunk
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|p| {
                            ca.sign_leaf(
                                LeafRequest {
                                    role: p.role,
                                    subject: p.subject.clone(),
                                    names: p.names.clone(),
                                    days: p.days,
                                    key: LeafKey::Generate(p.alg),
                                },
                                now,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect::<Result<Vec<_>>>()
    })
}

/// Runs a batch. `progress(done, total)` is called after every chunk.
pub fn run<S: Signer + Sync>(
    ca: &IssuingCa<S>,
    ledger: &mut Ledger,
    file: &BatchFile,
    out: &Path,
    threads: usize,
    now: OffsetDateTime,
    mut progress: impl FnMut(usize, usize),
) -> Result<BatchReport> {
    let planned = plan(file, out)?;
    // The issuance gate for every leaf before the first is signed or any folder made.
    for p in &planned {
        ca.gate().check(p.role, &p.subject, &p.names)?;
    }
    let mut report = BatchReport::default();
    output::create_dir(out, 0o755)?;
    // The folder's one real path, however OUT was spelled (`out/`, `../x/out`, a symlink):
    // the ledger rows of a re-run must name the same files as the interrupted run's, or the
    // void scan below would miss the rows a crash left and their cns would stay active twice.
    let out_abs = std::fs::canonicalize(out).map_err(|e| Error::io(out, e))?;
    // One batch at a time per output folder: two runs would void each other's in-flight rows
    // and both issue every leaf. The lock goes with the process, so a killed run frees it.
    let lock_path = out_abs.join(".issuer-batch.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Policy(format!(
                "another `issuer batch` is writing into {}; wait for it to finish, then re-run this one (it will skip what is done)",
                out.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
    }

    // Rows a crash left without a file: void them so the re-run's leaves are the only live ones.
    report.voided = ledger.void_missing_under(&out_abs)?;

    let pending: Vec<&Planned> = planned
        .iter()
        .filter(|p| {
            let done = p.paths.cert.exists();
            if done {
                report.skipped += 1;
            }
            !done
        })
        .collect();
    let total = pending.len();
    let threads = threads.max(1);
    const CHUNK: usize = 512;
    // Signing runs one chunk ahead of the ledger and the file writes: a coordinator thread
    // signs chunk i+1 on `threads` threads while this thread commits and writes chunk i.
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<IssuedLeaf>>>(1);
        let pending = &pending;
        s.spawn(move || {
            for chunk in pending.chunks(CHUNK) {
                let signed = sign_chunk(ca, chunk, threads, now);
                let failed = signed.is_err();
                if tx.send(signed).is_err() || failed {
                    return;
                }
            }
        });
        for chunk in pending.chunks(CHUNK) {
            let signed = rx
                .recv()
                .map_err(|_| Error::Signing("signing thread stopped".into()))??;
            // Ledger first, in one transaction...
            let records: Vec<(LeafRecord, &[u8])> = signed
                .iter()
                .zip(chunk)
                .map(|(leaf, p)| {
                    let abs = out_abs.join(p.paths.cert.strip_prefix(out).unwrap_or(&p.paths.cert));
                    (leaf.record(ca.generation, &abs), leaf.cert_der.as_slice())
                })
                .collect();
            ledger.record_many(&records)?;
            // ...then the files, each complete or absent. If writing fails (a full disk), the
            // leaves of this chunk that did not reach the disk never left the machine: forget
            // them, so the ledger holds exactly what is on disk.
            let written = write_chunk(&signed, chunk);
            if let Err(e) = written {
                for (leaf, p) in signed.iter().zip(chunk) {
                    if !p.paths.cert.exists() {
                        if p.paths.key.exists() && leaf.key_pem.is_some() {
                            output::remove_quietly(&p.paths.key);
                        }
                        let _ = ledger.forget_unwritten(&leaf.serial.to_hex());
                    }
                }
                return Err(e);
            }
            report.issued += chunk.len();
            progress(report.issued, total);
        }
        Ok(())
    })?;
    output::sync_filesystem(out)?;
    Ok(report)
}
