//! What a token can do for each ceremony, found before anything is generated: from its
//! mechanism list (with key sizes and flags), its PIN lengths, and key templates tried on
//! session objects (which vanish with the session; nothing is left in the token).

use std::sync::Arc;

use cryptoki::mechanism::MechanismType;
use serde::Serialize;

use super::key::SignPath;
use super::transport::SealScheme;
use super::{KeyPolicy, Token};
use crate::keys::algorithm::KeyAlgorithm;

/// What a mechanism is needed for (the flag checked in its `CK_MECHANISM_INFO`).
#[derive(Clone, Copy, Debug)]
pub enum MechanismUse {
    /// CKF_SIGN.
    Sign,
    /// CKF_ENCRYPT.
    Encrypt,
    /// CKF_DECRYPT.
    Decrypt,
    /// CKF_GENERATE.
    Generate,
    /// CKF_GENERATE_KEY_PAIR.
    GenerateKeyPair,
    /// CKF_WRAP.
    Wrap,
    /// CKF_UNWRAP.
    Unwrap,
}

/// Whether the token can run one ceremony step, and why.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "supported", content = "why")]
pub enum Verdict {
    /// It can: how (mechanisms, template).
    #[serde(rename = "yes")]
    Yes(String),
    /// It cannot: what it lacks.
    #[serde(rename = "no")]
    No(String),
}

impl Verdict {
    /// True for [`Verdict::Yes`].
    pub fn supported(&self) -> bool {
        matches!(self, Verdict::Yes(_))
    }

    /// The reason.
    pub fn why(&self) -> &str {
        match self {
            Verdict::Yes(w) | Verdict::No(w) => w,
        }
    }
}

/// One row of the capability table.
#[derive(Clone, Debug, Serialize)]
pub struct CeremonyNeed {
    /// The ceremony or step, such as `init (p256 root key)`.
    pub ceremony: String,
    /// Whether the token can, and why.
    pub verdict: Verdict,
}

/// The capability table of a token for a root key algorithm.
#[derive(Clone, Debug, Serialize)]
pub struct Capabilities {
    /// The module's path.
    pub module: String,
    /// The token's label, maker and model.
    pub token: String,
    /// The token's PIN length range.
    pub pin_lengths: (u64, u64),
    /// The mechanisms it lists, by name.
    pub mechanisms: Vec<String>,
    /// The rows, one per ceremony step.
    pub rows: Vec<CeremonyNeed>,
}

impl Capabilities {
    /// The row whose ceremony starts with `prefix`.
    pub fn row(&self, prefix: &str) -> Option<&CeremonyNeed> {
        self.rows.iter().find(|r| r.ceremony.starts_with(prefix))
    }

    /// The table as text, one line per ceremony step.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.ceremony.len())
            .max()
            .unwrap_or(0);
        let mut out = format!(
            "token:      {}\nmodule:     {}\nPIN length: {}..{}\nmechanisms: {}\n\n{:width$}  supported  why\n",
            self.token,
            self.module,
            self.pin_lengths.0,
            self.pin_lengths.1,
            self.mechanisms.join(", "),
            "ceremony",
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{:width$}  {:9}  {}\n",
                r.ceremony,
                if r.verdict.supported() { "yes" } else { "NO" },
                r.verdict.why()
            ));
        }
        out
    }
}

/// The custody PIN's length: 32 hex digits (128 bits).
pub const CUSTODY_PIN_LEN: u64 = 32;

impl Token {
    /// Whether the token lists `m` with the flag for `use_` (a token that gives no mechanism
    /// info is taken at its list).
    pub fn offers(&self, m: MechanismType, use_: MechanismUse) -> bool {
        self.mechanisms.iter().any(|(t, info)| {
            *t == m
                && info.as_ref().is_none_or(|i| match use_ {
                    MechanismUse::Sign => i.sign(),
                    MechanismUse::Encrypt => i.encrypt(),
                    MechanismUse::Decrypt => i.decrypt(),
                    MechanismUse::Generate => i.generate(),
                    MechanismUse::GenerateKeyPair => i.generate_key_pair(),
                    MechanismUse::Wrap => i.wrap(),
                    MechanismUse::Unwrap => i.unwrap(),
                })
        })
    }

