//! File output: atomic (temp file in the same folder, fsync, rename, fsync of the folder),
//! never overwriting without an explicit `force`, private keys created 0600 from the start
//! (never chmod-ed after the secret is already on disk).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Who may read a file we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 0644: certificates, CRLs, public material.
    Public,
    /// 0600: private keys and anything that unlocks one.
    Secret,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Public => 0o644,
            Mode::Secret => 0o600,
        }
    }
}

/// Refuses when `path` exists and `force` is false. Call for every output before doing work,
/// so a refused command leaves nothing behind.
pub fn ensure_absent(path: &Path, force: bool) -> Result<()> {
    if !force && fs::symlink_metadata(path).is_ok() {
        return Err(Error::OutputExists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Writes `data` to `path` atomically. Without `force` the final step is a hard link, which
/// fails if `path` appeared meanwhile, so two processes can never overwrite each other.
pub fn write_atomic(path: &Path, data: &[u8], mode: Mode, force: bool) -> Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(path.display().to_string(), "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:016x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.bits())
            .open(&tmp)
            .map_err(|e| Error::io(path, e))?;
        // The umask may have narrowed the mode; make it exactly what we mean.
        f.set_permissions(fs::Permissions::from_mode(mode.bits()))
            .map_err(|e| Error::io(path, e))?;
        f.write_all(data).map_err(|e| Error::io(path, e))?;
        f.sync_all().map_err(|e| Error::io(path, e))?;
        drop(f);
        if force {
            fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        } else {
            fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::OutputExists {
                        path: path.to_path_buf(),
                    }
                } else {
                    Error::io(path, e)
                }
            })?;
            fs::remove_file(&tmp).map_err(|e| Error::io(path, e))?;
        }
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `data` to a new file via a temp file and a rename, without fsync: for bulk output
/// made durable afterwards by one [`sync_filesystem`]. The file is complete or absent, never
/// partial, and an existing file is replaced only by a complete one.
pub fn write_unsynced(path: &Path, data: &[u8], mode: Mode) -> Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(path.display().to_string(), "not a file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode.bits())
            .open(&tmp)
            .map_err(|e| Error::io(path, e))?;
        // No fchmod here: the umask can only narrow the mode, which is safe for bulk output.
        f.write_all(data).map_err(|e| Error::io(path, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Flushes the whole filesystem holding `path` (syncfs via `sync -f`): one call makes every
/// file written with [`write_unsynced`] durable.
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let status = std::process::Command::new("sync")
        .arg("-f")
        .arg(path)
        .status()
        .map_err(|e| Error::io(path, e))?;
    if !status.success() {
        return Err(Error::io(path, std::io::Error::other("sync -f failed")));
    }
    Ok(())
}

/// Creates a folder (and parents) with the given mode for the last component.
pub fn create_dir(path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

/// Removes a file we wrote earlier in a command that then failed.
pub fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = sync_dir(&parent_of(path));
}

pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

pub fn read_to_string(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| Error::input(path.display().to_string(), "not UTF-8 text"))
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overwrites_without_force_and_keys_are_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        write_atomic(&p, b"one", Mode::Secret, false).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let err = write_atomic(&p, b"two", Mode::Secret, false).unwrap_err();
        assert!(matches!(err, Error::OutputExists { .. }));
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", Mode::Secret, true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // no temp files left behind
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
