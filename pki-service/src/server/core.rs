//! The CA behind the service: the unlocked intermediate, the ledger, and the three things a
//! request can change (renew, confirm, enrol) plus the CRLs. Everything here blocks (SQLite,
//! signing, the CA folder's lock) and runs on tokio's blocking threads, one at a time.

use pki_core::ca::CaDir;
use pki_core::ca::{ledger_request, sign_direct_crl, sign_etcd_crl};
use pki_core::ca::{IssuingCa, LeafKey, LeafRequest};
use pki_core::ca::{LeafRecord, Ledger, RevocationMark};
use pki_core::group_sync::Ticket;
use pki_core::keys::CaKey;
use pki_core::x509::CheckedCsr;
use pki_core::x509::{fingerprint, CertFacts};
use pki_core::x509::{LeafRole, Subject, SubjectNames};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::limit::{Limiter, RateLimit};
use super::refusal::Refused;
use crate::protocol::{ConfirmResponse, EnrolRequest, EnrolResponse, Issued};

/// How the service unlocks the active intermediate, at start and on every reload.
pub type Unlock = dyn Fn(&CaDir) -> pki_core::Result<IssuingCa<CaKey>> + Send + Sync;

/// The signed CRLs the service hands out.
#[derive(Clone, Debug)]
pub struct CrlSet {
    /// The etcd CRL, DER.
    pub etcd_der: Vec<u8>,
    /// Its number.
    pub etcd_number: u64,
    /// The intermediate's own CRL, DER.
    pub direct_der: Vec<u8>,
    /// Its number.
    pub direct_number: u64,
    /// thisUpdate of both.
    pub this_update: OffsetDateTime,
    /// nextUpdate of both.
    pub next_update: OffsetDateTime,
    /// The ledger's revocations when they were signed.
    pub mark: RevocationMark,
    /// Unexpired active leaves holding root CRL entries out of the etcd CRL (see
    /// `pki_core::ca::RootHold`).
    pub root_crl_withheld: usize,
    /// The root CRL entries (serials, lower-case hex) left out of the etcd CRL for now.
    pub root_entries_held: Vec<String>,
}

/// The unlocked CA folder.
pub struct Core {
    ca: CaDir,
    signer: IssuingCa<CaKey>,
    ledger: Ledger,
    root: CertFacts,
    root_crl: Option<pki_core::ca::RootCrl>,
    root_crl_hold: time::Duration,
    /// Renewals per chain (its first leaf): each renewal is a new identity with a fresh
    /// per-leaf bucket, so the chain is what is limited.
    chain_limit: Limiter,
    /// The ledger's commits are synced in groups (SQLite): made durable together, outside the
    /// core's lock, before any answer (see [`Core::durable_ticket`]).
    group_commit: bool,
}

/// Renewals one chain may make, from the per-identity limit: half its burst and a fifteenth
/// of its rate (by default 5 at once, then 2 a minute: an agent renews once per leaf lifetime,
/// a drill with two-minute leaves about once a minute).
pub fn chain_renewals(identity: RateLimit) -> RateLimit {
    RateLimit {
        burst: (identity.burst / 2).max(1),
        per_minute: (identity.per_minute / 15).max(1),
    }
}

/// Successors replaced before use that one chain may have listed on the etcd CRL at once.
pub const MAX_REPLACED: u32 = 3;

