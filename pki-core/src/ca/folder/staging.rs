//! A generation's life before it is active: staging a request (new key and CSR), abandoning
//! it, and installing the root's response.

use super::*;
use crate::keys::signer::Signer;
use crate::keys::KeyError;
use crate::x509::X509Error;

/// What `intermediate-ca request` produced.
pub struct StagedRequest {
    /// The new generation's number.
    pub generation: u32,
    /// The request bundle to carry to the root, not yet sealed.
    pub bundle: Bundle,
    /// SHA-256 of the CSR's SubjectPublicKeyInfo, read out at the root ceremony.
    pub key_fingerprint: String,
}

impl CaDir {
    /// Opens a CA folder, or starts a new, empty one (no generation yet).
    pub fn open_or_create(path: &Path) -> Result<Self> {
        if path.join(STATE_FILE).exists() {
            return Self::open(path);
        }
        Ok(CaDir {
            path: path.to_path_buf(),
            state: CaState {
                format: 1,
                active: None,
                ledger: None,
                ledger_password_file: None,
                ledger_tls_ca: None,
                generations: Vec::new(),
            },
        })
    }

    /// A generation whose request was sent and whose certificate has not come back.
    pub fn staged(&self) -> Option<&GenerationState> {
        self.state
            .generations
            .iter()
            .rev()
            .find(|g| g.request_id.is_some() && !self.cert_path(g.id).exists())
    }

