//! Private keys at rest: PKCS#8 PEM inside an ASCII-armoured age file, encrypted either to an
//! X25519 identity (the usual case: the identity lives on another medium) or with a passphrase.
//! Plaintext key bytes only ever exist in memory, in `Zeroizing` buffers.

use crate::keys::KeyError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::Result;
use crate::output::{self, Mode};

/// What unlocks a key at rest.
pub enum KeySecret {
    /// An age X25519 identity read from a file (never from a flag value).
    Identity {
        /// The identity file it was read from (named in messages).
        path: PathBuf,
        /// The identity.
        identity: age::x25519::Identity,
    },
    /// A passphrase from a file, an environment variable or a prompt.
    Passphrase(SecretString),
}

impl KeySecret {
    /// Reads an age identity file (`age-keygen` format: comments and one AGE-SECRET-KEY line).
    pub fn from_identity_file(path: &Path) -> Result<Self> {
        let text = crate::output::read_secret_file(path, "age identity")?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| KeyError::Identity {
                path: path.to_path_buf(),
                reason: "no AGE-SECRET-KEY-1 line; make one with `intermediate-ca new-identity FILE` or `age-keygen -o FILE`".into(),
            })?;
        let identity = age::x25519::Identity::from_str(line).map_err(|_| KeyError::Identity {
            path: path.to_path_buf(),
            reason: "the AGE-SECRET-KEY line is not a valid X25519 identity".into(),
        })?;
        Ok(KeySecret::Identity {
            path: path.to_path_buf(),
            identity,
        })
    }

    /// A passphrase secret; fails with [`KeyError::ShortPassphrase`] when it has fewer than 12
    /// characters.
    pub fn passphrase(p: Zeroizing<String>) -> Result<Self> {
        if p.chars().count() < 12 {
            return Err(KeyError::ShortPassphrase { min: 12 }.into());
        }
        Ok(KeySecret::Passphrase(SecretString::from(p.to_string())))
    }

    /// How the secret is described in state files and messages (no secret material).
    pub fn description(&self) -> String {
        match self {
            KeySecret::Identity { identity, .. } => {
                format!("x25519:{}", identity.to_public())
            }
            KeySecret::Passphrase(_) => "passphrase".into(),
        }
    }

    /// Encrypts PEM key material for storage.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let encryptor = match self {
            KeySecret::Identity { identity, .. } => {
                let r = identity.to_public();
                age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
                    .map_err(|e| KeyError::Age {
                        op: "encryption",
                        reason: e.to_string(),
                    })?
            }
            KeySecret::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
        };
        armored_encrypt(encryptor, plaintext)
    }

    /// Decrypts a sealed key file.
    pub fn open(&self, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
        let data = output::read(path)?;
        let fail = |reason: String| KeyError::KeyDecrypt {
            path: path.to_path_buf(),
            reason,
        };
        let res = match self {
            KeySecret::Identity { identity, .. } => age::decrypt(identity, &data),
            KeySecret::Passphrase(p) => age::decrypt(&age::scrypt::Identity::new(p.clone()), &data),
        };
        res.map(Zeroizing::new).map_err(|e| match (e, self) {
            (age::DecryptError::NoMatchingKeys, KeySecret::Identity { .. })
                if is_passphrase_file(&data) =>
            {
                KeyError::KeyNeedsPassphrase {
                    path: path.to_path_buf(),
                }
            }
            (age::DecryptError::NoMatchingKeys, KeySecret::Identity { path: ip, identity }) => fail(format!(
                "the identity {} (recipient {}) is not the one this key was encrypted to; use the identity file chosen when the key was created",
                ip.display(),
                identity.to_public()
            )),
            (age::DecryptError::NoMatchingKeys, KeySecret::Passphrase(_)) => {
                KeyError::KeyNeedsIdentity {
                    path: path.to_path_buf(),
                }
            }
            (age::DecryptError::DecryptionFailed, KeySecret::Passphrase(_)) => {
                fail("wrong passphrase (or the file is damaged)".into())
            }
            (age::DecryptError::DecryptionFailed, _) => {
                fail("the file is damaged or has been tampered with".into())
            }
            (other, _) => fail(format!("not a readable age file ({other})")),
        }).map_err(crate::Error::from)
    }
}

/// Whether a sealed file is passphrase-protected (an age scrypt stanza) rather than
/// encrypted to identities.
fn is_passphrase_file(data: &[u8]) -> bool {
    age::Decryptor::new_buffered(age::armor::ArmoredReader::new(data))
        .map(|d| d.is_scrypt())
        .unwrap_or(false)
}

/// Encrypts with ASCII armour, finishing both the stream and the armour.
pub fn armored_encrypt(encryptor: age::Encryptor, plaintext: &[u8]) -> Result<Vec<u8>> {
    let err = |e: std::io::Error| KeyError::Age {
        op: "encryption",
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(err)?;
    let mut w = encryptor.wrap_output(armor).map_err(err)?;
    w.write_all(plaintext).map_err(err)?;
    w.finish().and_then(|a| a.finish()).map_err(err)?;
    Ok(out)
}

/// Creates a new X25519 identity file (0600, never overwriting) and returns its recipient.
pub fn new_identity_file(path: &Path, force: bool) -> Result<age::x25519::Recipient> {
    output::ensure_absent(path, force)?;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let text = Zeroizing::new(format!(
        "# created by the PKI toolkit: keep this file offline-safe, it unlocks CA keys\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    ));
    output::write_atomic(path, text.as_bytes(), Mode::Secret, force)?;
    Ok(recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_identity_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let id1 = dir.path().join("id1.txt");
        let id2 = dir.path().join("id2.txt");
        new_identity_file(&id1, false).unwrap();
        new_identity_file(&id2, false).unwrap();
        let s1 = KeySecret::from_identity_file(&id1).unwrap();
        let s2 = KeySecret::from_identity_file(&id2).unwrap();
        let sealed = s1.seal(b"secret key").unwrap();
        assert!(String::from_utf8_lossy(&sealed).starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
        let f = dir.path().join("k.age");
        std::fs::write(&f, &sealed).unwrap();
        assert_eq!(&*s1.open(&f).unwrap(), b"secret key");
        let err = s2.open(&f).unwrap_err().to_string();
        assert!(
            err.contains("not the one this key was encrypted to"),
            "{err}"
        );
        assert!(!err.contains("AGE-SECRET-KEY"));
    }
}
