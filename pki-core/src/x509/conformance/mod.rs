//! `issuer verify`: the seed's `openssl verify`, fingerprint and grep checks in one place.
//! Each check gives one [`Finding`]; a certificate passes when none failed.

mod findings;
mod profile_checks;
mod verify;

pub use findings::{passed, Finding, Level};
pub use profile_checks::ca_conformance;
pub use verify::{verify_leaf, VerifyRequest};
