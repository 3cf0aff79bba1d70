//! The checks a ceremony file's own content must pass, run by [`super::load`] right after
//! parsing: field values, ranges and combinations. Checks that need the token, the root folder
//! or another file stay in the ceremonies.

use std::net::IpAddr;
use std::path::Path;

use pki_core::keys::KeyAlgorithm;
use pki_core::x509::Profile;
use pki_core::x509::Serial;

use super::{
    BackupCeremony, CertificateSection, CrlCeremony, CrossSignCeremony, CustodyCeremony,
    InitCeremony, RequestSection, RestoreCeremony, RevokeCeremony, SignCeremony,
};
use crate::error::RootError;

/// A ceremony-file value refused by [`Validate`]: the field (`section.key` as written in the
/// file), what it holds, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field, as the ceremony file names it (`certificate.permitted-ips`).
    pub field: &'static str,
    /// What the file holds there, quoted for display; `None` when the field is missing.
    pub value: Option<String>,
    /// What is wrong, and what is accepted instead.
    pub problem: String,
}

impl Invalid {
    fn new(field: &'static str, value: impl std::fmt::Debug, problem: impl Into<String>) -> Self {
        Invalid {
            field,
            value: Some(format!("{value:?}")),
            problem: problem.into(),
        }
    }

    fn missing(field: &'static str, problem: impl Into<String>) -> Self {
        Invalid {
            field,
            value: None,
            problem: problem.into(),
        }
    }

    /// The error reported for ceremony file `path`.
    pub fn at(self, path: &Path) -> RootError {
        RootError::Field {
            path: path.to_path_buf(),
            invalid: self,
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{} = {v} {}", self.field, self.problem),
            None => write!(f, "{} {}", self.field, self.problem),
        }
    }
}

type Checked<T = ()> = std::result::Result<T, Invalid>;

/// A ceremony file that can check its own content.
pub trait Validate {
    /// Checks what the file alone decides; the error names the field at fault.
    fn validate(&self) -> Checked;
}

/// A lifetime in days within a profile's range.
fn check_days(field: &'static str, days: u32, profile: Profile) -> Checked {
    let max = profile.max_days();
    if days == 0 {
        Err(Invalid::new(field, days, "must be at least 1"))
    } else if days > max {
        Err(Invalid::new(
            field,
            days,
            format!("is too long: {days} days is longer than this profile allows ({max} days)"),
        ))
    } else {
        Ok(())
    }
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

/// A CIDR range such as "10.0.0.0/8": an address, a prefix length that fits it, and no bits
/// set past the prefix (a name constraint names a range, not a host in it).
pub fn parse_cidr(s: &str) -> std::result::Result<(IpAddr, u8), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| "is not a CIDR range like 10.0.0.0/8".to_string())?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("has {ip:?}, which is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("has prefix length {len:?}, which is not a number"))?;
    let (bits, octets) = match ip {
        IpAddr::V4(v4) => (32u8, v4.octets().to_vec()),
        IpAddr::V6(v6) => (128u8, v6.octets().to_vec()),
    };
    if len > bits {
        return Err(format!(
            "has prefix length {len}; an {} range takes 0 to {bits}",
            if bits == 32 { "IPv4" } else { "IPv6" }
        ));
    }
    let host_bits = octets.iter().enumerate().any(|(i, o)| {
        let first = (i * 8) as u32;
        let keep = (len as u32).saturating_sub(first).min(8);
        let mask = if keep == 0 { 0u8 } else { 0xffu8 << (8 - keep) };
        o & !mask != 0
    });
    if host_bits {
        return Err(format!(
            "has bits set past its /{len} prefix; write the first address of the range"
        ));
    }
    Ok((ip, len))
}

impl InitCeremony {
    /// The root key's algorithm: [key] algorithm, refused below the root's minimum.
    pub fn algorithm(&self) -> Checked<KeyAlgorithm> {
        let v = &self.key.algorithm;
        let alg: KeyAlgorithm = v
            .parse()
            .map_err(|e: pki_core::Error| Invalid::new("key.algorithm", v, format!(": {e}")))?;
        if matches!(alg, KeyAlgorithm::Rsa(b) if b < 3072) {
            return Err(Invalid::new(
                "key.algorithm",
                v,
                "is too weak: a root key must be P-256, P-384, Ed25519 or RSA of at least 3072 bits",
            ));
        }
        Ok(alg)
    }
}

