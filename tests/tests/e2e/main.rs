//! The end-to-end tests: one binary, one module per feature. The binaries run as their users
//! would run them (SoftHSM2 tokens, real etcd 3.4 and 3.5 clusters, openssl, age); the shared
//! fixtures live in the `e2e_tests` library (tests/src).
//!
//! The harness runs the tests of every module on parallel threads: a test that starts etcd,
//! uses loopback ports or loads the machine takes `e2e_tests::serial::exclusive()` first.
//!
//! Run one feature with a filter, e.g. `cargo test -p e2e-tests --test e2e issuance::`. The
//! command-line contract that needs no token, etcd or network (`--help`, usage and input errors,
//! read-only commands on a fixture CA) is in the case files next to each binary
//! (`issuer/tests/cmd`, `intermediate-ca/tests/cmd`, `root-ca/tests/cmd`).

mod agent_drill;
mod crl_expiry;
mod custody;
mod enrolment;
mod etcd_bundle;
mod etcd_versions;
mod fleet;
mod fleet_drill;
mod hardening;
mod issuance;
mod ledger_postgres;
mod lifecycle;
mod network_trust;
mod rollover;
mod root_ceremonies;
mod service;
mod token_intermediate;
mod tokens;
mod trust;
