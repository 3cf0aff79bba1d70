//! The checks a ceremony file's own content must pass, run by [`super::load`] right after
//! parsing: field values, ranges and combinations. Checks that need the token, the root folder
//! or another file stay in the ceremonies.

use std::net::IpAddr;
use std::path::Path;

use pki_core::keys::algorithm::KeyAlgorithm;
use pki_core::x509::profile::Profile;
use pki_core::x509::serial::Serial;
use pki_core::x509::validity::Validity;
use time::OffsetDateTime;

use super::{
    CertificateSection, CrlCeremony, InitCeremony, RequestSection, RevokeCeremony, SignCeremony,
};
use crate::error::{Result, RootError};

/// A ceremony file that can check its own content.
pub trait Validate {
    /// Checks what the file alone decides; the error names the field at fault.
    fn validate(&self) -> Result<()>;
}

/// A lifetime in days, checked against a profile's range with the same words as signing uses.
fn check_days(days: u32, profile: Profile) -> Result<()> {
    Validity::within_issuer(days, profile.max_days(), None, OffsetDateTime::now_utc())?;
    Ok(())
}

/// RFC 5280 §5.3.1 reason names and codes.
pub fn reason_code(name: &str) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match name {
        "unspecified" => R::Unspecified,
        "keyCompromise" => R::KeyCompromise,
        "cACompromise" => R::CaCompromise,
        "affiliationChanged" => R::AffiliationChanged,
        "superseded" => R::Superseded,
        "cessationOfOperation" => R::CessationOfOperation,
        "privilegeWithdrawn" => R::PrivilegeWithdrawn,
        _ => return None,
    })
}

/// A CIDR range such as "10.0.0.0/8".
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| RootError::Refused(format!("'{s}' is not a CIDR range like 10.0.0.0/8")))?;
    let ip = ip
        .parse()
        .map_err(|_| RootError::Refused(format!("'{s}': bad IP address")))?;
    let len = len
        .parse()
        .map_err(|_| RootError::Refused(format!("'{s}': bad prefix length")))?;
    Ok((ip, len))
}

impl InitCeremony {
    /// The root key's algorithm: [key] algorithm, refused below the root's minimum.
    pub fn algorithm(&self) -> Result<KeyAlgorithm> {
        let alg: KeyAlgorithm = self.key.algorithm.parse()?;
        if matches!(alg, KeyAlgorithm::Rsa(b) if b < 3072) {
            return Err(RootError::Refused(
                "a root key must be P-256, P-384, Ed25519 or RSA of at least 3072 bits".into(),
            ));
        }
        Ok(alg)
    }
}

impl Validate for InitCeremony {
    fn validate(&self) -> Result<()> {
        self.algorithm()?;
        check_days(self.root.days, Profile::Root)
    }
}

impl CertificateSection {
    /// [certificate] permitted-ips as address and prefix length.
    pub fn permitted_ip_ranges(&self) -> Result<Vec<(IpAddr, u8)>> {
        self.permitted_ips.iter().map(|s| parse_cidr(s)).collect()
    }
}

/// Where the request to sign comes from: [request] csr or bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSource<'a> {
    Csr(&'a Path),
    Bundle(&'a Path),
}

impl RequestSection {
    /// The request's source; exactly one of csr and bundle must be set.
    pub fn source(&self) -> Result<RequestSource<'_>> {
        match (&self.csr, &self.bundle) {
            (Some(csr), None) => Ok(RequestSource::Csr(csr)),
            (None, Some(bundle)) => Ok(RequestSource::Bundle(bundle)),
            _ => Err(RootError::Refused(
                "[request] needs exactly one of csr or bundle".into(),
            )),
        }
    }
}

impl Validate for SignCeremony {
    fn validate(&self) -> Result<()> {
        let r = &self.request;
        if r.csr.is_some() && self.output.certificate.is_none() {
            return Err(RootError::Refused(
                "[output] certificate is required when signing a CSR file".into(),
            ));
        }
        if r.bundle.is_some() && self.output.response.is_none() {
            return Err(RootError::Refused(
                "[output] response is required when signing a request bundle".into(),
            ));
        }
        r.source()?;
        self.certificate.permitted_ip_ranges()?;
        match self.certificate.days {
            Some(days) => check_days(days, Profile::Intermediate),
            None => Ok(()),
        }
    }
}

impl RevokeCeremony {
    /// The serial, hex as `openssl x509 -serial` prints it.
    pub fn serial(&self) -> Result<Serial> {
        Serial::from_hex(&self.serial)
            .ok_or_else(|| RootError::Refused(format!("'{}' is not a hex serial", self.serial)))
    }
}

impl Validate for RevokeCeremony {
    fn validate(&self) -> Result<()> {
        if reason_code(&self.reason).is_none() {
            return Err(RootError::Refused(format!(
                "'{}' is not a revocation reason; use unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn",
                self.reason
            )));
        }
        self.serial()?;
        Ok(())
    }
}

impl Validate for CrlCeremony {
    fn validate(&self) -> Result<()> {
        if self.next_update_days == 0 || self.next_update_days > 366 {
            return Err(RootError::Refused(
                "next-update-days must be between 1 and 366".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_follow_rfc_5280() {
        use rcgen::RevocationReason as R;
        let table: &[(&str, Option<R>)] = &[
            ("unspecified", Some(R::Unspecified)),
            ("keyCompromise", Some(R::KeyCompromise)),
            ("cACompromise", Some(R::CaCompromise)),
            ("affiliationChanged", Some(R::AffiliationChanged)),
            ("superseded", Some(R::Superseded)),
            ("cessationOfOperation", Some(R::CessationOfOperation)),
            ("privilegeWithdrawn", Some(R::PrivilegeWithdrawn)),
            ("keycompromise", None),
            ("key-compromise", None),
            ("certificateHold", None),
            ("aACompromise", None),
            (" keyCompromise", None),
        ];
        for (name, want) in table {
            let got = reason_code(name).map(|r| r as u8);
            assert_eq!(got, want.map(|r| r as u8), "{name:?}");
        }
        // The codes the CRL carries are RFC 5280's numbers.
        assert_eq!(reason_code("keyCompromise").map(|r| r as u8), Some(1));
        assert_eq!(reason_code("privilegeWithdrawn").map(|r| r as u8), Some(9));
    }

    #[test]
    fn parse_cidr_reads_address_and_prefix() {
        use std::net::IpAddr;
        let ok: &[(&str, &str, u8)] = &[
            ("10.0.0.0/8", "10.0.0.0", 8),
            ("127.0.0.1/32", "127.0.0.1", 32),
            ("0.0.0.0/0", "0.0.0.0", 0),
            ("fd00::/8", "fd00::", 8),
            ("::1/128", "::1", 128),
        ];
        for (s, ip, len) in ok {
            let want: IpAddr = ip.parse().unwrap();
            assert_eq!(parse_cidr(s).unwrap(), (want, *len), "{s}");
        }
        let bad: &[(&str, &str)] = &[
            ("10.0.0.0", "is not a CIDR range"),
            ("10.0.0.0/8/8", "bad prefix length"),
            ("10.0.0.0/-1", "bad prefix length"),
            ("10.0.0.0/", "bad prefix length"),
            ("/8", "bad IP address"),
            (" 10.0.0.0/8", "bad IP address"),
            ("10.0.0.256/8", "bad IP address"),
        ];
        for (s, want) in bad {
            let err = parse_cidr(s).unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }
}