impl Validate for InitCeremony {
    fn validate(&self) -> Checked {
        self.algorithm()?;
        if !(1..=2).contains(&self.root.path_length) {
            return Err(Invalid::new(
                "root.path-length",
                self.root.path_length,
                "is out of range: 1 (intermediates only) or 2 (room for a cross certificate, for a root rollover)",
            ));
        }
        check_days("root.days", self.root.days, Profile::Root)
    }
}

impl CertificateSection {
    /// [certificate] permitted-ips as address and prefix length.
    pub fn permitted_ip_ranges(&self) -> Checked<Vec<(IpAddr, u8)>> {
        self.permitted_ips
            .iter()
            .map(|s| parse_cidr(s).map_err(|p| Invalid::new("certificate.permitted-ips", s, p)))
            .collect()
    }
}

/// Where the request to sign comes from: [request] csr or bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSource<'a> {
    /// A PKCS#10 CSR file.
    Csr(&'a Path),
    /// An age-encrypted request bundle from `intermediate-ca request`.
    Bundle(&'a Path),
}

impl RequestSection {
    /// The request's source; exactly one of csr and bundle must be set.
    pub fn source(&self) -> Checked<RequestSource<'_>> {
        match (&self.csr, &self.bundle) {
            (Some(csr), None) => Ok(RequestSource::Csr(csr)),
            (None, Some(bundle)) => Ok(RequestSource::Bundle(bundle)),
            _ => Err(Invalid::missing(
                "request",
                "needs exactly one of csr or bundle",
            )),
        }
    }
}

/// A SHA-256 fingerprint as people paste it: 64 hex digits, optionally in colon-separated
/// pairs, optionally after `sha256:`.
fn check_fingerprint(field: &'static str, v: &str) -> Checked {
    match pki_core::x509::parse_sha256_fingerprint(v) {
        Some(_) => Ok(()),
        None => Err(Invalid::new(
            field,
            v,
            "is not a SHA-256 fingerprint: 64 hex digits (colons or spaces between pairs allowed), as `intermediate-ca request` prints it",
        )),
    }
}

impl Validate for SignCeremony {
    fn validate(&self) -> Checked {
        let r = &self.request;
        if r.csr.is_some() && self.output.certificate.is_none() {
            return Err(Invalid::missing(
                "output.certificate",
                "is missing: [output] certificate is required when signing a CSR file",
            ));
        }
        if r.bundle.is_some() && self.output.response.is_none() {
            return Err(Invalid::missing(
                "output.response",
                "is missing: [output] response is required when signing a request bundle",
            ));
        }
        r.source()?;
        check_fingerprint("request.key-fingerprint", &r.key_fingerprint)?;
        self.certificate.permitted_ip_ranges()?;
        match self.certificate.days {
            Some(days) => check_days("certificate.days", days, Profile::Intermediate),
            None => Ok(()),
        }
    }
}

impl RevokeCeremony {
    /// The serial, hex as `openssl x509 -serial` prints it.
    pub fn serial(&self) -> Checked<Serial> {
        let v = &self.serial;
        Serial::from_hex(v)
            .filter(|s| !s.to_hex().is_empty())
            .ok_or_else(|| {
                Invalid::new(
                    "serial",
                    v,
                    "is not a hex serial (as `openssl x509 -serial` or `root-ca log verify` prints it)",
                )
            })
    }
}

impl Validate for RevokeCeremony {
    fn validate(&self) -> Checked {
        if reason_code(&self.reason).is_none() {
            return Err(Invalid::new(
                "reason",
                &self.reason,
                "is not a revocation reason; use unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn",
            ));
        }
        self.serial()?;
        Ok(())
    }
}

impl Validate for CrlCeremony {
    fn validate(&self) -> Checked {
        if self.next_update_days == 0 || self.next_update_days > 366 {
            return Err(Invalid::new(
                "next-update-days",
                self.next_update_days,
                "is out of range: next-update-days must be between 1 and 366",
            ));
        }
        Ok(())
    }
}

