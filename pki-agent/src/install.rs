//! Installing a key and its certificate so that a reader sees both switch at once.
//!
//! etcd reads its certificate and key files again on every handshake. Two renames (key, then
//! certificate) leave an instant where the new key meets the old certificate. So the files
//! live in one folder per certificate, `.pki-agent/<cert name>-<serial>/`, and the names etcd
//! is given are symbolic links through `.pki-agent/<cert name>.live`, itself a link to the
//! current folder: one rename of that link switches key and certificate together. The first
//! renewal of a leaf installed as plain files turns them into links (its old files are kept in
//! their own folder first). The previous folder is kept, older ones are removed.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use pki_core::output::{self, Mode};

use crate::error::AgentResult;

/// Where the agent's folders live beside a certificate.
fn store(cert: &Path) -> PathBuf {
    cert.parent().unwrap_or(Path::new(".")).join(".pki-agent")
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> pki_core::Error + '_ {
    move |e| pki_core::Error::io(path, e)
}

/// Replaces `link` by a symbolic link to `target`, atomically.
fn swap_link(link: &Path, target: &Path) -> AgentResult<()> {
    let tmp = link.with_file_name(format!(".{}.tmp-{}", name(link), std::process::id()));
    output::remove_quietly(&tmp);
    symlink(target, &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, link).map_err(io(link))?;
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Writes a certificate folder `<cert name>-<serial>` holding both files.
fn write_generation(
    cert: &Path,
    key: &Path,
    serial: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
) -> AgentResult<String> {
    let folder = format!("{}-{serial}", name(cert));
    let dir = store(cert).join(&folder);
    output::create_dir(&dir, 0o750)?;
    output::write_atomic(&dir.join(name(key)), key_pem, Mode::Secret, true)?;
    output::write_atomic(&dir.join(name(cert)), chain_pem, Mode::Public, true)?;
    Ok(folder)
}

/// Installs `key_pem` and `chain_pem` (certificate `serial`) at `key` and `cert`, switching
/// both in one rename once the leaf is managed (see the module documentation).
pub fn install_pair(
    cert: &Path,
    key: &Path,
    serial: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
) -> AgentResult<()> {
    install_observed(cert, key, serial, chain_pem, key_pem, &mut || {})
}

/// [`install_pair`], calling `step` after every change a reader can see (the tests look at
/// the pair each time).
fn install_observed(
    cert: &Path,
    key: &Path,
    serial: &str,
    chain_pem: &[u8],
    key_pem: &[u8],
    step: &mut dyn FnMut(),
) -> AgentResult<()> {
    let store = store(cert);
    output::create_dir(&store, 0o750)?;
    let live = store.join(format!("{}.live", name(cert)));
    let managed = key.parent() == cert.parent()
        && std::fs::read_link(cert).ok() == Some(live_target(cert, cert))
        && std::fs::read_link(key).ok() == Some(live_target(cert, key));
    if !managed && key.parent() == cert.parent() {
        // Once per leaf: both names become links through the live folder while it still
        // holds the *old* pair (a reader meets old key with old certificate whichever name it
        // opens first), and only then does the live link switch, once, to the new pair.
        if let Some(old) = keep_plain_files(cert, key)? {
            swap_link(&live, Path::new(&old))?;
            swap_link(key, &live_target(cert, key))?;
            step();
            swap_link(cert, &live_target(cert, cert))?;
            step();
        }
    }
    let folder = write_generation(cert, key, serial, chain_pem, key_pem)?;
    swap_link(&live, Path::new(&folder))?;
    step();
    if !managed {
        if key.parent() == cert.parent() {
            // No old pair to go through (nothing readable was there): link the names now.
            if std::fs::read_link(key).ok() != Some(live_target(cert, key)) {
                swap_link(key, &live_target(cert, key))?;
                step();
            }
            if std::fs::read_link(cert).ok() != Some(live_target(cert, cert)) {
                swap_link(cert, &live_target(cert, cert))?;
                step();
            }
        } else {
            // Key and certificate in different folders cannot share a link; two renames.
            keep_plain_files(cert, key)?;
            output::write_atomic(key, key_pem, Mode::Secret, true)?;
            output::write_atomic(cert, chain_pem, Mode::Public, true)?;
        }
    }
    prune(&store, &name(cert), &folder);
    Ok(())
}

/// What `file` links to once managed: `.pki-agent/<cert name>.live/<file name>`.
fn live_target(cert: &Path, file: &Path) -> PathBuf {
    PathBuf::from(".pki-agent")
        .join(format!("{}.live", name(cert)))
        .join(name(file))
}

/// Keeps the plain files of a leaf about to be managed in a folder of their own, so the
/// working pair is never lost; returns that folder's name (None when there was no pair).
fn keep_plain_files(cert: &Path, key: &Path) -> AgentResult<Option<String>> {
    let (Ok(chain), Ok(key_pem)) = (std::fs::read(cert), std::fs::read(key)) else {
        return Ok(None);
    };
    let serial = pki_core::x509::CertFacts::from_pem("certificate", &chain)
        .map(|c| c.serial.to_hex())
        .unwrap_or_else(|_| "previous".into());
    let key_pem = zeroize::Zeroizing::new(key_pem);
    Ok(Some(write_generation(
        cert, key, &serial, &chain, &key_pem,
    )?))
}

/// Removes certificate folders other than the current and the one before it.
fn prune(store: &Path, cert_name: &str, current: &str) {
    let prefix = format!("{cert_name}-");
    let Ok(entries) = std::fs::read_dir(store) else {
        return;
    };
    let mut folders: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n != current && e.path().is_dir()
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    folders.sort();
    folders.pop();
    for (_, f) in folders {
        let _ = std::fs::remove_dir_all(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_files_become_links_and_later_swaps_change_both_names_at_once() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = (d.path().join("server.crt"), d.path().join("server.key"));
        std::fs::write(&cert, "old cert").unwrap();
        std::fs::write(&key, "old key").unwrap();
        install_pair(&cert, &key, "0a", b"cert A", b"key A").unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), b"cert A");
        assert_eq!(std::fs::read(&key).unwrap(), b"key A");
        assert!(std::fs::symlink_metadata(&cert).unwrap().is_symlink());
        // The old plain pair was kept, not deleted.
        let kept = d.path().join(".pki-agent/server.crt-previous/server.key");
        assert_eq!(std::fs::read(kept).unwrap(), b"old key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        install_pair(&cert, &key, "0b", b"cert B", b"key B").unwrap();
        install_pair(&cert, &key, "0c", b"cert C", b"key C").unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), b"cert C");
        assert_eq!(std::fs::read(&key).unwrap(), b"key C");
        // The live link is the one thing that changed; the previous folder is kept.
        let store = d.path().join(".pki-agent");
        assert!(store.join("server.crt-0b").is_dir());
        assert!(store.join("server.crt-0c").is_dir());
        assert!(!store.join("server.crt-0a").exists());
    }

    /// After every change a reader can see, the key and the certificate on disk are of one
    /// pair (the network review's item 5: the first renewal on a host made the key a link to
    /// the new pair while the certificate was still the old file, a directory fsync apart).
    #[test]
    fn every_step_of_the_first_renewal_shows_one_pair() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = (d.path().join("server.crt"), d.path().join("server.key"));
        std::fs::write(&cert, "cert old").unwrap();
        std::fs::write(&key, "key old").unwrap();
        let mut seen = Vec::new();
        let mut look = || {
            let k = std::fs::read_to_string(&key).unwrap();
            let c = std::fs::read_to_string(&cert).unwrap();
            seen.push((k, c));
        };
        install_observed(&cert, &key, "0a", b"cert new", b"key new", &mut look).unwrap();
        assert!(seen.len() >= 3, "{seen:?}");
        for (k, c) in &seen {
            assert_eq!(
                k.split(' ').nth(1),
                c.split(' ').nth(1),
                "a key and a certificate of different pairs: {seen:?}"
            );
        }
        assert_eq!(
            seen.last().unwrap(),
            &("key new".to_string(), "cert new".to_string())
        );
    }
}
