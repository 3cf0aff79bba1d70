//! Finding objects in the token: by label and CKA_ID, exactly one of each, and the existing
//! key pair as a [`TokenKey`] whose public key is read back and proven to match.

use std::sync::Arc;

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};

use super::capability::MechanismUse;
use super::der::{der_rsa_public_key, strip_zeros, unwrap_point};
use super::error::{Result, TokenError};
use super::key::SignPath;
use super::{KeyPolicy, Token, TokenKey};
use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;

impl Token {
    pub(super) fn find(&self, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>> {
        self.find_with_id(class, label, None)
    }

    pub(super) fn find_with_id(
        &self,
        class: ObjectClass,
        label: &str,
        id: Option<&[u8]>,
    ) -> Result<Vec<ObjectHandle>> {
        let mut template = vec![
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        if let Some(id) = id {
            template.push(Attribute::Id(id.to_vec()));
        }
        self.session()
            .find_objects(&template)
            .map_err(|e| TokenError::pkcs11("find objects", e))
    }

    /// The one object of `class` with this label (and CKA_ID, when recorded). Zero is
    /// `NoKey`; more than one is refused: `first()` would let a planted object sign.
    pub(super) fn find_one(
        &self,
        class: ObjectClass,
        what: &'static str,
        label: &str,
        id: Option<&[u8]>,
    ) -> Result<ObjectHandle> {
        let found = self.find_with_id(class, label, id)?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(TokenError::NoKey {
                key: label.to_string(),
                token: self.config.token_label.clone(),
            }),
            many => Err(TokenError::AmbiguousKey {
                key: label.to_string(),
                token: self.config.token_label.clone(),
                class: what,
                count: many.len(),
                id: id
                    .map(|i| format!(" with CKA_ID {}", hex::encode(i)))
                    .unwrap_or_default(),
            }),
        }
    }

    /// A boolean attribute of `object`; false when the token does not know the attribute
    /// (an older token has no `CKA_ALWAYS_AUTHENTICATE`).
    pub(super) fn bool_attribute(&self, object: ObjectHandle, a: AttributeType) -> Result<bool> {
        match self.session().get_attributes(object, &[a]) {
            Ok(attrs) => Ok(attrs.into_iter().any(|x| {
                matches!(
                    x,
                    Attribute::AlwaysAuthenticate(true)
                        | Attribute::WrapWithTrusted(true)
                        | Attribute::Decrypt(true)
                        | Attribute::Unwrap(true)
                        | Attribute::Derive(true)
                )
            })),
            Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::AttributeTypeInvalid,
                _,
            )) => Ok(false),
            Err(e) => Err(TokenError::pkcs11_about(
                "read an attribute",
                &format!("attribute {a}"),
                e,
            )),
        }
    }

    pub(super) fn object_id(&self, object: ObjectHandle) -> Result<Vec<u8>> {
        let attrs = self
            .session()
            .get_attributes(object, &[AttributeType::Id])
            .map_err(|e| TokenError::pkcs11("read CKA_ID", e))?;
        Ok(attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(v) => Some(v),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// The existing key named in the config: its label and, when recorded, its CKA_ID must
    /// match exactly one private and one public object, which must carry the same CKA_ID, and
    /// the private key's attributes must show it never left the token.
    pub fn key(self: &Arc<Self>) -> Result<TokenKey> {
        self.key_as(KeyPolicy::NeverExtractable)
    }

    /// [`Token::key`], with the attribute checks of `policy` (a backup root key is extractable
    /// under a wrap key, see [`KeyPolicy`]).
    pub fn key_as(self: &Arc<Self>, policy: KeyPolicy) -> Result<TokenKey> {
        let id = match &self.config.key_id {
            Some(h) => Some(hex::decode(h).map_err(|_| {
                TokenError::Refused(format!(
                    "the recorded CKA_ID '{h}' of key '{}' is not hex; the CA state file is damaged",
                    self.config.key_label
                ))
            })?),
            None => None,
        };
        let label = self.config.key_label.clone();
        let key = self.key_by(&label, id.as_deref())?;
        self.read_attributes_as(&key, policy)?;
        Ok(key)
    }

    pub(super) fn key_by(self: &Arc<Self>, label: &str, id: Option<&[u8]>) -> Result<TokenKey> {
        let private = self.find_one(ObjectClass::PRIVATE_KEY, "private-key", label, id)?;
        let public = self.find_one(ObjectClass::PUBLIC_KEY, "public-key", label, id)?;
        let (priv_id, pub_id) = (self.object_id(private)?, self.object_id(public)?);
        if priv_id != pub_id || priv_id.is_empty() {
            return Err(TokenError::KeyPairMismatch {
                key: label.to_string(),
                token: self.config.token_label.clone(),
                reason: format!(
                    "private CKA_ID '{}', public CKA_ID '{}'",
                    hex::encode(&priv_id),
                    hex::encode(&pub_id)
                ),
            });
        }
        let attrs = self
            .session()
            .get_attributes(
                public,
                &[
                    AttributeType::KeyType,
                    AttributeType::EcParams,
                    AttributeType::EcPoint,
                    AttributeType::Modulus,
                    AttributeType::PublicExponent,
                ],
            )
            .map_err(|e| TokenError::pkcs11("read public key", e))?;
        let (mut kt, mut params, mut point, mut n, mut e) = (None, None, None, None, None);
        for a in attrs {
            match a {
                Attribute::KeyType(k) => kt = Some(k),
                Attribute::EcParams(v) => params = Some(v),
                Attribute::EcPoint(v) => point = Some(v),
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                _ => {}
            }
        }
        let unsupported = || TokenError::Refused(format!("key '{label}' has an unsupported type"));
        let (alg, raw) = match kt {
            Some(k) if k == KeyType::EC || k == KeyType::EC_EDWARDS => {
                let params = params.ok_or_else(unsupported)?;
                let point = point.ok_or_else(unsupported)?;
                let curves = [
                    (oid::P256, KeyAlgorithm::P256, 65),
                    (oid::P384, KeyAlgorithm::P384, 97),
                    (oid::ED25519, KeyAlgorithm::Ed25519, 32),
                ];
                let (alg, len) = curves
                    .into_iter()
                    .find(|(curve, _, _)| oid::der(curve) == params)
                    .map(|(_, alg, len)| (alg, len))
                    .ok_or_else(unsupported)?;
                (alg, unwrap_point(&point, len).ok_or_else(unsupported)?)
            }
            Some(k) if k == KeyType::RSA => {
                let n = n.ok_or_else(unsupported)?;
                let e = e.ok_or_else(unsupported)?;
                let bits = (strip_zeros(&n).len() * 8) as u32;
                (KeyAlgorithm::Rsa(bits), der_rsa_public_key(&n, &e))
            }
            _ => return Err(unsupported()),
        };
        let path =
            SignPath::choose(alg, |m| self.offers(m, MechanismUse::Sign)).ok_or_else(|| {
                TokenError::Unsupported {
                    token: self.config.token_label.clone(),
                    what: format!("sign with a {alg} key"),
                    why: "it lists no signature mechanism for this key type".into(),
                    next: "Run `root-ca token check` to see the mechanisms it offers".into(),
                }
            })?;
        let always_authenticate =
            self.bool_attribute(private, AttributeType::AlwaysAuthenticate)?;
        let key = TokenKey {
            token: Arc::clone(self),
            private,
            alg,
            public_raw: raw,
            path,
            always_authenticate,
            last_error: std::sync::Mutex::new(None),
        };
        key.prove_pair(label)?;
        Ok(key)
    }
}
