//! Injected failures for the end-to-end tests of "recorded before written": a step that fails
//! after another succeeded (a hard link made, then the folder sync failing) cannot be caused
//! from outside the process without privileges. Debug builds only: a release binary never reads
//! `PKI_FAILPOINTS`, so the switch cannot be reached in production.

use std::path::Path;

use crate::error::{Error, Result};

/// Fails when `point` is listed in `PKI_FAILPOINTS` (comma-separated) in a debug build.
pub fn check(point: &str, path: &Path) -> Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let Some(list) = std::env::var_os("PKI_FAILPOINTS") else {
        return Ok(());
    };
    if list.to_string_lossy().split(',').any(|p| p.trim() == point) {
        return Err(Error::Injected {
            point: point.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Ends the process at once, as a kill -9 or a power cut would, when `point` is listed in
/// `PKI_FAILPOINTS` in a debug build: nothing after it runs, no cleanup, no unwinding.
pub fn crash(point: &str) {
    if check(point, std::path::Path::new("")).is_err() {
        std::process::abort();
    }
}
