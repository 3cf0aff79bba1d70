//! Why a cluster file is refused by a rule across its values.

use crate::etcd::{KUBE_COMPACT_KEY, KUBE_PREFIX};

/// A rule across the values of a cluster file that it breaks
/// ([`Error::ClusterRule`](super::Error::ClusterRule)).
#[derive(Debug, thiserror::Error)]
pub enum ClusterRule {
    /// The file lists no member.
    #[error("at least one [[member]] is needed")]
    NoMember,
    /// A member without IP addresses.
    #[error("member '{member}' needs its IP addresses: etcd checks a peer's source IP against its certificate")]
    MemberWithoutIps {
        /// The member's name.
        member: String,
    },
    /// Two members, clients, proxies or roles with the same name.
    #[error("{what} name '{name}' is repeated")]
    Repeated {
        /// `member`, `client`, `proxy` or `role`.
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// An etcdctl client with kube-apiserver-only fields.
    #[error("client '{client}': install-dir and endpoints are for kind = \"kube-apiserver\" only; an etcdctl client is installed under client-install-dir and dials every member")]
    EtcdctlWithKubeFields {
        /// The client's name.
        client: String,
    },
    /// The kube-apiserver client named or given the role `root`.
    #[error("client '{client}' is the API server's: it gets a role for {KUBE_PREFIX} and {KUBE_COMPACT_KEY} only, never etcd's root")]
    KubeClientRoot {
        /// The client's name.
        client: String,
    },
    /// A `[[role]]` with the name of the kube-apiserver client's own role.
    #[error(
        "role name '{role}' is taken by the kube-apiserver client's own role; rename the [[role]]"
    )]
    KubeRoleTaken {
        /// The role's name.
        role: String,
    },
    /// A client given a role no `[[role]]` defines.
    #[error("client '{client}' has role '{role}', which no [[role]] defines")]
    UndefinedRole {
        /// The client's name.
        client: String,
        /// The undefined role.
        role: String,
    },
    /// Roles without a client named `root`.
    #[error(
        "RBAC needs a client named 'root': etcd's auth cannot be enabled without the root user"
    )]
    RbacWithoutRoot,
}
