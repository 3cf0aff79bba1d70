//! The issuance ledger: every leaf is committed here (durably) *before* its file is written or
//! its certificate is returned, so no certificate can exist that the ledger does not know about.
//!
//! [`LedgerStore`] is the interface every command uses; [`Ledger`] is an open one. Two stores
//! implement it: SQLite in the CA folder (`ledger.sqlite`, WAL mode, the embedded default;
//! several processes on one host share it) and PostgreSQL (`ledger = "postgres://…"` in
//! `ca.toml`: several `issuer serve` hosts share it). [`mark`] keeps, in the CA folder, what
//! this host last saw of the ledger, so a ledger restored from an older backup is refused
//! instead of silently forgetting revocations.

pub(crate) mod copy;
pub(crate) mod location;
pub(crate) mod mark;
#[cfg(feature = "postgres")]
mod postgres;
mod records;
mod sqlite;

pub use copy::{copy_ledger, CopyReport};
pub use location::LedgerLocation;
pub use mark::LedgerMark;
pub(crate) use records::{revoked_leaf, GrantRow};
pub use records::{
    AgentSeen, ChainState, CrlKind, DumpLeaf, EnrolGrant, EnrolLeaf, LeafRecord, LedgerDump,
    ListFilter, RevocationMark, RevokedLeaf, RowUnder,
};
pub use sqlite::SqliteLedger;

use std::ops::{Deref, DerefMut};
use std::path::Path;

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::x509::Serial;

/// What every ledger store does. Each method is one transaction: it happens whole or not at
/// all, and when it returns Ok the change is durable.
pub trait LedgerStore: Send {
    /// Where the ledger is, for messages (a path, or a database address without password).
    fn describe(&self) -> String;

    // Leaves.
    /// Reserves serials before anything is signed with them: fails, reserving none, when one
    /// was ever reserved or recorded before (the store's unique key), so no two processes or
    /// hosts can sign the same serial.
    fn reserve_serials(&mut self, serials: &[String]) -> Result<()>;
    /// Commits many leaves of batch run `run_id` (or none) in one transaction.
    fn record_many_in_run(
        &mut self,
        recs: &[(LeafRecord, &[u8])],
        run_id: Option<&str>,
    ) -> Result<()>;
    /// Marks an active leaf superseded by a renewal or re-issue.
    fn supersede(&mut self, serial: &str) -> Result<()>;
    /// Records where a leaf's certificate file lives.
    fn set_cert_path(&mut self, serial: &str, path: &Path) -> Result<()>;
    /// The DER certificate of a leaf.
    fn cert_der(&self, serial: &str) -> Result<Vec<u8>>;
    /// The leaf with this serial (lower-case hex); None when the ledger does not know it.
    fn get(&self, serial: &str) -> Result<Option<LeafRecord>>;
    /// How many leaves the ledger holds, whatever their status.
    fn count(&self) -> Result<u64>;
    /// Leaves in issuance order (expiry order with `expiring_before`), filtered.
    fn list(&self, filter: &ListFilter) -> Result<Vec<LeafRecord>>;

    // Batch runs.
    /// The active leaves recorded under `dir`, with the batch run that made each one.
    fn active_under(&self, dir: &Path) -> Result<Vec<RowUnder>>;
    /// Marks `void` the active leaves among `serials`; returns how many changed.
    fn void(&mut self, serials: &[String]) -> Result<usize>;
    /// Starts a batch run writing into `out_dir`; returns its id.
    fn start_batch_run(&mut self, out_dir: &Path) -> Result<String>;
    /// Marks a batch run finished, and every earlier interrupted run into the same folder.
    fn finish_batch_run(&mut self, run_id: &str, out_dir: &Path) -> Result<()>;
    /// Forgets a leaf whose file could not be written: it never left this machine.
    fn forget_unwritten(&mut self, serial: &str) -> Result<()>;

