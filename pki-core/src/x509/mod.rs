//! General X.509: signature checks, serial numbers, validity periods, the
//! certificate profiles, reading certificates and CSRs, CRL encoding, and conformance checks.

// The submodules are private to the crate: other crates use the items re-exported here.
pub(crate) mod certs;
pub(crate) mod conformance;
pub(crate) mod crl;
pub(crate) mod csr;
mod error;
pub(crate) mod profile;
pub(crate) mod serial;
pub(crate) mod validity;

pub use certs::{
    fingerprint, normalize_fingerprint, parse_sha256_fingerprint, pem_blocks, san_names, to_pem,
    CertFacts,
};
pub use conformance::{ca_conformance, passed, verify_leaf, Finding, Level, VerifyRequest};
pub use crl::{
    parse_entries as parse_crl_entries, sign_crl, verify_signature as verify_crl_signature,
    CrlEntry, CrlParams, Reason,
};
pub use csr::CheckedCsr;
pub use error::X509Error;
pub use profile::{ExcludedNames, LeafRole, NameLimits, Profile, Subject, SubjectNames};
pub use serial::Serial;
pub use validity::{fmt_time, parse_duration, Validity};
