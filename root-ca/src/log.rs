//! The ceremony log: append-only JSON lines, each carrying the SHA-256 of the previous line, so
//! an edited, removed or reordered record breaks the chain. The hash of the last line (the head)
//! is also kept in the root's index and printed after every ceremony, to be written down:
//! truncating the log then shows as well.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{Result, RootError};

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Reads and checks the whole log; returns (records, head hash).
pub fn verify(path: &Path) -> Result<(usize, String)> {
    let text = pki_core::output::read_to_string(path)?;
    let mut prev = GENESIS.to_string();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let bad = |reason: String| RootError::Log {
            path: path.to_path_buf(),
            line: i + 1,
            reason,
        };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if seq != (i + 1) as u64 {
            return Err(bad(format!(
                "sequence number {seq} where {} was expected: a record was removed or reordered",
                i + 1
            )));
        }
        let p = v.get("prev").and_then(Value::as_str).unwrap_or("");
        if p != prev {
            return Err(bad(
                "its 'prev' hash does not match the record before it: a record was edited, removed or reordered".into(),
            ));
        }
        prev = line_hash(line);
        n += 1;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(RootError::Log {
            path: path.to_path_buf(),
            line: n,
            reason: "the last record is incomplete".into(),
        });
    }
    Ok((n, prev))
}

/// Appends one record; returns the new head. The existing chain is checked first, so a
/// ceremony never extends a log that was tampered with.
pub fn append(path: &Path, op: &str, data: Value) -> Result<String> {
    let (n, head) = if path.exists() {
        verify(path)?
    } else {
        (0, GENESIS.to_string())
    };
    let mut rec = Map::new();
    rec.insert("seq".into(), json!(n + 1));
    rec.insert(
        "time".into(),
        json!(pki_core::x509::fmt_time(OffsetDateTime::now_utc())),
    );
    rec.insert("op".into(), json!(op));
    if let Value::Object(m) = data {
        rec.extend(m);
    }
    rec.insert("prev".into(), json!(head));
    let line = serde_json::to_string(&Value::Object(rec)).expect("json");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| pki_core::Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| pki_core::Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    Ok(line_hash(&line))
}