    // Revocation and CRLs.
    /// Hands out the next CRL number: strictly increasing for every process and host using
    /// this ledger.
    fn draw_crl_number(&mut self) -> Result<u64>;
    /// The last CRL number handed out (0 when none), without drawing one.
    fn last_crl_number(&self) -> Result<u64>;
    /// Every revoked leaf, by generation and revocation time.
    fn revoked(&self) -> Result<Vec<RevokedLeaf>>;
    /// Records that CRL `number` of `kind` listed these expired revoked leaves; a leaf
    /// already recorded keeps its first number.
    fn mark_listed_expired(&mut self, kind: CrlKind, serials: &[String], number: u64)
        -> Result<()>;
    /// Marks a leaf revoked: an active or superseded one. Errors when it is unknown or already
    /// revoked (also when another process revoked it meanwhile).
    fn revoke(&mut self, serial: &str, reason: &str) -> Result<LeafRecord>;
    /// See [`RevocationMark`].
    fn revocation_mark(&self) -> Result<RevocationMark>;

    // The online service.
    /// Stores an enrolment token by its hash (lower-case hex SHA-256).
    fn add_enrol_token(
        &mut self,
        hash: &str,
        entry: &str,
        leaves: &[EnrolLeaf],
        expires_at: OffsetDateTime,
    ) -> Result<()>;
    /// The grant of the token with this hash, when it is unused and unexpired at `now`.
    fn enrol_grant(&self, hash: &str, now: OffsetDateTime) -> Result<Option<EnrolGrant>>;
    /// Uses the token and records the leaves it obtained, in one transaction. Returns false
    /// (and records nothing) when the token was used or expired in the meantime.
    fn record_enrolment(
        &mut self,
        hash: &str,
        now: OffsetDateTime,
        recs: &[(LeafRecord, &[u8])],
    ) -> Result<bool>;
    /// Records `rec`, the successor of `old_serial`, and the link between them, in one
    /// transaction; an unconfirmed earlier successor of `old_serial` is revoked (it was never
    /// installed: the agent renews from the files it runs). The old leaf stays active until
    /// [`LedgerStore::confirm_renewal`].
    /// With `confirm_old_at`, `old_serial`'s own renewal is confirmed in the same transaction
    /// (a renewed leaf presented for renewal is installed): one commit, not two.
    fn record_renewal(
        &mut self,
        old_serial: &str,
        rec: &LeafRecord,
        der: &[u8],
        confirm_old_at: Option<OffsetDateTime>,
    ) -> Result<()>;
    /// The serials renewed from `serial` through the service.
    fn renewed_from(&self, serial: &str) -> Result<Vec<String>>;
    /// The agent installed the renewed leaf `new_serial`: its predecessor becomes superseded.
    /// Returns the predecessor's serial; None when `new_serial` is no renewal. Idempotent.
    fn confirm_renewal(&mut self, new_serial: &str, now: OffsetDateTime) -> Result<Option<String>>;
    /// Renewed leaves whose successor was never confirmed become superseded once they expire.
    fn sweep_renewed(&mut self, now: OffsetDateTime) -> Result<usize>;
    /// The serial of the latest leaf that renewed `serial`, if any (confirmed or not).
    fn successor(&self, serial: &str) -> Result<Option<String>>;
    /// Where `serial` stands in its renewal chain at `now`.
    fn chain_state(&self, serial: &str, now: OffsetDateTime) -> Result<ChainState>;
    /// Records what the service saw of agents, in order, in one transaction: each request
    /// (`crl_number` for a CRL fetch), refused or not (refusals in a row are counted).
    fn note_seen(&mut self, seen: &[AgentSeen]) -> Result<()>;
    /// Every agent the service has seen.
    fn agents_seen(&self) -> Result<Vec<AgentSeen>>;
    /// For the online service (group commit): from now on this connection's commits are
    /// written but not synced by themselves; after changes, [`LedgerStore::sync_ticket`] gives
    /// a ticket whose wait (outside the caller's lock) returns once they are durable, one sync
    /// for every commit made meanwhile. False: this store's commits are durable when they
    /// return (the default; PostgreSQL's).
    fn defer_sync(&mut self) -> Result<bool> {
        Ok(false)
    }
    /// A ticket covering every change made on this connection so far, when syncs are deferred
    /// and something changed since the last ticket.
    fn sync_ticket(&mut self) -> Option<crate::group_sync::Ticket> {
        None
    }
    /// Every commit of this connection on disk now (deferred syncs); nothing to do otherwise.
    fn flush(&mut self) -> Result<()> {
        let ticket = self.sync_ticket();
        crate::group_sync::Ticket::settle(ticket, std::path::Path::new(&self.describe()))
    }

