//! The certificate profiles of docs/profiles.md. Every extension a certificate carries comes from here,
//! never from a request: a CSR that asks for CA:TRUE still gets a leaf.

use std::net::IpAddr;
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyUsagePurpose, NameConstraints, SanType,
};

use crate::error::{Error, NameProblem, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;
use crate::x509::serial::Serial;
use crate::x509::validity::Validity;

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
            other => Err(Error::UnknownRole {
                given: other.to_string(),
            }),
        }
    }
}

impl std::fmt::Display for LeafRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The subject of a certificate: a CN and, from migration inputs such as cfssl's `names`,
/// optional organisational attributes. Nothing else reaches a subject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// The CN: not empty, at most 64 characters, no control characters.
    pub common_name: String,
    /// Organisation (O) attributes.
    pub organization: Vec<String>,
    /// Organisational unit (OU) attributes.
    pub organizational_unit: Vec<String>,
    /// Country (C) attributes.
    pub country: Vec<String>,
    /// State or province (ST) attributes.
    pub state: Vec<String>,
    /// Locality (L) attributes.
    pub locality: Vec<String>,
}

impl Subject {
    /// A subject with the CN `cn` and nothing else.
    pub fn cn(cn: impl Into<String>) -> Self {
        Subject {
            common_name: cn.into(),
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let cn = &self.common_name;
        if cn.trim().is_empty() {
            return Err(Error::BadName(NameProblem::EmptyCommonName));
        }
        if cn.len() > 64 || cn.chars().any(|c| c.is_control()) {
            return Err(Error::BadName(NameProblem::CommonNameTooLong));
        }
        Ok(())
    }

    pub(crate) fn to_dn(&self) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for c in &self.country {
            dn.push(DnType::CountryName, c.as_str());
        }
        for s in &self.state {
            dn.push(DnType::StateOrProvinceName, s.as_str());
        }
        for l in &self.locality {
            dn.push(DnType::LocalityName, l.as_str());
        }
        for o in &self.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        for ou in &self.organizational_unit {
            dn.push(DnType::OrganizationalUnitName, ou.as_str());
        }
        dn.push(DnType::CommonName, self.common_name.as_str());
        dn
    }
}

/// The subject alternative names of a leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectNames {
    /// DNS names (a leading `*.` wildcard allowed).
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

impl SubjectNames {
    /// Whether there is neither a DNS name nor an IP address.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    /// Splits cfssl-style `hosts` into IPs and DNS names.
    pub fn from_hosts<S: AsRef<str>>(hosts: &[S]) -> Result<Self> {
        let mut names = SubjectNames::default();
        for h in hosts {
            let h = h.as_ref().trim();
            match h.parse::<IpAddr>() {
                Ok(ip) => names.ips.push(ip),
                Err(_) => names.dns.push(h.to_string()),
            }
        }
        names.validate()?;
        Ok(names)
    }

    /// DNS names must be plain LDH names (a leading `*.` wildcard allowed); any case is
    /// accepted here and written lower-cased into the certificate.
    pub fn validate(&self) -> Result<()> {
        for name in &self.dns {
            let body = name.strip_prefix("*.").unwrap_or(name);
            let ok = !body.is_empty()
                && body.len() <= 253
                && body.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
            if !ok {
                return Err(Error::BadName(NameProblem::InvalidDns {
                    name: name.to_string(),
                }));
            }
        }
        Ok(())
    }

    fn to_sans(&self) -> Result<Vec<SanType>> {
        let mut sans = Vec::new();
        for d in &self.dns {
            let ia5 = d
                .to_ascii_lowercase()
                .try_into()
                .map_err(|_| Error::BadName(NameProblem::NonAsciiDns { name: d.clone() }))?;
            sans.push(SanType::DnsName(ia5));
        }
        for ip in &self.ips {
            sans.push(SanType::IpAddress(*ip));
        }
        Ok(sans)
    }
}

/// Optional name constraints for an intermediate: what a stolen intermediate could still sign.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameLimits {
    /// Permitted DNS subtrees: each covers the name itself and every name below it.
    pub permitted_dns: Vec<String>,
    /// (network address, prefix length)
    pub permitted_ips: Vec<(IpAddr, u8)>,
}

/// The excluded subtrees that close the name types a [`NameLimits`] leaves open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExcludedNames {
    /// `""` excludes every DNS name (RFC 5280 §4.2.1.10: every name matches the empty
    /// constraint; OpenSSL, Go and rustls-webpki agree).
    pub dns: Vec<String>,
    /// Excluded IP ranges as (network address, prefix length): every IPv4 and IPv6 address when
    /// only DNS names are permitted.
    pub ips: Vec<(IpAddr, u8)>,
}

