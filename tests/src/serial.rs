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

/// A free loopback port below the kernel's ephemeral range (32768 and up on Linux by default):
/// a port probed free and then handed to another process (etcd, PostgreSQL, a service) cannot be
/// taken meanwhile as the source port of some outgoing connection, as one inside the range can.
/// Candidates start at a point that depends on the process, move on at every call, and are
/// checked by binding; hold [`exclusive`] until the process given the port has bound it.
pub fn low_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let start = (std::process::id() * 37) % SPAN;
    for _ in 0..SPAN {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + k) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN);
}
