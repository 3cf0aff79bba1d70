//! CSR intake. A CSR contributes a public key (proved by its signature) and, at most, the names
//! the requester hoped for. It never contributes an extension: the profile decides those.

use crate::keys::KeyError;
use crate::x509::X509Error;
use std::net::IpAddr;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::error::{CsrProblem, Error, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::sigcheck;
use crate::x509::certs::pem_blocks;
use crate::x509::profile::SubjectNames;

/// A CSR whose signature verified and whose key passed policy.
#[derive(Clone, Debug)]
pub struct CheckedCsr {
    /// The CSR as received, DER.
    pub der: Vec<u8>,
    /// DER SubjectPublicKeyInfo, exactly as the requester sent it.
    pub spki_der: Vec<u8>,
    /// The algorithm of the requester's key, accepted by policy.
    pub key_alg: KeyAlgorithm,
    /// The requested subject name as text (informational).
    pub subject: String,
    /// The first CN of the requested subject, if any: certified only when the operator passes the
    /// same `--cn`.
    pub common_name: Option<String>,
    /// The names the requester asked for (informational: the CA decides).
    pub requested_names: SubjectNames,
    /// The requester asked for CA:TRUE. Noted, never honoured for a leaf.
    pub requested_ca: bool,
}

impl CheckedCsr {
    /// Parses and checks a PEM CSR: signature, hash, key algorithm and size.
    pub fn from_pem(what: &str, text: &[u8]) -> Result<Self> {
        let blocks = match pem_blocks(what, text, "CERTIFICATE REQUEST") {
            Ok(b) => b,
            Err(e) => match pem_blocks(what, text, "NEW CERTIFICATE REQUEST") {
                Ok(b) => b,
                Err(_) => return Err(e),
            },
        };
        if blocks.len() != 1 {
            return Err(rejected(what, CsrProblem::MoreThanOne));
        }
        Self::from_der(what, &blocks[0])
    }

    /// Parses and checks a DER CSR: fails with [`X509Error::CsrRejected`] when it is not a single
    /// well-formed PKCS#10 request or its signature does not verify, and with
    /// [`X509Error::WeakAlgorithm`] for a refused key or hash.
    pub fn from_der(what: &str, der: &[u8]) -> Result<Self> {
        let (rest, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(
            der,
        )
        .map_err(|e| {
            rejected(
                what,
                CsrProblem::NotPkcs10 {
                    detail: e.to_string(),
                },
            )
        })?;
        if !rest.is_empty() {
            return Err(rejected(what, CsrProblem::TrailingBytes));
        }
        let info = &csr.certification_request_info;
        let spki_der = info.subject_pki.raw.to_vec();
        let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
        sigcheck::refuse_weak_signature(&sig_oid)?;
        let key_alg = KeyAlgorithm::from_spki_der(&spki_der)?;
        sigcheck::verify(&sig_oid, &spki_der, info.raw, csr.signature_value.as_ref()).map_err(
            |e| match e {
                crate::Error::Key(KeyError::SignatureInvalid) => {
                    rejected(what, CsrProblem::BadSignature)
                }
                other => other,
            },
        )?;

        let mut requested_names = SubjectNames::default();
        let mut requested_ca = false;
        if let Some(exts) = csr.requested_extensions() {
            for ext in exts {
                match ext {
                    ParsedExtension::SubjectAlternativeName(san) => {
                        for n in &san.general_names {
                            match n {
                                GeneralName::DNSName(d) => requested_names.dns.push(d.to_string()),
                                GeneralName::IPAddress(b) => {
                                    if let Some(ip) = ip_from_bytes(b) {
                                        requested_names.ips.push(ip)
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    ParsedExtension::BasicConstraints(bc) => requested_ca |= bc.ca,
                    _ => {}
                }
            }
        }
        let common_name = info
            .subject
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .map(str::to_string);
        Ok(CheckedCsr {
            der: der.to_vec(),
            spki_der,
            key_alg,
            subject: info.subject.to_string(),
            common_name,
            requested_names,
            requested_ca,
        })
    }

    /// The public key in the form rcgen signs over.
    pub fn public_key(&self) -> Result<rcgen::SubjectPublicKeyInfo> {
        rcgen::SubjectPublicKeyInfo::from_der(&self.spki_der)
            .map_err(|e| X509Error::BadPublicKey {
                what: "CSR public key",
                detail: e.to_string(),
            })
            .map_err(crate::Error::from)
    }
}

fn rejected(what: &str, problem: CsrProblem) -> Error {
    X509Error::CsrRejected {
        what: what.into(),
        problem,
    }
    .into()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}
