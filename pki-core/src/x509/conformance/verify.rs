//! Verifying a leaf file: its chain to the root (rustls-webpki), its profile, its key and its
//! expiry, one [`Finding`] per check.

use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;
use webpki::{anchor_from_trusted_cert, EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::profile_checks::conformance;
use super::{Finding, Level};
use crate::keys::signer::FileKey;
use crate::x509::certs::pem_blocks;
use crate::x509::profile::LeafRole;
use crate::x509::validity::fmt_time;

const EKU_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

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
