//! What the agent does: enrol once, renew each leaf at about 2/3 of its life, confirm, keep
//! the CRL current. Every certificate and CRL received is checked against the local root
//! before it is installed; nothing working is removed.

use std::sync::{Arc, Mutex};

use pki_core::keys::KeyAlgorithm;
use pki_core::x509::CheckedCsr;
use pki_core::x509::{self, Level, VerifyRequest};
use pki_core::x509::{san_names, CertFacts};
use pki_service::client::{self, Endpoint};
use pki_service::protocol::{self, EnrolRequest, EnrolResponse, Issued, RenewRequest, RoleCsr};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::config::{Config, LeafConfig};
use crate::error::{AgentError, AgentResult};
use crate::install::install_pair;
use crate::state::State;
use crate::trust::{Pins, Use};

/// A configured agent.
pub struct Agent {
    /// Its configuration.
    pub config: Config,
    root: CertFacts,
    root_pem: Vec<u8>,
    /// The service, then its fallback instances.
    endpoints: Vec<Endpoint>,
    rt: tokio::runtime::Runtime,
    /// What this host trusts beyond the root; saved with the state.
    pins: Arc<Mutex<Pins>>,
}

/// What a leaf looks like on disk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeafView {
    /// The role (not serialised: the status line of the leaf names it once).
    #[serde(skip_serializing)]
    pub role: String,
    /// Serial, hex.
    pub serial: String,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// When the agent renews it.
    #[serde(with = "time::serde::rfc3339")]
    pub renew_after: OffsetDateTime,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn key_pem_of(pair: &rcgen::KeyPair) -> Zeroizing<String> {
    Zeroizing::new(pair.serialize_pem())
}

/// A leaf's chain and key files, as they are now.
/// The intermediate (DER) of a chain file: its second certificate.
fn chain_intermediate(pem: &[u8]) -> Option<Vec<u8>> {
    pki_core::x509::pem_blocks("chain", pem, "CERTIFICATE")
        .ok()?
        .into_iter()
        .nth(1)
}

fn read_pair(l: &LeafConfig) -> AgentResult<(Vec<u8>, Zeroizing<Vec<u8>>)> {
    let chain = pki_core::output::read(&l.cert)?;
    let key = Zeroizing::new(pki_core::output::read(&l.key)?);
    Ok((chain, key))
}

/// A fresh key and a CSR for it, with `cn` as its subject (none for an enrolment: the grant
/// decides). The service takes names from its ledger, never from the CSR, and refuses a CSR
/// whose CN differs from the leaf's.
fn key_and_csr(alg: KeyAlgorithm, cn: Option<&str>) -> AgentResult<(Zeroizing<String>, String)> {
    let pair = alg.generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    let csr = params
        .serialize_request(&pair)
        .and_then(|c| c.pem())
        .map_err(|e| AgentError::Csr(e.to_string()))?;
    Ok((key_pem_of(&pair), csr))
}

impl Agent {
    /// Loads the configuration's root; nothing is contacted yet.
    pub fn new(config: Config) -> AgentResult<Self> {
        let root_pem = pki_core::output::read(&config.root)?;
        let root = CertFacts::from_pem("root certificate", &root_pem)?;
        let endpoints = std::iter::once(&config.service)
            .chain(&config.fallback)
            .map(|u| Endpoint::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| pki_core::Error::io("tokio runtime", e))?;
        let mut pins = State::load(&config.state).unwrap_or_default().trust;
        if pins.seen.is_empty() {
            // A state from before the pins: the intermediates of this host's own chains.
            for l in &config.leaves {
                let int = std::fs::read(&l.cert)
                    .ok()
                    .and_then(|pem| chain_intermediate(&pem))
                    .and_then(|der| CertFacts::from_der("intermediate", &der).ok());
                if let Some(int) = int
                    .filter(|i| pki_core::keys::verify_certificate(&i.der, &root.spki_der).is_ok())
                {
                    pins.learn(&int);
                }
            }
        }
        Ok(Agent {
            config,
            root,
            root_pem,
            endpoints,
            rt,
            pins: Arc::new(Mutex::new(pins)),
        })
    }

