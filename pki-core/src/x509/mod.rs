//! General X.509: signature checks, serial numbers, validity periods, the
//! certificate profiles, reading certificates and CSRs, CRL encoding, and conformance checks.

pub mod certs;
pub mod conformance;
pub mod crl;
pub mod csr;
pub mod profile;
pub mod serial;
pub mod validity;
