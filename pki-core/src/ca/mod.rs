//! The online CA's state and work: its folder (generations, root CRL), the ledger, the
//! issuance policy gate, issuing one leaf or a batch, and the lifecycle (CRLs, renewal,
//! re-issue after a rotation).

pub mod batch;
pub mod folder;
pub mod issuing;
pub mod ledger;
pub mod lifecycle;
pub mod policy;
pub mod request;