    /// Whether `bits` lies in the key-size range the token gives for `m` (no info: yes).
    pub fn key_size_allowed(&self, m: MechanismType, bits: u64) -> bool {
        self.mechanisms
            .iter()
            .find(|(t, _)| *t == m)
            .and_then(|(_, i)| i.as_ref())
            .is_none_or(|i| {
                let (min, max) = (i.min_key_size() as u64, i.max_key_size() as u64);
                // Some tokens give 0..0 for "no limit"; some give EC sizes in bytes (never
                // RSA: 4096/8 would fall inside a 512..2048-bit range).
                let ec = m != MechanismType::RSA_PKCS_KEY_PAIR_GEN;
                max == 0
                    || (min..=max).contains(&bits)
                    || (ec && (min..=max).contains(&bits.div_ceil(8)))
            })
    }

    /// The capability table for a root key of `alg`. Key templates are tried on session
    /// objects, destroyed at once; nothing is written to the token.
    pub fn capabilities(self: &Arc<Self>, alg: KeyAlgorithm) -> Capabilities {
        let mut rows = Vec::new();
        let (keygen, bits) = match alg {
            KeyAlgorithm::P256 => (MechanismType::ECC_KEY_PAIR_GEN, 256),
            KeyAlgorithm::P384 => (MechanismType::ECC_KEY_PAIR_GEN, 384),
            // Tokens give Ed25519 as 256 bits (SoftHSM2: 256..456).
            KeyAlgorithm::Ed25519 => (MechanismType::ECC_EDWARDS_KEY_PAIR_GEN, 256),
            KeyAlgorithm::Rsa(b) => (MechanismType::RSA_PKCS_KEY_PAIR_GEN, b as u64),
        };
        let sign_path = SignPath::choose(alg, |m| self.offers(m, MechanismUse::Sign));
        let keygen_listed = self.offers(keygen, MechanismUse::GenerateKeyPair);
        let init = if !keygen_listed {
            Verdict::No(format!("no {keygen} in the mechanism list"))
        } else if !self.key_size_allowed(keygen, bits) {
            Verdict::No(format!("{keygen} does not offer {bits}-bit keys"))
        } else if let Some(path) = sign_path {
            match self.probe(alg, KeyPolicy::NeverExtractable) {
                Ok(template) => Verdict::Yes(format!(
                    "{keygen}, {template} template (tried on a session object); signs with {}",
                    path.describe(alg)
                )),
                // Some tokens (tpm2-pkcs11) make no session keys at all: the templates are then
                // tried at generation, strict first, and a pair that fails its checks is
                // destroyed; the mechanism list is all that can be said beforehand.
                Err(why) => Verdict::Yes(format!(
                    "{keygen} listed; signs with {}; templates not tried beforehand (the token refused a session key: {why})",
                    path.describe(alg)
                )),
            }
        } else {
            Verdict::No(format!("no signature mechanism for a {alg} key"))
        };
        rows.push(CeremonyNeed {
            ceremony: format!("init: {alg} root key, never extractable"),
            verdict: init,
        });
        rows.push(CeremonyNeed {
            ceremony: "init: seal the transport identity".into(),
            verdict: match self.preferred_seal() {
                Some(s) => Verdict::Yes(format!("{} ({})", s.name(), s.needs())),
                None => Verdict::No(format!(
                    "neither {} nor {}",
                    SealScheme::TokenAesGcm.needs(),
                    SealScheme::TokenRsaOaep.needs()
                )),
            },
        });
        rows.push(CeremonyNeed {
            ceremony: "sign, crl, cross-sign: root signatures".into(),
            verdict: match sign_path {
                Some(p) => Verdict::Yes(format!(
                    "{}; every signature checked in software",
                    p.describe(alg)
                )),
                None => Verdict::No(format!("no signature mechanism for a {alg} key")),
            },
        });
        rows.push(CeremonyNeed {
            ceremony: "sign with a request bundle, backup: open the seal".into(),
            verdict: match self.preferred_seal() {
                Some(SealScheme::TokenAesGcm) => Verdict::Yes("CKM_AES_GCM decrypt".into()),
                Some(SealScheme::TokenRsaOaep) => {
                    Verdict::Yes("CKM_RSA_PKCS_OAEP decrypt (one call, no length query)".into())
                }
                None => Verdict::No("no seal scheme (see init)".into()),
            },
        });
        let (min_pin, max_pin) = (self.info.min_pin, self.info.max_pin);
        rows.push(CeremonyNeed {
            ceremony: "custody split: a 32-character user PIN".into(),
            verdict: if max_pin >= CUSTODY_PIN_LEN && min_pin <= CUSTODY_PIN_LEN {
                Verdict::Yes(format!("PIN length {min_pin}..{max_pin}"))
            } else {
                Verdict::No(format!(
                    "the token takes PINs of {min_pin}..{max_pin} characters; the custody PIN has {CUSTODY_PIN_LEN}"
                ))
            },
        });
        // The backup key template is tried once, for both rows, and only where the token has
        // the wrap mechanism at all.
        let backup_key = if self.offers(MechanismType::AES_KEY_WRAP_PAD, MechanismUse::Wrap)
            || self.offers(MechanismType::AES_KEY_WRAP_PAD, MechanismUse::Unwrap)
        {
            self.probe(alg, KeyPolicy::WrappedBackup)
        } else {
            Err("not tried".into())
        };
        rows.push(CeremonyNeed {
            ceremony: "backup: root key wrapped under a trusted key".into(),
            verdict: self.backup_verdict(MechanismUse::Wrap, &backup_key),
        });
        rows.push(CeremonyNeed {
            ceremony: "restore: unwrap a backup into this token".into(),
            verdict: self.backup_verdict(MechanismUse::Unwrap, &backup_key),
        });
        rows.push(CeremonyNeed {
            ceremony: "context-specific login (CKA_ALWAYS_AUTHENTICATE)".into(),
            verdict: Verdict::Yes(
                "C_Login(CKU_CONTEXT_SPECIFIC) before each C_Sign when the key demands it".into(),
            ),
        });
        Capabilities {
            module: self.config.module.display().to_string(),
            token: format!(
                "'{}' ({} {})",
                self.info.label, self.info.manufacturer, self.info.model
            ),
            pin_lengths: (min_pin, max_pin),
            mechanisms: self.mechanisms.iter().map(|(m, _)| m.to_string()).collect(),
            rows,
        }
    }

