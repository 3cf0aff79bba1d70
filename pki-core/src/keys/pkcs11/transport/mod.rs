//! The seal that keeps the root's transport identity (an age X25519 secret) at rest: data
//! only the token can open, in a form that says how it was made.
//!
//! Two schemes, chosen by what the token offers when the root is made (or restored):
//! - **token-aes-256-gcm**: AES-256-GCM inside the token under a token AES key
//!   (`<key label>-transport`). Needs `C_GenerateKey` and `CKM_AES_GCM` (SoftHSM2).
//! - **token-rsa-oaep+aes-256-gcm**: a random AES-256 key encrypts the identity in software
//!   (AES-256-GCM); that key is encrypted to a token RSA key pair (`<key label>-transport`,
//!   decrypt-only, never extractable) with RSA-OAEP (SHA-256, MGF1-SHA-256), which only
//!   `C_Decrypt` in the token can undo; and the whole seal is signed by the root key, so
//!   nobody without the token can make a seal that opens (the public half alone would let
//!   anyone encrypt). Needs `CKM_RSA_PKCS_KEY_PAIR_GEN` and `CKM_RSA_PKCS_OAEP` (tpm2-pkcs11,
//!   opencryptoki, SoftHSM2).
//!
//! The file starts with a header naming the scheme; a file without it is the format written
//! before schemes existed (token AES-GCM: IV ‖ ciphertext ‖ tag) and still opens.

use cryptoki::mechanism::MechanismType;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use zeroize::Zeroizing;

use super::attributes::check_attributes;
use super::capability::MechanismUse;
use super::error::{Result, TokenError};
use super::{Token, TokenKey};

mod gcm;
mod oaep;

/// The header of a sealed file: a magic string and a format version.
pub(super) const MAGIC: &[u8; 17] = b"pki-toolkit-seal\n";
const VERSION: u8 = 2;
pub(super) const GCM_AAD: &[u8] = b"root-ca transport identity";

/// How a transport identity is sealed (recorded in the sealed file and the ceremony log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealScheme {
    /// AES-256-GCM in the token under a token AES key.
    TokenAesGcm,
    /// RSA-OAEP-SHA256 to a token RSA key for a software AES-256-GCM key, signed by the root.
    TokenRsaOaep,
}

impl SealScheme {
    fn byte(self) -> u8 {
        match self {
            SealScheme::TokenAesGcm => 1,
            SealScheme::TokenRsaOaep => 2,
        }
    }

    /// The scheme's name, as the ceremony log and `token check` print it.
    pub fn name(self) -> &'static str {
        match self {
            SealScheme::TokenAesGcm => "token-aes-256-gcm",
            SealScheme::TokenRsaOaep => "token-rsa-oaep-sha256+aes-256-gcm",
        }
    }

    /// The mechanisms the scheme needs from the token.
    pub fn needs(self) -> &'static str {
        match self {
            SealScheme::TokenAesGcm => "CKM_AES_KEY_GEN (C_GenerateKey), CKM_AES_GCM",
            SealScheme::TokenRsaOaep => "CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS_OAEP decrypt",
        }
    }
}

pub(super) fn truncated() -> TokenError {
    TokenError::Refused(
        "the sealed transport identity is truncated or malformed; restore root/transport.sealed from the ceremony backup".into(),
    )
}

/// Reads a big-endian u16-length-prefixed field.
pub(super) fn take<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    if buf.len() < 2 {
        return Err(truncated());
    }
    let n = u16::from_be_bytes([buf[0], buf[1]]) as usize;
    if buf.len() < 2 + n {
        return Err(truncated());
    }
    let (field, rest) = buf[2..].split_at(n);
    *buf = rest;
    Ok(field)
}

pub(super) fn put(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u16).to_be_bytes());
    out.extend_from_slice(field);
}

impl Token {
    pub(super) fn transport_label(&self) -> String {
        format!("{}-transport", self.config.key_label)
    }

    /// The transport object already in the token, and its scheme: a secret key (AES-GCM) or
    /// a private key (RSA-OAEP). Refuses two of either.
    pub(super) fn existing_transport(&self) -> Result<Option<(SealScheme, ObjectHandle)>> {
        let label = self.transport_label();
        let mut found = None;
        for (class, scheme, what) in [
            (
                ObjectClass::SECRET_KEY,
                SealScheme::TokenAesGcm,
                "secret-key",
            ),
            (
                ObjectClass::PRIVATE_KEY,
                SealScheme::TokenRsaOaep,
                "private-key",
            ),
        ] {
            match self.find(class, &label)?.as_slice() {
                [] => {}
                [k] if found.is_none() => found = Some((scheme, *k)),
                many => {
                    return Err(TokenError::AmbiguousKey {
                        key: label,
                        token: self.config.token_label.clone(),
                        class: what,
                        count: many.len().max(2),
                        id: String::new(),
                    })
                }
            }
        }
        Ok(found)
    }

