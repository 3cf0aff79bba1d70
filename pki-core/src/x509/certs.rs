//! Reading certificates: PEM blocks, and the facts about a certificate the tools act on.

use crate::x509::X509Error;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Result;
use crate::x509::serial::Serial;

/// Every PEM block with the given tag, in order. Errors when the text has none or is not PEM.
pub fn pem_blocks(what: &str, text: &[u8], tag: &'static str) -> Result<Vec<Vec<u8>>> {
    let blocks = pem::parse_many(text).map_err(|e| X509Error::MalformedPem {
        what: what.into(),
        expected: tag,
        detail: e.to_string(),
    })?;
    let found: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == tag)
        .map(|b| b.into_contents())
        .collect();
    if found.is_empty() {
        return Err(X509Error::MalformedPem {
            what: what.into(),
            expected: tag,
            detail: "no such block found".into(),
        }
        .into());
    }
    Ok(found)
}

/// One DER object as PEM under `tag` (a certificate, a CRL, a CSR).
pub fn to_pem(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// SHA-256 over DER, upper-case hex with colons: the form `openssl x509 -fingerprint -sha256`
/// prints, so people can compare them by eye during a ceremony.
pub fn fingerprint(der: &[u8]) -> String {
    let d = Sha256::digest(der);
    d.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Normalises a fingerprint the user typed (any case, with or without colons, `sha256:` prefix).
pub fn normalize_fingerprint(s: &str) -> String {
    let hexs: String = fingerprint_body(s)
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_ascii_uppercase();
    hexs.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// A SHA-256 fingerprint as people paste it, checked strictly: 64 hex digits, optionally in
/// pairs separated by colons or spaces; `None` for anything else. Returns the normalised form.
pub fn parse_sha256_fingerprint(s: &str) -> Option<String> {
    let body = fingerprint_body(s);
    let sep = |c: char| c == ':' || c == ' ';
    let digits = body.chars().filter(|c| !sep(*c)).count();
    (digits == 64 && body.chars().all(|c| sep(c) || c.is_ascii_hexdigit()))
        .then(|| normalize_fingerprint(s))
}

/// What people paste, without its wrapping: surrounding space, a `sha256:`/`SHA256 `/`SHA256=`
/// prefix (root-ca prints `SHA256 …`), and the `  -` that `sha256sum` prints after the hash
/// of standard input.
fn fingerprint_body(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_suffix('-').map(str::trim_end).unwrap_or(s);
    match s.get(..6) {
        Some(p) if p.eq_ignore_ascii_case("sha256") => s[6..].trim_start_matches([':', '=', ' ']),
        _ => s,
    }
}

/// The DNS and IP subject alternative names of a parsed certificate (other name forms are
/// not ours to issue and are left out).
pub fn san_names(cert: &X509Certificate) -> crate::x509::profile::SubjectNames {
    use x509_parser::prelude::{GeneralName, ParsedExtension};
    let mut names = crate::x509::profile::SubjectNames::default();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(s) = ext.parsed_extension() {
            for n in &s.general_names {
                match n {
                    GeneralName::DNSName(d) => names.dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            names.ips.push(v4.into());
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            names.ips.push(v6.into());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    names
}

/// What the tools need to know about a certificate.
#[derive(Clone, Debug)]
pub struct CertFacts {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The subject name as text.
    pub subject: String,
    /// DER Name of the subject (the issuer name of what this certificate signs).
    pub subject_der: Vec<u8>,
    /// The subject's first CN; empty when it has none.
    pub subject_cn: String,
    /// The issuer name as text.
    pub issuer: String,
    /// The serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The DER SubjectPublicKeyInfo of the certified key.
    pub spki_der: Vec<u8>,
    /// basicConstraints says CA:TRUE (false when the extension is absent).
    pub is_ca: bool,
    /// keyUsage has keyCertSign (false when the extension is absent).
    pub key_cert_sign: bool,
    /// Subject and issuer names are equal (the signature is not checked).
    pub self_signed: bool,
    /// SHA-256 of the DER, upper-case hex with colons, as [`crate::x509::certs::fingerprint`]
    /// makes it.
    pub fingerprint: String,
    /// subjectKeyIdentifier, when present.
    pub ski: Option<Vec<u8>>,
}

impl CertFacts {
    /// Reads the facts of a DER certificate. Fails with [`X509Error::BadCertificate`] when it does not
    /// parse, has trailing bytes, or has an unreadable basicConstraints or keyUsage.
    pub fn from_der(what: &str, der: &[u8]) -> Result<Self> {
        let bad = |detail: String| X509Error::BadCertificate {
            what: what.into(),
            detail,
        };
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad("trailing bytes after the certificate".into()).into());
        }
        let bc = cert.basic_constraints().map_err(|e| bad(e.to_string()))?;
        let ku = cert.key_usage().map_err(|e| bad(e.to_string()))?;
        let subject_cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or("")
            .to_string();
        Ok(CertFacts {
            der: der.to_vec(),
            subject: cert.subject().to_string(),
            subject_der: cert.subject().as_raw().to_vec(),
            subject_cn,
            issuer: cert.issuer().to_string(),
            serial: Serial::from_bytes(cert.raw_serial()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            spki_der: cert.public_key().raw.to_vec(),
            is_ca: bc.map(|b| b.value.ca).unwrap_or(false),
            key_cert_sign: ku.map(|k| k.value.key_cert_sign()).unwrap_or(false),
            self_signed: cert.subject() == cert.issuer(),
            fingerprint: fingerprint(der),
            ski: cert
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                        Some(k.0.to_vec())
                    }
                    _ => None,
                }),
        })
    }

    /// Parses the first certificate of a PEM text.
    pub fn from_pem(what: &str, text: &[u8]) -> Result<Self> {
        let blocks = pem_blocks(what, text, "CERTIFICATE")?;
        Self::from_der(what, &blocks[0])
    }

    /// The certificate as one `CERTIFICATE` PEM block.
    pub fn pem(&self) -> String {
        to_pem("CERTIFICATE", &self.der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalise() {
        assert_eq!(normalize_fingerprint("sha256:abcd12"), "AB:CD:12");
        assert_eq!(normalize_fingerprint("AB:cd:12"), "AB:CD:12");
        assert_eq!(normalize_fingerprint("SHA256 ab:cd:12"), "AB:CD:12");
        assert_eq!(
            normalize_fingerprint(
                "sha256 Fingerprint=AB:CD:12"
                    .replace(" Fingerprint", "")
                    .as_str()
            ),
            "AB:CD:12"
        );
    }

    #[test]
    fn malformed_pem_is_a_clear_error() {
        let err = pem_blocks(
            "x.crt",
            b"-----BEGIN CERTIFICATE-----\n!!!\n",
            "CERTIFICATE",
        )
        .unwrap_err();
        assert!(
            matches!(err, crate::Error::X509(X509Error::MalformedPem { .. })),
            "{err}"
        );
        let err = pem_blocks("x.crt", b"hello", "CERTIFICATE").unwrap_err();
        assert!(err.to_string().contains("BEGIN CERTIFICATE"));
    }
}
