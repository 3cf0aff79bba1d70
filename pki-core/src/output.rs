//! File output: atomic (temp file in the same folder, fsync, rename, fsync of the folder),
//! never overwriting without an explicit `force`, private keys created 0600 from the start
//! (never chmod-ed after the secret is already on disk).

use crate::keys::KeyError;
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

/// The temporary twin of `path`: `.<name>.tmp-<pid>-<16 hex>`. The random part makes the name
/// unguessable, so nobody can plant a file or a symlink there in advance; the pid lets
/// [`sweep_temps`] tell a live writer's file from one a killed run left.
fn temp_name(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let dir = parent_of(path);
    let name = path.file_name().ok_or_else(|| Error::NotAFileName {
        path: path.to_path_buf(),
    })?;
    let tmp = dir.join(format!(
        ".{}{TEMP_MARK}{}-{:016x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    Ok((dir, tmp))
}

const TEMP_MARK: &str = ".tmp-";

/// Creates `tmp` for writing: it must not exist (O_CREAT|O_EXCL, which also refuses a symlink
/// there), is never followed if it is a link (O_NOFOLLOW), and has exactly `mode` (fchmod past
/// the umask) before the first byte of the secret is written. Errors name `shown`, the file the
/// user asked for.
fn create_temp(tmp: &Path, mode: Mode, shown: &Path) -> Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.bits())
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| Error::io(shown, e))?;
    f.set_permissions(fs::Permissions::from_mode(mode.bits()))
        .map_err(|e| Error::io(shown, e))?;
    Ok(f)
}