/// The hash under which an enrolment token is stored (lower-case hex SHA-256).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Core {
    /// Opens `dir` and unlocks its active intermediate; `root` overrides the pinned root.
    pub fn open(
        dir: &std::path::Path,
        root: Option<&std::path::Path>,
        leaf_lifetime: Option<time::Duration>,
        unlock: &Unlock,
    ) -> pki_core::Result<Self> {
        let ca = CaDir::open(dir)?;
        let root_path = root
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| ca.root_path());
        let root = CertFacts::from_pem(
            "root certificate",
            pki_core::output::read(&root_path)?.as_slice(),
        )?;
        // Checked against the root before it is trusted; kept as DER.
        let root_crl = pki_core::ca::installed_root_crl(&ca, &root)?;
        let mut signer = unlock(&ca)?;
        if let Some(life) = leaf_lifetime {
            signer = signer.with_leaf_lifetime(life);
        }
        let mut ledger = ca.ledger()?;
        let group_commit = ledger.defer_sync()?;
        Ok(Core {
            ca,
            signer,
            ledger,
            root,
            root_crl,
            root_crl_hold: pki_core::ca::DEFAULT_ROOT_CRL_HOLD,
            chain_limit: Limiter::new(chain_renewals(RateLimit::default())),
            group_commit,
        })
    }

    /// Whether the ledger's commits are synced in groups (SQLite), not one by one.
    pub fn group_commit(&self) -> bool {
        self.group_commit
    }

    /// After changes under the lock: what to wait for, outside it, before answering (None:
    /// nothing changed, or the ledger's commits are durable when they return).
    pub fn durable_ticket(&mut self) -> Option<Ticket> {
        self.ledger.sync_ticket()
    }

    /// Limits each renewal chain from the per-identity limit (see [`chain_renewals`]).
    pub fn set_rate_limit(&mut self, identity: RateLimit) {
        self.chain_limit = Limiter::new(chain_renewals(identity));
    }

    /// The longest a new root CRL entry is held out of the etcd CRL.
    pub fn set_root_crl_hold(&mut self, hold: time::Duration) {
        self.root_crl_hold = hold;
    }

    /// Keeps the chains' renewal budgets of the core this one replaces (a reload).
    pub fn inherit_limits(&mut self, old: &mut Core) {
        std::mem::swap(&mut self.chain_limit, &mut old.chain_limit);
    }

    /// The active generation.
    pub fn generation(&self) -> u32 {
        self.signer.generation
    }

    /// The active intermediate's end of validity.
    pub fn intermediate_not_after(&self) -> OffsetDateTime {
        self.signer.cert.not_after
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root.der
    }

    /// The leaf `der` presented, as the ledger knows it: refused unless it is the ledger's own
    /// certificate for that serial, active and unexpired.
    fn identify(
        &self,
        der: &[u8],
        now: OffsetDateTime,
    ) -> Result<(LeafRecord, CertFacts), Refused> {
        let facts = CertFacts::from_der("client certificate", der)
            .map_err(|e| Refused::unauthenticated(e.to_string()))?;
        // A ledger restored under the running service (its connection re-established) is
        // refused before it decides anything: it may have forgotten revocations.
        self.ledger
            .check_not_rolled_back()
            .map_err(Refused::internal)?;
        let serial = facts.serial.to_hex();
        let rec = self
            .ledger
            .get(&serial)
            .map_err(Refused::internal)?
            .filter(|r| r.fingerprint == fingerprint(der))
            .ok_or_else(|| Refused::unknown_leaf(&serial))?;
        match rec.status.as_str() {
            "active" if rec.not_after > now => Ok((rec, facts)),
            "active" => Err(Refused::expired(&serial)),
            "revoked" => Err(Refused::revoked(&serial)),
            "superseded" => Err(Refused::superseded(&serial)),
            _ => Err(Refused::unknown_leaf(&serial)),
        }
    }

    /// Renewal: a successor of the presented leaf for the CSR's (new) key, with the ledger
    /// row's profile, CN and names and the profile's lifetime; recorded before it is returned.
    pub fn renew(
        &mut self,
        presented: &[u8],
        csr_pem: &str,
        now: OffsetDateTime,
    ) -> Result<(Issued, String), Refused> {
        let _lock = self.ca.lock_exclusive().map_err(Refused::internal)?;
        let (old, old_facts) = self.identify(presented, now)?;
        // The successor copies the row: the row must still describe the certificate presented
        // (a row changed in the database must not become a certificate for another identity).
        // The active generation's subject is in memory; an older one is read from the folder.
        let issuer = match old.generation == self.signer.generation {
            true => self.signer.cert.subject.clone(),
            false => self
                .ca
                .cert(old.generation)
                .map(|c| c.subject)
                .map_err(Refused::internal)?,
        };
        if let Err(reason) = pki_core::ca::presented_matches_row(&old, presented, &issuer) {
            super::log(format_args!(
                "REFUSED a renewal whose ledger row does not match the certificate presented (the database was changed?): {reason}"
            ));
            return Err(Refused::row_mismatch(reason));
        }
        let csr = CheckedCsr::from_pem("CSR", csr_pem.as_bytes()).map_err(Refused::bad_csr)?;
        if csr.spki_der == old_facts.spki_der {
            return Err(Refused::key_reused());
        }
        let confirm_old = self.admit_in_chain(&old.serial, now)?;
        let (role, subject, names) = ledger_request(&old).map_err(Refused::internal)?;
        let cert_path = match old.cert_path.strip_prefix("agent:") {
            Some(_) => old.cert_path.clone(),
            None => format!("agent:{}", old.cert_path),
        };
        let (issued, rec, der) = self.sign(role, subject, names, csr, &cert_path, now)?;
        self.ledger
            .record_renewal(&old.serial, &rec, &der, confirm_old.then_some(now))
            .map_err(Refused::internal)?;
        Ok((issued, old.serial))
    }

    /// The chain rules of a renewal from `serial`: the chain's budget; a leaf presented for
    /// renewal is installed, so its own renewal is confirmed by the use (true: the caller
    /// records that with the new leaf, in one transaction); a chain holds at most
    /// one unconfirmed successor (a new renewal replaces the pending one, which goes on the etcd
    /// CRL as it left the service), and at most [`MAX_REPLACED`] such entries at once.
    fn admit_in_chain(&mut self, serial: &str, now: OffsetDateTime) -> Result<bool, Refused> {
        let chain = self
            .ledger
            .chain_state(serial, now)
            .map_err(Refused::internal)?;
        self.chain_limit
            .take(&chain.root, std::time::Instant::now())
            .map_err(Refused::rate_limited)?;
        if let Some(pending) = &chain.pending {
            if chain.replaced_listed >= MAX_REPLACED {
                super::log(format_args!(
                    "REFUSED a renewal of {serial}: its successor {pending} was never installed and the chain (first leaf {}) already has {} replaced successors on the etcd CRL; investigate the host, then revoke the chain (issuer revoke {}) and enrol it again",
                    chain.root, chain.replaced_listed, chain.root
                ));
                return Err(Refused::renewal_pending(pending));
            }
            super::log(format_args!(
                "renewal of {serial} replaces its unconfirmed successor {pending}, revoked as superseded (listed on the etcd CRL until it expires)"
            ));
        }
        Ok(chain.unconfirmed)
    }

    /// The presented (renewed) leaf is installed: its predecessor becomes superseded.
    pub fn confirm(
        &mut self,
        presented: &[u8],
        now: OffsetDateTime,
    ) -> Result<ConfirmResponse, Refused> {
        let _lock = self.ca.lock_exclusive().map_err(Refused::internal)?;
        let (rec, _) = self.identify(presented, now)?;
        let superseded = self
            .ledger
            .confirm_renewal(&rec.serial, now)
            .map_err(Refused::internal)?;
        Ok(ConfirmResponse { superseded })
    }

    /// Enrolment: the leaves a one-time token grants, for the CSRs' keys; the token is used
    /// and the leaves recorded in one transaction, before they are returned.
    pub fn enrol(
        &mut self,
        token: &str,
        req: &EnrolRequest,
        now: OffsetDateTime,
    ) -> Result<EnrolResponse, Refused> {
        let _lock = self.ca.lock_exclusive().map_err(Refused::internal)?;
        self.ledger
            .check_not_rolled_back()
            .map_err(Refused::internal)?;
        let hash = token_hash(token);
        let grant = self
            .ledger
            .enrol_grant(&hash, now)
            .map_err(Refused::internal)?
            .ok_or_else(Refused::bad_token)?;
        let mut wanted: Vec<&str> = grant.leaves.iter().map(|l| l.role.as_str()).collect();
        let mut sent: Vec<&str> = req.csrs.iter().map(|c| c.role.as_str()).collect();
        wanted.sort_unstable();
        sent.sort_unstable();
        if wanted != sent {
            return Err(Refused::bad_request(format!(
                "this token grants one CSR for each of: {}; the request sent: {}",
                wanted.join(", "),
                sent.join(", ")
            )));
        }
        let mut out = Vec::new();
        let mut rows = Vec::new();
        for leaf in &grant.leaves {
            let csr_pem = &req
                .csrs
                .iter()
                .find(|c| c.role == leaf.role)
                .expect("roles compared above")
                .csr_pem;
            let csr = CheckedCsr::from_pem("CSR", csr_pem.as_bytes()).map_err(Refused::bad_csr)?;
            let (role, subject, names) = leaf.request().map_err(Refused::internal)?;
            let path = format!("agent:{}/{}", grant.entry, leaf.role);
            let (issued, rec, der) = self.sign(role, subject, names, csr, &path, now)?;
            out.push(issued);
            rows.push((rec, der));
        }
        let refs: Vec<_> = rows
            .iter()
            .map(|(r, d)| (r.clone(), d.as_slice()))
            .collect();
        if !self
            .ledger
            .record_enrolment(&hash, now, &refs)
            .map_err(Refused::internal)?
        {
            return Err(Refused::bad_token());
        }
        Ok(EnrolResponse {
            entry: grant.entry,
            leaves: out,
            root_pem: self.root_pem(),
        })
    }

    /// The active intermediate, for agents that check CRLs.
    pub fn ca_info(&self) -> crate::protocol::CaInfo {
        crate::protocol::CaInfo {
            generation: self.signer.generation,
            intermediate_pem: self.signer.cert.pem(),
            root_crl_pem: self
                .root_crl
                .as_ref()
                .map(|c| pki_core::x509::to_pem("X509 CRL", &c.der)),
        }
    }

    fn root_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.root.der.clone()))
    }

    /// Signs one leaf through the issuance gate; nothing is recorded here.
    fn sign(
        &mut self,
        role: LeafRole,
        subject: Subject,
        names: SubjectNames,
        csr: CheckedCsr,
        cert_path: &str,
        now: OffsetDateTime,
    ) -> Result<(Issued, LeafRecord, Vec<u8>), Refused> {
        // Reserved in the ledger before it is signed: no other instance can sign it too.
        let serial = self.ledger.reserve_serial().map_err(Refused::internal)?;
        let leaf = self
            .signer
            .sign_leaf_as(
                LeafRequest {
                    role,
                    subject,
                    names,
                    days: None,
                    key: LeafKey::Csr(Box::new(csr)),
                },
                now,
                serial,
            )
            .map_err(Refused::from_issuance)?;
        let rec = leaf.record(self.signer.generation, std::path::Path::new(cert_path));
        let issued = Issued {
            serial: rec.serial.clone(),
            role: rec.profile.clone(),
            subject: rec.subject.clone(),
            chain_pem: leaf.chain_pem.clone(),
            not_after: rec
                .not_after
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        Ok((issued, rec, leaf.cert_der))
    }

    /// When the service's own certificate at `cert` is due for renewal: at 2/3 of its life,
    /// or now when the active intermediate did not issue it (a rotation). With its end.
    pub fn own_cert_due(
        &self,
        cert: &std::path::Path,
    ) -> pki_core::Result<(OffsetDateTime, OffsetDateTime)> {
        let facts =
            CertFacts::from_pem(&cert.display().to_string(), &pki_core::output::read(cert)?)?;
        let ours =
            pki_core::keys::verify_certificate(&facts.der, &self.signer.cert.spki_der).is_ok();
        let life = facts.not_after - facts.not_before;
        let due = match ours {
            true => facts.not_before + life * 2 / 3,
            false => OffsetDateTime::now_utc(),
        };
        Ok((due, facts.not_after))
    }

    /// Renews the service's own certificate (`cert`, its key beside it as `key`) with the
    /// active intermediate: a new key, the same names, swapped into place key first, the old
    /// leaf superseded in the ledger. Returns (old serial, new serial).
    pub fn renew_own_cert(
        &mut self,
        cert: &std::path::Path,
        key: &std::path::Path,
        now: OffsetDateTime,
    ) -> pki_core::Result<(String, String)> {
        let refuse = |why: String| {
            pki_core::Error::io(
                cert,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, why),
            )
        };
        if key != cert.with_extension("key") {
            return Err(refuse(format!(
                "the service renews its own certificate only when its key sits beside it ({}); give --tls-key that path",
                cert.with_extension("key").display()
            )));
        }
        let _lock = self.ca.lock_exclusive()?;
        self.ledger.check_not_rolled_back()?;
        let facts =
            CertFacts::from_pem(&cert.display().to_string(), &pki_core::output::read(cert)?)?;
        let serial = facts.serial.to_hex();
        let mut old = self
            .ledger
            .get(&serial)?
            .filter(|r| r.fingerprint == fingerprint(&facts.der))
            .ok_or_else(|| refuse(format!("serial {serial} is not in this CA folder's ledger: renew it with the tool that issued it")))?;
        if old.key_source != "generated" {
            return Err(refuse(format!(
                "serial {serial} was issued for a CSR: its key is not here to replace; issue the service a certificate with a key made here (issuer issue server)"
            )));
        }
        // The files the service reads, whatever folder the ledger recorded them in.
        old.cert_path = cert.display().to_string();
        // The profile's lifetime, not a drill's --leaf-lifetime: that is for the agents' leaves.
        let drill = self.signer.take_leaf_lifetime();
        let new = pki_core::ca::replace_leaf(&self.signer, &mut self.ledger, &old, now);
        self.signer.set_leaf_lifetime(drill);
        Ok((serial, new?.serial))
    }

    /// Every agent the service has seen, with the leaf it last presented (or got by renewal),
    /// for the per-entry gauges. Entries whose name could not be a cluster-file name are left
    /// out, and so are hosts whose last leaf ended over 7 days ago (a removed member's alerts
    /// end then; `issuer fleet` still lists it while it is in the cluster file).
    pub fn agent_gauges(&self) -> pki_core::Result<Vec<super::metrics::AgentGauge>> {
        let mut out = Vec::new();
        let now = OffsetDateTime::now_utc();
        for s in self.ledger.agents_seen()? {
            let plain = s
                .subject
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            let gone = |l: &pki_core::ca::LeafRecord| l.not_after + time::Duration::days(7) < now;
            let Some(leaf) = self.ledger.get(&s.serial)?.filter(|l| plain && !gone(l)) else {
                continue;
            };
            out.push(super::metrics::AgentGauge {
                entry: s.subject,
                not_before: leaf.not_before,
                not_after: leaf.not_after,
                status: leaf.status,
                last_seen: OffsetDateTime::from_unix_timestamp(s.at).unwrap_or(leaf.not_before),
                refusals: s.refusals,
            });
        }
        Ok(out)
    }

    /// Records what the service saw of agents (see `LedgerStore::note_seen`).
    pub fn note_seen(&mut self, seen: &[pki_core::ca::AgentSeen]) -> pki_core::Result<()> {
        self.ledger.note_seen(seen)
    }

    /// The highest CRL number the ledger has handed out (to the service or the command line).
    pub fn last_crl_number(&self) -> pki_core::Result<u64> {
        self.ledger.last_crl_number()
    }

    /// What the ledger's revocations look like now.
    pub fn revocation_mark(&self) -> pki_core::Result<RevocationMark> {
        self.ledger.revocation_mark()
    }

    /// Signs both CRLs, valid for `days`, and supersedes renewed leaves that expired without
    /// a confirmation.
    pub fn sign_crls(&mut self, now: OffsetDateTime, days: u32) -> pki_core::Result<CrlSet> {
        let _lock = self.ca.lock_exclusive()?;
        self.ledger.check_not_rolled_back()?;
        // The root CRL installed now, not the one read at start: a newer one installed before
        // the reload (the runbook's order) must not be replaced by the older one in memory.
        if let Some(now_installed) = pki_core::ca::installed_root_crl(&self.ca, &self.root)? {
            self.root_crl = Some(now_installed);
        }
        self.ledger.sweep_renewed(now)?;
        let mark = self.ledger.revocation_mark()?;
        let mut hold = self.root_crl_hold(now)?;
        let skip = hold.skip();
        let root = self
            .root_crl
            .as_ref()
            .map(|c| (&self.root, c.der.as_slice(), skip.as_slice()));
        let etcd = sign_etcd_crl(&self.ca, &self.signer, &mut self.ledger, root, now, days)?;
        etcd.selection.published(&mut self.ledger, etcd.number)?;
        // From this CRL on, every entry it lists stays in every later one.
        hold.published(etcd.number)?;
        let direct = sign_direct_crl(&self.signer, &mut self.ledger, now, days)?;
        direct
            .selection
            .published(&mut self.ledger, direct.number)?;
        for line in hold.describe() {
            super::log(format_args!("etcd CRL {}: {line}", etcd.number));
        }
        let this_update = now.replace_nanosecond(0).expect("ns");
        Ok(CrlSet {
            etcd_der: etcd.der,
            etcd_number: etcd.number,
            direct_der: direct.der,
            direct_number: direct.number,
            this_update,
            next_update: this_update + time::Duration::days(days as i64),
            mark,
            root_crl_withheld: hold.holding_leaves(),
            root_entries_held: skip,
        })
    }

    /// The root CRL hold at `now`: which of the installed root CRL's entries are still held
    /// out of the etcd CRL, and by which leaves.
    pub fn root_crl_hold(&self, now: OffsetDateTime) -> pki_core::Result<pki_core::ca::RootHold> {
        match &self.root_crl {
            Some(crl) => {
                pki_core::ca::root_crl_hold(&self.ca, &self.ledger, crl, self.root_crl_hold, now)
            }
            None => Ok(pki_core::ca::RootHold::default()),
        }
    }
}
