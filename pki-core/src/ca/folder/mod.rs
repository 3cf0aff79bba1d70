//! The intermediate's state folder:
//!
//! ```text
//! DIR/ca.toml                              which generation is active, and how each key is protected
//! DIR/generations/<N>/intermediate.crt     the CA certificate of generation N
//! DIR/generations/<N>/intermediate.key.age its private key, age-encrypted (PKCS#8 PEM inside)
//! DIR/ledger.sqlite                        every leaf issued from this folder
//! ```
//!
//! Generations let a rotated intermediate be staged beside the active one.

pub mod root_crl;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bundle::{Bundle, BundleKind};
use crate::ca::ledger::Ledger;
use crate::error::{Error, ResponseProblem, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::keys::keyfile::KeySecret;
use crate::keys::signer::FileKey;
use crate::output::{self, Mode};
use crate::x509::certs::{normalize_fingerprint, CertFacts};
use crate::x509::csr::CheckedCsr;
use crate::x509::profile::Subject;
use crate::x509::validity::fmt_time;

const STATE_FILE: &str = "ca.toml";

/// The contents of `ca.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaState {
    /// Version of the state file's format (1).
    pub format: u32,
    /// The generation that issues; None until one is installed.
    pub active: Option<u32>,
    /// Every generation, in order of creation (the `[[generation]]` tables).
    #[serde(default, rename = "generation")]
    pub generations: Vec<GenerationState>,
}

/// One generation of the intermediate: a key and, once installed, its certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationState {
    /// The generation number, counting from 1; names its folder under `generations/`.
    pub id: u32,
    /// `import` or `request`
    pub source: String,
    /// When the generation was created, RFC 3339.
    pub created: String,
    /// `x25519:<recipient>`, `passphrase`, or `pkcs11` (the key is in a token)
    pub key_protection: String,
    /// The request ID of the enrolment that created this generation (`request` only).
    #[serde(default)]
    pub request_id: Option<String>,
    /// Where the key lives when it is in a PKCS#11 token (`key_protection = "pkcs11"`).
    #[serde(default)]
    pub pkcs11: Option<TokenLocation>,
}

/// A key in a PKCS#11 token: module, token label, key label.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenLocation {
    /// Path of the PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The key pair's label in the token.
    pub key_label: String,
    /// The key's CKA_ID (hex), recorded when `request` generated it: the key is found by label
    /// and ID, so a second key planted under the same label is never picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl TokenLocation {
    /// The [`crate::keys::pkcs11::TokenConfig`] that opens this key.
    pub fn config(&self) -> crate::keys::pkcs11::TokenConfig {
        crate::keys::pkcs11::TokenConfig {
            module: self.module.clone(),
            token_label: self.token.clone(),
            key_label: self.key_label.clone(),
            key_id: self.key_id.clone(),
        }
    }
}

/// Where a new intermediate key is made.
pub enum NewKey<'a> {
    /// In memory, then sealed at rest with the secret.
    File(&'a KeySecret),
    /// In a PKCS#11 token (opened and logged in), under this location.
    Token(
        &'a std::sync::Arc<crate::keys::pkcs11::Token>,
        TokenLocation,
    ),
}

/// A managed CA folder.
pub struct CaDir {
    /// The folder.
    pub path: PathBuf,
    /// Its `ca.toml`, as read (or as it will be written).
    pub state: CaState,
}

impl CaDir {
    /// Opens a managed CA folder; fails with [`Error::NotCaDir`] when its `ca.toml` is missing,
    /// unreadable or invalid.
    pub fn open(path: &Path) -> Result<Self> {
        let file = path.join(STATE_FILE);
        let text = output::read_to_string(&file).map_err(|_| Error::NotCaDir {
            path: path.to_path_buf(),
            reason: format!("{} is missing or unreadable", file.display()),
        })?;
        let state: CaState = toml::from_str(&text).map_err(|e| Error::NotCaDir {
            path: path.to_path_buf(),
            reason: format!("{}: {e}", file.display()),
        })?;
        Ok(CaDir {
            path: path.to_path_buf(),
            state,
        })
    }

