//! Signature checks done in software with aws-lc: CSR self-signatures and, after a remote
//! (HSM) signature, the certificate or CRL we are about to write. The hash is chosen from the
//! signature algorithm and the curve from the key, independently, so a P-384 key that signed
//! its CSR with ecdsa-with-SHA256 verifies (rcgen takes the key algorithm from the signature algorithm and would get this wrong).

use crate::keys::KeyError;
use crate::x509::X509Error;
use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::FromDer;

use crate::error::Result;
use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;

/// Refuses SHA-1 (and older) signature algorithms, naming them.
pub fn refuse_weak_signature(oid: &str) -> Result<()> {
    if let Some((_, name)) = oid::WEAK_SIGNATURES.iter().find(|(o, _)| *o == oid) {
        return Err(X509Error::WeakAlgorithm(format!(
            "{name} signature: SHA-1 and older hashes are refused; sign with SHA-256 or better"
        ))
        .into());
    }
    Ok(())
}

/// Verifies `sig` over `msg` with the key in `spki_der`, for signature algorithm `sig_oid`.
pub fn verify(sig_oid: &str, spki_der: &[u8], msg: &[u8], sig: &[u8]) -> Result<()> {
    refuse_weak_signature(sig_oid)?;
    let key_alg = KeyAlgorithm::from_spki_der(spki_der)?;
    let alg: &'static dyn VerificationAlgorithm = match (sig_oid, key_alg) {
        (oid::ECDSA_SHA256, KeyAlgorithm::P256) => &signature::ECDSA_P256_SHA256_ASN1,
        (oid::ECDSA_SHA256, KeyAlgorithm::P384) => &signature::ECDSA_P384_SHA256_ASN1,
        (oid::ECDSA_SHA384, KeyAlgorithm::P256) => &signature::ECDSA_P256_SHA384_ASN1,
        (oid::ECDSA_SHA384, KeyAlgorithm::P384) => &signature::ECDSA_P384_SHA384_ASN1,
        (oid::ECDSA_SHA512, KeyAlgorithm::P256) => &signature::ECDSA_P256_SHA512_ASN1,
        (oid::ECDSA_SHA512, KeyAlgorithm::P384) => &signature::ECDSA_P384_SHA512_ASN1,
        (oid::RSA_SHA256, KeyAlgorithm::Rsa(_)) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (oid::RSA_SHA384, KeyAlgorithm::Rsa(_)) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (oid::RSA_SHA512, KeyAlgorithm::Rsa(_)) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (oid::ED25519, KeyAlgorithm::Ed25519) => &signature::ED25519,
        (oid::RSA_PSS, _) => {
            return Err(X509Error::WeakAlgorithm(
                "RSA-PSS signatures are not supported: etcd cannot load RSA-PSS keys".into(),
            )
            .into())
        }
        (oid, key) => {
            return Err(X509Error::WeakAlgorithm(format!(
                "signature algorithm {oid} with a {key} key is not supported"
            ))
            .into())
        }
    };
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| {
        X509Error::BadPublicKey {
            what: "public key",
            detail: e.to_string(),
        }
    })?;
    UnparsedPublicKey::new(alg, info.subject_public_key.as_ref())
        .verify(msg, sig)
        .map_err(|_| KeyError::SignatureInvalid)
        .map_err(crate::Error::from)
}

/// Checks that certificate `cert_der` was signed by the key `issuer_spki_der`.
pub fn verify_certificate(cert_der: &[u8], issuer_spki_der: &[u8]) -> Result<()> {
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).map_err(|e| {
        X509Error::BadCertificate {
            what: "certificate".into(),
            detail: e.to_string(),
        }
    })?;
    verify(
        &cert.signature_algorithm.algorithm.to_id_string(),
        issuer_spki_der,
        cert.tbs_certificate.as_ref(),
        cert.signature_value.as_ref(),
    )
}
