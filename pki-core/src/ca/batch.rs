//! `issuer batch`: many leaves in one run, at crypto speed, crash-safe.
//!
//! Leaves go through in chunks: sign (on every core) → commit the chunk to the ledger in one
//! transaction → write each file by temp-file-and-rename. A leaf is therefore always in the
//! ledger before its file exists, and a file is never half-written. Files are made durable
//! once, at the end, with one `syncfs` of the output filesystem instead of one fsync per file.
//! Each run is recorded in the ledger (a run id on every row it commits, finished once its files
//! are durable). Re-running a batch skips a leaf only when its files are complete (the chain
//! parses, the key matches, the ledger has the certificate active at that path), and voids only
//! the rows that an *interrupted* run into the same folder left without a complete file: those
//! never left the machine. A row of a finished run whose file is gone (the folder was deployed
//! or moved) is reported, never voided and never issued a second time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

use crate::ca::issuing::{IssuedLeaf, IssuingCa, LeafKey, LeafPaths, LeafRequest};
use crate::ca::ledger::{LeafRecord, Ledger, RowUnder};
use crate::error::{BatchLeafProblem, Error, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::signer::Signer;
use crate::output::{self, Mode};
use crate::x509::profile::{LeafRole, Subject, SubjectNames};

/// The batch file: one `[[leaf]]` table per leaf.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    /// The leaves, in file order.
    #[serde(rename = "leaf", default)]
    pub leaves: Vec<BatchLeaf>,
}

/// One `[[leaf]]` table of a batch file: a leaf whose key is generated here, written to
/// `<role>.crt` and `<role>.key` in the folder `<cn>` of the output folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLeaf {
    /// The role: `server`, `peer` or `client`.
    pub profile: String,
    /// The CN, also the name of the leaf's folder (not empty, no `/`, no leading `.`).
    pub cn: String,
    /// DNS subject alternative names.
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP subject alternative names.
    #[serde(default)]
    pub ip: Vec<IpAddr>,
    /// The key algorithm (`p256`, `rsa2048`, ...); the profile's default when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Lifetime in days; the profile's default when absent.
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
    /// Leaves signed, recorded and written by this run.
    pub issued: usize,
    /// Leaves already complete on disk, left as they were.
    pub skipped: usize,
    /// Ledger rows marked void: an interrupted run's leaves without a complete file, which never
    /// left the machine.
    pub voided: usize,
    /// Files at a final name that were not a complete leaf (a power cut before the final sync)
    /// and were issued again.
    pub repaired: usize,
    /// Temp files a killed run left, removed.
    pub swept: usize,
    /// Active rows under OUT, outside this batch file, whose file is missing: reported only.
    pub missing_elsewhere: Vec<String>,
}

impl BatchFile {
    /// Parses the TOML text of a batch file named `what`; unknown fields are refused.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::BadToml {
            what: what.into(),
            detail: e.to_string().trim().replace('\n', " "),
        })
    }
}

fn plan(file: &BatchFile, out: &Path) -> Result<Vec<Planned>> {
    let mut seen = BTreeSet::new();
    let mut v = Vec::with_capacity(file.leaves.len());
    for (i, l) in file.leaves.iter().enumerate() {
        let at = |problem| Error::BatchLeaf {
            number: i + 1,
            cn: l.cn.clone(),
            problem,
        };
        let invalid = |e: Error| at(BatchLeafProblem::Invalid(Box::new(e)));
        let role: LeafRole = l.profile.parse().map_err(invalid)?;
        if l.cn.is_empty()
            || l.cn.starts_with('.')
            || l.cn.contains('/')
            || l.cn.chars().any(|c| c.is_control())
        {
            return Err(at(BatchLeafProblem::CnNotFolderName));
        }
        if !seen.insert((l.cn.clone(), role)) {
            return Err(at(BatchLeafProblem::Twice));
        }
        let names = SubjectNames {
            dns: l.dns.clone(),
            ips: l.ip.clone(),
        };
        names.validate().map_err(invalid)?;
        let alg = match &l.key {
            Some(k) => k.parse().map_err(invalid)?,
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
        // Also checks an existing folder: nobody else may write where a key is written.
        output::create_dir(dir, 0o755)?;
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

/// One batch run: where it writes, what it records, how it signs.
struct Run<'a> {
    out: &'a Path,
    out_abs: PathBuf,
    run_id: String,
    threads: usize,
    now: OffsetDateTime,
}

impl Run<'_> {
    /// The path the ledger records for a file under OUT: under OUT's one real path.
    fn recorded_path(&self, p: &Path) -> PathBuf {
        self.out_abs.join(p.strip_prefix(self.out).unwrap_or(p))
    }
}

/// What the re-run found before issuing anything.
struct Triage<'a> {
    pending: Vec<&'a Planned>,
    void: Vec<String>,
    conflicts: Vec<String>,
}

