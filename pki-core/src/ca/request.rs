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
        spki_der: Vec<u8>,
        alg: KeyAlgorithm,
    },
}

/// Everything the operator asked for.
pub struct LeafRequest {
    pub role: LeafRole,
    pub subject: Subject,
    pub names: SubjectNames,
    pub days: Option<u32>,
    pub key: LeafKey,
}
