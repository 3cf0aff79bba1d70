//! `root-ca log verify`, and the log check every ceremony runs before it opens the token.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, RootError};
use crate::state::{RootDir, RootIndex};

/// Checks the ceremony log's hash chain and that it ends at the head the index recorded.
/// Every ceremony calls this before it opens the token, so a tampered or truncated log is
/// refused before the root key is used or any file is written.
pub(super) fn check_log(root: &RootDir, index: &RootIndex) -> Result<(usize, String)> {
    let (n, head) = crate::log::verify(&root.log_path())?;
    if index.log_head != head {
        return Err(RootError::Log {
            path: root.log_path(),
            line: n,
            reason: format!(
                "the log ends at {head}, but the root's index recorded {}: records were removed from the end or the last one was edited",
                index.log_head
            ),
        });
    }
    Ok((n, head))
}

pub fn log_verify(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let root = RootDir::new(dir);
    // Fail closed: without the index there is no recorded head, and a chain-only check
    // cannot tell a truncated log from a whole one.
    let index = root.index()?;
    let (n, head) = check_log(&root, &index)?;
    let _ = writeln!(
        out,
        "{}: {n} records, hash chain intact, head {head}",
        root.log_path().display()
    );
    Ok(())
}
