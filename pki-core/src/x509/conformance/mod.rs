//! `issuer verify`: the seed's `openssl verify`, fingerprint and grep checks in one place.
//! Each check gives one [`Finding`]; a certificate passes when none failed.

use std::collections::BTreeSet;

use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{anchor_from_trusted_cert, EndEntityCert, KeyUsage};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::signer::FileKey;
use crate::oid;
use crate::x509::certs::pem_blocks;
use crate::x509::profile::LeafRole;
use crate::x509::validity::fmt_time;

const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The check passed.
    Ok,
    /// Worth attention but not a failure (the leaf expires soon, the chain file carries the root).
    Warn,
    /// The check failed: the certificate does not pass.
    Fail,
}

/// One line of a verification report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// How bad it is.
    pub level: Level,
    /// The check's short name: `root`, `parse`, `chain`, `profile`, `key` or `expiry`.
    pub check: &'static str,
    /// What was found.
    pub detail: String,
}

impl Finding {
    fn new(level: Level, check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            level,
            check,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {:<8} {}", self.check, self.detail)
    }
}

/// What to verify.
pub struct VerifyRequest<'a> {
    /// The root certificate, PEM: exactly one block.
    pub root_pem: &'a [u8],
    /// The chain file: leaf first, then intermediates.
    pub chain_pem: &'a [u8],
    /// The etcd role the leaf must conform to. None skips the profile check, and the chain then
    /// passes when it verifies for serverAuth or clientAuth.
    pub role: Option<LeafRole>,
    /// The leaf's private key, PKCS#8 PEM, checked against the certificate; None skips the check.
    pub key_pem: Option<&'a str>,
    /// Warn when the leaf expires within this many days.
    pub warn_days: i64,
    /// The time the checks are made at.
    pub now: OffsetDateTime,
}

/// Runs every check and returns the findings, failures included; never stops at the first.
pub fn verify_leaf(req: &VerifyRequest<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let root = match pem_blocks("root", req.root_pem, "CERTIFICATE") {
        Ok(mut b) if b.len() == 1 => b.remove(0),
        Ok(_) => {
            out.push(Finding::new(
                Level::Fail,
                "root",
                "the root file must hold exactly one certificate",
            ));
            return out;
        }
        Err(e) => {
            out.push(Finding::new(Level::Fail, "root", e.to_string()));
            return out;
        }
    };
    let chain = match pem_blocks("certificate file", req.chain_pem, "CERTIFICATE") {
        Ok(c) => c,
        Err(e) => {
            out.push(Finding::new(Level::Fail, "parse", e.to_string()));
            return out;
        }
    };
    let leaf_der = &chain[0];
    let leaf = match X509Certificate::from_der(leaf_der) {
        Ok((_, c)) => c,
        Err(e) => {
            out.push(Finding::new(Level::Fail, "parse", format!("leaf: {e}")));
            return out;
        }
    };
    out.push(chain_finding(&root, &chain, req.role, req.now));
    if chain.len() < 2 {
        out.push(Finding::new(
            Level::Fail,
            "chain",
            "the file holds only the leaf: etcd needs leaf then intermediate in one file (facts D1-D3)",
        ));
    }
    if chain.iter().any(|c| c == &root) {
        out.push(Finding::new(
            Level::Warn,
            "chain",
            "the file also carries the root; the trust anchor belongs in ca.crt only",
        ));
    }
    if let Some(role) = req.role {
        let problems = conformance(role, &leaf);
        if problems.is_empty() {
            out.push(Finding::new(
                Level::Ok,
                "profile",
                format!("conforms to the etcd {role} profile"),
            ));
        } else {
            for p in problems {
                out.push(Finding::new(Level::Fail, "profile", p));
            }
        }
    }
    if let Some(key_pem) = req.key_pem {
        out.push(match FileKey::from_pkcs8_pem("key file", key_pem) {
            Ok(k) if k.spki_der() == leaf.public_key().raw => {
                Finding::new(Level::Ok, "key", "the private key matches the certificate")
            }
            Ok(_) => Finding::new(
                Level::Fail,
                "key",
                "the private key does NOT match the certificate",
            ),
            Err(e) => Finding::new(Level::Fail, "key", e.to_string()),
        });
    }
    let not_after = leaf.validity().not_after.to_datetime();
    let left = (not_after - req.now).whole_days();
    out.push(if not_after < req.now {
        Finding::new(
            Level::Fail,
            "expiry",
            format!("expired {}", fmt_time(not_after)),
        )
    } else if left < req.warn_days {
        Finding::new(
            Level::Warn,
            "expiry",
            format!(
                "expires {} ({left} days left): renew it",
                fmt_time(not_after)
            ),
        )
    } else {
        Finding::new(
            Level::Ok,
            "expiry",
            format!("valid until {} ({left} days left)", fmt_time(not_after)),
        )
    });
    out
}

fn chain_finding(
    root: &[u8],
    chain: &[Vec<u8>],
    role: Option<LeafRole>,
    now: OffsetDateTime,
) -> Finding {
    let root_der = CertificateDer::from(root);
    let anchor = match anchor_from_trusted_cert(&root_der) {
        Ok(a) => a,
        Err(e) => {
            return Finding::new(Level::Fail, "root", format!("unusable trust anchor: {e:?}"))
        }
    };
    let leaf_der = CertificateDer::from(chain[0].as_slice());
    let ee = match EndEntityCert::try_from(&leaf_der) {
        Ok(e) => e,
        Err(e) => return Finding::new(Level::Fail, "chain", format!("leaf rejected: {e:?}")),
    };
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        now.unix_timestamp().max(0) as u64
    ));
    // EKUs are checked "if present" here because webpki applies the usage to every
    // certificate of the path and our intermediates rightly carry no EKU; the leaf's exact
    // EKU set is checked by `conformance`.
    let usages: &[(&str, KeyUsage)] = match role {
        Some(LeafRole::Server) | Some(LeafRole::Peer) => &[
            ("serverAuth", KeyUsage::required_if_present(EKU_SERVER_AUTH)),
            ("clientAuth", KeyUsage::required_if_present(EKU_CLIENT_AUTH)),
        ],
        Some(LeafRole::Client) => &[("clientAuth", KeyUsage::required_if_present(EKU_CLIENT_AUTH))],
        None => &[
            ("serverAuth", KeyUsage::required_if_present(EKU_SERVER_AUTH)),
            ("clientAuth", KeyUsage::required_if_present(EKU_CLIENT_AUTH)),
        ],
    };
    let anchors = [anchor];
    let mut passed = Vec::new();
    let mut failed = Vec::new();
    for (name, usage) in usages {
        match ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            t,
            usage,
            None,
            None,
        ) {
            Ok(_) => passed.push(*name),
            Err(e) => failed.push(format!("{name}: {e:?}")),
        }
    }
    let good = if role.is_some() {
        failed.is_empty()
    } else {
        !passed.is_empty()
    };
    if good {
        Finding::new(
            Level::Ok,
            "chain",
            format!(
                "leaf -> {} intermediate(s) -> root, valid for {}",
                intermediates.len(),
                passed.join("+")
            ),
        )
    } else {
        Finding::new(
            Level::Fail,
            "chain",
            format!("does not verify to the root ({})", failed.join("; ")),
        )
    }
}

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

/// True when no finding failed.
pub fn passed(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.level != Level::Fail)
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