    /// A copy of the pins as they are now.
    pub fn pins(&self) -> Pins {
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Saves `state` with the pins learned so far.
    pub fn save(&self, state: &mut State) -> AgentResult<()> {
        state.trust = self.pins();
        state.save(&self.config.state)
    }

    /// Checks `int` (signed by our root) against the pins for `use_`, and learns it.
    fn admit(&self, int: &CertFacts, use_: Use) -> Result<(), String> {
        pki_core::keys::verify_certificate(&int.der, &self.root.spki_der)
            .map_err(|_| format!("{} is not signed by our root", int.subject))?;
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        pins.check(int, use_)?;
        pins.learn(int);
        Ok(())
    }

    /// Takes the root CRL of a `GET /v1/ca` answer into the pins (an older one changes
    /// nothing; one not signed by our root is an error).
    fn learn_root_crl(&self, info: &protocol::CaInfo) -> AgentResult<()> {
        let Some(pem) = &info.root_crl_pem else {
            return Ok(());
        };
        let der = pki_core::x509::pem_blocks("root CRL", pem.as_bytes(), "X509 CRL")?
            .into_iter()
            .next()
            .unwrap_or_default();
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .learn_root_crl(&der, &self.root)
            .map(|_| ())
            .map_err(|reason| AgentError::BadCertificate {
                role: "root CRL".into(),
                reason,
            })
    }

    fn tls(&self, identity: Option<(&[u8], &[u8])>) -> AgentResult<Arc<rustls::ClientConfig>> {
        let root = CertificateDer::from(self.root.der.clone());
        let identity = match identity {
            Some((chain, key)) => {
                use rustls::pki_types::pem::PemObject;
                let chain = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| pki_service::ServiceError::TlsSetup(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| pki_service::ServiceError::TlsSetup(e.to_string()))?;
                Some((chain, key))
            }
            None => None,
        };
        let pins = self.pins.clone();
        let pin = move |der: &[u8]| -> Result<(), String> {
            let int = CertFacts::from_der("intermediate", der).map_err(|e| e.to_string())?;
            pins.lock()
                .unwrap_or_else(|p| p.into_inner())
                .check(&int, Use::Tls)
        };
        Ok(Arc::new(pki_service::tls::client_config_pinned(
            &root,
            identity,
            Some(Arc::new(pin)),
        )?))
    }

    /// TLS with this host's first unexpired leaf when it has one: the service then limits the
    /// host by its own identity, not together with every host behind the same address (the
    /// anonymous limit is for enrolment, health and metrics).
    fn identified_tls(&self) -> AgentResult<Arc<rustls::ClientConfig>> {
        let now = OffsetDateTime::now_utc();
        let live = self
            .config
            .leaves
            .iter()
            .find(|l| self.view(l).is_ok_and(|v| v.not_after > now));
        match live.and_then(|l| read_pair(l).ok()) {
            Some((chain, key)) => self.tls(Some((&chain, &key))).or_else(|_| self.tls(None)),
            None => self.tls(None),
        }
    }

    fn call(
        &self,
        tls: Arc<rustls::ClientConfig>,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> AgentResult<client::Answer> {
        // The first instance that answers, unless it answers with a server error (its
        // database unreachable, say) and another instance is left to ask.
        let mut last = None;
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let more = i + 1 < self.endpoints.len();
            match self.rt.block_on(client::request(
                endpoint,
                tls.clone(),
                method,
                path,
                bearer,
                body.clone(),
            )) {
                Ok(a) if a.status >= 500 && more => last = Some(Ok(a)),
                Err(e @ pki_service::ServiceError::Unreachable { .. }) if more => {
                    last = Some(Err(e))
                }
                other => return Ok(other?),
            }
        }
        Ok(last.expect("at least one endpoint")?)
    }

    /// Checks a leaf the service sent: it chains to our root, conforms to its role, certifies
    /// `key_pem`, and (for a renewal) names exactly what `old` named.
    fn check_issued(
        &self,
        role: &str,
        issued: &Issued,
        key_pem: &str,
        old: Option<&[u8]>,
    ) -> AgentResult<()> {
        let bad = |reason: String| AgentError::BadCertificate {
            role: role.into(),
            reason,
        };
        if issued.role != role {
            return Err(bad(format!("it is a {} leaf", issued.role)));
        }
        // The serial names folders on this host: it must be the certificate's own.
        let facts = CertFacts::from_pem("certificate", issued.chain_pem.as_bytes())?;
        if facts.serial.to_hex() != issued.serial {
            return Err(bad(format!(
                "the answer says serial '{}' but the certificate has {}",
                issued.serial,
                facts.serial.to_hex()
            )));
        }
        // Its intermediate must be one this host trusts to issue (signed by our root, not
        // revoked by the root CRL, not an older generation than the newest seen).
        let int = chain_intermediate(issued.chain_pem.as_bytes())
            .ok_or_else(|| bad("the chain holds no intermediate".into()))?;
        let int = CertFacts::from_der("intermediate", &int)?;
        self.admit(&int, Use::Issuing).map_err(bad)?;
        let findings = x509::verify_leaf(&VerifyRequest {
            root_pem: &self.root_pem,
            chain_pem: issued.chain_pem.as_bytes(),
            role: Some(role.parse()?),
            key_pem: Some(key_pem),
            warn_days: 0,
            now: OffsetDateTime::now_utc(),
        });
        if !x509::passed(&findings) {
            let failed: Vec<String> = findings
                .iter()
                .filter(|f| f.level == Level::Fail)
                .map(|f| f.to_string())
                .collect();
            return Err(bad(failed.join("; ")));
        }
        if let Some(old) = old {
            let names = |pem: &[u8]| -> AgentResult<(String, Vec<String>, Vec<String>)> {
                let facts = CertFacts::from_pem("certificate", pem)?;
                let (_, c) = x509_parser::parse_x509_certificate(&facts.der)
                    .map_err(|e| bad(e.to_string()))?;
                let n = san_names(&c);
                let mut ips: Vec<String> = n.ips.iter().map(|i| i.to_string()).collect();
                let mut dns = n.dns;
                dns.sort();
                ips.sort();
                Ok((facts.subject_cn, dns, ips))
            };
            if names(old)? != names(issued.chain_pem.as_bytes())? {
                return Err(bad(
                    "its CN or names differ from the certificate it renews".into()
                ));
            }
        }
        Ok(())
    }

    /// The leaf files of `l` as they are now.
    pub fn view(&self, l: &LeafConfig) -> AgentResult<LeafView> {
        let pem = std::fs::read(&l.cert).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AgentError::NotEnrolled {
                path: l.cert.clone(),
            },
            _ => pki_core::Error::io(&l.cert, e).into(),
        })?;
        let c = CertFacts::from_pem(&l.cert.display().to_string(), &pem)?;
        let life = (c.not_after - c.not_before).as_seconds_f64();
        // A fixed offset per certificate (from its serial), so every run agrees on the time.
        let spread = c
            .serial
            .as_bytes()
            .iter()
            .fold(0u64, |a, b| a.wrapping_mul(31) ^ *b as u64);
        let unit = (spread % 2001) as f64 / 1000.0 - 1.0;
        let at = (self.config.renew_at + unit * self.config.jitter).clamp(0.05, 0.95);
        Ok(LeafView {
            role: l.role.clone(),
            serial: c.serial.to_hex(),
            not_before: c.not_before,
            not_after: c.not_after,
            renew_after: c.not_before + time::Duration::seconds_f64(life * at),
        })
    }

    /// The intermediate the service issues with now, DER, checked against our root.
    pub fn active_intermediate(&self) -> AgentResult<Vec<u8>> {
        let info: protocol::CaInfo = self
            .call(self.identified_tls()?, "GET", protocol::CA, None, None)?
            .json()?;
        self.learn_root_crl(&info)?;
        let int = CertFacts::from_pem("intermediate", info.intermediate_pem.as_bytes())?;
        self.admit(&int, Use::Issuing)
            .map_err(|reason| AgentError::BadCertificate {
                role: "intermediate".into(),
                reason,
            })?;
        Ok(int.der)
    }

    /// Whether leaf `l`'s chain file holds an intermediate other than `active` (DER): after a
    /// rotation, the leaf is renewed at once instead of at 2/3 of its life.
    pub fn issued_by_other(&self, l: &LeafConfig, active: &[u8]) -> bool {
        let Ok(pem) = std::fs::read(&l.cert) else {
            return false;
        };
        chain_intermediate(&pem).is_some_and(|int| int != active)
    }

    /// First leaves of this host with a one-time token. Refuses when a leaf file exists,
    /// unless `replace` (a host whose leaves were revoked, superseded or expired): the new
    /// pairs are then swapped in as a renewal would, and the agent's memory of refusals and
    /// failures is cleared.
    pub fn enrol(&self, token: &str, replace: bool) -> AgentResult<Vec<Issued>> {
        for l in &self.config.leaves {
            for p in [&l.cert, &l.key] {
                if !replace && std::fs::symlink_metadata(p).is_ok() {
                    return Err(AgentError::AlreadyEnrolled { path: p.clone() });
                }
            }
        }
        let alg: KeyAlgorithm = self.config.key.parse()?;
        let mut keys = Vec::new();
        let mut csrs = Vec::new();
        for l in &self.config.leaves {
            let (key, csr) = key_and_csr(alg, None)?;
            keys.push(key);
            csrs.push(RoleCsr {
                role: l.role.clone(),
                csr_pem: csr,
            });
        }
        let body = serde_json::to_vec(&EnrolRequest { csrs }).expect("json");
        let answer: EnrolResponse = self
            .call(
                self.tls(None)?,
                "POST",
                protocol::ENROL,
                Some(token),
                Some(body),
            )?
            .json()?;
        let mut out = Vec::new();
        // Every leaf is checked before the first is installed.
        for (l, key) in self.config.leaves.iter().zip(&keys) {
            let issued = answer
                .leaves
                .iter()
                .find(|i| i.role == l.role)
                .ok_or_else(|| AgentError::BadCertificate {
                    role: l.role.clone(),
                    reason: "the answer holds no leaf of this role".into(),
                })?;
            self.check_issued(&l.role, issued, key, None)?;
            out.push(issued.clone());
        }
        for ((l, key), issued) in self.config.leaves.iter().zip(&keys).zip(&out) {
            for p in [&l.cert, &l.key] {
                if let Some(d) = p.parent() {
                    pki_core::output::create_dir(d, 0o750)?;
                }
            }
            install_pair(
                &l.cert,
                &l.key,
                &issued.serial,
                issued.chain_pem.as_bytes(),
                key.as_bytes(),
            )?;
        }
        let mut state = State::load(&self.config.state)?;
        if replace {
            for l in &self.config.leaves {
                state.leaves.insert(l.role.clone(), Default::default());
            }
        }
        self.save(&mut state)?;
        Ok(out)
    }

    /// Renews leaf `l` now: a new key, the service's successor checked, both installed in one
    /// step, then the renewal confirmed (or remembered for the next run).
    pub fn renew(&self, l: &LeafConfig, state: &mut State) -> AgentResult<Issued> {
        let (old_chain, old_key) = read_pair(l)?;
        let tls = self.tls(Some((&old_chain, &old_key)))?;
        let cn = CertFacts::from_pem("certificate", &old_chain)?.subject_cn;
        let (key, csr) = key_and_csr(self.config.key.parse()?, Some(&cn))?;
        CheckedCsr::from_pem("our CSR", csr.as_bytes())?;
        let body = serde_json::to_vec(&RenewRequest { csr_pem: csr }).expect("json");
        let issued: Issued = self
            .call(tls, "POST", protocol::RENEW, None, Some(body))?
            .json()?;
        self.check_issued(&l.role, &issued, &key, Some(&old_chain))?;
        install_pair(
            &l.cert,
            &l.key,
            &issued.serial,
            issued.chain_pem.as_bytes(),
            key.as_bytes(),
        )?;
        let entry = state.leaves.entry(l.role.clone()).or_default();
        entry.last_renewal = Some(rfc3339(OffsetDateTime::now_utc()));
        entry.unconfirmed = Some(issued.serial.clone());
        self.save(state)?;
        self.confirm(l, state)?;
        Ok(issued)
    }

    /// Confirms an installed renewal of `l` to the service, with the new certificate.
    pub fn confirm(&self, l: &LeafConfig, state: &mut State) -> AgentResult<()> {
        if state
            .leaves
            .get(&l.role)
            .and_then(|s| s.unconfirmed.as_ref())
            .is_none()
        {
            return Ok(());
        }
        let (chain, key) = read_pair(l)?;
        self.call(
            self.tls(Some((&chain, &key)))?,
            "POST",
            protocol::CONFIRM,
            None,
            None,
        )?
        .success()?;
        if let Some(s) = state.leaves.get_mut(&l.role) {
            s.unconfirmed = None;
        }
        self.save(state)
    }

    /// Fetches the etcd CRL and installs it when it is newer than the one installed and
    /// signed by the active intermediate, which must chain to our root. Returns its number.
    pub fn fetch_crl(&self, state: &mut State) -> AgentResult<Option<u64>> {
        let Some(c) = &self.config.crl else {
            return Ok(None);
        };
        let tls = self.identified_tls()?;
        let info: protocol::CaInfo = self
            .call(tls.clone(), "GET", protocol::CA, None, None)?
            .json()?;
        let answer = self.call(tls, "GET", protocol::CRL_ETCD, None, None)?;
        answer.success()?;
        self.learn_root_crl(&info)?;
        // The service's word for the intermediate is not enough: it must be one this host's
        // own certificates chain through (after a rotation, the leaves renew before the CRL
        // is fetched in the same pass).
        let named = CertFacts::from_pem("intermediate", info.intermediate_pem.as_bytes())?;
        let ours = self.config.leaves.is_empty()
            || self
                .config
                .leaves
                .iter()
                .any(|l| !self.issued_by_other(l, &named.der) && l.cert.exists());
        if !ours {
            return Err(AgentError::BadCrl {
                reason: format!(
                    "the service names {} as its intermediate, which none of this host's certificates chains through",
                    named.subject
                ),
            });
        }
        self.admit(&named, Use::Issuing)
            .map_err(|reason| AgentError::BadCrl { reason })?;
        let issuer = pki_core::x509::fingerprint(&named.der);
        // Lower than what this agent installed itself: a replay or a rolled-back service,
        // refused. Lower only than the file there now (a CRL installed by hand, or by
        // `issuer etcd`): kept, not replaced, until the service's numbers pass it.
        let crl = crate::crl::check(
            &answer.body,
            &info.intermediate_pem,
            &self.root,
            state
                .crl
                .as_ref()
                .filter(|s| !s.kept_from_file)
                .filter(|s| s.issuer.as_ref().is_none_or(|i| *i == issuer))
                .map(|s| s.number),
        )?;
        if let Some((file, next_update)) =
            crate::crl::installed(&c.path, &named.spki_der).filter(|(file, _)| crl.number < *file)
        {
            // Kept, not a failure; remembered for `status`, not as a floor.
            state.crl = Some(crate::state::CrlState {
                number: file,
                fetched_at: rfc3339(OffsetDateTime::now_utc()),
                next_update: rfc3339(next_update),
                kept_from_file: true,
                issuer: None,
            });
            self.save(state)?;
            return Ok(None);
        }
        let bytes = match c.format.as_str() {
            "pem" => pki_core::x509::to_pem("X509 CRL", &answer.body).into_bytes(),
            _ => answer.body.clone(),
        };
        if state.crl.as_ref().map(|s| s.number) != Some(crl.number) {
            pki_core::output::write_atomic(&c.path, &bytes, pki_core::output::Mode::Public, true)?;
        }
        state.crl = Some(crate::state::CrlState {
            number: crl.number,
            fetched_at: rfc3339(OffsetDateTime::now_utc()),
            next_update: rfc3339(crl.next_update),
            kept_from_file: false,
            issuer: Some(issuer),
        });
        self.save(state)?;
        Ok(Some(crl.number))
    }
}
