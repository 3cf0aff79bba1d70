//! What the online issuing service keeps in the ledger: one-time enrolment tokens (by hash)
//! and, for each leaf renewed through it, the leaf it replaces until the agent confirms that
//! the new one is installed.

use serde::Deserialize;

use super::runs::insert_rows;
use super::*;

/// One leaf an enrolment token may obtain: exactly these names, whatever the CSR asks for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolLeaf {
    /// `server`, `peer` or `client`.
    pub role: String,
    /// The subject CN.
    pub subject: String,
    /// DNS subject alternative names.
    pub dns: Vec<String>,
    /// IP subject alternative names, as text.
    pub ips: Vec<String>,
}

impl EnrolLeaf {
    /// The request this grant stands for: role, subject and names, parsed.
    pub fn request(
        &self,
    ) -> Result<(
        crate::x509::profile::LeafRole,
        crate::x509::profile::Subject,
        crate::x509::profile::SubjectNames,
    )> {
        let ips = self
            .ips
            .iter()
            .map(|i| {
                i.parse().map_err(|_| Error::Ledger {
                    path: PathBuf::from("enrol_tokens"),
                    reason: format!("'{i}' is not an IP address"),
                })
            })
            .collect::<Result<_>>()?;
        Ok((
            self.role.parse()?,
            crate::x509::profile::Subject::cn(self.subject.clone()),
            crate::x509::profile::SubjectNames {
                dns: self.dns.clone(),
                ips,
            },
        ))
    }
}

/// An unused, unexpired enrolment token's grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrolGrant {
    /// The cluster-file entry it was made for (`member etcd-4`, `client backup`).
    pub entry: String,
    /// The leaves it may obtain, one per role.
    pub leaves: Vec<EnrolLeaf>,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// What changes whenever a leaf is revoked: the number of revoked rows and the latest
/// revocation time. A CRL signer that sees it change publishes at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationMark {
    /// Revoked rows.
    pub count: u64,
    /// The latest revocation, Unix seconds (0 when none).
    pub latest: i64,
}

