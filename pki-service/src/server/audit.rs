//! The audit log: one JSON line per request, appended (O_APPEND) and flushed to disk before the
//! answer leaves, in `audit.log` of the CA folder. The service never rewrites or truncates it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

/// One request, as the audit log records it.
#[derive(Debug, Serialize)]
pub struct AuditEntry<'a> {
    /// RFC 3339 time.
    pub time: String,
    /// The peer's address.
    pub peer: String,
    /// `leaf:SERIAL`, `token:HASH-PREFIX` or `anonymous`.
    pub identity: &'a str,
    /// Method and path.
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

/// The open audit log.
pub struct AuditLog {
    file: Mutex<File>,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path` for appending.
    pub fn open(path: &Path) -> pki_core::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| pki_core::Error::io(path, e))?;
        Ok(AuditLog {
            file: Mutex::new(file),
            path: path.to_path_buf(),
        })
    }

    /// Appends one entry and syncs it.
    pub fn append(&self, entry: &AuditEntry<'_>) -> pki_core::Result<()> {
        let mut line = serde_json::to_vec(entry).expect("json");
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(|e| pki_core::Error::io(&self.path, e))
    }
}
