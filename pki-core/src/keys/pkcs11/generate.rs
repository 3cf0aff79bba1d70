//! Generating the root key pair inside the token: sensitive, never extractable, a signing key
//! and nothing else.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};

use super::error::{Result, TokenError};
use super::{KeyAttributes, KeyPolicy, Token, TokenKey};
use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;

impl Token {
    /// Generates the root key pair inside the token. Refuses when the label is taken.
    pub fn generate(self: &Arc<Self>, alg: KeyAlgorithm) -> Result<(TokenKey, KeyAttributes)> {
        self.generate_with(alg, KeyPolicy::NeverExtractable)
    }

    /// [`Token::generate`] under a policy: `WrappedBackup` makes the private key extractable
    /// (it stays sensitive, so the token hands it out only wrapped).
    ///
    /// The strict template (a signing key and nothing else: decrypt, unwrap and derive set
    /// false) is tried first; a token that refuses it (tpm2-pkcs11 rejects usage flags that
    /// contradict its own) gets the portable one, which sets only what every token must honour.
    /// What the token made is read back and checked either way, and the usage flags it left
    /// on are recorded. A key pair that fails its checks is destroyed before the error returns.
    pub fn generate_with(
        self: &Arc<Self>,
        alg: KeyAlgorithm,
        policy: KeyPolicy,
    ) -> Result<(TokenKey, KeyAttributes)> {
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
        let (template, (public, private)) = self.generate_pair(alg, policy, &label, &id, true)?;
        let made = self
            .key_by(&label, Some(&id))
            .and_then(|key| self.read_attributes_as(&key, policy).map(|a| (key, a)));
        match made {
            Ok((key, mut attrs)) => {
                attrs.template = template.name();
                Ok((key, attrs))
            }
            Err(e) => {
                // The handles the token returned, not a new lookup (which is what just failed).
                let session = self.session();
                let _ = session.destroy_object(private);
                let _ = session.destroy_object(public);
                Err(e)
            }
        }
    }

    /// `C_GenerateKeyPair` with the strict template, then the portable one when the token
    /// refuses the first. `on_token` false makes session objects (the capability probe).
    pub(super) fn generate_pair(
        &self,
        alg: KeyAlgorithm,
        policy: KeyPolicy,
        label: &str,
        id: &[u8],
        on_token: bool,
    ) -> Result<(KeyTemplate, (ObjectHandle, ObjectHandle))> {
        let mut first = None;
        for template in [KeyTemplate::Strict, KeyTemplate::Portable] {
            let (mechanism, public, private) = template.build(alg, policy, label, id, on_token);
            match self
                .session()
                .generate_key_pair(&mechanism, &public, &private)
            {
                Ok(pair) => return Ok((template, pair)),
                Err(e @ cryptoki::error::Error::Pkcs11(rv, _))
                    if first.is_none() && template_refused(rv) =>
                {
                    first = Some(e)
                }
                Err(e) => {
                    let about = format!(
                        "mechanism {}, {} template{}",
                        mechanism.mechanism_type(),
                        template.name(),
                        first
                            .map(|f| format!(
                                " (the strict template was refused first: {})",
                                TokenError::pkcs11("generate key pair", f)
                            ))
                            .unwrap_or_default()
                    );
                    return Err(TokenError::pkcs11_about("generate key pair", &about, e));
                }
            }
        }
        unreachable!("the portable template either succeeds or returns its error")
    }

    /// Destroys the private and public objects with `label` and `id` (a key pair this run made
    /// and could not finish). Returns how many objects went.
    pub fn destroy_key_pair(&self, label: &str, id: &[u8]) -> Result<usize> {
        let mut n = 0;
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            for o in self.find_with_id(class, label, Some(id))? {
                self.session()
                    .destroy_object(o)
                    .map_err(|e| TokenError::pkcs11("destroy an unfinished key", e))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Return values with which a token refuses a template it does not like (tpm2-pkcs11 answers
/// CKR_GENERAL_ERROR to usage flags that contradict its own).
fn template_refused(rv: cryptoki::error::RvError) -> bool {
    use cryptoki::error::RvError as R;
    matches!(
        rv,
        R::GeneralError
            | R::FunctionFailed
            | R::AttributeValueInvalid
            | R::AttributeTypeInvalid
            | R::TemplateInconsistent
    )
}

/// The key-pair templates, strictest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyTemplate {
    /// A signing key and nothing else: encrypt, decrypt, wrap, unwrap and derive false.
    Strict,
    /// Only what a root key must have: token, private, sensitive, extractable as the policy
    /// says, sign/verify; usage flags left to the token (then read back and recorded).
    Portable,
}

impl KeyTemplate {
    pub(super) fn name(self) -> &'static str {
        match self {
            KeyTemplate::Strict => "strict",
            KeyTemplate::Portable => "portable",
        }
    }

    fn build(
        self,
        alg: KeyAlgorithm,
        policy: KeyPolicy,
        label: &str,
        id: &[u8],
        on_token: bool,
    ) -> (Mechanism<'static>, Vec<Attribute>, Vec<Attribute>) {
        let common = |private: bool| {
            vec![
                Attribute::Token(on_token),
                Attribute::Private(private),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ]
        };
        let backup = policy == KeyPolicy::WrappedBackup;
        let mut public = common(false);
        public.push(Attribute::Verify(true));
        let mut private = common(true);
        private.extend([
            Attribute::Sensitive(true),
            Attribute::Extractable(backup),
            Attribute::Sign(true),
        ]);
        // A backup key may leave the token only under a wrap key the security officer marked
        // trusted: the user PIN alone cannot export it. Sent only then: some tokens
        // (opencryptoki) do not know the attribute at all.
        if backup {
            private.push(Attribute::WrapWithTrusted(true));
        }
        if self == KeyTemplate::Strict {
            public.extend([Attribute::Encrypt(false), Attribute::Wrap(false)]);
            // A signing key and nothing else: SoftHSM2 would otherwise default these to true.
            private.extend([
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ]);
        }
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
        (mechanism, public, private)
    }
}
