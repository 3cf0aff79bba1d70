//! The intermediate's key wherever it lives: one type over the file key and the token key.

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::pkcs11::TokenKey;
use crate::keys::signer::{FileKey, Signer};

/// The intermediate's key wherever it lives: an age-encrypted file or a PKCS#11 token.
pub enum CaKey {
    /// A key decrypted from its age-encrypted file, held in memory.
    File(FileKey),
    /// A key in a PKCS#11 token: every signature is made by the token.
    Token(TokenKey),
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::File(k) => k.der_bytes(),
            CaKey::Token(k) => k.der_bytes(),
        }
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaKey::File(k) => PublicKeyData::algorithm(k),
            CaKey::Token(k) => PublicKeyData::algorithm(k),
        }
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::File(k) => k.sign(msg),
            CaKey::Token(k) => k.sign(msg),
        }
    }
}

impl Signer for CaKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        match self {
            CaKey::File(k) => k.key_algorithm(),
            CaKey::Token(k) => k.key_algorithm(),
        }
    }
    fn describe(&self) -> String {
        match self {
            CaKey::File(k) => k.describe(),
            CaKey::Token(k) => k.describe(),
        }
    }
    fn take_sign_error(&self) -> Option<String> {
        match self {
            CaKey::File(k) => k.take_sign_error(),
            CaKey::Token(k) => k.take_sign_error(),
        }
    }
}

impl CaKey {
    /// The DER SubjectPublicKeyInfo of the key.
    pub fn spki_der(&self) -> Vec<u8> {
        self.subject_public_key_info()
    }
}
