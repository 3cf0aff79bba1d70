//! The root key in a PKCS#11 token. The private key is generated inside the token
//! (sensitive, never extractable) and every signature is a `C_Sign` call; this module is the
//! only place that talks to the token, and [`TokenKey`] is the same [`Signer`] the file-backed
//! intermediate key is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::x509::algorithm::KeyAlgorithm;
use crate::keys::signer::Signer;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use serde::Serialize;
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

/// Errors of the token. Each says what to check next; none carries the PIN.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot load the PKCS#11 module {module}: {reason}. Check the path in [token] module / --pkcs11-module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so from the softhsm2 package)")]
    Module { module: PathBuf, reason: String },

    #[error("no token labelled '{label}' in {module} (tokens found: {found}). Check the token label, and SOFTHSM2_CONF for SoftHSM2")]
    NoToken {
        label: String,
        module: PathBuf,
        found: String,
    },

    #[error("token '{label}' refused the PIN (wrong PIN). Check the PIN source; repeated failures lock the token")]
    WrongPin { label: String },

    #[error(
        "token '{label}' is locked after too many wrong PINs; the security officer must unblock it"
    )]
    PinLocked { label: String },

    #[error("no private key labelled '{key}' in token '{token}'. Check the key label, or generate the key first")]
    NoKey { key: String, token: String },

    #[error("token '{token}' holds {count} {class} objects labelled '{key}'{id}; refusing to guess which one signs. Remove the objects not generated for this CA (pkcs11-tool --list-objects shows them)")]
    AmbiguousKey {
        key: String,
        token: String,
        class: &'static str,
        count: usize,
        /// ` with CKA_ID <hex>` when the lookup used the recorded ID, else empty.
        id: String,
    },

    #[error("the private and public objects labelled '{key}' in token '{token}' do not belong together ({reason}); refusing to sign. Check the token's objects with pkcs11-tool --list-objects")]
    KeyPairMismatch {
        key: String,
        token: String,
        reason: String,
    },

    #[error("key '{key}' in token '{token}' has {attribute}={value}: {why}; refusing to use it. Use a key generated inside the token by this toolkit")]
    WeakKey {
        key: String,
        token: String,
        attribute: &'static str,
        value: bool,
        why: &'static str,
    },

    #[error("token '{token}' already holds a key labelled '{key}'; refusing to create a second one. Choose a new key label")]
    KeyExists { key: String, token: String },

    #[error("PKCS#11 {op} failed: {reason}")]
    Pkcs11 { op: &'static str, reason: String },

    #[error("the token's signature is malformed: {0}")]
    BadSignature(String),

    #[error("{0}")]
    Refused(String),
}

impl TokenError {
    pub fn pkcs11(op: &'static str, e: impl std::fmt::Display) -> Self {
        TokenError::Pkcs11 {
            op,
            reason: e.to_string(),
        }
    }
}

type Result<T, E = TokenError> = std::result::Result<T, E>;

const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Which module, token and key a ceremony uses.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub module: PathBuf,
    pub token_label: String,
    pub key_label: String,
    /// The key's CKA_ID (hex) recorded when it was generated; None for state written before
    /// IDs were recorded, when the label alone must then match exactly one key pair.
    pub key_id: Option<String>,
}

/// An open, logged-in session with the token.
pub struct Token {
    _ctx: Pkcs11,
    session: Mutex<Session>,
    pub config: TokenConfig,
}

