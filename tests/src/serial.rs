//! The one process-wide lock of the end-to-end binary.
//!
//! Every module runs in the same test binary, so tests of different modules run at once on the
//! test harness's threads. A test that starts etcd members, binds or probes loopback ports, or
//! loads both cores for a measured while (crash timing, concurrent processes, a full disk) takes
//! [`exclusive`] first and holds the guard to its end: two such tests would otherwise clash on
//! ports or measure each other's load.

use std::sync::{Mutex, MutexGuard};

static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// Holds the lock until the guard is dropped; a test that panicked while holding it does not
/// poison it for the others.
pub fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}
