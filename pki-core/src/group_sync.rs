//! One `fdatasync` for many writers: group commit for an append-only file (the service's
//! audit log, the SQLite ledger's write-ahead log). Writers write in order elsewhere, take a
//! ticket once their bytes are written, and wait: the first waiter whose data is not on disk
//! runs the sync for everything written so far (outside any lock the writers need), the others
//! wait for it or for the next one. Nobody returns before a sync that began after its write
//! has finished.

use std::fs::File;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Tickets handed out: writes done.
    written: u64,
    /// Every ticket up to this one is on disk.
    synced: u64,
    /// A sync is running.
    syncing: bool,
    /// The last ticket a failed sync was to cover.
    failed_upto: u64,
    /// Syncs run (for the tests and the metrics).
    syncs: u64,
}

/// Shared syncs of one file.
pub struct GroupSync {
    file: File,
    state: Mutex<State>,
    done: Condvar,
}

impl GroupSync {
    /// Syncs of `file` (any open descriptor of it: `fdatasync` flushes the file, not the
    /// descriptor).
    pub fn new(file: File) -> Self {
        GroupSync {
            file,
            state: Mutex::new(State::default()),
            done: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write to the file has returned: the ticket to wait for. Take it in the order of the
    /// writes (under the writers' own lock) so that a later ticket covers the earlier writes.
    pub fn written(&self) -> u64 {
        let mut s = self.lock();
        s.written += 1;
        s.written
    }

    /// Returns once everything written up to `ticket` is on disk; an error when the sync that
    /// was to cover it failed.
    pub fn wait(&self, ticket: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        loop {
            if s.failed_upto >= ticket {
                return Err(std::io::Error::other(
                    "the sync that was to make this write durable failed",
                ));
            }
            if s.synced >= ticket {
                return Ok(());
            }
            if s.syncing {
                s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.syncing = true;
            let upto = s.written;
            drop(s);
            let result = self.file.sync_data();
            s = self.lock();
            s.syncing = false;
            s.syncs += 1;
            match result {
                Ok(()) => s.synced = s.synced.max(upto),
                Err(_) => s.failed_upto = s.failed_upto.max(upto),
            }
            self.done.notify_all();
        }
    }

    /// Syncs run so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }
}

/// What a writer waits for, after releasing its own lock: its writes on disk.
pub struct Ticket(pub std::sync::Arc<GroupSync>, pub u64);

impl Ticket {
    /// Returns once the writes are durable ([`GroupSync::wait`]).
    pub fn wait(self) -> std::io::Result<()> {
        self.0.wait(self.1)
    }

    /// Waits for `ticket` when there is one; the error names `what` (the file or folder).
    pub fn settle(ticket: Option<Ticket>, what: &std::path::Path) -> crate::Result<()> {
        match ticket {
            Some(t) => t.wait().map_err(|e| crate::Error::io(what, e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn a_failed_sync_refuses_the_writes_it_was_to_cover() {
        // fdatasync on a character device fails (EINVAL): the sync a disk error would fail.
        let sync = GroupSync::new(File::open("/dev/null").unwrap());
        let first = sync.written();
        assert!(sync.wait(first).is_err());
        let second = sync.written();
        assert!(
            sync.wait(second).is_err(),
            "a later write is not taken as durable either"
        );
        assert!(sync.wait(first).is_err(), "asked again, still refused");
    }

    #[test]
    fn every_writer_returns_after_a_sync_that_covers_it_and_syncs_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Mutex::new(File::create(&path).unwrap());
        let sync = Arc::new(GroupSync::new(File::open(&path).unwrap()));
        let file = Arc::new(file);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (file, sync) = (file.clone(), sync.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let ticket = {
                            let mut f = file.lock().unwrap();
                            writeln!(f, "{t} {i}").unwrap();
                            sync.written()
                        };
                        sync.wait(ticket).unwrap();
                        assert!(sync.lock().synced >= ticket);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(sync.lock().synced, 400);
        assert!(sync.syncs() >= 1 && sync.syncs() <= 400);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 400);
    }
}
