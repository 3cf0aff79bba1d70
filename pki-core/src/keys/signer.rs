//! The one signing abstraction. A file-backed key (here) and a PKCS#11 token key
//! (`keys::pkcs11`) both implement [`Signer`], so profiles and issuance never know where the
//! key lives.

use crate::keys::KeyError;
use crate::x509::X509Error;
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use zeroize::Zeroizing;

use crate::error::{Error, KeyFileProblem, Result};
use crate::keys::algorithm::KeyAlgorithm;

/// A key that signs certificates and CRLs.
pub trait Signer: SigningKey {
    /// The key's algorithm (and so the signature algorithm).
    fn key_algorithm(&self) -> KeyAlgorithm;
    /// A short human description for messages, never key material ("file key p384").
    fn describe(&self) -> String;
    /// Why the last signature with this key failed, when the key knows more than the error
    /// rcgen passes on (a token's error: rcgen reports only `RemoteKeyError`). Taking it
    /// clears it.
    fn take_sign_error(&self) -> Option<String> {
        None
    }
}

/// A private key held in memory, loaded from (or about to be written to) a file.
/// aws-lc cleanses its own key memory on drop; the PKCS#8 copy rcgen keeps is zeroized by rcgen.
pub struct FileKey {
    pair: KeyPair,
    alg: KeyAlgorithm,
}

impl FileKey {
    /// Generates a fresh key of `alg` in memory; fails for an RSA size other than 2048, 3072 or
    /// 4096.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self> {
        Ok(FileKey {
            pair: alg.generate()?,
            alg,
        })
    }

    /// Reads a PKCS#8 PEM private key ("BEGIN PRIVATE KEY").
    pub fn from_pkcs8_pem(what: &str, pem: &str) -> Result<Self> {
        if pem.contains("BEGIN EC PRIVATE KEY") || pem.contains("BEGIN RSA PRIVATE KEY") {
            return Err(bad_key(what, KeyFileProblem::Legacy));
        }
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err(bad_key(what, KeyFileProblem::PasswordProtected));
        }
        if !pem.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(X509Error::MalformedPem {
                what: what.into(),
                expected: "PRIVATE KEY",
                detail: "no private key block found".into(),
            }
            .into());
        }
        // rcgen's error would not leak the key, but it says little; keep our own wording.
        let unusable = |e: rcgen::Error| {
            bad_key(
                what,
                KeyFileProblem::Unusable {
                    detail: e.to_string(),
                },
            )
        };
        let pair = KeyPair::from_pem(pem).map_err(unusable)?;
        let alg = KeyAlgorithm::from_spki_der(&pair.subject_public_key_info())?;
        let pair = if alg.signature_algorithm() != pair.algorithm() {
            // e.g. a P-384 key must sign with SHA-384; pin the algorithm explicitly.
            KeyPair::from_pkcs8_pem_and_sign_algo(pem, alg.signature_algorithm())
                .map_err(unusable)?
        } else {
            pair
        };
        Ok(FileKey { pair, alg })
    }

    /// The private key as PKCS#8 PEM, zeroized when dropped. Ed25519 keys are written in the
    /// PKCS#8 v1 form of RFC 8410 (no embedded public key): aws-lc produces v2, which OpenSSL
    /// 3.0 cannot load ("unsupported"), while every reader, Go's crypto/x509 included, loads v1.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        if self.alg == KeyAlgorithm::Ed25519 {
            let der = Zeroizing::new(self.pair.serialize_der());
            if let Some(v1) = ed25519_pkcs8_v1(&der) {
                let block = pem::Pem::new("PRIVATE KEY", v1.to_vec());
                let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
                let text = Zeroizing::new(pem::encode_config(&block, lf));
                drop(Zeroizing::new(block.into_contents()));
                return text;
            }
        }
        Zeroizing::new(self.pair.serialize_pem())
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }
}

impl PublicKeyData for FileKey {
    fn der_bytes(&self) -> &[u8] {
        self.pair.der_bytes()
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.pair.algorithm()
    }
}

impl SigningKey for FileKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair.sign(msg)
    }
}

impl Signer for FileKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn describe(&self) -> String {
        format!("file key {}", self.alg)
    }
}

/// `SEQUENCE { INTEGER 1, AlgorithmIdentifier id-Ed25519, OCTET STRING { OCTET STRING seed } }`
/// and the `[1]` public key that makes it PKCS#8 v2 (83 octets in all).
const ED25519_PKCS8_V2_HEAD: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The same key as PKCS#8 v1 (48 octets): version 0, no public key.
const ED25519_PKCS8_V1_HEAD: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The v1 form of a v2 Ed25519 PKCS#8 document; None when `der` is not one.
fn ed25519_pkcs8_v1(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if der.len() != 83 || der[..16] != ED25519_PKCS8_V2_HEAD || der[48..51] != [0x81, 0x21, 0x00] {
        return None;
    }
    let mut v1 = Zeroizing::new(Vec::with_capacity(48));
    v1.extend_from_slice(&ED25519_PKCS8_V1_HEAD);
    v1.extend_from_slice(&der[16..48]);
    Some(v1)
}

fn bad_key(what: &str, problem: KeyFileProblem) -> Error {
    KeyError::BadKeyFile {
        what: what.into(),
        problem,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_are_written_as_pkcs8_v1_and_read_back() {
        let key = FileKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let pem_text = key.to_pkcs8_pem();
        let der = pem::parse(pem_text.as_bytes()).unwrap().into_contents();
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], ED25519_PKCS8_V1_HEAD);
        assert!(
            !pem_text.contains('\r'),
            "LF line endings like every other file"
        );
        let back = FileKey::from_pkcs8_pem("k", &pem_text).unwrap();
        assert_eq!(back.spki_der(), key.spki_der());
        assert_eq!(back.key_algorithm(), KeyAlgorithm::Ed25519);
        // Other algorithms are written as rcgen writes them.
        let p256 = FileKey::generate(KeyAlgorithm::P256).unwrap();
        assert_eq!(*p256.to_pkcs8_pem(), p256.pair.serialize_pem());
    }
}
