//! The AES-GCM seal: AES-256-GCM inside the token under its AES transport key.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use zeroize::Zeroizing;

use super::super::error::{Result, TokenError};
use super::super::Token;
use super::{truncated, SealScheme, GCM_AAD};

impl Token {
    pub(super) fn generate_aes_transport(&self) -> Result<ObjectHandle> {
        self.session()
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Label(self.transport_label().into_bytes()),
                ],
            )
            .map_err(|e| {
                TokenError::pkcs11_about(
                    "generate the transport key",
                    "mechanism CKM_AES_KEY_GEN",
                    e,
                )
            })
    }

    /// AES-256-GCM inside the token: IV ‖ ciphertext ‖ tag.
    pub(super) fn gcm_seal(&self, key: ObjectHandle, plain: &[u8]) -> Result<Vec<u8>> {
        let mut iv = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
        let iv_copy = iv;
        let params = cryptoki::mechanism::aead::GcmParams::new(&mut iv, GCM_AAD, 128u64.into())
            .map_err(|e| TokenError::pkcs11("AES-GCM parameters", e))?;
        let ct = self
            .session()
            .encrypt(&Mechanism::AesGcm(params), key, plain)
            .map_err(|e| {
                TokenError::pkcs11_about("encrypt transport identity", "mechanism CKM_AES_GCM", e)
            })?;
        let mut out = iv_copy.to_vec();
        out.extend(ct);
        Ok(out)
    }

    pub(super) fn gcm_open(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            return Err(truncated());
        }
        let key = match self.existing_transport()? {
            Some((SealScheme::TokenAesGcm, key)) => key,
            _ => {
                return Err(TokenError::NoKey {
                    key: self.transport_label(),
                    token: self.config.token_label.clone(),
                })
            }
        };
        let mut iv = [0u8; 12];
        iv.copy_from_slice(&sealed[..12]);
        let params = cryptoki::mechanism::aead::GcmParams::new(&mut iv, GCM_AAD, 128u64.into())
            .map_err(|e| TokenError::pkcs11("AES-GCM parameters", e))?;
        self.session()
            .decrypt(&Mechanism::AesGcm(params), key, &sealed[12..])
            .map(Zeroizing::new)
            .map_err(|e| {
                TokenError::pkcs11_about(
                    "decrypt transport identity (damaged file or wrong token?)",
                    "mechanism CKM_AES_GCM",
                    e,
                )
            })
    }
}