/// The attributes of a generated key, read back from the token and recorded in the log.
#[derive(Clone, Debug, Serialize)]
pub struct KeyAttributes {
    pub label: String,
    pub id: String,
    pub algorithm: String,
    pub token: bool,
    pub private: bool,
    pub sensitive: bool,
    pub extractable: bool,
    pub never_extractable: bool,
    pub always_sensitive: bool,
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
                let oid = if alg == KeyAlgorithm::P256 {
                    OID_P256
                } else {
                    OID_P384
                };
                public.push(Attribute::EcParams(oid.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Ed25519 => {
                public.push(Attribute::EcParams(OID_ED25519.to_vec()));
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
                let (alg, len) = match params.as_slice() {
                    p if p == OID_P256 => (KeyAlgorithm::P256, 65),
                    p if p == OID_P384 => (KeyAlgorithm::P384, 97),
                    p if p == OID_ED25519 => (KeyAlgorithm::Ed25519, 32),
                    _ => return Err(unsupported()),
                };
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
        };
        key.prove_pair(label)?;
        Ok(key)
    }

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
fn check_attributes(
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
    for s in slots {
        if let Ok(info) = ctx.get_token_info(s) {
            let label = info.label().trim_end().to_string();
            if label == config.token_label {
                return Ok(s);
            }
            found.push(format!("'{label}'"));
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

/// `CKA_EC_POINT` is a DER OCTET STRING around the point, but some tokens return it bare.
fn unwrap_point(v: &[u8], len: usize) -> Option<Vec<u8>> {
    if v.len() == len {
        return Some(v.to_vec());
    }
    match v {
        [0x04, l, rest @ ..] if *l as usize == len && rest.len() == len => Some(rest.to_vec()),
        [0x04, 0x81, l, rest @ ..] if *l as usize == len && rest.len() == len => {
            Some(rest.to_vec())
        }
        _ => None,
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let b = strip_zeros(&bytes);
        out.push(0x80 | b.len() as u8);
        out.extend_from_slice(b);
    }
}

/// A positive, minimal DER INTEGER from big-endian magnitude bytes.
fn der_uint(mag: &[u8], out: &mut Vec<u8>) {
    let m = strip_zeros(mag);
    let m = if m.is_empty() { &[0u8][..] } else { m };
    let pad = m[0] & 0x80 != 0;
    out.push(0x02);
    der_len(m.len() + pad as usize, out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(m);
}

fn der_sequence(body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

fn der_rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    der_uint(n, &mut body);
    der_uint(e, &mut body);
    der_sequence(body)
}

/// `CKM_ECDSA` gives fixed-width r‖s; X.509 wants `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn ecdsa_raw_to_der(raw: &[u8], field_len: usize) -> Result<Vec<u8>> {
    if raw.len() != 2 * field_len {
        return Err(TokenError::BadSignature(format!(
            "ECDSA signature of {} bytes, expected {}",
            raw.len(),
            2 * field_len
        )));
    }
    let mut body = Vec::new();
    der_uint(&raw[..field_len], &mut body);
    der_uint(&raw[field_len..], &mut body);
    Ok(der_sequence(body))
}

/// A key pair in the token, usable wherever pki-core wants a [`Signer`].
pub struct TokenKey {
    token: Arc<Token>,
    private: ObjectHandle,
    alg: KeyAlgorithm,
    public_raw: Vec<u8>,
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
    fn prove_pair(&self, label: &str) -> Result<()> {
        let mut challenge = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut challenge);
        let sig = self.sign_checked(&challenge)?;
        let oid = match self.alg {
            KeyAlgorithm::P256 => "1.2.840.10045.4.3.2",
            KeyAlgorithm::P384 => "1.2.840.10045.4.3.3",
            KeyAlgorithm::Ed25519 => "1.3.101.112",
            KeyAlgorithm::Rsa(_) => "1.2.840.113549.1.1.11",
        };
        crate::x509::sigcheck::verify(oid, &self.spki_der(), &challenge, &sig).map_err(|e| {
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

    fn sign_checked(&self, msg: &[u8]) -> Result<Vec<u8>> {
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

thread_local! {
    /// rcgen's RemoteKeyError carries no detail; the last token error is kept here for the message.
    pub static LAST_SIGN_ERROR: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
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
            LAST_SIGN_ERROR.with(|l| *l.borrow_mut() = Some(e.to_string()));
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
}

/// The message of the last failed token signature, if any.
pub fn take_sign_error() -> Option<String> {
    LAST_SIGN_ERROR.with(|l| l.borrow_mut().take())
}

/// The module path SoftHSM2 installs on Debian.
pub fn default_module() -> &'static Path {
    Path::new("/usr/lib/softhsm/libsofthsm2.so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_becomes_minimal_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // high bit set: needs a 0x00 pad
        raw[32] = 0x00;
        raw[33] = 0x01; // leading zero stripped
        let der = ecdsa_raw_to_der(&raw, 32).unwrap();
        assert_eq!(&der[..5], &[0x30, der.len() as u8 - 2, 0x02, 33, 0x00]);
        let s_at = 2 + 2 + 33;
        assert_eq!(&der[s_at..s_at + 2], &[0x02, 31]);
        assert!(ecdsa_raw_to_der(&raw[..63], 32).is_err());
    }
}
