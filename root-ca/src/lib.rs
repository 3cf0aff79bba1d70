//! The offline root CA. Its key is generated in a PKCS#11 token and only ever used there;
//! every operation is a reviewed ceremony file. No networking code is linked in.
#![forbid(unsafe_code)]

pub mod airgap;
pub mod ceremonies;
pub mod ceremony;
pub mod custody;
pub mod error;
pub mod log;
pub mod pin;
pub mod state;