    /// `generations/<id>`: the folder of generation `id`.
    pub fn generation_dir(&self, id: u32) -> PathBuf {
        self.path.join("generations").join(id.to_string())
    }

    /// The certificate of generation `id` (PEM), present once the generation is installed.
    pub fn cert_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("intermediate.crt")
    }

    /// The age-encrypted private key of generation `id` (absent when the key is in a token).
    pub fn key_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("intermediate.key.age")
    }

    /// The CSR of generation `id`, PEM (generations made by `request`).
    pub fn csr_path(&self, id: u32) -> PathBuf {
        self.generation_dir(id).join("request.csr")
    }

    /// The root certificate pinned at install time.
    pub fn root_path(&self) -> PathBuf {
        self.path.join("root.crt")
    }

    /// The latest root CRL received in a response bundle.
    pub fn root_crl_path(&self) -> PathBuf {
        self.path.join("root-crl.pem")
    }

    /// The ledger database, `ledger.sqlite`.
    pub fn ledger_path(&self) -> PathBuf {
        self.path.join("ledger.sqlite")
    }

    /// Opens the folder's ledger, creating it if needed.
    pub fn ledger(&self) -> Result<Ledger> {
        Ledger::open(&self.ledger_path())
    }

    /// The active generation; fails with [`Error::NotCaDir`] before one is installed.
    pub fn active(&self) -> Result<u32> {
        self.state.active.ok_or_else(|| Error::NotCaDir {
            path: self.path.clone(),
            reason: "no active intermediate yet; install one first".into(),
        })
    }

    /// The certificate of generation `id`, read from its file.
    pub fn cert(&self, id: u32) -> Result<CertFacts> {
        let p = self.cert_path(id);
        CertFacts::from_pem(&p.display().to_string(), &output::read(&p)?)
    }

    fn save_state(&self) -> Result<()> {
        let text = toml::to_string(&self.state).expect("state serialises");
        output::write_atomic(
            &self.path.join(STATE_FILE),
            text.as_bytes(),
            Mode::Public,
            true,
        )
    }

    /// Brings an existing CA (certificate + PKCS#8 key, e.g. from the OpenSSL flow) under
    /// management as generation 1 of a new folder. The key is re-encrypted at rest with
    /// `secret`; nothing is written unless the pair is a usable CA.
    pub fn import(dir: &Path, cert_pem: &[u8], key_pem: &str, secret: &KeySecret) -> Result<Self> {
        if dir.join(STATE_FILE).exists() {
            return Err(Error::AlreadyManaged {
                path: dir.to_path_buf(),
            });
        }
        let facts = CertFacts::from_pem("CA certificate", cert_pem)?;
        if !facts.is_ca || !facts.key_cert_sign {
            return Err(Error::NotCa(format!("CA certificate ({})", facts.subject)));
        }
        let now = OffsetDateTime::now_utc();
        if facts.not_after < now {
            return Err(Error::IssuerNotCurrent {
                not_before: fmt_time(facts.not_before),
                not_after: fmt_time(facts.not_after),
            });
        }
        let key = FileKey::from_pkcs8_pem("CA key", key_pem)?;
        check_key_matches(&key, &facts)?;
        let sealed = secret.seal(key.to_pkcs8_pem().as_bytes())?;

        let ca = CaDir {
            path: dir.to_path_buf(),
            state: CaState {
                format: 1,
                active: Some(1),
                generations: vec![GenerationState {
                    id: 1,
                    source: "import".into(),
                    created: fmt_time(now),
                    key_protection: secret.description(),
                    request_id: None,
                    pkcs11: None,
                }],
            },
        };
        output::create_dir(dir, 0o700)?;
        output::create_dir(&ca.generation_dir(1), 0o700)?;
        output::write_atomic(&ca.key_path(1), &sealed, Mode::Secret, false)?;
        output::write_atomic(
            &ca.cert_path(1),
            facts.pem().as_bytes(),
            Mode::Public,
            false,
        )?;
        ca.ledger()?;
        ca.save_state()?;
        Ok(ca)
    }

    /// The active generation's token location, when its key is in a PKCS#11 token.
    pub fn active_token(&self) -> Option<TokenLocation> {
        let id = self.state.active?;
        self.state
            .generations
            .iter()
            .find(|g| g.id == id)?
            .pkcs11
            .clone()
    }

    /// The active generation's key from its token, checked against its certificate.
    pub fn issuing_token_key(
        &self,
        token: &std::sync::Arc<crate::keys::pkcs11::Token>,
    ) -> Result<(u32, CertFacts, crate::keys::CaKey)> {
        let id = self.active()?;
        let facts = self.cert(id)?;
        let key = token.key()?;
        if key.spki_der() != facts.spki_der {
            return Err(Error::KeyMismatch(format!(
                "the token key is not the key of {} ({})",
                self.cert_path(id).display(),
                facts.subject
            )));
        }
        Ok((id, facts, crate::keys::CaKey::Token(key)))
    }

    /// Decrypts the active generation's key and checks it still matches its certificate.
    pub fn issuing_key(&self, secret: &KeySecret) -> Result<(u32, CertFacts, FileKey)> {
        let id = self.active()?;
        let facts = self.cert(id)?;
        let pem = secret.open(&self.key_path(id))?;
        let pem = std::str::from_utf8(&pem)
            .map_err(|_| Error::input("CA key", "decrypted key is not PEM text"))?;
        let key = FileKey::from_pkcs8_pem("CA key", pem)?;
        check_key_matches(&key, &facts)?;
        Ok((id, facts, key))
    }
}

