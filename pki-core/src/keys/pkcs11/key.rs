//! A key pair in the token as a [`Signer`].

use std::sync::Arc;

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use sha2::{Digest, Sha256, Sha384};

use super::der::ecdsa_raw_to_der;
use super::error::{Result, TokenError};
use super::Token;
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::signer::Signer;
use crate::oid;

/// A key pair in the token, usable wherever pki-core wants a [`Signer`].
pub struct TokenKey {
    pub(super) token: Arc<Token>,
    pub(super) private: ObjectHandle,
    pub(super) alg: KeyAlgorithm,
    pub(super) public_raw: Vec<u8>,
    /// The token's error for the last failed signature (see [`Signer::take_sign_error`]).
    pub(super) last_error: std::sync::Mutex<Option<String>>,
}

impl TokenKey {
    /// One raw `C_Sign` over `data` with this key, for benchmarks: no hashing, no conversion.
    pub fn raw_sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mech = match self.alg {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => Mechanism::Ecdsa,
            KeyAlgorithm::Ed25519 => Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
            KeyAlgorithm::Rsa(_) => Mechanism::Sha256RsaPkcs,
        };
        self.token.sign_raw(&mech, self.private, data)
    }

    /// Signs a random challenge with the private object and verifies it in software with the
    /// public object: the same CKA_ID proves nothing if a planted object copied it.
    pub(super) fn prove_pair(&self, label: &str) -> Result<()> {
        let mut challenge = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut challenge);
        let sig = self.sign_checked(&challenge)?;
        let oid = match self.alg {
            KeyAlgorithm::P256 => oid::ECDSA_SHA256,
            KeyAlgorithm::P384 => oid::ECDSA_SHA384,
            KeyAlgorithm::Ed25519 => oid::ED25519,
            KeyAlgorithm::Rsa(_) => oid::RSA_SHA256,
        };
        crate::keys::sigcheck::verify(oid, &self.spki_der(), &challenge, &sig).map_err(|e| {
            TokenError::KeyPairMismatch {
                key: label.to_string(),
                token: self.token.config.token_label.clone(),
                reason: format!(
                    "a test signature by the private key does not verify with the public key: {e}"
                ),
            }
        })
    }

    /// The DER SubjectPublicKeyInfo of the token's key.
    pub fn spki_der(&self) -> Vec<u8> {
        self.subject_public_key_info()
    }

    pub(super) fn sign_checked(&self, msg: &[u8]) -> Result<Vec<u8>> {
        match self.alg {
            // SoftHSM2 offers raw CKM_ECDSA only: hash here, sign the digest in the token.
            KeyAlgorithm::P256 => {
                let raw =
                    self.token
                        .sign_raw(&Mechanism::Ecdsa, self.private, &Sha256::digest(msg))?;
                ecdsa_raw_to_der(&raw, 32)
            }
            KeyAlgorithm::P384 => {
                let raw =
                    self.token
                        .sign_raw(&Mechanism::Ecdsa, self.private, &Sha384::digest(msg))?;
                ecdsa_raw_to_der(&raw, 48)
            }
            KeyAlgorithm::Ed25519 => self.token.sign_raw(
                &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                self.private,
                msg,
            ),
            KeyAlgorithm::Rsa(_) => {
                self.token
                    .sign_raw(&Mechanism::Sha256RsaPkcs, self.private, msg)
            }
        }
    }
}

impl PublicKeyData for TokenKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_raw
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg.signature_algorithm()
    }
}

impl SigningKey for TokenKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.sign_checked(msg).map_err(|e| {
            // rcgen's RemoteKeyError carries no detail: the key keeps the token's error.
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.to_string());
            }
            rcgen::Error::RemoteKeyError
        })
    }
}

impl Signer for TokenKey {
    fn key_algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn describe(&self) -> String {
        format!(
            "PKCS#11 key '{}' ({}) in token '{}'",
            self.token.config.key_label, self.alg, self.token.config.token_label
        )
    }
    fn take_sign_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut l| l.take())
    }
}
