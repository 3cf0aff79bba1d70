//! The issuance gate: every decision about what a leaf may carry is taken here, once, for every
//! path that signs one (`issuer issue`, `batch`, `etcd`, `renew`, `reissue`, and any service
//! built later). [`crate::ca::issuing::IssuingCa::sign_leaf`] asks the gate before it signs, so no
//! caller can skip it; callers that issue many leaves also ask it up front ([`Gate::check`]) so
//! that a refusal comes before the first file is written.
//!
//! What the gate enforces:
//! * the name constraints (RFC 5280 §4.2.1.10) of the issuing intermediate and of the pinned
//!   root: a leaf a validator would reject is never signed;
//! * the root CRL held in the CA folder: nothing is issued from an intermediate the root revoked,
//!   and a root CRL that does not verify against the pinned root stops issuance;
//! * CSR approval: names and the CN (the etcd RBAC user) come from the operator, never from the
//!   requester.

mod approval;
mod gate;
mod name_constraints;

pub use approval::{approve_cn, approve_csr, ledger_request, presented_matches_row, Approval};
pub use gate::Gate;
pub use name_constraints::{Constraints, LeafName, Subtree};

#[cfg(test)]
mod tests;
