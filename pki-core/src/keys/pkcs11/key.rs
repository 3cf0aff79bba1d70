//! A key pair in the token as a [`Signer`].

use std::sync::Arc;

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
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
    /// How this token signs with this key (the mechanisms it offers).
    pub(super) path: SignPath,
    /// The key demands a context-specific login before each signature
    /// (`CKA_ALWAYS_AUTHENTICATE`).
    pub(super) always_authenticate: bool,
    /// The token's error for the last failed signature (see [`Signer::take_sign_error`]).
    pub(super) last_error: std::sync::Mutex<Option<String>>,
}

/// The DER `DigestInfo` prefix of a SHA-256 digest (RFC 8017 section 9.2, note 1): with it, a
/// raw `CKM_RSA_PKCS` signature is the same PKCS#1 v1.5 signature `CKM_SHA256_RSA_PKCS` makes.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// How a key signs on its token: the digest made in software and a raw mechanism, or the
/// token's combined hash-and-sign mechanism, whichever the token offers (raw first: the
/// digest is then the one this toolkit computed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignPath {
    /// SHA-256/384 in software, then `CKM_ECDSA`.
    EcdsaRaw,
    /// `CKM_ECDSA_SHA256` / `CKM_ECDSA_SHA384` over the message.
    EcdsaCombined,
    /// `CKM_EDDSA` (pure Ed25519) over the message.
    Eddsa,
    /// `CKM_SHA256_RSA_PKCS` over the message.
    RsaCombined,
    /// SHA-256 and its DigestInfo in software, then `CKM_RSA_PKCS`.
    RsaRaw,
}

impl SignPath {
    /// The path for `alg` on a token offering `has(mechanism)`, or None when it has none.
    pub fn choose(alg: KeyAlgorithm, has: impl Fn(MechanismType) -> bool) -> Option<Self> {
        let combined_ec = if alg == KeyAlgorithm::P384 {
            MechanismType::ECDSA_SHA384
        } else {
            MechanismType::ECDSA_SHA256
        };
        match alg {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 if has(MechanismType::ECDSA) => {
                Some(SignPath::EcdsaRaw)
            }
            KeyAlgorithm::P256 | KeyAlgorithm::P384 if has(combined_ec) => {
                Some(SignPath::EcdsaCombined)
            }
            KeyAlgorithm::Ed25519 if has(MechanismType::EDDSA) => Some(SignPath::Eddsa),
            KeyAlgorithm::Rsa(_) if has(MechanismType::RSA_PKCS) => Some(SignPath::RsaRaw),
            KeyAlgorithm::Rsa(_) if has(MechanismType::SHA256_RSA_PKCS) => {
                Some(SignPath::RsaCombined)
            }
            _ => None,
        }
    }

    /// The mechanisms this path uses, as the token names them.
    pub fn describe(self, alg: KeyAlgorithm) -> &'static str {
        match (self, alg) {
            (SignPath::EcdsaRaw, KeyAlgorithm::P384) => "SHA-384 in software + CKM_ECDSA",
            (SignPath::EcdsaRaw, _) => "SHA-256 in software + CKM_ECDSA",
            (SignPath::EcdsaCombined, KeyAlgorithm::P384) => "CKM_ECDSA_SHA384",
            (SignPath::EcdsaCombined, _) => "CKM_ECDSA_SHA256",
            (SignPath::Eddsa, _) => "CKM_EDDSA",
            (SignPath::RsaCombined, _) => "CKM_SHA256_RSA_PKCS",
            (SignPath::RsaRaw, _) => "SHA-256 and DigestInfo in software + CKM_RSA_PKCS",
        }
    }
}

/// The signature algorithm this toolkit signs with for a key of `alg`.
pub(super) fn signature_oid(alg: KeyAlgorithm) -> &'static str {
    match alg {
        KeyAlgorithm::P256 => oid::ECDSA_SHA256,
        KeyAlgorithm::P384 => oid::ECDSA_SHA384,
        KeyAlgorithm::Ed25519 => oid::ED25519,
        KeyAlgorithm::Rsa(_) => oid::RSA_SHA256,
    }
}

impl TokenKey {
    /// One `C_Sign` over `data` with this key's mechanism, for benchmarks: no conversion.
    pub fn raw_sign(&self, data: &[u8]) -> Result<Vec<u8>> {
        let (mech, _) = self.mechanism();
        self.token
            .sign_raw(&mech, self.private, data, self.always_authenticate)
    }

    /// How this key signs on its token.
    pub fn sign_path(&self) -> SignPath {
        self.path
    }

    /// Whether the key demands a context-specific login before each signature.
    pub fn always_authenticate(&self) -> bool {
        self.always_authenticate
    }

    fn mechanism(&self) -> (Mechanism<'static>, bool) {
        match self.path {
            SignPath::EcdsaRaw => (Mechanism::Ecdsa, true),
            SignPath::EcdsaCombined if self.alg == KeyAlgorithm::P384 => {
                (Mechanism::EcdsaSha384, false)
            }
            SignPath::EcdsaCombined => (Mechanism::EcdsaSha256, false),
            SignPath::Eddsa => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                false,
            ),
            SignPath::RsaCombined => (Mechanism::Sha256RsaPkcs, false),
            SignPath::RsaRaw => (Mechanism::RsaPkcs, true),
        }
    }

    /// Signs a random challenge with the private object and verifies it in software with the
    /// public object: the same CKA_ID proves nothing if a planted object copied it.
    pub(super) fn prove_pair(&self, label: &str) -> Result<()> {
        let mut challenge = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut challenge);
        let sig = self.sign_checked(&challenge)?;
        crate::keys::sigcheck::verify(signature_oid(self.alg), &self.spki_der(), &challenge, &sig)
            .map_err(|e| TokenError::KeyPairMismatch {
                key: label.to_string(),
                token: self.token.config.token_label.clone(),
                reason: format!(
                    "a test signature by the private key does not verify with the public key: {e}"
                ),
            })
    }

    /// The DER SubjectPublicKeyInfo of the token's key.
    pub fn spki_der(&self) -> Vec<u8> {
        self.subject_public_key_info()
    }

    pub(super) fn sign_checked(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let (mech, digest_here) = self.mechanism();
        let input = match (self.alg, digest_here) {
            (_, false) => msg.to_vec(),
            (KeyAlgorithm::P384, true) => Sha384::digest(msg).to_vec(),
            (KeyAlgorithm::Rsa(_), true) => {
                let mut di = SHA256_DIGEST_INFO.to_vec();
                di.extend_from_slice(&Sha256::digest(msg));
                di
            }
            (_, true) => Sha256::digest(msg).to_vec(),
        };
        let sig = self
            .token
            .sign_raw(&mech, self.private, &input, self.always_authenticate)?;
        match self.alg {
            KeyAlgorithm::P256 => ecdsa_raw_to_der(&sig, 32),
            KeyAlgorithm::P384 => ecdsa_raw_to_der(&sig, 48),
            KeyAlgorithm::Ed25519 | KeyAlgorithm::Rsa(_) => Ok(sig),
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
