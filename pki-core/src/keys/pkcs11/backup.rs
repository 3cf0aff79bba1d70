//! A root key that survives its token: wrapped out of the token under an AES key the caller
//! brings (CKM_AES_KEY_WRAP_PAD, RFC 5649), and unwrapped into a fresh token. The wrap key
//! is imported as a session object only for the call and destroyed after it; the private key
//! never exists in clear outside a token.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::error::{Result, TokenError};
use super::{KeyPolicy, Token, TokenKey};

/// The public half of a key pair as the token stores it, enough to recreate the public object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicParts {
    /// CKK_EC: CKA_EC_PARAMS (the curve OID, DER) and CKA_EC_POINT (as the token returned it).
    Ec {
        /// CKA_EC_PARAMS.
        params: Vec<u8>,
        /// CKA_EC_POINT.
        point: Vec<u8>,
    },
    /// CKK_EC_EDWARDS (Ed25519): same attributes.
    EcEdwards {
        /// CKA_EC_PARAMS.
        params: Vec<u8>,
        /// CKA_EC_POINT.
        point: Vec<u8>,
    },
    /// CKK_RSA: CKA_MODULUS and CKA_PUBLIC_EXPONENT.
    Rsa {
        /// CKA_MODULUS.
        modulus: Vec<u8>,
        /// CKA_PUBLIC_EXPONENT.
        exponent: Vec<u8>,
    },
}

/// A root key pair taken out of a token: the private key wrapped, the public key in clear.
#[derive(Clone, Debug)]
pub struct KeyBackup {
    /// CKA_LABEL of both halves.
    pub label: String,
    /// CKA_ID of both halves.
    pub id: Vec<u8>,
    /// The private key, wrapped with CKM_AES_KEY_WRAP_PAD.
    pub wrapped: Vec<u8>,
    /// The public key's attributes.
    pub public: PublicParts,
}

impl PublicParts {
    fn key_type(&self) -> KeyType {
        match self {
            PublicParts::Ec { .. } => KeyType::EC,
            PublicParts::EcEdwards { .. } => KeyType::EC_EDWARDS,
            PublicParts::Rsa { .. } => KeyType::RSA,
        }
    }
}

