//! The CA folder's lock: one writer, or many readers, at a time.

use super::*;

/// A held lock on a CA folder (an flock on the folder itself, so no lock file appears in it);
/// released when dropped or when the process ends, so a killed command never leaves it held.
pub struct CaLock {
    _dir: std::fs::File,
}

/// How long a command waits for another one to release the CA folder.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl CaDir {
    /// The exclusive lock: for commands that read the ledger and then change it or files
    /// derived from it (renew, reissue, revoke, crl, etcd), so two of them cannot both act on
    /// what they read before the other wrote (two renewals of one leaf, a CRL number published
    /// after a higher one).
    pub fn lock_exclusive(&self) -> Result<CaLock> {
        self.lock(false)
    }

    /// The shared lock: for commands that only add new leaves (issue, batch); they run side by
    /// side, but never while an exclusive holder is at work.
    pub fn lock_shared(&self) -> Result<CaLock> {
        self.lock(true)
    }

    fn lock(&self, shared: bool) -> Result<CaLock> {
        let dir = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let started = std::time::Instant::now();
        loop {
            let tried = if shared {
                dir.try_lock_shared()
            } else {
                dir.try_lock()
            };
            match tried {
                Ok(()) => return Ok(CaLock { _dir: dir }),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::CaBusy {
                        path: self.path.clone(),
                    })
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&self.path, e)),
            }
        }
    }
}