    // Moving a ledger.
    /// Every row.
    fn dump(&self) -> Result<LedgerDump>;
    /// Writes every row of `dump` into this (empty) ledger in one transaction.
    fn load(&mut self, dump: &LedgerDump) -> Result<()>;
}

/// An open ledger: any [`LedgerStore`], and the CA folder's record of what this host last saw
/// of it (see [`mark`]). Derefs to the store, so `ledger.get(serial)` works on either.
pub struct Ledger {
    store: Box<dyn LedgerStore>,
    mark: Option<LedgerMark>,
}

impl Deref for Ledger {
    type Target = dyn LedgerStore;
    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

impl DerefMut for Ledger {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.store.as_mut()
    }
}

impl Ledger {
    /// Opens (creating if needed) an SQLite ledger at `path`, without a rollback mark.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Ledger {
            store: Box::new(SqliteLedger::open(path)?),
            mark: None,
        })
    }

    /// Opens the ledger at `location`; with a `mark`, refuses a ledger that is behind what this
    /// host saw of it before ([`Error::LedgerRolledBack`]).
    pub fn connect(location: &LedgerLocation, mark: Option<LedgerMark>) -> Result<Self> {
        let store: Box<dyn LedgerStore> = match location {
            LedgerLocation::Sqlite(path) => Box::new(SqliteLedger::open(path)?),
            #[cfg(feature = "postgres")]
            LedgerLocation::Postgres(cfg) => Box::new(postgres::PgLedger::connect(cfg)?),
        };
        let ledger = Ledger { store, mark };
        ledger.check_mark()?;
        Ok(ledger)
    }

    /// A ledger over any store (tests, other backends).
    pub fn from_store(store: Box<dyn LedgerStore>) -> Self {
        Ledger { store, mark: None }
    }

    /// Commits a leaf. Fails if the serial is already known (serials are unique PKI-wide).
    pub fn record(&mut self, rec: &LeafRecord, cert_der: &[u8]) -> Result<()> {
        self.record_many(&[(rec.clone(), cert_der)])
    }

    /// Commits many leaves in one transaction (all or none).
    pub fn record_many(&mut self, recs: &[(LeafRecord, &[u8])]) -> Result<()> {
        self.store.record_many_in_run(recs, None)
    }

    /// A fresh random serial, reserved in the ledger before anything is signed with it.
    pub fn reserve_serial(&mut self) -> Result<Serial> {
        Ok(self.reserve_many(1)?.remove(0))
    }

    /// `n` fresh random serials, reserved together.
    pub fn reserve_many(&mut self, n: usize) -> Result<Vec<Serial>> {
        // A collision of 159 random bits is not expected; one retry covers a freak one, a
        // second failure is a real error (the database refusing writes).
        let mut last = None;
        for _ in 0..2 {
            let serials: Vec<Serial> = (0..n).map(|_| Serial::random()).collect();
            let hex: Vec<String> = serials.iter().map(|s| s.to_hex()).collect();
            match self.store.reserve_serials(&hex) {
                Ok(()) => return Ok(serials),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("two attempts"))
    }

    /// The next CRL number (see [`LedgerStore::draw_crl_number`]); this host's mark moves
    /// with it, so a later rollback of the ledger is noticed. A number at or below one this
    /// host already drew (a ledger restored under a running service) is refused: a CRL with it
    /// would replace a newer one and could drop revocations.
    pub fn next_crl_number(&mut self) -> Result<u64> {
        self.check_not_rolled_back()?;
        let n = self.store.draw_crl_number()?;
        if let Some(mark) = &self.mark {
            let seen = mark.read()?;
            if n <= seen.crl_number {
                return Err(Error::LedgerRolledBack {
                    ledger: self.store.describe(),
                    mark: mark.path().to_path_buf(),
                    seen_crl: seen.crl_number,
                    seen_revoked: seen.revoked,
                    found_crl: n,
                    found_revoked: self.store.revocation_mark()?.count,
                });
            }
        }
        self.save_mark(n)?;
        Ok(n)
    }

    /// Refuses a ledger that is behind what this host saw of it (restored from an older
    /// backup, or another database): checked at open, and by a long-running service before
    /// every change, since its database connection may have been re-established under it.
    pub fn check_not_rolled_back(&self) -> Result<()> {
        self.check_mark()
    }

    /// Revokes `serial`, then every leaf renewed from it through the service, transitively
    /// (whoever held its key could have renewed it); returns the successors revoked.
    pub fn revoke_successors(&mut self, serial: &str, reason: &str) -> Result<Vec<LeafRecord>> {
        let mut done = Vec::new();
        let mut next = vec![serial.to_string()];
        while let Some(s) = next.pop() {
            for child in self.store.renewed_from(&s)? {
                next.push(child.clone());
                match self.store.revoke(&child, reason) {
                    Ok(rec) => done.push(rec),
                    Err(Error::AlreadyRevoked { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done)
    }

    fn check_mark(&self) -> Result<()> {
        let Some(mark) = &self.mark else {
            return Ok(());
        };
        let seen = mark.read()?;
        let now = mark::Seen {
            crl_number: self.store.last_crl_number()?,
            revoked: self.store.revocation_mark()?.count,
        };
        if now.crl_number < seen.crl_number || now.revoked < seen.revoked {
            return Err(Error::LedgerRolledBack {
                ledger: self.store.describe(),
                mark: mark.path().to_path_buf(),
                seen_crl: seen.crl_number,
                seen_revoked: seen.revoked,
                found_crl: now.crl_number,
                found_revoked: now.revoked,
            });
        }
        Ok(())
    }

    fn save_mark(&mut self, crl_number: u64) -> Result<()> {
        let Some(mark) = &self.mark else {
            return Ok(());
        };
        // The mark never runs ahead of what is on disk (deferred syncs: the service).
        self.store.flush()?;
        let revoked = self.store.revocation_mark()?.count;
        mark.raise(mark::Seen {
            crl_number,
            revoked,
        })
    }
}

/// The columns `agents_seen` reads, in `AgentSeen`'s order.
pub(crate) const SEEN_SELECT: &str =
    "SELECT subject, serial, action, at, crl_number, crl_at, refused, refusals FROM agent_seen ORDER BY subject";

/// The upsert of `note_seen`, with `p` as the parameter sigil (`?` SQLite, `$` PostgreSQL),
/// taking [`seen_params`]: a CRL number is kept until the next fetch, refusals count up until
/// a request passes.
pub(crate) fn seen_upsert(p: char) -> String {
    format!(
        "INSERT INTO agent_seen (subject, serial, action, at, crl_number, crl_at, refused, refusals)
         VALUES ({p}1, {p}2, {p}3, {p}4, {p}5, {p}6, {p}7, {p}8)
         ON CONFLICT (subject) DO UPDATE SET
             serial = excluded.serial, action = excluded.action, at = excluded.at,
             crl_number = COALESCE(excluded.crl_number, agent_seen.crl_number),
             crl_at = COALESCE(excluded.crl_at, agent_seen.crl_at),
             refused = excluded.refused,
             refusals = CASE WHEN excluded.refused IS NULL THEN 0 ELSE agent_seen.refusals + 1 END"
    )
}

/// The values of [`seen_upsert`]'s eight parameters: (crl_at, first refusal count) derived.
pub(crate) fn seen_params(seen: &AgentSeen) -> (Option<i64>, i64) {
    (
        seen.crl_number.map(|_| seen.at),
        i64::from(seen.refused.is_some()),
    )
}
