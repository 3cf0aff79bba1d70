//! Issuing the pending leaves chunk by chunk: sign on every core, record each chunk in the
//! ledger, then write its files; a chunk whose files could not be written is forgotten.

use std::path::Path;

use time::OffsetDateTime;

use super::file::Planned;
use super::{BatchReport, Run};
use crate::ca::issuing::{IssuedLeaf, IssuingCa, LeafKey, LeafRequest};
use crate::ca::ledger::{LeafRecord, Ledger};
use crate::error::{Error, Result};
use crate::keys::signer::Signer;
use crate::output::{self, Mode};

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

pub(super) fn issue_pending<S: Signer + Sync>(
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
