//! End-to-end tests across the binaries live in `tests/`.
pub mod fixture;
pub mod snapshot;
