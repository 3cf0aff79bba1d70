//! Secret files (PIN, passphrase) as an operator must keep them: 0600 from the first byte, since
//! the tools refuse a secret file that the group or others can open.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `text` to a new or truncated file `path` with mode 0600.
pub fn write_secret(path: impl AsRef<Path>, text: &str) {
    let path = path.as_ref();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // An existing file keeps its old mode on open: set it explicitly.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}
