//! The [`Gate`] of one issuing CA: the name constraints of its chain and whether the root
//! revoked it, asked before every signature.

use crate::x509::X509Error;
use std::path::PathBuf;

use super::approval::unapproved_names;
use super::name_constraints::{leaf_names, Constraints};
use crate::ca::folder::root_crl::RootCrl;
use crate::ca::folder::CaDir;
use crate::ca::request::{LeafKey, LeafRequest};
use crate::error::{Error, Result};
use crate::x509::certs::CertFacts;
use crate::x509::profile::{LeafRole, Subject, SubjectNames};

/// Why the active intermediate may not issue at all.
#[derive(Clone, Debug)]
enum Block {
    Revoked {
        crl: PathBuf,
        serial: String,
        revoked_at: String,
    },
    CrlUnusable {
        crl: PathBuf,
        reason: String,
    },
}

/// The issuance policy of one issuing CA: its constraints, those of its root, and whether
/// the root revoked it.
#[derive(Clone, Debug, Default)]
pub struct Gate {
    issuer: String,
    constraints: Vec<Constraints>,
    block: Option<Block>,
}

impl Gate {
    /// The gate of a bare CA certificate: its own constraints only (no root, no root CRL).
    pub fn for_certificate(cert: &CertFacts) -> Result<Self> {
        Ok(Gate {
            issuer: cert.subject.clone(),
            constraints: Constraints::of_certificate(&cert.subject, &cert.der)?
                .into_iter()
                .collect(),
            block: None,
        })
    }

    /// The gate of a CA folder's active intermediate: its constraints, the pinned root's, and
    /// the root CRL the folder holds. Reads certificates only; no key is unlocked.
    pub fn for_ca(ca: &CaDir) -> Result<Self> {
        let cert = ca.cert(ca.active()?)?;
        Self::for_ca_cert(ca, &cert)
    }

    /// As [`Gate::for_ca`], for the certificate `cert` of that folder.
    pub fn for_ca_cert(ca: &CaDir, cert: &CertFacts) -> Result<Self> {
        let mut gate = Self::for_certificate(cert)?;
        let root = if ca.root_path().exists() {
            let p = ca.root_path();
            let root = CertFacts::from_pem(&p.display().to_string(), &crate::output::read(&p)?)?;
            gate.constraints
                .extend(Constraints::of_certificate("root certificate", &root.der)?);
            Some(root)
        } else {
            None
        };
        gate.block = root_crl_block(ca, root.as_ref(), cert);
        Ok(gate)
    }

    /// Refuses when the issuing CA may not issue at all (revoked by the root, or its root CRL
    /// unusable).
    pub fn check_issuer(&self) -> Result<()> {
        match &self.block {
            None => Ok(()),
            Some(Block::Revoked {
                crl,
                serial,
                revoked_at,
            }) => Err(Error::IssuerRevoked {
                issuer: self.issuer.clone(),
                serial: serial.clone(),
                crl: crl.clone(),
                revoked_at: revoked_at.clone(),
            }),
            Some(Block::CrlUnusable { crl, reason }) => Err(Error::RootCrlUnusable {
                crl: crl.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Refuses names the constraints of the chain exclude or do not permit.
    pub fn check_names(&self, subject: &Subject, names: &SubjectNames) -> Result<()> {
        for n in leaf_names(subject, names) {
            for c in &self.constraints {
                c.check(&n)?;
            }
        }
        Ok(())
    }

    /// Everything the gate decides about one leaf, before anything is signed.
    /// `role` is not consulted yet; it is part of the question so that a per-role rule (or a
    /// service with its own policy) needs no change to any caller.
    pub fn check(&self, _role: LeafRole, subject: &Subject, names: &SubjectNames) -> Result<()> {
        self.check_issuer()?;
        self.check_names(subject, names)
    }

    /// The gate's decision on a full request, including that a CSR's names and CN were
    /// approved (see [`approve_csr`](super::approve_csr)): a request whose CSR asks for more
    /// than the operator approved never reaches a signature, whichever path built it.
    pub fn check_request(&self, req: &LeafRequest) -> Result<()> {
        if let LeafKey::Csr(csr) = &req.key {
            unapproved_names(&csr.subject, csr, &req.names)?;
            if let Some(requested) = &csr.common_name {
                if *requested != req.subject.common_name {
                    return Err(X509Error::CnMismatch {
                        what: format!("CSR {}", csr.subject),
                        requested: requested.clone(),
                        approved: req.subject.common_name.clone(),
                    }
                    .into());
                }
            }
        }
        self.check(req.role, &req.subject, &req.names)
    }
}

fn root_crl_block(ca: &CaDir, root: Option<&CertFacts>, cert: &CertFacts) -> Option<Block> {
    let path = ca.root_crl_path();
    if !path.exists() {
        return None;
    }
    let unusable = |reason: String| {
        Some(Block::CrlUnusable {
            crl: path.clone(),
            reason,
        })
    };
    let Some(root) = root else {
        return unusable(format!(
            "there is no pinned root certificate ({}) to check it against",
            ca.root_path().display()
        ));
    };
    let crl = match RootCrl::load(&path, root) {
        Ok(c) => c,
        Err(e) => match crate::ca::folder::root_crl::unusable(path.clone(), e) {
            Error::RootCrlUnusable { reason, .. } => return unusable(reason),
            other => return unusable(other.to_string()),
        },
    };
    crl.revocation_of(cert).map(|revoked_at| Block::Revoked {
        crl: path.clone(),
        serial: cert.serial.to_hex(),
        revoked_at,
    })
}
