//! The audit log: one JSON line per request in `audit.log` of the CA folder, appended
//! (O_APPEND) and flushed to disk before the answer leaves; never rewritten or truncated.
//!
//! Each line carries `seq` and `prev`, the SHA-256 of the line before it (as the root's
//! ceremony log does): an edited, removed or reordered line breaks the chain, and
//! `issuer audit verify` names where. What a request can make the service write is bounded (a
//! path is cut at [`MAX_ACTION`] bytes). When a line cannot be written, state-changing requests
//! are refused until one can (fail closed); read-only ones are still answered.

use pki_core::group_sync::GroupSync;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Bytes of method and path an audit line keeps; longer ones are cut and marked.
pub const MAX_ACTION: usize = 256;

/// One request, as the audit log records it.
#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// The peer's address.
    pub peer: String,
    /// `leaf:SERIAL`, `token:HASH-PREFIX` or `anonymous:NETWORK`.
    pub identity: &'a str,
    /// Method and path, at most [`MAX_ACTION`] bytes.
    pub action: String,
    /// HTTP status answered.
    pub status: u16,
    /// The refusal code, when refused.
    pub refused: Option<&'a str>,
    /// Serials issued, when any.
    pub issued: Vec<String>,
    /// Serial superseded, when any.
    pub superseded: Option<String>,
}

/// `action` cut to [`MAX_ACTION`] bytes on a character boundary, with the original length.
pub fn bounded_action(action: &str) -> String {
    if action.len() <= MAX_ACTION {
        return action.to_string();
    }
    let mut end = MAX_ACTION;
    while !action.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &action[..end], action.len())
}

#[derive(Serialize)]
struct Chained<'a> {
    seq: u64,
    #[serde(flatten)]
    entry: &'a AuditEntry<'a>,
    prev: String,
}

struct Head {
    file: File,
    seq: u64,
    prev: String,
}

/// The open audit log. Lines are written in order under one lock; the sync that makes them
/// durable is shared ([`GroupSync`]: under load one `fdatasync` covers several lines). Each
/// writer returns only once its own line is on disk.
pub struct AuditLog {
    head: Mutex<Head>,
    sync: GroupSync,
    path: PathBuf,
    failing: AtomicBool,
}

fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// The last complete line of `f` (its bytes without the newline), read from the end.
fn last_line(f: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let len = f.seek(SeekFrom::End(0))?;
    let mut tail = Vec::new();
    let mut at = len;
    // Lines are bounded (a few hundred bytes): 64 KiB back is plenty; read more if not.
    while at > 0 {
        let step = at.min(64 * 1024);
        at -= step;
        f.seek(SeekFrom::Start(at))?;
        let mut chunk = vec![0u8; step as usize];
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(i) = body.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(body[i + 1..].to_vec()));
        }
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    Ok((!body.is_empty()).then(|| body.to_vec()))
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path` for appending; the chain goes on from
    /// its last line.
    pub fn open(path: &Path) -> pki_core::Result<Self> {
        let io = |e| pki_core::Error::io(path, e);
        let mut file = OpenOptions::new()
            .append(true)
            .read(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        let (seq, prev) = match last_line(&mut file).map_err(io)? {
            None => (0, GENESIS.to_string()),
            Some(line) => {
                let seq = serde_json::from_slice::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(|s| s.as_u64()))
                    .unwrap_or(0);
                (seq, line_hash(&line))
            }
        };
        Ok(AuditLog {
            sync: GroupSync::new(file.try_clone().map_err(io)?),
            head: Mutex::new(Head { file, seq, prev }),
            path: path.to_path_buf(),
            failing: AtomicBool::new(false),
        })
    }

    /// Appends one entry, chained, and returns its sequence number once it is on disk.
    pub fn append(&self, entry: &AuditEntry<'_>) -> pki_core::Result<u64> {
        let (seq, ticket) = {
            let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
            let chained = Chained {
                seq: head.seq + 1,
                entry,
                prev: head.prev.clone(),
            };
            let mut line = serde_json::to_vec(&chained).expect("json");
            let hash = line_hash(&line);
            line.push(b'\n');
            if let Err(e) = head.file.write_all(&line) {
                self.failing.store(true, Ordering::SeqCst);
                return Err(pki_core::Error::io(&self.path, e));
            }
            head.seq += 1;
            head.prev = hash;
            (head.seq, self.sync.written())
        };
        match self.sync.wait(ticket) {
            Ok(()) => {
                self.failing.store(false, Ordering::SeqCst);
                Ok(seq)
            }
            Err(e) => {
                self.failing.store(true, Ordering::SeqCst);
                Err(pki_core::Error::io(&self.path, e))
            }
        }
    }

    /// The last write failed: state-changing requests are refused until one succeeds.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }
}

/// What [`verify`] found in an intact log.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// Lines in the log.
    pub lines: u64,
    /// Lines written before the chain (no `seq`), at its start.
    pub unchained: u64,
    /// SHA-256 of the last line: write it down to notice a truncation later.
    pub head: String,
}

/// Why a log does not verify: the line (1-based) and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    /// The line.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

/// Checks the chain of the audit log text `text`. Lines before the first chained one (a log
/// from before the chain) are counted, not checked; the first chained line must name the hash
/// of the line before it (or the genesis), and every later line must be chained.
pub fn verify(text: &[u8]) -> Result<Verified, Broken> {
    let mut prev = GENESIS.to_string();
    let (mut lines, mut unchained, mut seq) = (0u64, 0u64, None::<u64>);
    let body = match text.strip_suffix(b"\n") {
        Some(b) => b,
        None if text.is_empty() => text,
        None => {
            let n = text.split(|b| *b == b'\n').count() as u64;
            return Err(Broken {
                line: n,
                reason: "the last line is incomplete (no newline): cut short while written, or truncated".into(),
            });
        }
    };
    for line in body.split(|b| *b == b'\n').filter(|_| !text.is_empty()) {
        lines += 1;
        let bad = |reason: String| Broken {
            line: lines,
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        match (v.get("seq").and_then(|s| s.as_u64()), seq) {
            (None, None) => unchained += 1,
            (None, Some(_)) => {
                return Err(bad(
                    "a line without a sequence number inside the chain: inserted".into(),
                ))
            }
            (Some(s), last) => {
                if let Some(last) = last.filter(|l| s != l + 1) {
                    return Err(bad(format!(
                        "sequence number {s} after {last}: a line was removed or reordered"
                    )));
                }
                if v.get("prev").and_then(|p| p.as_str()) != Some(prev.as_str()) {
                    return Err(bad(
                        "its 'prev' is not the hash of the line before it: a line was edited, removed or reordered".into(),
                    ));
                }
                seq = Some(s);
            }
        }
        prev = line_hash(line);
    }
    Ok(Verified {
        lines,
        unchained,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry<'static> {
        AuditEntry {
            time: "t".into(),
            peer: "127.0.0.1:1".into(),
            identity: "anonymous:127.0.0.0/8",
            action: bounded_action(action),
            status: 200,
            refused: None,
            issued: vec![],
            superseded: None,
        }
    }

    #[test]
    fn the_chain_goes_on_across_opens_and_any_edit_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        // A log from before the chain: two plain lines.
        std::fs::write(&p, "{\"old\":1}\n{\"old\":2}\n").unwrap();
        for i in 0..3 {
            let log = AuditLog::open(&p).unwrap();
            log.append(&entry(&format!("GET /{i}"))).unwrap();
        }
        let text = std::fs::read(&p).unwrap();
        let ok = verify(&text).unwrap();
        assert_eq!((ok.lines, ok.unchained), (5, 2));
        assert_eq!(
            ok.head,
            line_hash(
                text[..text.len() - 1]
                    .rsplit(|b| *b == b'\n')
                    .next()
                    .unwrap()
            )
        );

        let s = String::from_utf8(text).unwrap();
        let edited = s.replace("GET /1", "GET /x");
        assert_eq!(
            verify(edited.as_bytes()).unwrap_err().line,
            5,
            "the next line's prev"
        );
        let lines: Vec<&str> = s.lines().collect();
        let removed = format!("{}\n{}\n{}\n{}\n", lines[0], lines[1], lines[2], lines[4]);
        assert!(verify(removed.as_bytes())
            .unwrap_err()
            .reason
            .contains("removed"));
        let legacy_edit = s.replacen("{\"old\":2}", "{\"old\":3}", 1);
        assert_eq!(verify(legacy_edit.as_bytes()).unwrap_err().line, 3);
        let cut = &s[..s.len() - 5];
        assert!(verify(cut.as_bytes())
            .unwrap_err()
            .reason
            .contains("incomplete"));
    }

    #[test]
    fn writers_at_once_are_chained_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.log");
        let log = std::sync::Arc::new(AuditLog::open(&p).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        log.append(&entry(&format!("GET /{t}/{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read(&p).unwrap();
        let ok = verify(&text).unwrap();
        assert_eq!((ok.lines, ok.unchained), (200, 0));
        assert_eq!(log.head.lock().unwrap().seq, 200);
        assert!(log.sync.syncs() <= 200);
        for t in 0..8 {
            for i in 0..25 {
                let needle = format!("\"GET /{t}/{i}\"");
                assert_eq!(String::from_utf8_lossy(&text).matches(&needle).count(), 1);
            }
        }
    }

    #[test]
    fn a_long_path_is_cut_and_marked() {
        let long = format!("GET /{}", "é".repeat(40_000));
        let a = bounded_action(&long);
        assert!(a.len() < MAX_ACTION + 40, "{}", a.len());
        assert!(a.ends_with(&format!("({} bytes)", long.len())));
        assert_eq!(bounded_action("GET /v1/ca"), "GET /v1/ca");
    }
}
