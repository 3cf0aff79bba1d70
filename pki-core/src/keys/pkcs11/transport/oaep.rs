//! The RSA-OAEP seal: a one-time AES-256-GCM key encrypted to the token's RSA transport key
//! pair, the ciphertext made in software, the whole signed by the root key.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use zeroize::Zeroizing;

use super::super::capability::MechanismUse;
use super::super::der::rsa_spki;
use super::super::error::{Result, TokenError};
use super::super::{Token, TokenKey};
use super::{put, take, truncated, SealScheme, MAGIC};
use crate::keys::algorithm::KeyAlgorithm;

fn oaep() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

impl Token {
    pub(super) fn oaep_seal_possible(&self) -> bool {
        self.offers(
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            MechanismUse::GenerateKeyPair,
        ) && self.offers(MechanismType::RSA_PKCS_OAEP, MechanismUse::Decrypt)
            && self.rsa_transport_bits().is_some()
    }

    /// RSA-3072 where the token's range allows it, else RSA-2048.
    fn rsa_transport_bits(&self) -> Option<u64> {
        [3072u64, 2048]
            .into_iter()
            .find(|b| self.key_size_allowed(MechanismType::RSA_PKCS_KEY_PAIR_GEN, *b))
    }

    /// The RSA transport key pair: decrypt-only where the token honours it (the strict
    /// template first, then only what must hold).
    pub(super) fn generate_rsa_transport(&self) -> Result<()> {
        let bits = self.rsa_transport_bits().unwrap_or(2048);
        let label = self.transport_label().into_bytes();
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(label.clone()),
            Attribute::Id(id.to_vec()),
            Attribute::Encrypt(true),
            Attribute::ModulusBits(bits.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        ];
        let base = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(label),
            Attribute::Id(id.to_vec()),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(true),
        ];
        let mut strict = base.clone();
        strict.extend([Attribute::Sign(false), Attribute::Unwrap(false)]);
        let session = self.session();
        let made = session
            .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &strict)
            .or_else(|_| session.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &base));
        made.map(|_| ()).map_err(|e| {
            TokenError::pkcs11_about(
                "generate the transport key pair",
                "mechanism CKM_RSA_PKCS_KEY_PAIR_GEN",
                e,
            )
        })
    }

    /// The RSA-OAEP seal after the header in `out`: the wrapped one-time key, the nonce, the
    /// AES-256-GCM ciphertext, and the root key's signature over all of it.
    pub(super) fn oaep_seal(&self, out: &mut Vec<u8>, plain: &[u8], root: &TokenKey) -> Result<()> {
        let spki = self.transport_public_spki()?;
        let public = PublicEncryptingKey::from_der(&spki)
            .map_err(|e| TokenError::failed("read the transport public key", e))
            .and_then(|k| {
                OaepPublicEncryptingKey::new(k)
                    .map_err(|e| TokenError::failed("read the transport public key", e))
            })?;
        let data_key = Zeroizing::new({
            let mut k = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut k);
            k
        });
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let n = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &data_key[..], &mut wrapped, None)
            .map_err(|e| TokenError::failed("encrypt the seal key to the transport key", e))?
            .len();
        wrapped.truncate(n);
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let aad = out.clone();
        let mut body = plain.to_vec();
        let sealing = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &data_key[..])
                .map_err(|e| TokenError::failed("make the seal key", e))?,
        );
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut body,
            )
            .map_err(|e| TokenError::failed("encrypt the transport identity", e))?;
        put(out, &wrapped);
        put(out, &nonce);
        put(out, &body);
        let signature = root.sign_checked(out)?;
        put(out, &signature);
        Ok(())
    }

    pub(super) fn oaep_open(
        &self,
        whole: &[u8],
        body: &[u8],
        root_spki: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut cur = body;
        let wrapped = take(&mut cur)?;
        let nonce = take(&mut cur)?;
        let ct = take(&mut cur)?;
        let signed_len = whole.len() - cur.len();
        let signature = take(&mut cur)?;
        if !cur.is_empty() || nonce.len() != 12 {
            return Err(truncated());
        }
        let alg = KeyAlgorithm::from_spki_der(root_spki)
            .map_err(|e| TokenError::failed("read the root public key", e))?;
        crate::keys::sigcheck::verify(
            super::super::key::signature_oid(alg),
            root_spki,
            &whole[..signed_len],
            signature,
        )
        .map_err(|_| {
            TokenError::Refused(
                "the sealed transport identity is not signed by this root's key: it was replaced or damaged; restore root/transport.sealed from the ceremony backup".into(),
            )
        })?;
        let Some((SealScheme::TokenRsaOaep, key)) = self.existing_transport()? else {
            return Err(TokenError::NoKey {
                key: self.transport_label(),
                token: self.config.token_label.clone(),
            });
        };
        let capacity = wrapped.len().max(512);
        let data_key = {
            let session = self.session();
            self.raw()
                .decrypt(&session, &oaep(), key, wrapped, capacity)
                .map_err(|e| {
                    TokenError::pkcs11_about(
                        "decrypt the seal key",
                        "mechanism CKM_RSA_PKCS_OAEP (SHA-256, MGF1-SHA-256)",
                        e,
                    )
                })?
        };
        let opening =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &data_key).map_err(|_| truncated())?);
        let mut buf = Zeroizing::new(ct.to_vec());
        let aad = &whole[..MAGIC.len() + 2];
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| truncated())?;
        let n = opening
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf[..],
            )
            .map_err(|_| {
                TokenError::Refused(
                    "the sealed transport identity does not decrypt (damaged file)".into(),
                )
            })?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    /// The transport key pair's public key as a SubjectPublicKeyInfo.
    fn transport_public_spki(&self) -> Result<Vec<u8>> {
        let label = self.transport_label();
        // The public object with the private key's CKA_ID (public objects need no login: one
        // planted under the label alone would receive the seal).
        let private = self.find_one(ObjectClass::PRIVATE_KEY, "private-key", &label, None)?;
        let id = self.object_id(private)?;
        if id.is_empty() {
            return Err(TokenError::Refused(format!(
                "the transport key '{label}' has no CKA_ID to pair its public key by"
            )));
        }
        let public = self.find_one(ObjectClass::PUBLIC_KEY, "public-key", &label, Some(&id))?;
        let attrs = self
            .session()
            .get_attributes(
                public,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )
            .map_err(|e| TokenError::pkcs11("read the transport public key", e))?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                _ => {}
            }
        }
        match (n, e) {
            (Some(n), Some(e)) => Ok(rsa_spki(&n, &e)),
            _ => Err(TokenError::Refused(format!(
                "the transport public key '{label}' has no RSA modulus or exponent"
            ))),
        }
    }
}
