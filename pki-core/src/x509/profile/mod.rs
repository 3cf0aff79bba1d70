//! The certificate profiles of docs/profiles.md. Every extension a certificate carries comes from here,
//! never from a request: a CSR that asks for CA:TRUE still gets a leaf.

mod params;
mod roles;
mod subject;

pub use params::{ExcludedNames, NameLimits};
pub use roles::{LeafRole, Profile};
pub use subject::{Subject, SubjectNames};