impl Ledger {
    fn tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Ledger {
                path,
                reason: e.to_string(),
            })
    }

    /// Stores an enrolment token by its hash (lower-case hex SHA-256).
    pub fn add_enrol_token(
        &mut self,
        hash: &str,
        entry: &str,
        leaves: &[EnrolLeaf],
        expires_at: OffsetDateTime,
    ) -> Result<()> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.conn
            .execute(
                "INSERT INTO enrol_tokens (hash, entry, leaves, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    hash,
                    entry,
                    serde_json::to_string(leaves).expect("json"),
                    now,
                    expires_at.unix_timestamp()
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The grant of the token with this hash, when it is unused and unexpired at `now`.
    pub fn enrol_grant(&self, hash: &str, now: OffsetDateTime) -> Result<Option<EnrolGrant>> {
        let row = self
            .conn
            .query_row(
                "SELECT entry, leaves, expires_at FROM enrol_tokens
                 WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![hash, now.unix_timestamp()],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((entry, leaves, expires)) = row else {
            return Ok(None);
        };
        let leaves = serde_json::from_str(&leaves).map_err(|e| Error::Ledger {
            path: self.path.clone(),
            reason: format!("enrolment token of {entry}: {e}"),
        })?;
        Ok(Some(EnrolGrant {
            entry,
            leaves,
            expires_at: OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }))
    }

    /// Uses the token and records the leaves it obtained, in one transaction: both happen or
    /// neither. Returns false (and records nothing) when the token was used or expired in the
    /// meantime.
    pub fn record_enrolment(
        &mut self,
        hash: &str,
        now: OffsetDateTime,
        recs: &[(LeafRecord, &[u8])],
    ) -> Result<bool> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tx = self.tx()?;
        let used = tx
            .execute(
                "UPDATE enrol_tokens SET used_at = ?2
                 WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                params![hash, now.unix_timestamp()],
            )
            .map_err(err)?;
        if used != 1 {
            return Ok(false);
        }
        insert_rows(&tx, recs, None).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(true)
    }

    /// Records `rec`, the successor of `old_serial`, and the link between them, in one
    /// transaction. The old leaf stays active until [`Ledger::confirm_renewal`].
    pub fn record_renewal(&mut self, old_serial: &str, rec: &LeafRecord, der: &[u8]) -> Result<()> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tx = self.tx()?;
        // A leaf renewed again before it confirmed its last successor never installed that
        // one (the agent renews from the files it runs): the earlier successor is revoked, so
        // one key cannot collect live successors.
        tx.execute(
            "UPDATE leaves SET status = 'revoked', revocation_reason = 'superseded', revoked_at = ?2
             WHERE status = 'active' AND serial IN
               (SELECT new_serial FROM renewals WHERE old_serial = ?1 AND confirmed_at IS NULL)",
            params![old_serial, OffsetDateTime::now_utc().unix_timestamp()],
        )
        .map_err(err)?;
        insert_rows(&tx, &[(rec.clone(), der)], None).map_err(err)?;
        tx.execute(
            "INSERT INTO renewals (new_serial, old_serial) VALUES (?1, ?2)",
            params![rec.serial, old_serial],
        )
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Revokes, with `reason`, every leaf renewed from `serial` through the service, and
    /// theirs in turn: whoever held `serial`'s key could have renewed it. Returns them.
    pub fn revoke_successors(&mut self, serial: &str, reason: &str) -> Result<Vec<LeafRecord>> {
        let mut done = Vec::new();
        let mut next = vec![serial.to_string()];
        while let Some(s) = next.pop() {
            let children: Vec<String> = {
                let mut stmt = self
                    .conn
                    .prepare("SELECT new_serial FROM renewals WHERE old_serial = ?1")
                    .map_err(|e| self.err(e))?;
                let rows = stmt
                    .query_map(params![s], |r| r.get(0))
                    .map_err(|e| self.err(e))?;
                rows.collect::<std::result::Result<_, _>>()
                    .map_err(|e| self.err(e))?
            };
            for child in children {
                next.push(child.clone());
                match self.revoke(&child, reason) {
                    Ok(rec) => done.push(rec),
                    Err(Error::AlreadyRevoked { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(done)
    }

    /// The agent installed the renewed leaf `new_serial`: its predecessor becomes superseded.
    /// Returns the predecessor's serial; None when `new_serial` is no renewal. Repeating it
    /// changes nothing.
    pub fn confirm_renewal(
        &mut self,
        new_serial: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>> {
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tx = self.tx()?;
        let old: Option<String> = tx
            .query_row(
                "SELECT old_serial FROM renewals WHERE new_serial = ?1",
                params![new_serial],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if let Some(old) = &old {
            tx.execute(
                "UPDATE renewals SET confirmed_at = COALESCE(confirmed_at, ?2) WHERE new_serial = ?1",
                params![new_serial, now.unix_timestamp()],
            )
            .map_err(err)?;
            tx.execute(
                "UPDATE leaves SET status = 'superseded' WHERE serial = ?1 AND status = 'active'",
                params![old],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(old)
    }

    /// Leaves that were renewed but whose successor was never confirmed become superseded once
    /// they expire. Returns how many changed.
    pub fn sweep_renewed(&mut self, now: OffsetDateTime) -> Result<usize> {
        self.conn
            .execute(
                "UPDATE leaves SET status = 'superseded'
                 WHERE status = 'active' AND not_after <= ?1
                   AND serial IN (SELECT old_serial FROM renewals)",
                params![now.unix_timestamp()],
            )
            .map_err(|e| self.err(e))
    }

    /// The serial of the leaf that renewed `serial`, if any (confirmed or not).
    pub fn successor(&self, serial: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT new_serial FROM renewals WHERE old_serial = ?1 ORDER BY rowid DESC",
                params![serial],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// See [`RevocationMark`].
    pub fn revocation_mark(&self) -> Result<RevocationMark> {
        self.conn
            .query_row(
                "SELECT COUNT(*), COALESCE(MAX(revoked_at), 0) FROM leaves WHERE status = 'revoked'",
                [],
                |r| {
                    Ok(RevocationMark {
                        count: r.get::<_, i64>(0)? as u64,
                        latest: r.get(1)?,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(serial: &str, not_after: i64) -> LeafRecord {
        LeafRecord {
            serial: serial.into(),
            generation: 1,
            profile: "client".into(),
            subject: "u1".into(),
            dns: vec![],
            ips: vec![],
            key_alg: "p256".into(),
            key_source: "csr".into(),
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::from_unix_timestamp(not_after).unwrap(),
            status: "active".into(),
            revocation_reason: None,
            cert_path: "agent:u1/client".into(),
            fingerprint: "AA".into(),
        }
    }

    #[test]
    fn a_token_obtains_its_leaves_once_and_not_after_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let t0 = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let leaves = vec![EnrolLeaf {
            role: "client".into(),
            subject: "u1".into(),
            dns: vec![],
            ips: vec![],
        }];
        l.add_enrol_token("h1", "client u1", &leaves, t0 + time::Duration::hours(1))
            .unwrap();
        assert_eq!(l.enrol_grant("h1", t0).unwrap().unwrap().leaves, leaves);
        assert!(l.enrol_grant("h2", t0).unwrap().is_none());
        let late = t0 + time::Duration::hours(2);
        assert!(l.enrol_grant("h1", late).unwrap().is_none());
        assert!(!l
            .record_enrolment("h1", late, &[(rec("0a", 9), b"x")])
            .unwrap());
        assert!(l.get("0a").unwrap().is_none(), "nothing recorded");
        assert!(l
            .record_enrolment("h1", t0, &[(rec("0a", 9), b"x")])
            .unwrap());
        assert!(l.get("0a").unwrap().is_some());
        assert!(!l
            .record_enrolment("h1", t0, &[(rec("0b", 9), b"x")])
            .unwrap());
        assert!(
            l.get("0b").unwrap().is_none(),
            "a used token records nothing"
        );
        assert!(l.enrol_grant("h1", t0).unwrap().is_none());
    }

    #[test]
    fn a_renewal_supersedes_its_predecessor_on_confirmation_or_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        l.record(&rec("01", 2_000), b"1").unwrap();
        l.record(&rec("03", 2_000), b"3").unwrap();
        l.record_renewal("01", &rec("02", 9_000), b"2").unwrap();
        l.record_renewal("03", &rec("04", 9_000), b"4").unwrap();
        assert_eq!(l.successor("01").unwrap().as_deref(), Some("02"));
        assert_eq!(l.get("01").unwrap().unwrap().status, "active");
        assert_eq!(l.confirm_renewal("02", now).unwrap().as_deref(), Some("01"));
        assert_eq!(l.get("01").unwrap().unwrap().status, "superseded");
        assert_eq!(l.confirm_renewal("02", now).unwrap().as_deref(), Some("01"));
        assert_eq!(l.confirm_renewal("01", now).unwrap(), None);
        // 03 was never confirmed: superseded once it expires, not before.
        assert_eq!(l.sweep_renewed(now).unwrap(), 0);
        let later = OffsetDateTime::from_unix_timestamp(2_000).unwrap();
        assert_eq!(l.sweep_renewed(later).unwrap(), 1);
        assert_eq!(l.get("03").unwrap().unwrap().status, "superseded");
        assert_eq!(l.get("04").unwrap().unwrap().status, "active");
    }

    #[test]
    fn renewing_again_revokes_the_unconfirmed_successor_and_revocation_follows_renewals() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_000).unwrap();
        l.record(&rec("01", 9_000), b"1").unwrap();
        l.record_renewal("01", &rec("02", 9_000), b"2").unwrap();
        // 01 renews again before 02 was confirmed: 02 was never installed.
        l.record_renewal("01", &rec("03", 9_000), b"3").unwrap();
        assert_eq!(l.get("02").unwrap().unwrap().status, "revoked");
        assert_eq!(l.confirm_renewal("03", now).unwrap().as_deref(), Some("01"));
        l.record_renewal("03", &rec("04", 9_000), b"4").unwrap();
        // Revoking 01 (its key stolen) revokes what was renewed from it, transitively.
        l.revoke("01", "keyCompromise").unwrap();
        let gone: Vec<String> = l
            .revoke_successors("01", "keyCompromise")
            .unwrap()
            .into_iter()
            .map(|r| r.serial)
            .collect();
        assert_eq!(gone.len(), 2, "{gone:?}");
        for s in ["03", "04"] {
            assert_eq!(l.get(s).unwrap().unwrap().status, "revoked", "{s}");
        }
    }

    #[test]
    fn the_revocation_mark_moves_with_every_revocation() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(&dir.path().join("ledger.sqlite")).unwrap();
        l.record(&rec("01", 2_000), b"1").unwrap();
        let m0 = l.revocation_mark().unwrap();
        assert_eq!(m0, RevocationMark::default());
        l.revoke("01", "keyCompromise").unwrap();
        let m1 = l.revocation_mark().unwrap();
        assert_eq!(m1.count, 1);
        assert_ne!(m0, m1);
    }
}
