//! What this host last saw of the ledger, kept in the CA folder (`ledger-seen.toml`): the
//! highest CRL number it drew and how many leaves were revoked then. Both only grow in a
//! healthy ledger, so a ledger that shows less was restored from an older backup (or is
//! another database): opening it is refused, because a CRL signed from it would drop
//! revocations that relying parties already saw.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::{self, Mode};

/// The mark file of one CA folder.
#[derive(Clone, Debug)]
pub struct LedgerMark {
    path: PathBuf,
}

/// The figures a mark holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Seen {
    /// The highest CRL number this host drew.
    pub(crate) crl_number: u64,
    /// Revoked leaves in the ledger when it drew it.
    pub(crate) revoked: u64,
}

impl LedgerMark {
    /// The mark at `path` (it need not exist yet).
    pub fn at(path: &Path) -> Self {
        LedgerMark {
            path: path.to_path_buf(),
        }
    }

    /// Where the mark lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this host saw; zeros when it never drew a CRL number.
    pub(crate) fn read(&self) -> Result<Seen> {
        if !self.path.exists() {
            return Ok(Seen::default());
        }
        let text = output::read_to_string(&self.path)?;
        toml::from_str(&text).map_err(|e| Error::Ledger {
            ledger: self.path.display().to_string(),
            reason: format!("unreadable mark of what this host saw: {e}"),
        })
    }

    /// The highest CRL number this host drew (0 when none).
    pub fn seen_crl_number(&self) -> Result<u64> {
        Ok(self.read()?.crl_number)
    }

    /// Raises the mark to `seen` (each figure only grows).
    pub(crate) fn raise(&self, seen: Seen) -> Result<()> {
        let old = self.read()?;
        let new = Seen {
            crl_number: old.crl_number.max(seen.crl_number),
            revoked: old.revoked.max(seen.revoked),
        };
        if new == old {
            return Ok(());
        }
        let text = format!(
            "# What this host last saw of its ledger; see docs/production.md (\"rollback\").\n{}",
            toml::to_string(&new).expect("toml")
        );
        output::write_atomic(&self.path, text.as_bytes(), Mode::Public, true)
    }

    /// Forgets what this host saw: after an operator checked a restored ledger and brought its
    /// revocations back (`issuer ledger accept-restore`).
    pub fn reset(&self) -> Result<()> {
        if self.path.exists() {
            std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }
}
