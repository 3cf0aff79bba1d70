//! General X.509: key algorithms and signature checks, serial numbers, validity periods, the
//! certificate profiles, reading certificates and CSRs, CRL encoding, and conformance checks.

pub mod algorithm;
pub mod certs;
pub mod conformance;
pub mod crl;
pub mod csr;
pub mod profile;
pub mod serial;
pub mod sigcheck;
pub mod validity;
