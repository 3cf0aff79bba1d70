//! The attributes of a private key read back from the token, and the check that they show a
//! key that never left it.

use cryptoki::object::{Attribute, AttributeType};
use serde::Serialize;

use super::error::{Result, TokenError};
use super::{KeyPolicy, Token, TokenConfig, TokenKey};

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
    /// The "sign-only" usage flags the token left true although the strict template asked
    /// for false (or that the portable template left to the token): `CKA_DECRYPT`,
    /// `CKA_UNWRAP`, `CKA_DERIVE`. Empty on a token that honours them all.
    pub usage_not_restricted: Vec<&'static str>,
    /// Which key template the token accepted: `strict` or `portable` (empty for a key read
    /// back later).
    pub template: &'static str,
    /// CKA_ALWAYS_AUTHENTICATE: each signature needs a context-specific login.
    pub always_authenticate: bool,
}

impl Token {
    /// Reads back what the token says about the private key, to prove it is not extractable.
    pub fn read_attributes(&self, key: &TokenKey) -> Result<KeyAttributes> {
        self.read_attributes_as(key, KeyPolicy::NeverExtractable)
    }

    /// Reads back the private key's attributes and checks them against `policy`. A backup key
    /// must still be token-resident, private, sensitive and a signing key; it is extractable
    /// (only wrapped), and a restored one was by definition not always sensitive.
    pub fn read_attributes_as(&self, key: &TokenKey, policy: KeyPolicy) -> Result<KeyAttributes> {
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
            usage_not_restricted: Vec::new(),
            template: "",
            always_authenticate: key.always_authenticate,
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
        for (name, a) in [
            ("CKA_DECRYPT", AttributeType::Decrypt),
            ("CKA_UNWRAP", AttributeType::Unwrap),
            ("CKA_DERIVE", AttributeType::Derive),
        ] {
            if self.bool_attribute(key.private, a)? {
                out.usage_not_restricted.push(name);
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
        let checks: Vec<_> = match policy {
            KeyPolicy::NeverExtractable => checks.to_vec(),
            KeyPolicy::WrappedBackup => checks
                .iter()
                .filter(|(a, ..)| {
                    !matches!(
                        *a,
                        "CKA_EXTRACTABLE" | "CKA_NEVER_EXTRACTABLE" | "CKA_ALWAYS_SENSITIVE"
                    )
                })
                .copied()
                .collect(),
        };
        check_attributes(&self.config, &out.label, &checks)?;
        Ok(out)
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
