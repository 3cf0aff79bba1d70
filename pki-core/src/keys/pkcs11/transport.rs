//! The token-resident AES key that seals the root's transport identity at rest.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use super::attributes::check_attributes;
use super::error::{Result, TokenError};
use super::Token;

impl Token {
    /// The token-resident AES key that keeps the transport identity encrypted at rest.
    fn transport_key(&self, create: bool) -> Result<ObjectHandle> {
        let label = format!("{}-transport", self.config.key_label);
        match self.find(ObjectClass::SECRET_KEY, &label)?.as_slice() {
            [] => {}
            [k] => {
                self.check_transport_attributes(*k, &label)?;
                return Ok(*k);
            }
            many => {
                return Err(TokenError::AmbiguousKey {
                    key: label,
                    token: self.config.token_label.clone(),
                    class: "secret-key",
                    count: many.len(),
                    id: String::new(),
                })
            }
        }
        if !create {
            return Err(TokenError::NoKey {
                key: label,
                token: self.config.token_label.clone(),
            });
        }
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
                    Attribute::Label(label.into_bytes()),
                ],
            )
            .map_err(|e| TokenError::pkcs11("generate transport wrapping key", e))
    }

    /// Checks a transport key already in the token (from an earlier, interrupted init) before
    /// it is reused; no key is fine, one will be generated.
    pub fn check_transport_key(&self) -> Result<()> {
        match self.transport_key(false) {
            Ok(_) | Err(TokenError::NoKey { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Refuses a transport key that is not token-resident, private, sensitive and was never
    /// extractable: whoever could read it could read the sealed transport identity.
    fn check_transport_attributes(&self, key: ObjectHandle, label: &str) -> Result<()> {
        let attrs = self
            .session()
            .get_attributes(
                key,
                &[
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::NeverExtractable,
                ],
            )
            .map_err(|e| TokenError::pkcs11("read transport key attributes", e))?;
        let (mut tok, mut private, mut sens, mut extr, mut always, mut never) =
            (false, false, false, true, false, false);
        for a in attrs {
            match a {
                Attribute::Token(b) => tok = b,
                Attribute::Private(b) => private = b,
                Attribute::Sensitive(b) => sens = b,
                Attribute::Extractable(b) => extr = b,
                Attribute::AlwaysSensitive(b) => always = b,
                Attribute::NeverExtractable(b) => never = b,
                _ => {}
            }
        }
        let checks: [(&'static str, bool, bool, &'static str); 6] = [
            (
                "CKA_TOKEN",
                tok,
                true,
                "the key would vanish with the session",
            ),
            (
                "CKA_PRIVATE",
                private,
                true,
                "the key is usable without logging in",
            ),
            (
                "CKA_SENSITIVE",
                sens,
                true,
                "the token would reveal the key's value",
            ),
            (
                "CKA_EXTRACTABLE",
                extr,
                false,
                "the key can be wrapped out of the token",
            ),
            (
                "CKA_ALWAYS_SENSITIVE",
                always,
                true,
                "the key was readable at some point (imported, or made sensitive later)",
            ),
            (
                "CKA_NEVER_EXTRACTABLE",
                never,
                true,
                "the key could have been extracted at some point",
            ),
        ];
        check_attributes(&self.config, label, &checks)
    }

    /// Encrypts `plain` with AES-256-GCM inside the token: output is IV ‖ ciphertext ‖ tag.
    pub fn seal_transport(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let key = self.transport_key(true)?;
        let mut iv = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
        let iv_copy = iv;
        let params = cryptoki::mechanism::aead::GcmParams::new(
            &mut iv,
            b"root-ca transport identity",
            128u64.into(),
        )
        .map_err(|e| TokenError::pkcs11("AES-GCM parameters", e))?;
        let ct = self
            .session()
            .encrypt(&Mechanism::AesGcm(params), key, plain)
            .map_err(|e| TokenError::pkcs11("encrypt transport identity", e))?;
        let mut out = iv_copy.to_vec();
        out.extend(ct);
        Ok(out)
    }

    /// Decrypts what [`Token::seal_transport`] produced.
    pub fn open_transport(&self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            return Err(TokenError::Refused(
                "the sealed transport identity is truncated".into(),
            ));
        }
        let key = self.transport_key(false)?;
        let mut iv = [0u8; 12];
        iv.copy_from_slice(&sealed[..12]);
        let params = cryptoki::mechanism::aead::GcmParams::new(
            &mut iv,
            b"root-ca transport identity",
            128u64.into(),
        )
        .map_err(|e| TokenError::pkcs11("AES-GCM parameters", e))?;
        self.session()
            .decrypt(&Mechanism::AesGcm(params), key, &sealed[12..])
            .map(Zeroizing::new)
            .map_err(|e| {
                TokenError::pkcs11(
                    "decrypt transport identity (damaged file or wrong token?)",
                    e,
                )
            })
    }
}