/// A held lock on a CA folder (an flock on the folder itself, so no lock file appears in it);
/// released when dropped or when the process ends, so a killed command never leaves it held.
pub struct CaLock {
    _dir: std::fs::File,
}

/// How long a command waits for another one to release the CA folder.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

impl CaDir {
    /// The exclusive lock: for commands that read the ledger and then change it or files
    /// derived from it (renew, reissue, revoke, crl, etcd), so two of them cannot both act on
    /// what they read before the other wrote (two renewals of one leaf, a CRL number published
    /// after a higher one).
    pub fn lock_exclusive(&self) -> Result<CaLock> {
        self.lock(false)
    }

    /// The shared lock: for commands that only add new leaves (issue, batch); they run side by
    /// side, but never while an exclusive holder is at work.
    pub fn lock_shared(&self) -> Result<CaLock> {
        self.lock(true)
    }

    fn lock(&self, shared: bool) -> Result<CaLock> {
        let dir = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let started = std::time::Instant::now();
        loop {
            let tried = if shared {
                dir.try_lock_shared()
            } else {
                dir.try_lock()
            };
            match tried {
                Ok(()) => return Ok(CaLock { _dir: dir }),
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::CaBusy {
                        path: self.path.clone(),
                    })
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&self.path, e)),
            }
        }
    }
}

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
            .map_err(|e| Error::Signing(format!("CSR: {e}")))?;
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
            return Err(Error::input(
                "response",
                "it must carry the intermediate and the root certificate",
            ));
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
            return Err(Error::NotCa("root certificate in the response".into()));
        }
        crate::keys::sigcheck::verify_certificate(&root.der, &root.spki_der)
            .map_err(|_| Error::Response(ResponseProblem::RootSelfSignature))?;
        crate::keys::sigcheck::verify_certificate(&int.der, &root.spki_der)
            .map_err(|_| Error::Response(ResponseProblem::NotSignedByRoot))?;
        if !int.is_ca || !int.key_cert_sign {
            return Err(Error::NotCa(
                "intermediate certificate in the response".into(),
            ));
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

/// SHA-256 of a SubjectPublicKeyInfo, as upper-case hex with colons.
pub fn key_fingerprint(spki_der: &[u8]) -> String {
    crate::x509::certs::fingerprint(spki_der)
}

/// Refuses a key whose public half differs from the certificate's.
pub fn check_key_matches(key: &FileKey, cert: &CertFacts) -> Result<()> {
    if key.spki_der() != cert.spki_der {
        return Err(Error::KeyMismatch(format!(
            "certificate '{}' has a different public key than the {}",
            cert.subject,
            crate::keys::signer::Signer::describe(key)
        )));
    }
    Ok(())
}