impl Token {
    /// Imports `value` as a session-only AES key that can wrap and unwrap and nothing else:
    /// sensitive, not extractable, gone when the session ends (destroyed earlier by the caller).
    /// `trusted` (CKA_TRUSTED) needs a security officer login, and makes it a public object.
    fn session_wrap_key(&self, value: &[u8; 32], trusted: bool) -> Result<ObjectHandle> {
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(!trusted),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(!trusted),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Value(value.to_vec()),
        ];
        if trusted {
            template.push(Attribute::Trusted(true));
        }
        let made = self.session().create_object(&template);
        // The template's copy of the key value is wiped; the token keeps its own.
        for a in template.iter_mut() {
            if let Attribute::Value(v) = a {
                zeroize::Zeroize::zeroize(v);
            }
        }
        made.map_err(|e| TokenError::pkcs11("import the backup wrap key", e))
    }

    /// Checks that a backup key may be wrapped only under a trusted key.
    fn check_wrap_with_trusted(&self, private: ObjectHandle, label: &str) -> Result<()> {
        let value = self.bool_attribute(private, AttributeType::WrapWithTrusted)?;
        super::attributes::check_attributes(
            &self.config,
            label,
            &[(
                "CKA_WRAP_WITH_TRUSTED",
                value,
                true,
                "the key could be wrapped under any key the user makes",
            )],
        )
    }

    /// Wraps the root key (generated with [`KeyPolicy::WrappedBackup`]) under `wrap_key`. The
    /// key may be wrapped only under a trusted key (CKA_WRAP_WITH_TRUSTED), so the wrap key is
    /// imported by the security officer (`so_pin`) as a trusted session object; the session
    /// then logs in as the user again (`user_pin`) to wrap. The wrap key is destroyed after.
    pub fn backup_key(
        &self,
        key: &TokenKey,
        wrap_key: &Zeroizing<[u8; 32]>,
        user_pin: &Zeroizing<String>,
        so_pin: &Zeroizing<String>,
    ) -> Result<KeyBackup> {
        let label = self.config.key_label.clone();
        self.read_attributes_as(key, KeyPolicy::WrappedBackup)?;
        self.check_wrap_with_trusted(key.private, &label)?;
        let id = key.object_id()?;
        let public = self.find_one(ObjectClass::PUBLIC_KEY, "public-key", &label, Some(&id))?;
        let public = self.public_parts(public)?;
        self.relogin(
            UserType::So,
            so_pin,
            "security officer login (check the SO PIN)",
        )?;
        let wk = self.session_wrap_key(wrap_key, true);
        self.relogin(
            UserType::User,
            user_pin,
            "user login after the security officer",
        )?;
        let wk = wk?;
        // Private objects get new handles after a new login: find the key again.
        let wrapped = self
            .find_one(ObjectClass::PRIVATE_KEY, "private-key", &label, Some(&id))
            .and_then(|private| {
                self.session()
                    .wrap_key(&Mechanism::AesKeyWrapPad, wk, private)
                    .map_err(|e| TokenError::pkcs11("wrap the root key (is it a backup key?)", e))
            });
        let _ = self.session().destroy_object(wk);
        Ok(KeyBackup {
            label,
            id,
            wrapped: wrapped?,
            public,
        })
    }

    /// Logs the session out and in again as `user`.
    fn relogin(&self, user: UserType, pin: &Zeroizing<String>, op: &'static str) -> Result<()> {
        let session = self.session();
        let _ = session.logout();
        session
            .login(user, Some(&AuthPin::from(pin.as_str().to_owned())))
            .map_err(|e| TokenError::pkcs11(op, e))
    }

    fn public_parts(&self, public: ObjectHandle) -> Result<PublicParts> {
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
        let unsupported = || TokenError::Refused("the root key has an unsupported type".into());
        match (kt, params, point, n, e) {
            (Some(k), Some(params), Some(point), _, _) if k == KeyType::EC => {
                Ok(PublicParts::Ec { params, point })
            }
            (Some(k), Some(params), Some(point), _, _) if k == KeyType::EC_EDWARDS => {
                Ok(PublicParts::EcEdwards { params, point })
            }
            (Some(k), _, _, Some(modulus), Some(exponent)) if k == KeyType::RSA => {
                Ok(PublicParts::Rsa { modulus, exponent })
            }
            _ => Err(unsupported()),
        }
    }

    /// Unwraps `backup` into this token under `wrap_key` and recreates its public object, with
    /// the same label and CKA_ID; refuses when the label is taken. The restored private key is
    /// again sensitive and extractable only wrapped. The pair is proven by a test signature.
    pub fn restore_key(
        self: &Arc<Self>,
        backup: &KeyBackup,
        wrap_key: &Zeroizing<[u8; 32]>,
    ) -> Result<TokenKey> {
        let label = &backup.label;
        if !self.find(ObjectClass::PRIVATE_KEY, label)?.is_empty()
            || !self.find(ObjectClass::PUBLIC_KEY, label)?.is_empty()
        {
            return Err(TokenError::KeyExists {
                key: label.clone(),
                token: self.config.token_label.clone(),
            });
        }
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(backup.id.clone()),
                Attribute::KeyType(backup.public.key_type()),
            ]
        };
        let mut private = common(true);
        private.extend([
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::WrapWithTrusted(true),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ]);
        let mut public = common(false);
        public.extend([
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Verify(true),
        ]);
        match &backup.public {
            PublicParts::Ec { params, point } | PublicParts::EcEdwards { params, point } => {
                public.push(Attribute::EcParams(params.clone()));
                public.push(Attribute::EcPoint(point.clone()));
            }
            PublicParts::Rsa { modulus, exponent } => {
                public.push(Attribute::Modulus(modulus.clone()));
                public.push(Attribute::PublicExponent(exponent.clone()));
            }
        }
        let wk = self.session_wrap_key(wrap_key, false)?;
        let unwrapped = self
            .session()
            .unwrap_key(&Mechanism::AesKeyWrapPad, wk, &backup.wrapped, &private)
            .map_err(|e| {
                TokenError::pkcs11(
                    "unwrap the root key (wrong wrap key, or a damaged backup?)",
                    e,
                )
            });
        let _ = self.session().destroy_object(wk);
        let unwrapped = unwrapped?;
        if let Err(e) = self.session().create_object(&public) {
            let _ = self.session().destroy_object(unwrapped);
            return Err(TokenError::pkcs11("create the root's public key object", e));
        }
        let key = self.key_by(label, Some(&backup.id))?;
        self.read_attributes_as(&key, KeyPolicy::WrappedBackup)?;
        self.check_wrap_with_trusted(key.private, label)?;
        Ok(key)
    }

    /// Changes the user PIN of the logged-in token (C_SetPIN), e.g. to the PIN custody holds.
    pub fn change_user_pin(&self, old: &Zeroizing<String>, new: &Zeroizing<String>) -> Result<()> {
        self.session()
            .set_pin(
                &AuthPin::from(old.as_str().to_owned()),
                &AuthPin::from(new.as_str().to_owned()),
            )
            .map_err(|e| TokenError::pkcs11("change the user PIN", e))
    }
}

impl TokenKey {
    fn object_id(&self) -> Result<Vec<u8>> {
        let attrs = self
            .token
            .session()
            .get_attributes(self.private, &[AttributeType::Id])
            .map_err(|e| TokenError::pkcs11("read CKA_ID", e))?;
        Ok(attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(v) => Some(v),
                _ => None,
            })
            .unwrap_or_default())
    }
}
