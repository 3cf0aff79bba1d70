//! What an issuance asks for: the profile, the names, the lifetime and where the key comes
//! from. The policy gate judges it; the issuing CA signs it.

use crate::keys::algorithm::KeyAlgorithm;
use crate::x509::csr::CheckedCsr;
use crate::x509::profile::{LeafRole, Subject, SubjectNames};

/// Where the leaf's key comes from.
pub enum LeafKey {
    /// Generated here; written next to the certificate.
    Generate(KeyAlgorithm),
    /// The requester keeps the key; we only certify the public key of a checked CSR.
    Csr(Box<CheckedCsr>),
    /// Re-certify a public key we certified before (renewal of a CSR-based leaf).
    Spki {
        /// The DER SubjectPublicKeyInfo.
        spki_der: Vec<u8>,
        /// Its algorithm.
        alg: KeyAlgorithm,
    },
}

/// Everything the operator asked for.
pub struct LeafRequest {
    /// The leaf's role, which picks its profile.
    pub role: LeafRole,
    /// The subject to certify.
    pub subject: Subject,
    /// The subject alternative names to certify.
    pub names: SubjectNames,
    /// Lifetime in days; None for the profile's default.
    pub days: Option<u32>,
    /// Where the key comes from.
    pub key: LeafKey,
}
