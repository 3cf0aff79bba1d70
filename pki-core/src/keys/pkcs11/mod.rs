//! The root key in a PKCS#11 token. The private key is generated inside the token
//! (sensitive, never extractable) and every signature is a `C_Sign` call; this module is the
//! only place that talks to the token, and [`TokenKey`] is the same
//! [`Signer`](crate::keys::signer::Signer) the file-backed intermediate key is.

mod der;
mod error;
mod key;
mod transport;

pub use error::TokenError;
pub use key::TokenKey;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use serde::Serialize;
use zeroize::Zeroizing;

use der::{der_rsa_public_key, strip_zeros, unwrap_point};
use error::Result;

/// Which module, token and key a ceremony uses.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// Path of the PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label; the token is found in whichever slot holds it.
    pub token_label: String,
    /// The key pair's label (CKA_LABEL).
    pub key_label: String,
    /// The key's CKA_ID (hex) recorded when it was generated; None for state written before
    /// IDs were recorded, when the label alone must then match exactly one key pair.
    pub key_id: Option<String>,
}

/// An open, logged-in session with the token.
pub struct Token {
    _ctx: Pkcs11,
    session: Mutex<Session>,
    /// The configuration the session was opened with.
    pub config: TokenConfig,
}

/// The attributes of a generated key, read back from the token and recorded in the log.
#[derive(Clone, Debug, Serialize)]
pub struct KeyAttributes {
    /// The key's CKA_LABEL.
    pub label: String,
    /// The key's CKA_ID, hex.
    pub id: String,
    /// The key algorithm, as `p256`, `rsa3072`, ...
    pub algorithm: String,
    /// CKA_TOKEN: the key is stored in the token, not only in the session (must be true).
    pub token: bool,
    /// CKA_PRIVATE: the key is usable only after login (must be true).
    pub private: bool,
    /// CKA_SENSITIVE: the token never reveals the key's value (must be true).
    pub sensitive: bool,
    /// CKA_EXTRACTABLE: the key can be wrapped out of the token (must be false).
    pub extractable: bool,
    /// CKA_NEVER_EXTRACTABLE: the key was never extractable (must be true).
    pub never_extractable: bool,
    /// CKA_ALWAYS_SENSITIVE: the key was always sensitive (must be true).
    pub always_sensitive: bool,
    /// CKA_SIGN: the key can sign (must be true).
    pub sign: bool,
}

