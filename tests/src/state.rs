//! "Nothing changed" checks: a snapshot of every file under a folder (path, mode, content)
//! plus the ledger of each CA folder as `issuer list --json` prints it.
//!
//! The ledger's SQLite files are left out of the file snapshot: a plain read may create or
//! touch `ledger.sqlite-wal` / `-shm`, so ledgers are compared through what `issuer list`
//! reports instead.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fixture::run;

/// Files and ledgers at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    files: BTreeMap<PathBuf, (u32, Vec<u8>)>,
    /// CA folder -> `issuer list --json` output, or None when the folder is not a CA folder.
    ledgers: BTreeMap<PathBuf, Option<String>>,
}

impl State {
    /// Every file under `root` (ledger files excepted) and the ledger of each of `ca_dirs`.
    pub fn capture(root: &Path, ca_dirs: &[&Path]) -> State {
        let mut files = BTreeMap::new();
        walk(root, root, &mut files);
        let ledgers = ca_dirs
            .iter()
            .map(|ca| {
                let o = run(
                    root,
                    "issuer",
                    &["list", "--ca", ca.to_str().expect("utf-8 path"), "--json"],
                    &[],
                );
                let text = o
                    .status
                    .success()
                    .then(|| String::from_utf8_lossy(&o.stdout).into_owned());
                (ca.to_path_buf(), text)
            })
            .collect();
        State { files, ledgers }
    }

    /// What differs from `before` to `self`, one line per difference.
    pub fn changes_since(&self, before: &State) -> Vec<String> {
        let mut out = Vec::new();
        for (p, (mode, content)) in &self.files {
            match before.files.get(p) {
                None => out.push(format!("added {}", p.display())),
                Some((m, c)) if c != content => {
                    out.push(format!("changed content of {}", p.display()));
                    if m != mode {
                        out.push(format!("changed mode of {}", p.display()));
                    }
                }
                Some((m, _)) if m != mode => out.push(format!(
                    "changed mode of {} ({m:o} -> {mode:o})",
                    p.display()
                )),
                _ => {}
            }
        }
        for p in before.files.keys() {
            if !self.files.contains_key(p) {
                out.push(format!("removed {}", p.display()));
            }
        }
        for (ca, ledger) in &self.ledgers {
            if before.ledgers.get(ca) != Some(ledger) {
                out.push(format!("ledger of {} changed", ca.display()));
            }
        }
        out
    }

    /// Panics, listing the differences, unless `after` equals `self`.
    pub fn assert_unchanged(&self, after: &State, what: &str) {
        let changes = after.changes_since(self);
        assert!(
            changes.is_empty(),
            "{what}: the state changed:\n  {}",
            changes.join("\n  ")
        );
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with("ledger.sqlite") {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let rel = path.strip_prefix(base).expect("under base").to_path_buf();
        if meta.is_dir() {
            // Folders count too: a failed command must not leave an empty output folder.
            out.insert(rel, (meta.permissions().mode(), b"<dir>".to_vec()));
            walk(base, &path, out);
        } else {
            let content = std::fs::read(&path).unwrap_or_default();
            out.insert(rel, (meta.permissions().mode(), content));
        }
    }
}
