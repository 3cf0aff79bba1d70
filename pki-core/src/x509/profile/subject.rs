//! What a certificate names: its [`Subject`] (the CN and organisational attributes) and a
//! leaf's [`SubjectNames`] (DNS names and IP addresses), checked before they are written.

use crate::x509::X509Error;
use std::net::IpAddr;

use rcgen::{DistinguishedName, DnType, SanType};

use crate::error::{NameProblem, Result};

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

    pub(super) fn validate(&self) -> Result<()> {
        let cn = &self.common_name;
        if cn.trim().is_empty() {
            return Err(X509Error::BadName(NameProblem::EmptyCommonName).into());
        }
        if cn.len() > 64 || cn.chars().any(|c| c.is_control()) {
            return Err(X509Error::BadName(NameProblem::CommonNameTooLong).into());
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
                return Err(X509Error::BadName(NameProblem::InvalidDns {
                    name: name.to_string(),
                })
                .into());
            }
        }
        Ok(())
    }

    pub(super) fn to_sans(&self) -> Result<Vec<SanType>> {
        let mut sans = Vec::new();
        for d in &self.dns {
            let ia5 = d
                .to_ascii_lowercase()
                .try_into()
                .map_err(|_| X509Error::BadName(NameProblem::NonAsciiDns { name: d.clone() }))?;
            sans.push(SanType::DnsName(ia5));
        }
        for ip in &self.ips {
            sans.push(SanType::IpAddress(*ip));
        }
        Ok(sans)
    }
}
