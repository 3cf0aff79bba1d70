//! Moving a ledger from one store to another (`issuer ledger migrate`): every row copied in
//! one transaction, then read back from the target and compared row by row with the source.

use std::collections::BTreeMap;

use super::{DumpLeaf, Ledger, LedgerDump};
use crate::error::{Error, Result};

/// What a copy did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyReport {
    /// Leaves (with their certificates) compared equal in the target.
    pub leaves: usize,
    /// Revoked leaves among them.
    pub revoked: usize,
    /// Batch runs, enrolment tokens and renewal links compared equal.
    pub other_rows: usize,
    /// The CRL number carried over.
    pub crl_number: u64,
    /// The target already held exactly these rows: nothing was written.
    pub already_done: bool,
}

/// Copies every row of `from` into `to`, which must be empty (or already hold exactly the
/// same rows: then nothing is written), and verifies the copy row by row.
pub fn copy_ledger(from: &Ledger, to: &mut Ledger) -> Result<CopyReport> {
    let source = from.dump()?;
    let before = to.dump()?;
    let already_done = before != LedgerDump::default();
    if already_done {
        if let Some(diff) = first_difference(&source, &before) {
            return Err(Error::Ledger {
                ledger: to.describe(),
                reason: format!(
                    "the target ledger is not empty and differs from {} ({diff}); nothing was \
                     copied. Migrate into a new, empty database",
                    from.describe()
                ),
            });
        }
    } else {
        to.load(&source)?;
        let after = to.dump()?;
        if let Some(diff) = first_difference(&source, &after) {
            return Err(Error::Ledger {
                ledger: to.describe(),
                reason: format!("the copy does not read back equal to the source: {diff}"),
            });
        }
    }
    Ok(CopyReport {
        leaves: source.leaves.len(),
        revoked: source
            .leaves
            .iter()
            .filter(|l| l.rec.status == "revoked")
            .count(),
        other_rows: source.batch_runs.len() + source.enrol_tokens.len() + source.renewals.len(),
        crl_number: source.crl_number,
        already_done,
    })
}

/// The first row that differs between two dumps, named; None when they hold the same rows.
pub fn first_difference(a: &LedgerDump, b: &LedgerDump) -> Option<String> {
    let by_serial = |d: &LedgerDump| -> BTreeMap<String, DumpLeaf> {
        d.leaves
            .iter()
            .map(|l| (l.rec.serial.clone(), l.clone()))
            .collect()
    };
    let (la, lb) = (by_serial(a), by_serial(b));
    for (serial, leaf) in &la {
        match lb.get(serial) {
            None => return Some(format!("leaf {serial} is missing")),
            Some(other) if other != leaf => return Some(format!("leaf {serial} differs")),
            Some(_) => {}
        }
    }
    if let Some(extra) = lb.keys().find(|s| !la.contains_key(*s)) {
        return Some(format!("leaf {extra} is not in the source"));
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let tables = [
        (
            "batch runs",
            sorted(a.batch_runs.iter().map(|r| format!("{r:?}")).collect()),
            sorted(b.batch_runs.iter().map(|r| format!("{r:?}")).collect()),
        ),
        (
            "enrolment tokens",
            sorted(a.enrol_tokens.iter().map(|r| format!("{r:?}")).collect()),
            sorted(b.enrol_tokens.iter().map(|r| format!("{r:?}")).collect()),
        ),
        (
            "renewal links",
            a.renewals.iter().map(|r| format!("{r:?}")).collect(),
            b.renewals.iter().map(|r| format!("{r:?}")).collect(),
        ),
    ];
    for (name, x, y) in tables {
        if x != y {
            return Some(format!(
                "the {name} differ ({} vs {} rows)",
                x.len(),
                y.len()
            ));
        }
    }
    if a.crl_number != b.crl_number {
        return Some(format!(
            "the CRL number differs ({} vs {})",
            a.crl_number, b.crl_number
        ));
    }
    None
}
