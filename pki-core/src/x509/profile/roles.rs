//! The five certificate [`Profile`]s and the three etcd [`LeafRole`]s: their names, lifetimes,
//! default keys and extended key usages.

use crate::x509::X509Error;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;

/// The five certificate profiles of the PKI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The offline root: a CA with path length 1, keyCertSign and cRLSign.
    Root,
    /// The online intermediate: a CA with path length 0, no extended key usage, optional name
    /// constraints.
    Intermediate,
    /// An etcd server leaf ([`LeafRole::Server`]).
    EtcdServer,
    /// An etcd peer leaf ([`LeafRole::Peer`]).
    EtcdPeer,
    /// An etcd client leaf ([`LeafRole::Client`]).
    EtcdClient,
}

/// The three kinds of etcd leaf; the name is also the file stem etcd's flags use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeafRole {
    /// The certificate etcd serves to its clients: serverAuth and clientAuth, at least one SAN.
    Server,
    /// The certificate etcd members present to each other: serverAuth and clientAuth, at least one
    /// SAN.
    Peer,
    /// A client of etcd: clientAuth only; its CN is the etcd user it logs in as.
    Client,
}

impl LeafRole {
    /// Every role: server, peer, client.
    pub const ALL: [LeafRole; 3] = [LeafRole::Server, LeafRole::Peer, LeafRole::Client];

    /// The certificate profile of this role.
    pub fn profile(self) -> Profile {
        match self {
            LeafRole::Server => Profile::EtcdServer,
            LeafRole::Peer => Profile::EtcdPeer,
            LeafRole::Client => Profile::EtcdClient,
        }
    }

    /// `server`, `peer` or `client`: the file stem of `<role>.crt` / `<role>.key`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeafRole::Server => "server",
            LeafRole::Peer => "peer",
            LeafRole::Client => "client",
        }
    }

    /// The extended key usages the role carries, as OID strings.
    pub fn eku_oids(self) -> &'static [&'static str] {
        match self {
            // etcd's grpc-gateway dials its own client port presenting server.crt as a client
            // certificate, so a server certificate needs clientAuth too (etcd facts I1).
            LeafRole::Server | LeafRole::Peer => &[oid::SERVER_AUTH, oid::CLIENT_AUTH],
            LeafRole::Client => &[oid::CLIENT_AUTH],
        }
    }

    /// Whether a certificate of this role is useless without a SAN.
    pub fn requires_san(self) -> bool {
        !matches!(self, LeafRole::Client)
    }
}

impl FromStr for LeafRole {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "server" => Ok(LeafRole::Server),
            "peer" => Ok(LeafRole::Peer),
            "client" => Ok(LeafRole::Client),
            other => Err(X509Error::UnknownRole {
                given: other.to_string(),
            }
            .into()),
        }
    }
}

impl std::fmt::Display for LeafRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Profile {
    /// The profile's name: `root`, `intermediate`, or the leaf role's (`server`, `peer`,
    /// `client`), as the ledger records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Root => "root",
            Profile::Intermediate => "intermediate",
            Profile::EtcdServer => "server",
            Profile::EtcdPeer => "peer",
            Profile::EtcdClient => "client",
        }
    }

    /// The etcd role of a leaf profile; None for the root and the intermediate.
    pub fn leaf_role(self) -> Option<LeafRole> {
        match self {
            Profile::EtcdServer => Some(LeafRole::Server),
            Profile::EtcdPeer => Some(LeafRole::Peer),
            Profile::EtcdClient => Some(LeafRole::Client),
            _ => None,
        }
    }

    /// Default lifetime in days (docs/profiles.md).
    pub fn default_days(self) -> u32 {
        match self {
            Profile::Root => 3653,
            Profile::Intermediate => 1826,
            _ => 90,
        }
    }

    /// Longest lifetime we sign, in days.
    pub fn max_days(self) -> u32 {
        match self {
            Profile::Root => 9132,
            Profile::Intermediate => 3653,
            // Long-lived leaves are how stolen keys stay useful; 825 days is the old
            // CA/Browser Forum ceiling and far above the 90-day default.
            _ => 825,
        }
    }

    /// Default key algorithm (docs/profiles.md).
    pub fn default_key(self) -> KeyAlgorithm {
        match self {
            Profile::Root | Profile::Intermediate => KeyAlgorithm::P384,
            _ => KeyAlgorithm::P256,
        }
    }
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "root" => Ok(Profile::Root),
            "intermediate" => Ok(Profile::Intermediate),
            other => other.parse::<LeafRole>().map(LeafRole::profile),
        }
    }
}
