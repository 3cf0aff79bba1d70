//! Revocation and CRL bookkeeping in the ledger: revoking a leaf, the revoked list, CRL
//! numbers, and which expired entries a CRL has listed one last time.

use super::*;

impl Ledger {
    /// The next CRL number: strictly increasing, shared by every process using this ledger.
    pub fn next_crl_number(&mut self) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::Ledger {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('crl_number', 1)
             ON CONFLICT(name) DO UPDATE SET value = value + 1",
            [],
        )
        .map_err(|e| Error::Ledger {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let n: i64 = tx
            .query_row(
                "SELECT value FROM counters WHERE name = 'crl_number'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| Error::Ledger {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        tx.commit().map_err(|e| Error::Ledger {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        Ok(n as u64)
    }
    /// Every revoked leaf.
    pub fn revoked(&self) -> Result<Vec<RevokedLeaf>> {
        let mut stmt = self
            .conn
            .prepare("SELECT serial, generation, revocation_reason, COALESCE(revoked_at, issued_at), not_after, direct_listed_expired, etcd_listed_expired FROM leaves WHERE status = 'revoked' ORDER BY generation, revoked_at")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let t: i64 = r.get(3)?;
                let not_after: i64 = r.get(4)?;
                Ok(RevokedLeaf {
                    serial: r.get(0)?,
                    generation: r.get(1)?,
                    reason: r.get(2)?,
                    revoked_at: OffsetDateTime::from_unix_timestamp(t)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    // An unreadable notAfter counts as unexpired: the entry then stays listed.
                    not_after: OffsetDateTime::from_unix_timestamp(not_after)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 1000)),
                    direct_listed_expired: r.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                    etcd_listed_expired: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
    /// Records that CRL `number` of `kind`, now published, listed these expired revoked leaves:
    /// the next CRL of that kind leaves them out. A leaf already recorded keeps its first number.
    pub fn mark_listed_expired(
        &mut self,
        kind: CrlKind,
        serials: &[String],
        number: u64,
    ) -> Result<()> {
        if serials.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let err = |e: rusqlite::Error| Error::Ledger {
            path: path.clone(),
            reason: e.to_string(),
        };
        let col = kind.column();
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare(&format!(
                    "UPDATE leaves SET {col} = ?2 WHERE serial = ?1 AND {col} IS NULL"
                ))
                .map_err(err)?;
            for s in serials {
                stmt.execute(params![s, number as i64]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }
    /// Marks a leaf revoked: an active one, or a superseded one (renewed or re-issued, and
    /// still valid until it expires). Errors when it is unknown or already revoked; the
    /// update itself skips a revoked row, so two revocations cannot both succeed.
    pub fn revoke(&mut self, serial: &str, reason: &str) -> Result<LeafRecord> {
        let rec = self.get(serial)?.ok_or_else(|| Error::Ledger {
            path: self.path.clone(),
            reason: format!(
                "no leaf with serial {serial} was issued from this CA folder (see `issuer list`)"
            ),
        })?;
        if rec.status == "revoked" {
            return Err(Error::AlreadyRevoked {
                serial: serial.to_string(),
                reason: rec.revocation_reason.clone().unwrap_or_default(),
            });
        }
        let changed = self
            .conn
            .execute(
                "UPDATE leaves SET status = 'revoked', revocation_reason = ?2, revoked_at = ?3 WHERE serial = ?1 AND status != 'revoked'",
                params![serial, reason, OffsetDateTime::now_utc().unix_timestamp()],
            )
            .map_err(|e| self.err(e))?;
        if changed != 1 {
            return Err(Error::AlreadyRevoked {
                serial: serial.to_string(),
                reason: "by another command, meanwhile".into(),
            });
        }
        Ok(rec)
    }
}