/// Sorts the planned leaves into done and to-do, and the ledger's rows under OUT into kept,
/// voidable (an interrupted run's, without a complete file) and conflicting (a finished run's
/// or another command's, without a complete file: perhaps deployed, never replaced silently).
fn triage<'a>(
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

/// Takes OUT's batch lock: one batch at a time per output folder, or two runs would void each
/// other's in-flight rows and both issue every leaf. It goes with the process, so a killed run
/// frees it.
fn lock_out(out: &Path, out_abs: &Path) -> Result<std::fs::File> {
    let lock_path = out_abs.join(".issuer-batch.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::BatchBusy {
            out: out.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
    }
}

/// Runs a batch. `progress(done, total)` is called after every chunk.
pub fn run<S: Signer + Sync>(
    ca: &IssuingCa<S>,
    ledger: &mut Ledger,
    file: &BatchFile,
    out: &Path,
    threads: usize,
    now: OffsetDateTime,
    progress: impl FnMut(usize, usize),
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
    // triage below would miss the rows a crash left and their cns would stay active twice.
    let out_abs = std::fs::canonicalize(out).map_err(|e| Error::io(out, e))?;
    // Every leaf folder that exists is checked before anything is recorded or written, so a
    // refusal leaves the ledger and OUT as they were.
    for p in &planned {
        let dir = p.paths.cert.parent().expect("leaf folder");
        if dir.is_dir() {
            output::ensure_private_folder(dir)?;
        }
    }
    let _lock = lock_out(out, &out_abs)?;

    report.swept = output::sweep_temps(&out_abs)?;
    for p in &planned {
        report.swept += output::sweep_temps(p.paths.cert.parent().expect("leaf folder"))?;
    }
    let mut run = Run {
        out,
        out_abs,
        run_id: String::new(),
        threads: threads.max(1),
        now,
    };
    let rows = ledger.active_under(&run.out_abs)?;
    let t = triage(&planned, &rows, &run, &mut report);
    if !t.conflicts.is_empty() {
        return Err(Error::BatchConflict {
            out: out.to_path_buf(),
            count: t.conflicts.len(),
            list: t.conflicts.join("\n"),
        });
    }
    report.voided = ledger.void(&t.void)?;
    run.run_id = ledger.start_batch_run(&run.out_abs)?;
    issue_pending(ca, ledger, &t.pending, &run, progress, &mut report)?;
    crate::failpoint::crash("batch.before_sync");
    output::sync_filesystem(out)?;
    // Only now, with every file durable, is the run (and any interrupted one it completed)
    // finished: a power cut before this line leaves its rows voidable by the next run.
    ledger.finish_batch_run(&run.run_id, &run.out_abs)?;
    Ok(report)
}

fn issue_pending<S: Signer + Sync>(
    ca: &IssuingCa<S>,
    ledger: &mut Ledger,
    pending: &[&Planned],
    run: &Run<'_>,
    mut progress: impl FnMut(usize, usize),
    report: &mut BatchReport,
) -> Result<()> {
    let total = pending.len();
    let (threads, now) = (run.threads, run.now);
    const CHUNK: usize = 512;
    // Signing runs one chunk ahead of the ledger and the file writes: a coordinator thread
    // signs chunk i+1 on `threads` threads while this thread commits and writes chunk i.
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<IssuedLeaf>>>(1);
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
            let signed = rx.recv().map_err(|_| Error::SigningThreadStopped)??;
            // Ledger first, in one transaction...
            let records: Vec<(LeafRecord, &[u8])> = signed
                .iter()
                .zip(chunk)
                .map(|(leaf, p)| {
                    let abs = run.recorded_path(&p.paths.cert);
                    (leaf.record(ca.generation, &abs), leaf.cert_der.as_slice())
                })
                .collect();
            ledger.record_many_in_run(&records, Some(&run.run_id))?;
            crate::failpoint::crash("batch.after_record");
            // ...then the files, each complete or absent. If writing fails (a full disk), the
            // leaves of this chunk whose certificate did not reach its final name never left
            // the machine: forget them, so the ledger holds exactly what is on disk. One that
            // did reach it stays recorded.
            if let Err(e) = write_chunk(&signed, chunk) {
                forget_unwritten(ledger, &signed, chunk);
                return Err(e);
            }
            report.issued += chunk.len();
            progress(report.issued, total);
        }
        Ok(())
    })
}

fn forget_unwritten(ledger: &mut Ledger, signed: &[IssuedLeaf], chunk: &[&Planned]) {
    for (leaf, p) in signed.iter().zip(chunk) {
        if holds(&p.paths.cert, &leaf.chain_pem) {
            continue;
        }
        if leaf
            .key_pem
            .as_ref()
            .is_some_and(|k| holds(&p.paths.key, k))
        {
            output::remove_quietly(&p.paths.key);
        }
        let _ = ledger.forget_unwritten(&leaf.serial.to_hex());
    }
}

/// Whether `path` holds exactly `content` (a file we wrote, not someone else's).
fn holds(path: &Path, content: &str) -> bool {
    std::fs::read(path).is_ok_and(|b| b == content.as_bytes())
}