    /// Where a passphrase-protected folder keeps the age identity that the root's response is
    /// encrypted to (sealed with the same passphrase as the key): a passphrase cannot be an age
    /// recipient, so each request gets its own identity.
    pub fn reply_identity_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("reply-identity.age")
    }

    /// Gives up the staged generation of request `request_id`: deletes its sealed key, CSR and
    /// reply identity, then its entry in `ca.toml`. Files go first, so an interrupted run
    /// leaves a generation that can be abandoned again, never files that no entry names.
    /// Returns the paths removed. A key held in a token stays there (see the caller).
    pub fn abandon_staged(&mut self, request_id: &str) -> Result<(GenerationState, Vec<PathBuf>)> {
        let staged = self.staged().cloned().ok_or_else(|| Error::NothingStaged {
            path: self.path.clone(),
        })?;
        let staged_id = staged.request_id.clone().unwrap_or_default();
        if staged_id != request_id {
            return Err(Error::StagedRequestMismatch {
                path: self.path.clone(),
                generation: staged.id,
                staged: staged_id,
                given: request_id.to_string(),
            });
        }
        let mut removed = Vec::new();
        for p in [
            self.key_path(staged.id),
            self.csr_path(staged.id),
            self.reply_identity_path(staged.id),
        ] {
            match std::fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        let dir = self.generation_dir(staged.id);
        match std::fs::remove_dir(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        self.state.generations.retain(|g| g.id != staged.id);
        self.save_state()?;
        Ok((staged, removed))
    }

    /// Generates a new key and CSR as the next generation, leaving any active one in service.
    /// The key is sealed with `secret`; the response will be encrypted to `reply_to`.
    pub fn stage_request(
        &mut self,
        alg: KeyAlgorithm,
        subject: &Subject,
        new_key: NewKey<'_>,
        reply_to: &str,
        now: OffsetDateTime,
    ) -> Result<StagedRequest> {
        if let Some(g) = self.staged() {
            return Err(Error::AlreadyStaged {
                generation: g.id,
                request: g.request_id.clone().unwrap_or_default(),
            });
        }
        let id = self
            .state
            .generations
            .iter()
            .map(|g| g.id)
            .max()
            .unwrap_or(0)
            + 1;
        let (key, sealed, protection, location) = match new_key {
            NewKey::File(secret) => {
                let key = FileKey::generate(alg)?;
                let sealed = secret.seal(key.to_pkcs8_pem().as_bytes())?;
                (
                    crate::keys::CaKey::File(key),
                    Some(sealed),
                    secret.description(),
                    None,
                )
            }
            NewKey::Token(token, mut loc) => {
                let (key, attrs) = token.generate(alg)?;
                loc.key_id = Some(attrs.id);
                (
                    crate::keys::CaKey::Token(key),
                    None,
                    "pkcs11".to_string(),
                    Some(loc),
                )
            }
        };
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = subject.to_dn();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| KeyError::SigningFailed {
                what: "CSR",
                signer: key.describe(),
                reason: key.take_sign_error().unwrap_or_else(|| e.to_string()),
            })?;
        let csr_der = csr.der().to_vec();
        let request_id = Bundle::new_request_id();
        let mut bundle = Bundle::new(BundleKind::IntermediateRequest, &request_id);
        bundle.headers.insert("created".into(), fmt_time(now));
        bundle
            .headers
            .insert("reply-to".into(), reply_to.to_string());
        bundle
            .headers
            .insert("subject".into(), format!("CN={}", subject.common_name));
        bundle
            .blocks
            .push(("CERTIFICATE REQUEST".into(), csr_der.clone()));
        output::create_dir(&self.path, 0o700)?;
        output::create_dir(&self.generation_dir(id), 0o700)?;
        if let Some(sealed) = &sealed {
            output::write_atomic(&self.key_path(id), sealed, Mode::Secret, false)?;
        }
        output::write_atomic(
            &self.csr_path(id),
            crate::x509::certs::to_pem("CERTIFICATE REQUEST", &csr_der).as_bytes(),
            Mode::Public,
            false,
        )?;
        self.state.generations.push(GenerationState {
            id,
            source: "request".into(),
            created: fmt_time(now),
            key_protection: protection,
            request_id: Some(request_id),
            pkcs11: location,
        });
        self.ledger()?;
        self.save_state()?;
        Ok(StagedRequest {
            generation: id,
            bundle,
            key_fingerprint: key_fingerprint(&key.spki_der()),
        })
    }

    /// Checks a response bundle against the staged request and the pinned root, then makes
    /// its certificate the active generation. Nothing is written unless every check passes.
    pub fn install(
        &mut self,
        response: &Bundle,
        root_fingerprint: &str,
        now: OffsetDateTime,
    ) -> Result<u32> {
        let staged = self
            .staged()
            .ok_or(Error::Response(ResponseProblem::NothingWaiting))?;
        let id = staged.id;
        let staged_id = staged.request_id.clone().unwrap_or_default();
        if response.request_id != staged_id {
            return Err(Error::Response(ResponseProblem::OtherRequest {
                answered: response.request_id.clone(),
                staged: staged_id,
            }));
        }
        let certs = response.blocks_tagged("CERTIFICATE");
        if certs.len() != 2 {
            return Err(Error::Response(ResponseProblem::CertificateCount {
                found: certs.len(),
            }));
        }
        let int = CertFacts::from_der("intermediate certificate in the response", certs[0])?;
        let root = CertFacts::from_der("root certificate in the response", certs[1])?;
        let pinned = normalize_fingerprint(root_fingerprint);
        if root.fingerprint != pinned {
            return Err(Error::Response(ResponseProblem::OtherRoot {
                got: root.fingerprint.clone(),
                pinned,
            }));
        }
        if !root.self_signed || !root.is_ca {
            return Err(X509Error::NotCa("root certificate in the response".into()).into());
        }
        crate::keys::sigcheck::verify_certificate(&root.der, &root.spki_der)
            .map_err(|_| Error::Response(ResponseProblem::RootSelfSignature))?;
        crate::keys::sigcheck::verify_certificate(&int.der, &root.spki_der)
            .map_err(|_| Error::Response(ResponseProblem::NotSignedByRoot))?;
        if !int.is_ca || !int.key_cert_sign {
            return Err(X509Error::NotCa("intermediate certificate in the response".into()).into());
        }
        if now < int.not_before || now > int.not_after {
            return Err(Error::IssuerNotCurrent {
                not_before: fmt_time(int.not_before),
                not_after: fmt_time(int.not_after),
            });
        }
        let csr_path = self.csr_path(id);
        let csr = CheckedCsr::from_pem(&csr_path.display().to_string(), &output::read(&csr_path)?)?;
        if csr.spki_der != int.spki_der {
            return Err(Error::Response(ResponseProblem::OtherKey {
                generation: id,
            }));
        }
        let crls = response.blocks_tagged("X509 CRL");
        // The root CRL is trusted only once it verifies against the root; one that lists the
        // certificate being installed stops the install (item 4 of issue 12).
        let root_crl = crate::ca::folder::root_crl::check_for_install(
            self,
            crls.first().copied(),
            &root,
            &int,
        )?;
        if self.root_path().exists() {
            let existing = CertFacts::from_pem("root.crt", &output::read(&self.root_path())?)?;
            if existing.fingerprint != root.fingerprint {
                return Err(Error::Response(ResponseProblem::FolderPinnedElsewhere {
                    pinned: existing.fingerprint,
                    got: root.fingerprint.clone(),
                }));
            }
        }
        output::write_atomic(
            &self.cert_path(id),
            int.pem().as_bytes(),
            Mode::Public,
            false,
        )?;
        output::write_atomic(&self.root_path(), root.pem().as_bytes(), Mode::Public, true)?;
        if let Some(crl) = &root_crl {
            output::write_atomic(
                &self.root_crl_path(),
                crate::x509::certs::to_pem("X509 CRL", &crl.der).as_bytes(),
                Mode::Public,
                true,
            )?;
        }
        self.state.active = Some(id);
        self.save_state()?;
        Ok(id)
    }
}
