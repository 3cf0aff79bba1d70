//! etcd bundles (docs/etcd.md): a cluster file in, one self-contained folder per member and per
//! client out, with an `etcd.env` that etcd starts with as is. Environment variables, never a
//! YAML config: etcd 3.4's YAML silently drops CRL and peer-restriction settings and makes etcd
//! ignore every flag and variable (etcd facts Y1).

// The submodules are private to the crate: other crates use the items re-exported here.
mod agent_files;
mod bundle;
pub(crate) mod cfssl;
pub(crate) mod check;
mod cluster;
mod files;
mod rules;
#[cfg(test)]
mod tests;
pub(crate) mod upkeep;
mod values;
mod version;

pub use agent_files::{AgentFiles, AGENT_CONFIG_FILE, CLIENT_AGENT_USER, MEMBER_AGENT_USER};
pub use bundle::{build_bundle, gate_every_leaf, BundleInputs, BundleReport, ToEnrol};
pub use cfssl::{parse as parse_cfssl, CfsslRequest};
pub use check::{
    check_dir, env_version, parse_env, read_env, strict_der_crl, CheckOptions, EnvFile,
    CRL_WARN_BYTES, CRL_WARN_ENTRIES,
};
pub use cluster::{Client, ClientKind, ClusterFile, Member, Proxy, Role};
pub use files::RBAC_PRELUDE;
pub use upkeep::{bundle_crl_paths, refresh_bundle_intermediates};
pub use version::EtcdVersion;

/// The etcd CRL file of a bundle and of each member folder: DER, the one format every targeted
/// etcd parses (3.6 hands the file to Go's `x509.ParseRevocationList`, DER only; facts C8).
pub const ETCD_CRL_FILE: &str = "crl.der";
/// The PEM CRL file of bundles made before `crl.der`: still kept current by `issuer crl
/// --etcd-bundle` where it exists, because a running member's `etcd.env` may still name it.
pub const LEGACY_ETCD_CRL_FILE: &str = "crl.pem";

/// kubeadm's folder for the API server's etcd client files.
pub const KUBE_PKI_DIR: &str = "/etc/kubernetes/pki";
/// kubeadm's names, relative to [`KUBE_PKI_DIR`]: client certificate (chain), key, etcd trust.
pub const KUBE_CERT_FILE: &str = "apiserver-etcd-client.crt";
/// kubeadm's name for the API server's etcd client key (0600).
pub const KUBE_KEY_FILE: &str = "apiserver-etcd-client.key";
/// kubeadm's name for the root the API server trusts etcd with.
pub const KUBE_CA_FILE: &str = "etcd/ca.crt";
/// The kubeadm configuration fragment written beside them.
pub const KUBEADM_FILE: &str = "kubeadm-etcd.yaml";
/// The API server keeps every object under this prefix (`--etcd-prefix`, default `/registry`)...
pub const KUBE_PREFIX: &str = "/registry/";
/// ...except its compaction marker, a single key outside the prefix (apiserver storage/etcd3).
pub const KUBE_COMPACT_KEY: &str = "compact_rev_key";
