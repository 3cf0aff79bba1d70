//! What the process holding the unlocked CA key does to itself at start: no core dumps and no
//! ptrace by other processes of the same user (`PR_SET_DUMPABLE` 0, `RLIMIT_CORE` 0), its
//! memory kept out of swap where the limits permit it, and as many open files as it may have
//! (each connection is one).

use rustix::mm::{mlockall, MlockAllFlags};
use rustix::process::{
    getrlimit, set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit,
};

/// What [`harden`] did, one line each, for the service's log.
pub fn harden() -> Vec<String> {
    let mut said = Vec::new();
    match set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        Ok(()) => said.push("not dumpable (no core file, no ptrace by the same user)".into()),
        Err(e) => said.push(format!("WARNING: PR_SET_DUMPABLE failed: {e}")),
    }
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, none) {
        said.push(format!("WARNING: RLIMIT_CORE 0 failed: {e}"));
    }
    // Locking every page, present and future, is safe only without a limit: with one, a later
    // allocation past it would fail. systemd's LimitMEMLOCK=infinity (the documented unit) or
    // CAP_IPC_LOCK gives that.
    match getrlimit(Resource::Memlock).current {
        None => {
            let flags = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT;
            match mlockall(flags) {
                Ok(()) => said.push("memory locked (the key is never swapped out)".into()),
                Err(e) => said.push(format!("WARNING: mlockall failed: {e}")),
            }
        }
        Some(n) => said.push(format!(
            "memory not locked: RLIMIT_MEMLOCK is {n} bytes; LimitMEMLOCK=infinity in the unit (or swap off or encrypted) keeps the key out of swap"
        )),
    }
    if let Err(e) = raise_open_files() {
        said.push(format!("WARNING: raising RLIMIT_NOFILE failed: {e}"));
    }
    said
}

/// Raises this process's open-files limit to its hard limit.
pub fn raise_open_files() -> std::io::Result<()> {
    let files = getrlimit(Resource::Nofile);
    if files.current == files.maximum {
        return Ok(());
    }
    let raised = Rlimit {
        current: files.maximum,
        maximum: files.maximum,
    };
    setrlimit(Resource::Nofile, raised).map_err(std::io::Error::from)
}

/// Open files this process may have now (unlimited as u64::MAX).
pub fn open_files_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_harden_the_process_is_not_dumpable_and_dumps_no_core() {
        let said = harden();
        assert!(
            said.iter().all(|l| !l.contains("PR_SET_DUMPABLE failed")),
            "{said:?}"
        );
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            DumpableBehavior::NotDumpable
        );
        assert_eq!(getrlimit(Resource::Core).current, Some(0));
        let files = getrlimit(Resource::Nofile);
        assert_eq!(
            files.current, files.maximum,
            "open files raised to the hard limit"
        );
    }
}
