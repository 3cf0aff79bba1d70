//! Generating the root key pair inside the token: sensitive, never extractable, a signing key
//! and nothing else.

use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};

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
            Attribute::Extractable(policy == KeyPolicy::WrappedBackup),
            // A backup key may leave the token only under a wrap key the security officer
            // marked trusted: the user PIN alone cannot export it.
            Attribute::WrapWithTrusted(policy == KeyPolicy::WrappedBackup),
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
        let attrs = self.read_attributes_as(&key, policy)?;
        Ok((key, attrs))
    }
}
