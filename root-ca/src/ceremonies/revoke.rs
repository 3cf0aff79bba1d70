//! `root-ca revoke`: mark an intermediate revoked in the root's index. It does not use the
//! token; the next `root-ca crl` lists it. The reason and the serial are the ceremony file's
//! own checks ([`crate::ceremony::Validate`]).

use std::path::Path;

use pki_core::x509::fmt_time;
use serde_json::json;
use time::OffsetDateTime;

use super::log::check_log;
use super::{ceremony_record, say, Run};
use crate::airgap;
use crate::ceremony::{self, RevokeCeremony};
use crate::error::{Result, RootError};
use crate::state::RootDir;

pub fn revoke(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<RevokeCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let serial = c.serial().map_err(|i| i.at(file))?.to_hex();
    let entry = index
        .intermediates
        .iter_mut()
        .find(|e| e.serial == serial)
        .ok_or_else(|| RootError::UnknownSerial {
            serial: serial.clone(),
            index: dir.index_path(),
        })?;
    if entry.status == "revoked" {
        return Err(RootError::AlreadyRevoked {
            serial,
            reason: entry.reason.clone().unwrap_or_default(),
        });
    }
    say(
        run,
        format!(
            "root-ca revoke: {} (serial {serial}), reason {}",
            entry.subject, c.reason
        ),
    );
    if run.dry_run {
        say(run, "dry run: nothing changed");
        return Ok(());
    }
    // Revoking never opens the token, but under custody it is still a decision of M
    // custodians: their shares are checked against the commitments and rebuild the secret.
    let quorum = if crate::custody::is_active(&dir) {
        let state = crate::custody::load(&dir)?;
        let q = crate::custody::gather(&dir, &state, run.custodians)?;
        Some((state.generation, q.custodians))
    } else {
        None
    };
    let entry = index
        .intermediates
        .iter_mut()
        .find(|e| e.serial == serial)
        .expect("found above");
    entry.status = "revoked".into();
    entry.reason = Some(c.reason.clone());
    entry.revoked_at = Some(fmt_time(OffsetDateTime::now_utc()));
    let subject = entry.subject.clone();
    if let Some((generation, custodians)) = quorum {
        dir.log(
            &mut index,
            "custody-quorum",
            json!({ "for": "revoke", "generation": generation, "custodians": custodians }),
        )?;
    }
    dir.log(
        &mut index,
        "intermediate-revoked",
        json!({ "serial": serial, "subject": subject, "reason": c.reason,
                "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
    )?;
    say(
        run,
        "revoked; sign a new root CRL now (root-ca crl) and ship it to the online side",
    );
    say(
        run,
        format!("ceremony log head: {} (write it down)", index.log_head),
    );
    Ok(())
}