    /// `key`: the backup key template tried once on a session object (see [`Token::probe`]).
    fn backup_verdict(&self, use_: MechanismUse, key: &Result<&'static str, String>) -> Verdict {
        if !self.offers(MechanismType::AES_KEY_WRAP_PAD, use_) {
            let verb = if matches!(use_, MechanismUse::Wrap) {
                "wrap"
            } else {
                "unwrap"
            };
            return Verdict::No(format!(
                "no CKM_AES_KEY_WRAP_PAD to {verb} with (RFC 5649 key wrap)"
            ));
        }
        match key {
            Ok(t) => Verdict::Yes(format!(
                "CKM_AES_KEY_WRAP_PAD; extractable + sensitive + CKA_WRAP_WITH_TRUSTED key accepted ({t} template, session object)"
            )),
            Err(why) => Verdict::No(format!(
                "the token refuses a sensitive key that may leave it only wrapped under a trusted key: {why}"
            )),
        }
    }

    /// Generates a session key pair of `alg` under `policy` and destroys it: the name of the
    /// template the token took, or why it took none.
    fn probe(
        self: &Arc<Self>,
        alg: KeyAlgorithm,
        policy: KeyPolicy,
    ) -> Result<&'static str, String> {
        let mut id = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let label = format!("{}-capability-probe", self.config.key_label);
        match self.generate_pair(alg, policy, &label, &id, false) {
            Ok((template, (public, private))) => {
                let session = self.session();
                let _ = session.destroy_object(private);
                let _ = session.destroy_object(public);
                Ok(template.name())
            }
            Err(super::error::TokenError::Pkcs11 { function, ckr, .. }) => Err(format!(
                "{function} returned {ckr} for the strict and the portable template"
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}
