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

mod file;
mod issue;
mod triage;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::ca::issuing::IssuingCa;
use crate::ca::ledger::Ledger;
use crate::error::{Error, Result};
use crate::keys::signer::Signer;
use crate::output;

use file::plan;
use issue::issue_pending;
use triage::triage;

pub use file::{BatchFile, BatchLeaf};

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