impl Token {
    /// Loads the module, finds the token by label (slot IDs change after init) and logs in.
    pub fn open(config: &TokenConfig, pin: &Zeroizing<String>) -> Result<Arc<Self>> {
        if !config.module.exists() {
            return Err(TokenError::Module {
                module: config.module.clone(),
                reason: "no such file".into(),
            });
        }
        let ctx = Pkcs11::new(&config.module).map_err(|e| TokenError::Module {
            module: config.module.clone(),
            reason: e.to_string(),
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(TokenError::Module {
                    module: config.module.clone(),
                    reason: format!("initialisation failed ({e}); for SoftHSM2 check that SOFTHSM2_CONF names a config whose tokendir exists"),
                })
            }
        }
        let slot = find_slot(&ctx, config)?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| TokenError::pkcs11("open session", e))?;
        let auth = AuthPin::from(pin.as_str().to_owned());
        match session.login(UserType::User, Some(&auth)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _))
            | Err(CkError::Pkcs11(RvError::PinLenRange, _)) => {
                return Err(TokenError::WrongPin {
                    label: config.token_label.clone(),
                })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(TokenError::PinLocked {
                    label: config.token_label.clone(),
                })
            }
            Err(e) => return Err(TokenError::pkcs11("login", e)),
        }
        Ok(Arc::new(Token {
            _ctx: ctx,
            session: Mutex::new(session),
            config: config.clone(),
        }))
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn find(&self, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>> {
        self.find_with_id(class, label, None)
    }

    fn find_with_id(
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
    fn find_one(
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

    fn object_id(&self, object: ObjectHandle) -> Result<Vec<u8>> {
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

    /// Generates the root key pair inside the token. Refuses when the label is taken.
    pub fn generate(self: &Arc<Self>, alg: KeyAlgorithm) -> Result<(TokenKey, KeyAttributes)> {
        let label = self.config.key_label.clone();
        if !self.find(ObjectClass::PRIVATE_KEY, &label)?.is_empty()
            || !self.find(ObjectClass::PUBLIC_KEY, &label)?.is_empty()
        {
            return Err(TokenError::KeyExists {
                key: label,
                token: self.config.token_label.clone(),
            });
        }
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ]
        };
        let mut public = common(false);
        public.extend([
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
        ]);
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            // A signing key and nothing else: SoftHSM2 would otherwise default these to true.
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
        ]);
        let mechanism = match alg {
            KeyAlgorithm::P256 | KeyAlgorithm::P384 => {
                let curve = if alg == KeyAlgorithm::P256 {
                    oid::P256
                } else {
                    oid::P384
                };
                public.push(Attribute::EcParams(oid::der(curve)));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Ed25519 => {
                public.push(Attribute::EcParams(oid::der(oid::ED25519)));
                Mechanism::EccEdwardsKeyPairGen
            }
            KeyAlgorithm::Rsa(bits) => {
                public.push(Attribute::ModulusBits((bits as u64).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        self.session()
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| TokenError::pkcs11("generate key pair", e))?;
        let key = self.key_by(&label, Some(&id))?;
        let attrs = self.read_attributes(&key)?;
        Ok((key, attrs))
    }

    /// Reads back what the token says about the private key, to prove it is not extractable.
    pub fn read_attributes(&self, key: &TokenKey) -> Result<KeyAttributes> {
        let attrs = self
            .session()
            .get_attributes(
                key.private,
                &[
                    AttributeType::Id,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::Sign,
                ],
            )
            .map_err(|e| TokenError::pkcs11("read key attributes", e))?;
        let mut out = KeyAttributes {
            label: self.config.key_label.clone(),
            id: String::new(),
            algorithm: key.alg.to_string(),
            token: false,
            private: false,
            sensitive: false,
            extractable: true,
            never_extractable: false,
            always_sensitive: false,
            sign: false,
        };
        for a in attrs {
            match a {
                Attribute::Id(v) => out.id = hex::encode(v),
                Attribute::Token(b) => out.token = b,
                Attribute::Private(b) => out.private = b,
                Attribute::Sensitive(b) => out.sensitive = b,
                Attribute::Extractable(b) => out.extractable = b,
                Attribute::NeverExtractable(b) => out.never_extractable = b,
                Attribute::AlwaysSensitive(b) => out.always_sensitive = b,
                Attribute::Sign(b) => out.sign = b,
                _ => {}
            }
        }
        let checks: [(&'static str, bool, bool, &'static str); 7] = [
            (
                "CKA_TOKEN",
                out.token,
                true,
                "the key would vanish with the session",
            ),
            (
                "CKA_PRIVATE",
                out.private,
                true,
                "the key is usable without logging in",
            ),
            (
                "CKA_SENSITIVE",
                out.sensitive,
                true,
                "the token would reveal the key's value",
            ),
            (
                "CKA_EXTRACTABLE",
                out.extractable,
                false,
                "the key can be wrapped out of the token",
            ),
            (
                "CKA_ALWAYS_SENSITIVE",
                out.always_sensitive,
                true,
                "the key was readable at some point (imported, or made sensitive later)",
            ),
            (
                "CKA_NEVER_EXTRACTABLE",
                out.never_extractable,
                true,
                "the key could have been extracted at some point",
            ),
            ("CKA_SIGN", out.sign, true, "the key cannot sign"),
        ];
        check_attributes(&self.config, &out.label, &checks)?;
        Ok(out)
    }

    /// The existing key named in the config: its label and, when recorded, its CKA_ID must
    /// match exactly one private and one public object, which must carry the same CKA_ID, and
    /// the private key's attributes must show it never left the token.
    pub fn key(self: &Arc<Self>) -> Result<TokenKey> {
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
        self.read_attributes(&key)?;
        Ok(key)
    }

    fn key_by(self: &Arc<Self>, label: &str, id: Option<&[u8]>) -> Result<TokenKey> {
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
        let key = TokenKey {
            token: Arc::clone(self),
            private,
            alg,
            public_raw: raw,
            last_error: std::sync::Mutex::new(None),
        };
        key.prove_pair(label)?;
        Ok(key)
    }

    fn sign_raw(
        &self,
        mechanism: &Mechanism<'_>,
        key: ObjectHandle,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        self.session()
            .sign(mechanism, key, data)
            .map_err(|e| TokenError::pkcs11("sign", e))
    }
}

/// (attribute, value read back, value required, why it matters): the first mismatch is refused.
pub(super) fn check_attributes(
    config: &TokenConfig,
    label: &str,
    checks: &[(&'static str, bool, bool, &'static str)],
) -> Result<()> {
    for (attribute, value, want, why) in checks {
        if value != want {
            return Err(TokenError::WeakKey {
                key: label.to_string(),
                token: config.token_label.clone(),
                attribute,
                value: *value,
                why,
            });
        }
    }
    Ok(())
}

fn find_slot(ctx: &Pkcs11, config: &TokenConfig) -> Result<Slot> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| TokenError::pkcs11("list slots", e))?;
    let mut found = Vec::new();
    let mut matching = Vec::new();
    for s in slots {
        if let Ok(info) = ctx.get_token_info(s) {
            let label = info.label().trim_end().to_string();
            if label == config.token_label {
                matching.push(s);
            }
            found.push(format!("'{label}'"));
        }
    }
    // Two tokens under one label: picking one would sign with whichever the module lists
    // first, as key lookup refuses to guess between two keys.
    match matching.as_slice() {
        [one] => return Ok(*one),
        [] => {}
        many => {
            return Err(TokenError::AmbiguousToken {
                label: config.token_label.clone(),
                module: config.module.clone(),
                count: many.len(),
            })
        }
    }
    Err(TokenError::NoToken {
        label: config.token_label.clone(),
        module: config.module.clone(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

/// The module path SoftHSM2 installs on Debian.
pub fn default_module() -> &'static Path {
    Path::new("/usr/lib/softhsm/libsofthsm2.so")
}
