//! End-to-end tests across the binaries live in `tests/`.
pub mod fixture;
pub mod openssl;
pub mod secret;
pub mod snapshot;
pub mod state;

// ---- lifecycle tests (tests/tests/lifecycle.rs): a running etcd cluster and etcdctl ----
pub mod etcd_cluster;
