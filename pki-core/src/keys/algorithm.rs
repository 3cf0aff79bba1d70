//! Key algorithms the toolkit generates and accepts, and the signature algorithm each one implies.

use crate::keys::KeyError;
use crate::x509::X509Error;
use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, RsaKeySize, SignatureAlgorithm};

use crate::error::{Error, Result};

/// A key algorithm. The signature algorithm follows from it: ECDSA with SHA-256 for P-256,
/// SHA-384 for P-384, RSA PKCS#1 v1.5 with SHA-256 (etcd cannot load RSA-PSS keys), Ed25519.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256, signing with SHA-256.
    P256,
    /// ECDSA on P-384, signing with SHA-384.
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA with the modulus size in bits (2048 at least).
    Rsa(u32),
}

impl KeyAlgorithm {
    /// Every algorithm `--key` accepts.
    pub const GENERATABLE: [KeyAlgorithm; 6] = [
        KeyAlgorithm::P256,
        KeyAlgorithm::P384,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa(2048),
        KeyAlgorithm::Rsa(3072),
        KeyAlgorithm::Rsa(4096),
    ];

    /// The smallest RSA modulus we accept anywhere.
    pub const MIN_RSA_BITS: u32 = 2048;

    /// The signature algorithm a key of this kind signs with.
    pub fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
            KeyAlgorithm::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// Whether this is an RSA key.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa(_))
    }

    /// Generates a fresh key pair in software.
    pub fn generate(self) -> Result<KeyPair> {
        let res = match self {
            KeyAlgorithm::Rsa(bits) => {
                let size = match bits {
                    2048 => RsaKeySize::_2048,
                    3072 => RsaKeySize::_3072,
                    4096 => RsaKeySize::_4096,
                    other => {
                        return Err(X509Error::UnknownAlgorithm(format!("rsa{other}")).into());
                    }
                };
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
            }
            other => KeyPair::generate_for(other.signature_algorithm()),
        };
        res.map_err(|e| KeyError::KeyGeneration {
            algorithm: self.to_string(),
            reason: e.to_string(),
        })
        .map_err(crate::Error::from)
    }

    /// Identifies the algorithm of a key from its SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self> {
        use x509_parser::prelude::FromDer;
        use x509_parser::public_key::PublicKey;
        let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).map_err(|e| {
            X509Error::BadPublicKey {
                what: "public key",
                detail: e.to_string(),
            }
        })?;
        let parsed = info.parsed().map_err(|e| X509Error::BadPublicKey {
            what: "public key",
            detail: e.to_string(),
        })?;
        match parsed {
            PublicKey::EC(_) => {
                let curve = info
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    crate::oid::P256 => Ok(KeyAlgorithm::P256),
                    crate::oid::P384 => Ok(KeyAlgorithm::P384),
                    other => Err(X509Error::WeakAlgorithm(format!(
                        "EC curve {other} is not supported; use P-256 or P-384"
                    )).into()),
                }
            }
            PublicKey::RSA(rsa) => {
                let bits = rsa.key_size() as u32;
                if bits < Self::MIN_RSA_BITS {
                    return Err(X509Error::WeakAlgorithm(format!(
                        "RSA key of {bits} bits; at least {} bits are required",
                        Self::MIN_RSA_BITS
                    )).into());
                }
                Ok(KeyAlgorithm::Rsa(bits))
            }
            _ if info.algorithm.algorithm.to_id_string() == crate::oid::ED25519 => {
                Ok(KeyAlgorithm::Ed25519)
            }
            _ => Err(X509Error::WeakAlgorithm(format!(
                "public key algorithm {} is not supported; use P-256, P-384, Ed25519 or RSA >= 2048",
                info.algorithm.algorithm.to_id_string()
            )).into()),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::P256 => f.write_str("p256"),
            KeyAlgorithm::P384 => f.write_str("p384"),
            KeyAlgorithm::Ed25519 => f.write_str("ed25519"),
            KeyAlgorithm::Rsa(bits) => write!(f, "rsa{bits}"),
        }
    }
}

impl FromStr for KeyAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "p256" | "p-256" | "ecdsa-p256" => Ok(KeyAlgorithm::P256),
            "p384" | "p-384" | "ecdsa-p384" => Ok(KeyAlgorithm::P384),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            "rsa2048" => Ok(KeyAlgorithm::Rsa(2048)),
            "rsa3072" => Ok(KeyAlgorithm::Rsa(3072)),
            "rsa4096" => Ok(KeyAlgorithm::Rsa(4096)),
            "rsa1024" | "rsa512" => {
                Err(X509Error::WeakAlgorithm(format!("{s}: RSA below 2048 bits is refused")).into())
            }
            _ => Err(X509Error::UnknownAlgorithm(s.to_string()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn names_round_trip_and_weak_rsa_is_refused() {
        for alg in KeyAlgorithm::GENERATABLE {
            assert_eq!(alg.to_string().parse::<KeyAlgorithm>().unwrap(), alg);
        }
        assert!(matches!(
            "rsa1024".parse::<KeyAlgorithm>(),
            Err(crate::Error::X509(X509Error::WeakAlgorithm(_)))
        ));
        assert!(matches!(
            "dsa".parse::<KeyAlgorithm>(),
            Err(crate::Error::X509(X509Error::UnknownAlgorithm(_)))
        ));
    }

    #[test]
    fn spki_identifies_generated_keys() {
        for alg in [
            KeyAlgorithm::P256,
            KeyAlgorithm::P384,
            KeyAlgorithm::Ed25519,
        ] {
            let kp = alg.generate().unwrap();
            assert_eq!(
                KeyAlgorithm::from_spki_der(&kp.subject_public_key_info()).unwrap(),
                alg
            );
        }
    }
}
