//! End-to-end tests across the binaries live in `tests/`.
pub mod fixture;
pub mod snapshot;

// ---- lifecycle tests (tests/tests/lifecycle.rs): a running etcd cluster and etcdctl ----
pub mod etcd_cluster;
