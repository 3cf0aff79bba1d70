//! Certificate revocation lists, v2 (RFC 5280 §5), encoded here so that two kinds can be made
//! with one encoder:
//!
//! * the **direct CRL** of an issuer: every entry is a certificate that issuer signed;
//! * the **etcd CRL**: etcd reads only the first PEM block of its CRL file and matches serials
//!   without looking at the issuer or the signature (etcd facts C3, C5), so one file must list
//!   the revoked leaves *and* the revoked intermediates. We emit it as an **indirect CRL**
//!   (issuingDistributionPoint with indirectCRL, critical): entries of certificates issued by
//!   someone else carry the certificateIssuer entry extension (critical), so the file says
//!   exactly what it is, and a validator that does not understand indirect CRLs must refuse
//!   it rather than misread it. Other validators use the direct CRLs. See docs/crl.md.
//!
//! The encoder streams entries, so a CRL of a million entries stays small in memory.

use crate::keys::KeyError;
use crate::x509::X509Error;
use time::OffsetDateTime;
use yasna::models::{GeneralizedTime, UTCTime};
use yasna::{DERWriter, Tag};

use crate::error::{CrlProblem, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::signer::Signer;
use crate::oid;

/// RFC 5280 §5.3.1 reason codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `unspecified` (0); written as no reasonCode extension at all, as RFC 5280 recommends.
    Unspecified = 0,
    /// `keyCompromise` (1).
    KeyCompromise = 1,
    /// `cACompromise` (2).
    CaCompromise = 2,
    /// `affiliationChanged` (3).
    AffiliationChanged = 3,
    /// `superseded` (4).
    Superseded = 4,
    /// `cessationOfOperation` (5).
    CessationOfOperation = 5,
    /// `privilegeWithdrawn` (9).
    PrivilegeWithdrawn = 9,
}

impl Reason {
    /// The names [`Reason::parse`] accepts, comma-separated, for messages.
    pub const NAMES: &'static str = "unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn";

    /// The reason of an RFC 5280 name such as `keyCompromise` (case-sensitive); fails for any
    /// other name.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "unspecified" => Reason::Unspecified,
            "keyCompromise" => Reason::KeyCompromise,
            "cACompromise" => Reason::CaCompromise,
            "affiliationChanged" => Reason::AffiliationChanged,
            "superseded" => Reason::Superseded,
            "cessationOfOperation" => Reason::CessationOfOperation,
            "privilegeWithdrawn" => Reason::PrivilegeWithdrawn,
            other => {
                return Err(X509Error::UnknownRevocationReason {
                    given: other.to_string(),
                    known: Reason::NAMES,
                }
                .into())
            }
        })
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Reason::Unspecified,
            1 => Reason::KeyCompromise,
            2 => Reason::CaCompromise,
            3 => Reason::AffiliationChanged,
            4 => Reason::Superseded,
            5 => Reason::CessationOfOperation,
            9 => Reason::PrivilegeWithdrawn,
            _ => return None,
        })
    }
}

/// One revoked certificate.
#[derive(Clone, Debug)]
pub struct CrlEntry {
    /// Big-endian magnitude of the serial.
    pub serial: Vec<u8>,
    /// When it was revoked (the entry's revocationDate).
    pub revoked_at: OffsetDateTime,
    /// The reason code; None or `Unspecified` writes no reasonCode extension.
    pub reason: Option<Reason>,
    /// DER Name of the certificate's issuer when it is not the CRL's issuer (indirect CRL).
    pub certificate_issuer: Option<Vec<u8>>,
}

/// What the CRL says about itself.
pub struct CrlParams<'a> {
    /// DER Name of the CRL issuer (the signer's certificate subject).
    pub issuer_name: &'a [u8],
    /// The issuer's subjectKeyIdentifier, written as the CRL's authorityKeyIdentifier.
    pub issuer_key_id: &'a [u8],
    /// The CRL number.
    pub number: u64,
    /// thisUpdate: when the CRL is issued.
    pub this_update: OffsetDateTime,
    /// nextUpdate: when the next CRL is due; must be after `this_update`.
    pub next_update: OffsetDateTime,
    /// Emit issuingDistributionPoint { indirectCRL TRUE }.
    pub indirect: bool,
}

fn write_time(w: DERWriter<'_>, t: OffsetDateTime) {
    // RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050.
    if t.year() < 2050 {
        w.write_utctime(&UTCTime::from_datetime(t));
    } else {
        w.write_generalized_time(&GeneralizedTime::from_datetime(t));
    }
}

fn write_ext(w: DERWriter<'_>, id: &str, critical: bool, value: impl FnOnce(DERWriter<'_>)) {
    w.write_sequence(|w| {
        w.next().write_oid(&oid::object_identifier(id));
        if critical {
            w.next().write_bool(true);
        }
        let inner = yasna::construct_der(value);
        w.next().write_bytes(&inner);
    });
}

