//! The to-be-signed parameters of each profile ([`Profile::params`]), and the name constraints
//! an intermediate may carry ([`NameLimits`]).

use crate::x509::X509Error;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyUsagePurpose, NameConstraints,
};

use super::{LeafRole, Profile, Subject, SubjectNames};
use crate::error::Result;
use crate::keys::algorithm::KeyAlgorithm;
use crate::x509::serial::Serial;
use crate::x509::validity::Validity;

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
                    return Err(X509Error::ProfileMismatch {
                        problem: "CA certificates carry no subject alternative names".into(),
                    }
                    .into());
                }
                let pathlen = if self == Profile::Root { 1 } else { 0 };
                p.is_ca = IsCa::Ca(BasicConstraints::Constrained(pathlen));
                p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
                // Intermediates carry no EKU: Go rejects a leaf whose EKU an intermediate does
                // not allow, and an EKU-less CA allows all of them.
                p.use_authority_key_identifier_extension = self == Profile::Intermediate;
                if let Some(l) = limits {
                    if self == Profile::Root {
                        return Err(X509Error::ProfileMismatch {
                            problem: "name constraints belong on the intermediate, not the root"
                                .into(),
                        }
                        .into());
                    }
                    p.name_constraints = Some(name_constraints(l)?);
                }
            }
            leaf => {
                let role = leaf.leaf_role().expect("leaf profile");
                if limits.is_some() {
                    return Err(X509Error::ProfileMismatch {
                        problem: "leaves carry no name constraints".into(),
                    }
                    .into());
                }
                if role.requires_san() && names.is_empty() {
                    return Err(X509Error::NoNames {
                        role: role.as_str(),
                    }
                    .into());
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
            return Err(X509Error::PrefixTooLong {
                ip: *ip,
                prefix: *prefix,
            }
            .into());
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
