//! Issuing leaves: profile → to-be-signed → signature → ledger → files, in that order.

use crate::keys::KeyError;
use crate::x509::X509Error;
use std::path::{Path, PathBuf};

use rcgen::Issuer;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::ca::folder::CaDir;
use crate::ca::ledger::{LeafRecord, Ledger};
use crate::error::{Error, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::keyfile::KeySecret;
use crate::keys::signer::{FileKey, Signer};
use crate::output::{self, Mode};
use crate::x509::certs::{fingerprint, CertFacts};
use crate::x509::profile::{LeafRole, Subject, SubjectNames};
use crate::x509::serial::Serial;
use crate::x509::validity::Validity;

pub use crate::ca::request::{LeafKey, LeafRequest};

/// A signed leaf, not yet recorded or written.
pub struct IssuedLeaf {
    /// The leaf's role.
    pub role: LeafRole,
    /// The leaf's serial number.
    pub serial: Serial,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    /// Leaf then intermediate, the chain file etcd's flags expect.
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM, when it was generated here; None when the requester keeps it.
    pub key_pem: Option<Zeroizing<String>>,
    /// The algorithm of the certified key.
    pub key_alg: KeyAlgorithm,
    /// The validity signed.
    pub validity: Validity,
    /// The subject signed.
    pub subject: Subject,
    /// The subject alternative names signed.
    pub names: SubjectNames,
}

/// The active intermediate of a CA folder, unlocked and ready to sign.
pub struct IssuingCa<S: Signer> {
    /// The generation of the CA folder this intermediate is.
    pub generation: u32,
    /// The intermediate's certificate.
    pub cert: CertFacts,
    issuer: Issuer<'static, S>,
    /// The issuance policy every leaf passes before it is signed.
    gate: crate::ca::policy::Gate,
    /// Lifetime of leaves that ask for no number of days, instead of their profile's.
    leaf_lifetime: Option<time::Duration>,
}

impl IssuingCa<FileKey> {
    /// Unlocks the active generation of `ca` (its key in an age-encrypted file).
    pub fn open(ca: &CaDir, secret: &KeySecret) -> Result<Self> {
        let gate = crate::ca::policy::Gate::for_ca(ca)?;
        let (generation, cert, key) = ca.issuing_key(secret)?;
        Self::new(generation, cert, key)?.with_gate(gate)
    }
}

impl IssuingCa<crate::keys::CaKey> {
    /// Unlocks the active generation wherever its key lives: `secret` is asked for only when
    /// the key is an age-encrypted file, `pin` only when it is in a PKCS#11 token.
    pub fn unlock(
        ca: &CaDir,
        secret: impl FnOnce() -> Result<KeySecret>,
        pin: impl FnOnce() -> Result<Zeroizing<String>>,
    ) -> Result<Self> {
        // The gate reads certificates only: a broken root CRL is reported before any PIN.
        let gate = crate::ca::policy::Gate::for_ca(ca)?;
        let ca = match ca.active_token() {
            Some(loc) => {
                let token = crate::keys::pkcs11::Token::open(&loc.config(), &pin()?)?;
                let (generation, cert, key) = ca.issuing_token_key(&token)?;
                Self::new(generation, cert, key)
            }
            None => {
                let (generation, cert, key) = ca.issuing_key(&secret()?)?;
                Self::new(generation, cert, crate::keys::CaKey::File(key))
            }
        }?;
        ca.with_gate(gate)
    }
}

impl<S: Signer> IssuingCa<S> {
    /// A failed signature, with the key's own reason when it has one (a token's error).
    fn signing_error(&self, e: rcgen::Error) -> Error {
        let key = self.issuer.key();
        KeyError::SigningFailed {
            what: "certificate",
            signer: key.describe(),
            reason: key.take_sign_error().unwrap_or_else(|| e.to_string()),
        }
        .into()
    }

    /// Wraps `key` and `cert`, the intermediate certificate of `generation`. Its gate holds the
    /// certificate's own name constraints only (see [`IssuingCa::with_gate`]). Fails with
    /// [`X509Error::BadCertificate`] when the certificate cannot be used to sign.
    pub fn new(generation: u32, cert: CertFacts, key: S) -> Result<Self> {
        let issuer = Issuer::from_ca_cert_der(&cert.der.clone().into(), key).map_err(|e| {
            X509Error::BadCertificate {
                what: "issuing CA certificate".into(),
                detail: e.to_string(),
            }
        })?;
        Ok(IssuingCa {
            gate: crate::ca::policy::Gate::for_certificate(&cert)?,
            leaf_lifetime: None,
            generation,
            cert,
            issuer,
        })
    }

    /// Replaces the gate (by default the certificate's own constraints) with one that also
    /// knows the root and the root CRL, see [`crate::ca::policy::Gate::for_ca`].
    pub fn with_gate(mut self, gate: crate::ca::policy::Gate) -> Result<Self> {
        self.gate = gate;
        Ok(self)
    }

    /// Leaves that ask for no number of days get `lifetime` (at least 10 seconds, at most
    /// their profile's maximum) instead of their profile's default: for drills and tests of
    /// renewal, whose leaves live minutes.
    pub fn with_leaf_lifetime(mut self, lifetime: time::Duration) -> Self {
        self.leaf_lifetime = Some(lifetime);
        self
    }

    /// The drill lifetime set by [`IssuingCa::with_leaf_lifetime`], if any, taken off (leaves
    /// then get their profile's); give it back with [`IssuingCa::set_leaf_lifetime`].
    pub fn take_leaf_lifetime(&mut self) -> Option<time::Duration> {
        self.leaf_lifetime.take()
    }

    /// Sets (or clears) the drill lifetime.
    pub fn set_leaf_lifetime(&mut self, lifetime: Option<time::Duration>) {
        self.leaf_lifetime = lifetime;
    }

    /// The issuance policy of this CA, for callers that check many leaves before signing any.
    pub fn gate(&self) -> &crate::ca::policy::Gate {
        &self.gate
    }

    /// Signs a v2 CRL with this intermediate's key: CRL number, AKI (= our SKI), nextUpdate.
    /// `indirect` makes it the etcd CRL, an indirect CRL (see [`crate::x509::sign_crl`] and
    /// docs/crl.md).
    pub fn sign_crl(
        &self,
        entries: &[crate::x509::crl::CrlEntry],
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        indirect: bool,
    ) -> Result<Vec<u8>> {
        if next_update > self.cert.not_after {
            return Err(X509Error::OutlivesIssuer {
                requested: crate::x509::validity::fmt_time(next_update),
                issuer: crate::x509::validity::fmt_time(self.cert.not_after),
            }
            .into());
        }
        let ski = self
            .cert
            .ski
            .clone()
            .ok_or_else(|| X509Error::BadCertificate {
                what: "issuing CA certificate".into(),
                detail: "no subjectKeyIdentifier, so CRLs could not name their issuer key".into(),
            })?;
        let der = crate::x509::crl::sign_crl(
            self.issuer.key(),
            &crate::x509::crl::CrlParams {
                issuer_name: &self.cert.subject_der,
                issuer_key_id: &ski,
                number,
                this_update,
                next_update,
                indirect,
            },
            entries,
        )?;
        crate::x509::crl::verify_signature(&der, &self.cert.spki_der).map_err(|_| {
            X509Error::SignatureCheckFailed {
                what: "CRL".into(),
                issuer: self.cert.subject.clone(),
            }
        })?;
        Ok(der)
    }

    /// Signs one leaf per its role's profile, once the gate approved it; the signature is
    /// checked in software before the leaf is returned, so a wrong key never yields a leaf.
    pub fn sign_leaf(&self, req: LeafRequest, now: OffsetDateTime) -> Result<IssuedLeaf> {
        self.sign_leaf_as(req, now, Serial::random())
    }

    /// [`IssuingCa::sign_leaf`] with a serial reserved beforehand
    /// ([`crate::ca::Ledger::reserve_serial`]): what several instances on one ledger do, so
    /// that no two can sign the same serial.
    pub fn sign_leaf_as(
        &self,
        req: LeafRequest,
        now: OffsetDateTime,
        serial: Serial,
    ) -> Result<IssuedLeaf> {
        self.gate.check_request(&req)?;
        let profile = req.role.profile();
        let window = Some((self.cert.not_before, self.cert.not_after));
        let validity = match (req.days, self.leaf_lifetime) {
            (None, Some(life)) if life <= time::Duration::days(profile.max_days() as i64) => {
                Validity::lasting(life, window, now)?
            }
            (days, _) => Validity::within_issuer(
                days.unwrap_or(profile.default_days()),
                profile.max_days(),
                window,
                now,
            )?,
        };
        let (key_alg, key_pem, cert) = match &req.key {
            LeafKey::Generate(alg) => {
                let key = FileKey::generate(*alg)?;
                let params =
                    profile.params(&req.subject, &req.names, &validity, &serial, *alg, None)?;
                let cert = params
                    .signed_by(&key, &self.issuer)
                    .map_err(|e| self.signing_error(e))?;
                (*alg, Some(key.to_pkcs8_pem()), cert)
            }
            LeafKey::Spki { spki_der, alg } => {
                let pk = rcgen::SubjectPublicKeyInfo::from_der(spki_der).map_err(|e| {
                    X509Error::BadPublicKey {
                        what: "public key",
                        detail: e.to_string(),
                    }
                })?;
                let params =
                    profile.params(&req.subject, &req.names, &validity, &serial, *alg, None)?;
                let cert = params
                    .signed_by(&pk, &self.issuer)
                    .map_err(|e| self.signing_error(e))?;
                (*alg, None, cert)
            }
            LeafKey::Csr(csr) => {
                let pk = csr.public_key()?;
                let params = profile.params(
                    &req.subject,
                    &req.names,
                    &validity,
                    &serial,
                    csr.key_alg,
                    None,
                )?;
                let cert = params
                    .signed_by(&pk, &self.issuer)
                    .map_err(|e| self.signing_error(e))?;
                (csr.key_alg, None, cert)
            }
        };
        let cert_der = cert.der().to_vec();
        crate::keys::sigcheck::verify_certificate(&cert_der, &self.cert.spki_der).map_err(
            |_| X509Error::SignatureCheckFailed {
                what: format!("{} certificate for {}", req.role, req.subject.common_name),
                issuer: self.cert.subject.clone(),
            },
        )?;
        let mut chain_pem = cert.pem();
        chain_pem.push_str(&self.cert.pem());
        Ok(IssuedLeaf {
            role: req.role,
            serial,
            cert_der,
            chain_pem,
            key_pem,
            key_alg,
            validity,
            subject: req.subject,
            names: req.names,
        })
    }
}

/// The two files of one leaf inside an output folder.
pub struct LeafPaths {
    /// The certificate file: the leaf then the intermediate, PEM.
    pub cert: PathBuf,
    /// The private key file, PKCS#8 PEM.
    pub key: PathBuf,
}

impl LeafPaths {
    /// `<role>.crt` and `<role>.key` in `out_dir`.
    pub fn new(out_dir: &Path, role: LeafRole) -> Self {
        LeafPaths {
            cert: out_dir.join(format!("{}.crt", role.as_str())),
            key: out_dir.join(format!("{}.key", role.as_str())),
        }
    }

    /// Refuses existing outputs; call before unlocking the CA key.
    pub fn ensure_absent(&self, with_key: bool, force: bool) -> Result<()> {
        output::ensure_absent(&self.cert, force)?;
        if with_key {
            output::ensure_absent(&self.key, force)?;
        }
        Ok(())
    }
}

impl IssuedLeaf {
    /// The ledger row of this leaf, issued by `generation` with its certificate at `cert_path`:
    /// status `active`, key source `generated` or `csr`.
    pub fn record(&self, generation: u32, cert_path: &Path) -> LeafRecord {
        LeafRecord {
            serial: self.serial.to_hex(),
            generation,
            profile: self.role.as_str().into(),
            subject: self.subject.common_name.clone(),
            dns: self.names.dns.clone(),
            ips: self.names.ips.iter().map(|i| i.to_string()).collect(),
            key_alg: self.key_alg.to_string(),
            key_source: if self.key_pem.is_some() {
                "generated".into()
            } else {
                "csr".into()
            },
            not_before: self.validity.not_before,
            not_after: self.validity.not_after,
            status: "active".into(),
            revocation_reason: None,
            cert_path: cert_path.display().to_string(),
            fingerprint: fingerprint(&self.cert_der),
        }
    }

    /// Commits the leaf to the ledger, then writes key and chain atomically; see
    /// [`IssuedLeaf::commit_as`].
    pub fn commit(
        &self,
        ledger: &mut Ledger,
        generation: u32,
        paths: &LeafPaths,
        force: bool,
    ) -> Result<LeafRecord> {
        let abs = std::path::absolute(&paths.cert).map_err(|e| Error::io(&paths.cert, e))?;
        self.commit_as(ledger, generation, paths, &abs, force)
    }

    /// Recorded before written, in this order:
    /// 1. the ledger row, committed durably under `recorded` (where the certificate will live);
    /// 2. the key (when generated here), then the chain, each atomically at `paths`;
    /// 3. on a failure, the row is forgotten only when the certificate never reached its name
    ///    in `paths` (it never left this machine), together with the key written in step 2.
    ///    Once the certificate is there it can be copied and used, so its row stays and the
    ///    error says that it was issued.
    pub fn commit_as(
        &self,
        ledger: &mut Ledger,
        generation: u32,
        paths: &LeafPaths,
        recorded: &Path,
        force: bool,
    ) -> Result<LeafRecord> {
        paths.ensure_absent(self.key_pem.is_some(), force)?;
        let rec = self.record(generation, recorded);
        ledger.record(&rec, &self.cert_der)?;
        let mut key_written = false;
        let mut result = Ok(());
        if let Some(key) = &self.key_pem {
            result = output::write_atomic(&paths.key, key.as_bytes(), Mode::Secret, force);
            key_written = result.is_ok();
        }
        if result.is_ok() {
            result = crate::failpoint::check("commit.before_cert", &paths.cert);
        }
        if result.is_ok() {
            result =
                output::write_atomic(&paths.cert, self.chain_pem.as_bytes(), Mode::Public, force);
        }
        let Err(e) = result else {
            return Ok(rec);
        };
        let delivered = std::fs::read(&paths.cert).is_ok_and(|b| b == self.chain_pem.as_bytes());
        if delivered {
            return Err(Error::IssuedButFailed {
                path: paths.cert.clone(),
                serial: rec.serial,
                source: Box::new(e),
            });
        }
        if key_written {
            output::remove_quietly(&paths.key);
        }
        let _ = ledger.forget_unwritten(&rec.serial);
        Err(e)
    }
}