/// The DER AlgorithmIdentifier of the signature a key of this kind makes.
fn signature_algorithm_der(alg: KeyAlgorithm) -> Vec<u8> {
    oid::signature_algorithm_der(match alg {
        KeyAlgorithm::P256 => oid::ECDSA_SHA256,
        KeyAlgorithm::P384 => oid::ECDSA_SHA384,
        KeyAlgorithm::Ed25519 => oid::ED25519,
        KeyAlgorithm::Rsa(_) => oid::RSA_SHA256,
    })
}

/// Encodes and signs a CRL; returns its DER.
pub fn sign_crl(
    signer: &impl Signer,
    params: &CrlParams<'_>,
    entries: &[CrlEntry],
) -> Result<Vec<u8>> {
    if params.next_update <= params.this_update {
        return Err(X509Error::BadValidity("nextUpdate must be after thisUpdate".into()).into());
    }
    let alg_der = signature_algorithm_der(signer.key_algorithm());
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_u8(1); // v2
            w.next().write_der(&alg_der);
            w.next().write_der(params.issuer_name);
            write_time(w.next(), params.this_update);
            write_time(w.next(), params.next_update);
            if !entries.is_empty() {
                w.next().write_sequence_of(|w| {
                    for e in entries {
                        w.next().write_sequence(|w| {
                            w.next().write_bigint_bytes(&e.serial, true);
                            write_time(w.next(), e.revoked_at);
                            // RFC 5280 §5.3.1: "the reason code CRL entry extension SHOULD
                            // be absent instead of using the unspecified (0) reasonCode value".
                            let reason = e.reason.filter(|r| *r != Reason::Unspecified);
                            if reason.is_some() || e.certificate_issuer.is_some() {
                                w.next().write_sequence(|w| {
                                    if let Some(r) = reason {
                                        write_ext(w.next(), oid::CRL_REASON, false, |w| {
                                            w.write_enum(r as i64)
                                        });
                                    }
                                    if let Some(name) = &e.certificate_issuer {
                                        write_ext(w.next(), oid::CERTIFICATE_ISSUER, true, |w| {
                                            // GeneralNames { directoryName [4] EXPLICIT Name }
                                            w.write_sequence(|w| {
                                                w.next().write_tagged(Tag::context(4), |w| {
                                                    w.write_der(name)
                                                })
                                            })
                                        });
                                    }
                                });
                            }
                        });
                    }
                });
            }
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    write_ext(w.next(), oid::AUTHORITY_KEY_ID, false, |w| {
                        w.write_sequence(|w| {
                            w.next().write_tagged_implicit(Tag::context(0), |w| {
                                w.write_bytes(params.issuer_key_id)
                            })
                        })
                    });
                    write_ext(w.next(), oid::CRL_NUMBER, false, |w| {
                        w.write_u64(params.number)
                    });
                    if params.indirect {
                        write_ext(w.next(), oid::ISSUING_DISTRIBUTION_POINT, true, |w| {
                            w.write_sequence(|w| {
                                w.next()
                                    .write_tagged_implicit(Tag::context(4), |w| w.write_bool(true))
                            })
                        });
                    }
                });
            });
        });
    });
    let sig = signer.sign(&tbs).map_err(|e| {
        let reason = signer.take_sign_error().unwrap_or_else(|| e.to_string());
        KeyError::SigningFailed {
            what: "CRL",
            signer: signer.describe(),
            reason,
        }
    })?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&alg_der);
            w.next().write_bitvec_bytes(&sig, sig.len() * 8);
        })
    }))
}

/// The entries of a CRL (any issuer), without certificateIssuer: used to carry the root's
/// revocations of intermediates into the etcd CRL.
pub fn parse_entries(what: &str, der: &[u8]) -> Result<Vec<CrlEntry>> {
    use x509_parser::prelude::FromDer;
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(der).map_err(|e| {
            X509Error::BadCrl {
                what: what.into(),
                problem: CrlProblem::NotCrl {
                    detail: e.to_string(),
                },
            }
        })?;
    Ok(crl
        .iter_revoked_certificates()
        .map(|r| CrlEntry {
            serial: crate::x509::serial::Serial::from_bytes(r.raw_serial())
                .as_bytes()
                .to_vec(),
            revoked_at: r.revocation_date.to_datetime(),
            reason: r.reason_code().and_then(|(_, rc)| Reason::from_code(rc.0)),
            certificate_issuer: None,
        })
        .collect())
}

/// Checks a CRL's signature against an issuer's SubjectPublicKeyInfo.
pub fn verify_signature(der: &[u8], issuer_spki: &[u8]) -> Result<()> {
    use x509_parser::prelude::FromDer;
    let (_, crl) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(der).map_err(|e| {
            X509Error::BadCrl {
                what: "CRL".into(),
                problem: CrlProblem::NotCrl {
                    detail: e.to_string(),
                },
            }
        })?;
    crate::keys::sigcheck::verify(
        &crl.signature_algorithm.algorithm.to_id_string(),
        issuer_spki,
        crl.tbs_cert_list.as_ref(),
        crl.signature_value.as_ref(),
    )
}
