//! Whether a certificate conforms to its profile of docs/profiles.md: the per-role checks of
//! an etcd leaf, and the root and intermediate checks of the root ceremony.

use std::collections::BTreeSet;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::keys::algorithm::KeyAlgorithm;
use crate::oid;
use crate::x509::profile::LeafRole;

/// The leaf's extendedKeyUsage against exactly what its profile asks for.
fn eku_difference(
    role: LeafRole,
    e: &x509_parser::extensions::ExtendedKeyUsage<'_>,
) -> Option<String> {
    let mut got: Vec<String> = Vec::new();
    if e.server_auth {
        got.push(oid::SERVER_AUTH.into());
    }
    if e.client_auth {
        got.push(oid::CLIENT_AUTH.into());
    }
    if e.any {
        got.push("anyExtendedKeyUsage".into());
    }
    if e.code_signing || e.email_protection || e.time_stamping || e.ocsp_signing {
        got.push("other".into());
    }
    for o in &e.other {
        got.push(o.to_id_string());
    }
    let want: Vec<String> = role.eku_oids().iter().map(|s| s.to_string()).collect();
    (got != want).then(|| {
        format!(
            "extendedKeyUsage is {}; the {role} profile needs exactly {}",
            eku_names(&got),
            eku_names(&want)
        )
    })
}

/// Differences between a leaf and its profile (docs/profiles.md); empty when it conforms.
pub fn conformance(role: LeafRole, cert: &X509Certificate<'_>) -> Vec<String> {
    let mut p = Vec::new();
    let sig = cert.signature_algorithm.algorithm.to_id_string();
    if crate::keys::sigcheck::refuse_weak_signature(&sig).is_err() {
        p.push(format!("signed with a SHA-1 or older algorithm ({sig})"));
    }
    let key_alg = KeyAlgorithm::from_spki_der(cert.public_key().raw);
    if let Err(e) = &key_alg {
        p.push(format!("key: {e}"));
    }
    let mut seen = BTreeSet::new();
    let (mut bc, mut ku, mut eku, mut san, mut ski, mut aki) =
        (false, false, false, false, false, false);
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if !seen.insert(oid.clone()) {
            p.push(format!("extension {oid} appears twice"));
        }
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => {
                bc = true;
                if b.ca {
                    p.push("basicConstraints says CA:TRUE; a leaf must be CA:FALSE".into());
                }
                if !ext.critical {
                    p.push("basicConstraints is not critical".into());
                }
            }
            ParsedExtension::KeyUsage(k) => {
                ku = true;
                if !ext.critical {
                    p.push("keyUsage is not critical".into());
                }
                let rsa = matches!(key_alg, Ok(KeyAlgorithm::Rsa(_)));
                let expected = if rsa { 0b101 } else { 0b001 };
                if k.flags != expected {
                    p.push(format!(
                        "keyUsage is {k}; expected digitalSignature{}",
                        if rsa { ", keyEncipherment" } else { "" }
                    ));
                }
            }
            ParsedExtension::ExtendedKeyUsage(e) => {
                eku = true;
                p.extend(eku_difference(role, e));
            }
            ParsedExtension::SubjectAlternativeName(s) => {
                san = s
                    .general_names
                    .iter()
                    .any(|n| matches!(n, GeneralName::DNSName(_) | GeneralName::IPAddress(_)));
            }
            ParsedExtension::SubjectKeyIdentifier(_) => ski = true,
            ParsedExtension::AuthorityKeyIdentifier(_) => aki = true,
            _ => {
                if ext.critical {
                    p.push(format!("unexpected critical extension {oid}"));
                }
            }
        }
    }
    if !bc {
        p.push("basicConstraints is missing".into());
    }
    if !ku {
        p.push("keyUsage is missing".into());
    }
    if !eku {
        p.push(format!(
            "extendedKeyUsage is missing; the {role} profile needs {}",
            eku_names(
                &role
                    .eku_oids()
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
            )
        ));
    }
    if role.requires_san() && !san {
        p.push(format!("no DNS or IP subject alternative name: a {role} certificate needs the names clients and peers use"));
    }
    if !ski {
        p.push("subjectKeyIdentifier is missing".into());
    }
    if !aki {
        p.push("authorityKeyIdentifier is missing".into());
    }
    p
}

fn eku_names(oids: &[String]) -> String {
    oids.iter()
        .map(|o| match o.as_str() {
            oid::SERVER_AUTH => "serverAuth".to_string(),
            oid::CLIENT_AUTH => "clientAuth".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// Differences between a CA certificate and the root or intermediate profile of docs/profiles.md;
/// empty when it conforms. Used as the pre-issuance check of the root ceremony.
pub fn ca_conformance(profile: crate::x509::profile::Profile, der: &[u8]) -> Vec<String> {
    use crate::x509::profile::Profile;
    let mut p = Vec::new();
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => return vec![format!("unparseable: {e}")],
    };
    let want_pathlen = match profile {
        Profile::Root => 1,
        Profile::Intermediate => 0,
        other => return vec![format!("{} is not a CA profile", other.as_str())],
    };
    let sig = cert.signature_algorithm.algorithm.to_id_string();
    if crate::keys::sigcheck::refuse_weak_signature(&sig).is_err() {
        p.push(format!("signed with a SHA-1 or older algorithm ({sig})"));
    }
    if let Err(e) = KeyAlgorithm::from_spki_der(cert.public_key().raw) {
        p.push(format!("key: {e}"));
    }
    let (mut bc, mut ku, mut ski, mut aki) = (false, false, false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => {
                bc = true;
                if !b.ca || b.path_len_constraint != Some(want_pathlen) || !ext.critical {
                    p.push(format!(
                        "basicConstraints must be critical CA:TRUE, pathlen:{want_pathlen} (found CA:{} pathlen:{:?} critical:{})",
                        b.ca, b.path_len_constraint, ext.critical
                    ));
                }
            }
            ParsedExtension::KeyUsage(k) => {
                ku = true;
                if !k.key_cert_sign() || !k.crl_sign() || k.flags & !0b110_0000 != 0 || !ext.critical {
                    p.push(format!("keyUsage must be critical keyCertSign, cRLSign (found {k})"));
                }
            }
            ParsedExtension::ExtendedKeyUsage(_) => {
                p.push("a CA certificate carries no extendedKeyUsage (Go rejects leaves whose EKU the CA does not allow)".into())
            }
            ParsedExtension::SubjectKeyIdentifier(_) => ski = true,
            ParsedExtension::AuthorityKeyIdentifier(_) => aki = true,
            ParsedExtension::NameConstraints(_) if profile == Profile::Intermediate => {}
            ParsedExtension::SubjectAlternativeName(_) => {
                p.push("a CA certificate carries no subject alternative name".into())
            }
            _ => p.push(format!("unexpected extension {}", ext.oid.to_id_string())),
        }
    }
    if !bc {
        p.push("basicConstraints is missing".into());
    }
    if !ku {
        p.push("keyUsage is missing".into());
    }
    if !ski {
        p.push("subjectKeyIdentifier is missing".into());
    }
    if profile == Profile::Intermediate && !aki {
        p.push("authorityKeyIdentifier is missing".into());
    }
    p
}