    /// The scheme a new seal would use on this token: its AES-GCM where the token lists it,
    /// else RSA-OAEP; None when it offers neither.
    pub fn preferred_seal(&self) -> Option<SealScheme> {
        let gcm = self.offers(MechanismType::AES_KEY_GEN, MechanismUse::Generate)
            && self.offers(MechanismType::AES_GCM, MechanismUse::Encrypt)
            && self.offers(MechanismType::AES_GCM, MechanismUse::Decrypt);
        if gcm {
            return Some(SealScheme::TokenAesGcm);
        }
        self.oaep_seal_possible()
            .then_some(SealScheme::TokenRsaOaep)
    }

    /// Makes sure a transport key is in the token before the root key is generated, so that a
    /// token that cannot seal fails before anything else exists in it. A transport key left by
    /// an earlier, interrupted run is reused only if it never left the token. Returns the
    /// scheme seals will use.
    pub fn prepare_transport(&self) -> Result<SealScheme> {
        if let Some((scheme, key)) = self.existing_transport()? {
            self.check_transport_attributes(key, &self.transport_label(), scheme)?;
            return Ok(scheme);
        }
        let unsupported = |why: String| {
            TokenError::Unsupported {
            token: self.config.token_label.clone(),
            what: "seal the root's transport identity".into(),
            why,
            next: "Use a token that offers AES-GCM or RSA-OAEP decryption (`root-ca token check` lists what this one offers)".into(),
        }
        };
        match self.preferred_seal() {
            Some(SealScheme::TokenAesGcm) => match self.generate_aes_transport() {
                Ok(_) => Ok(SealScheme::TokenAesGcm),
                // A token listing AES key generation without implementing C_GenerateKey.
                Err(e) if self.oaep_seal_possible() => {
                    self.generate_rsa_transport().map_err(|e2| {
                        unsupported(format!(
                            "AES key generation failed ({e}), and so did RSA ({e2})"
                        ))
                    })?;
                    Ok(SealScheme::TokenRsaOaep)
                }
                Err(e) => Err(e),
            },
            Some(SealScheme::TokenRsaOaep) => {
                self.generate_rsa_transport()?;
                Ok(SealScheme::TokenRsaOaep)
            }
            None => Err(unsupported(format!(
                "it offers neither {} nor {}",
                SealScheme::TokenAesGcm.needs(),
                SealScheme::TokenRsaOaep.needs()
            ))),
        }
    }

    /// Checks a transport key already in the token (from an earlier, interrupted init) before
    /// it is reused; no key is fine.
    pub fn check_transport_key(&self) -> Result<()> {
        match self.existing_transport()? {
            Some((scheme, key)) => {
                self.check_transport_attributes(key, &self.transport_label(), scheme)
            }
            None => Ok(()),
        }
    }

    /// Refuses a transport key that is not token-resident, private, sensitive and was never
    /// extractable: whoever could read it could read the sealed transport identity.
    fn check_transport_attributes(
        &self,
        key: ObjectHandle,
        label: &str,
        scheme: SealScheme,
    ) -> Result<()> {
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
        check_attributes(&self.config, label, &checks)?;
        let _ = scheme;
        Ok(())
    }

    /// Seals `plain` with the token's transport key (made by [`Token::prepare_transport`]);
    /// under RSA-OAEP the seal is signed by `root`, the root key of this token.
    pub fn seal_transport(&self, plain: &[u8], root: &TokenKey) -> Result<Vec<u8>> {
        let (scheme, key) = match self.existing_transport()? {
            Some(found) => found,
            None => {
                self.prepare_transport()?;
                self.existing_transport()?.ok_or_else(truncated)?
            }
        };
        self.check_transport_attributes(key, &self.transport_label(), scheme)?;
        let mut out = MAGIC.to_vec();
        out.extend([VERSION, scheme.byte()]);
        match scheme {
            SealScheme::TokenAesGcm => out.extend(self.gcm_seal(key, plain)?),
            SealScheme::TokenRsaOaep => self.oaep_seal(&mut out, plain, root)?,
        }
        Ok(out)
    }

    /// Opens what [`Token::seal_transport`] made (or a seal from before schemes existed).
    /// `root_spki` is the root certificate's public key, which signed an RSA-OAEP seal.
    pub fn open_transport(&self, sealed: &[u8], root_spki: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let Some(rest) = sealed.strip_prefix(&MAGIC[..]) else {
            return self.gcm_open(sealed);
        };
        let [version, scheme, body @ ..] = rest else {
            return Err(truncated());
        };
        if *version != VERSION {
            return Err(TokenError::Refused(format!(
                "the sealed transport identity has format version {version}; this root-ca reads version {VERSION}: use the root-ca release that wrote it"
            )));
        }
        match *scheme {
            1 => self.gcm_open(body),
            2 => self.oaep_open(sealed, body, root_spki),
            other => Err(TokenError::Refused(format!(
                "the sealed transport identity names seal scheme {other}, which this root-ca does not know"
            ))),
        }
    }
}