/// Writes `data` to `path` atomically. Without `force` the final step is a hard link, which
/// fails if `path` appeared meanwhile, so two processes can never overwrite each other.
pub fn write_atomic(path: &Path, data: &[u8], mode: Mode, force: bool) -> Result<()> {
    let (dir, tmp) = temp_name(path)?;
    let result = (|| {
        let mut f = create_temp(&tmp, mode, path)?;
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
            if let Some(name) = path.file_name() {
                crate::failpoint::check(&format!("after_link:{}", name.to_string_lossy()), path)?;
            }
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
/// partial, and an existing file is replaced only by a complete one. The temp file is made
/// exactly as by [`write_atomic`].
pub fn write_unsynced(path: &Path, data: &[u8], mode: Mode) -> Result<()> {
    let (_, tmp) = temp_name(path)?;
    let res = (|| {
        let mut f = create_temp(&tmp, mode, path)?;
        f.write_all(data).map_err(|e| Error::io(path, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Removes the temp files that a killed run of ours left in `dir` (our own name pattern, a
/// writer process that no longer exists). A live writer's temp file is left alone. Returns how
/// many were removed.
pub fn sweep_temps(dir: &Path) -> Result<usize> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = temp_writer(&name.to_string_lossy()) else {
            continue;
        };
        if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // remove_file on a symlink removes the link, never its target.
        match fs::remove_file(e.path()) {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io(e.path(), err)),
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// The writer's pid when `name` is one of our temp names: `.<name>.tmp-<pid>` (older
/// releases) or `.<name>.tmp-<pid>-<16 hex>`.
fn temp_writer(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let at = rest.rfind(TEMP_MARK)?;
    if at == 0 {
        return None;
    }
    let tail = &rest[at + TEMP_MARK.len()..];
    let (pid, rand) = match tail.split_once('-') {
        Some((p, r)) => (p, Some(r)),
        None => (tail, None),
    };
    if let Some(r) = rand {
        if r.len() != 16 || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
    }
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
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

/// Creates a folder (and parents) with the given mode for the last component. An existing
/// folder is accepted only when neither group nor others may write to it: whoever can write
/// there can plant or swap the files we are about to write (a key made readable through a
/// pre-created file, a certificate replaced).
pub fn create_dir(path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return ensure_private_folder(path);
    }
    fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

/// Refuses a folder that group or others may write to.
pub fn ensure_private_folder(path: &Path) -> Result<()> {
    let mode = fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o022 != 0 {
        return Err(Error::UnsafeFolder {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Removes a file we wrote earlier in a command that then failed.
pub fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = sync_dir(&parent_of(path));
}

/// Reads a whole file; errors name it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads a whole file as text; fails when it is not UTF-8.
pub fn read_to_string(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        path: path.to_path_buf(),
    })
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

/// One line to stdout for the binaries' `println!`: Rust ignores SIGPIPE, so std's `println!`
/// panics when the reader of stdout went away (`issuer list | head`). A reader that stopped
/// early is not an error, so the process ends quietly with success; any other write error
/// ends it with a message naming `tool`.
pub fn stdout_line(tool: &str, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("{tool}: error: <stdout>: {e}");
        std::process::exit(1);
    }
}

/// Reads a file holding a secret (PIN, passphrase, age identity), refusing it when its mode
/// gives the group or others any access: someone else may have read it, or may replace it.
/// The mode is taken from the open handle, so the file checked is the file read.
pub fn read_secret_file(path: &Path, what: &'static str) -> Result<zeroize::Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mode = f
        .metadata()
        .map_err(|e| Error::io(path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::SecretFileOpen {
            what,
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        }
        .into());
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    Ok(zeroize::Zeroizing::new(text.to_string()))
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

    #[test]
    fn temp_names_are_recognised_only_in_our_pattern() {
        assert_eq!(temp_writer(".client.key.tmp-4242"), Some(4242));
        assert_eq!(
            temp_writer(".client.key.tmp-4242-0123456789abcdef"),
            Some(4242)
        );
        for other in [
            "client.key.tmp-1",
            ".tmp-1",
            ".notes.tmp-draft",
            ".k.tmp-1-xyz",
            ".k.tmp-",
        ] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
        let (_, tmp) = temp_name(Path::new("/x/server.key")).unwrap();
        let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(temp_writer(&name), Some(std::process::id()));
    }

    #[test]
    fn a_folder_others_may_write_to_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        let err = create_dir(&open, 0o755).unwrap_err();
        assert!(
            matches!(err, Error::UnsafeFolder { mode: 0o1777, .. }),
            "{err}"
        );
        fs::set_permissions(&open, fs::Permissions::from_mode(0o750)).unwrap();
        create_dir(&open, 0o755).unwrap();
        let new = dir.path().join("a/b");
        create_dir(&new, 0o700).unwrap();
        assert_eq!(
            fs::metadata(&new).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_planted_file_or_link_at_a_temp_name_is_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".k.tmp-1");
        fs::write(&tmp, b"").unwrap();
        assert!(create_temp(&tmp, Mode::Secret, &tmp).is_err());
        let link = dir.path().join(".l.tmp-1");
        std::os::unix::fs::symlink(dir.path().join("target"), &link).unwrap();
        assert!(create_temp(&link, Mode::Secret, &link).is_err());
        assert!(!dir.path().join("target").exists());
        // A dead writer's leftovers go; the link is removed, never its target.
        let dead = dir.path().join(".k.tmp-4294967295");
        fs::write(&dead, b"secret").unwrap();
        assert_eq!(sweep_temps(dir.path()).unwrap(), 1);
        assert!(!dead.exists());
    }
}

#[cfg(test)]
mod secret_file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_file_is_read_only_when_no_one_else_can_open_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "1234\n").unwrap();
        for (mode, accepted) in [
            (0o600, true),
            (0o400, true),
            (0o700, true),
            (0o644, false),
            (0o640, false),
            (0o604, false),
            (0o620, false),
            (0o602, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            match read_secret_file(&p, "PIN") {
                Ok(text) => {
                    assert!(accepted, "mode {mode:o} accepted");
                    assert_eq!(text.as_str(), "1234\n");
                }
                Err(e) => {
                    assert!(!accepted, "mode {mode:o} refused: {e}");
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("(mode {mode:04o})")), "{msg}");
                    assert!(msg.contains(&format!("chmod 600 {}", p.display())), "{msg}");
                }
            }
        }
    }
}
