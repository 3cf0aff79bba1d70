//! End-to-end tests across the binaries live in `tests/`.
pub mod cli_cases;
pub mod fixture;
pub mod openssl;
pub mod postgres;
pub mod secret;
pub mod serial;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod tokens;

// ---- lifecycle tests (tests/tests/e2e/): a running etcd cluster and etcdctl ----
pub mod etcd_cluster;

// ---- trust tests (tests/tests/e2e/trust/): a SoftHSM2-rooted PKI with constraints and root CRLs ----
pub mod rollover;
pub mod trust_pki;
pub mod writer;

// ---- live drills (agent_drill, fleet_drill): their cluster and agent files ----
pub mod drill;