impl NameLimits {
    /// RFC 5280 permits every name of a type the permitted subtrees do not mention, so a
    /// DNS-only constraint would leave every IP address open (and the converse). The type
    /// the operator did not constrain is closed by an excluded subtree covering all of it.
    pub fn excluded(&self) -> ExcludedNames {
        let mut ex = ExcludedNames::default();
        if self.permitted_ips.is_empty() && !self.permitted_dns.is_empty() {
            ex.ips = vec![
                (IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
                (IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
            ];
        }
        if self.permitted_dns.is_empty() && !self.permitted_ips.is_empty() {
            ex.dns = vec![String::new()];
        }
        ex
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

    /// Builds the to-be-signed parameters. `subject_key` is the algorithm of the key the
    /// certificate certifies (it decides keyEncipherment for RSA leaves).
    pub fn params(
        self,
        subject: &Subject,
        names: &SubjectNames,
        validity: &Validity,
        serial: &Serial,
        subject_key: KeyAlgorithm,
        limits: Option<&NameLimits>,
    ) -> Result<CertificateParams> {
        subject.validate()?;
        names.validate()?;
        let mut p = CertificateParams::default();
        p.distinguished_name = subject.to_dn();
        p.serial_number = Some(serial.to_rcgen());
        p.not_before = validity.not_before;
        p.not_after = validity.not_after;
        p.key_identifier_method = KeyIdMethod::Sha256;
        match self {
            Profile::Root | Profile::Intermediate => {
                if !names.is_empty() {
                    return Err(Error::ProfileMismatch {
                        problem: "CA certificates carry no subject alternative names".into(),
                    });
                }
                let pathlen = if self == Profile::Root { 1 } else { 0 };
                p.is_ca = IsCa::Ca(BasicConstraints::Constrained(pathlen));
                p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                // Intermediates carry no EKU: Go rejects a leaf whose EKU an intermediate does
                // not allow, and an EKU-less CA allows all of them.
                p.use_authority_key_identifier_extension = self == Profile::Intermediate;
                if let Some(l) = limits {
                    if self == Profile::Root {
                        return Err(Error::ProfileMismatch {
                            problem: "name constraints belong on the intermediate, not the root"
                                .into(),
                        });
                    }
                    p.name_constraints = Some(name_constraints(l)?);
                }
            }
            leaf => {
                let role = leaf.leaf_role().expect("leaf profile");
                if limits.is_some() {
                    return Err(Error::ProfileMismatch {
                        problem: "leaves carry no name constraints".into(),
                    });
                }
                if role.requires_san() && names.is_empty() {
                    return Err(Error::NoNames { role });
                }
                // ExplicitNoCa writes basicConstraints CA:FALSE (critical) and the SKI.
                p.is_ca = IsCa::ExplicitNoCa;
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                if subject_key.is_rsa() {
                    // RSA key transport in TLS 1.2 needs keyEncipherment; EC/Ed25519 never do.
                    p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
                }
                p.extended_key_usages = match role {
                    LeafRole::Server | LeafRole::Peer => vec![
                        ExtendedKeyUsagePurpose::ServerAuth,
                        ExtendedKeyUsagePurpose::ClientAuth,
                    ],
                    LeafRole::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
                };
                p.subject_alt_names = names.to_sans()?;
                p.use_authority_key_identifier_extension = true;
            }
        }
        Ok(p)
    }
}

fn name_constraints(l: &NameLimits) -> Result<NameConstraints> {
    use rcgen::{CidrSubnet, GeneralSubtree};
    let mut permitted = Vec::new();
    for d in &l.permitted_dns {
        permitted.push(GeneralSubtree::DnsName(d.clone()));
    }
    for (ip, prefix) in &l.permitted_ips {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if *prefix > max {
            return Err(Error::PrefixTooLong {
                ip: *ip,
                prefix: *prefix,
            });
        }
        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
            *ip, *prefix,
        )));
    }
    let ex = l.excluded();
    let mut excluded: Vec<GeneralSubtree> =
        ex.dns.into_iter().map(GeneralSubtree::DnsName).collect();
    for (ip, prefix) in ex.ips {
        excluded.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
            ip, prefix,
        )));
    }
    Ok(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: excluded,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constraint_on_one_name_type_closes_the_other() {
        let dns_only = NameLimits {
            permitted_dns: vec!["etcd.test".into()],
            permitted_ips: vec![],
        };
        let ex = dns_only.excluded();
        assert!(ex.dns.is_empty());
        assert_eq!(
            ex.ips,
            vec![("0.0.0.0".parse().unwrap(), 0), ("::".parse().unwrap(), 0)]
        );
        let ip_only = NameLimits {
            permitted_dns: vec![],
            permitted_ips: vec![("127.0.0.0".parse().unwrap(), 8)],
        };
        assert_eq!(ip_only.excluded().dns, vec![String::new()]);
        assert!(ip_only.excluded().ips.is_empty());
        let both = NameLimits {
            permitted_dns: vec!["etcd.test".into()],
            permitted_ips: vec![("127.0.0.0".parse().unwrap(), 8)],
        };
        assert_eq!(both.excluded(), ExcludedNames::default());
        let nc = name_constraints(&dns_only).unwrap();
        assert_eq!(nc.excluded_subtrees.len(), 2);
    }
}