/// The most custodians one split takes: every one of them is a file and a person to find.
pub const MAX_CUSTODIANS: usize = 32;

/// A custodian name is used in file names: letters, digits, '-', '_', '.', not starting with '.'.
fn check_custodian_name(name: &str) -> Checked {
    let ok = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "custodian.name",
            name,
            "is not a custodian name: 1 to 32 letters, digits, '-', '_' or '.', not starting with '.'",
        ))
    }
}

impl Validate for CustodyCeremony {
    fn validate(&self) -> Checked {
        let n = self.custodians.len();
        if !(2..=MAX_CUSTODIANS).contains(&n) {
            return Err(Invalid::new(
                "custodian",
                n,
                format!("custodians: a split needs 2 to {MAX_CUSTODIANS} [[custodian]] entries"),
            ));
        }
        if self.threshold < 2 || self.threshold > n {
            return Err(Invalid::new(
                "threshold",
                self.threshold,
                format!(
                    "is out of range: with {n} custodians the threshold must be between 2 and {n}"
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut recipients = std::collections::HashSet::new();
        for c in &self.custodians {
            check_custodian_name(&c.name)?;
            if !names.insert(c.name.as_str()) {
                return Err(Invalid::new(
                    "custodian.name",
                    &c.name,
                    "appears twice; give each custodian their own name",
                ));
            }
            if c.recipient.parse::<age::x25519::Recipient>().is_err() {
                return Err(Invalid::new(
                    "custodian.recipient",
                    &c.recipient,
                    "is not an age X25519 recipient (age1...); ask the custodian for the line age-keygen printed",
                ));
            }
            if !recipients.insert(c.recipient.as_str()) {
                return Err(Invalid::new(
                    "custodian.recipient",
                    &c.recipient,
                    "appears twice: two shares encrypted to one person make one custodian hold two",
                ));
            }
        }
        Ok(())
    }
}

impl Validate for BackupCeremony {
    fn validate(&self) -> Checked {
        Ok(())
    }
}

impl Validate for RestoreCeremony {
    fn validate(&self) -> Checked {
        Ok(())
    }
}

/// Which way a cross certificate points (RFC 4210 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossDirection {
    /// The old root's key certifies the new root: parties that trust only the old root reach
    /// what the new root signs.
    NewWithOld,
    /// The new root's key certifies the old root: parties that trust only the new root reach
    /// what the old root signs.
    OldWithNew,
}

impl CrossDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CrossDirection::NewWithOld => "new-with-old",
            CrossDirection::OldWithNew => "old-with-new",
        }
    }
}

impl CrossSignCeremony {
    /// [direction] as a value.
    pub fn direction(&self) -> Checked<CrossDirection> {
        match self.direction.as_str() {
            "new-with-old" => Ok(CrossDirection::NewWithOld),
            "old-with-new" => Ok(CrossDirection::OldWithNew),
            other => Err(Invalid::new(
                "direction",
                other,
                "is not a direction; use new-with-old (the old root signs the new one) or old-with-new (the new root signs the old one)",
            )),
        }
    }
}

impl Validate for CrossSignCeremony {
    fn validate(&self) -> Checked {
        self.direction()?;
        if self.signer_root_dir == self.subject_root_dir {
            return Err(Invalid::new(
                "subject-root-dir",
                &self.subject_root_dir,
                "is the signer's own folder: a cross certificate certifies the other root; a root's own certificate is root.crt",
            ));
        }
        match self.days {
            Some(days) => check_days("days", days, Profile::Root),
            None => Ok(()),
        }
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
            ("10.0.0.0/8/8", "which is not a number"),
            ("10.0.0.0/-1", "which is not a number"),
            ("10.0.0.0/", "which is not a number"),
            ("/8", "which is not an IP address"),
            (" 10.0.0.0/8", "which is not an IP address"),
            ("10.0.0.256/8", "which is not an IP address"),
            ("10.0.0.0/33", "an IPv4 range takes 0 to 32"),
            ("10.128.0.0/8", "bits set past its /8 prefix"),
        ];
        for (s, want) in bad {
            let err = parse_cidr(s).unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }
}
