//! `issuer renew` and `issuer reissue`: successors swapped into place.

use super::*;
use pki_core::x509::X509Error;

pub(super) fn replace_all(
    ca: &CaDir,
    recs: Vec<pki_core::ca::LeafRecord>,
    dry_run: bool,
    secret: &SecretArgs,
    what: &str,
) -> Result<()> {
    // Leaves an agent is responsible for are never superseded here: those issued or renewed
    // through `issuer serve` live on their hosts, and those `issuer etcd` wrote into a folder
    // with a pki-agent.toml (the cluster file names a service) are renewed by that host's
    // agent, which moves them to the active generation by itself; superseding them would
    // lock the agent out (403 superseded).
    let (agent, recs): (Vec<_>, Vec<_>) = recs.into_iter().partition(agent_managed);
    if !agent.is_empty() {
        println!(
            "{} leaf/leaves left to their hosts' agents (they renew under the active generation at their next run; `issuer list` shows when): {}",
            agent.len(),
            agent
                .iter()
                .map(|r| format!("{} {} ({})", r.profile, r.subject, r.serial))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if recs.is_empty() {
        println!("nothing to {what}");
        return Ok(());
    }
    for r in &recs {
        println!(
            "{what} {} {} (serial {}, expires {}) at {}",
            r.profile,
            r.subject,
            r.serial,
            fmt_time(r.not_after),
            r.cert_path
        );
    }
    if dry_run {
        println!("dry run: nothing changed");
        return Ok(());
    }
    // Every successor passes the gate before the first is replaced: a rotation to a narrower
    // intermediate must not stop half-way.
    let gate = Gate::for_ca(ca)?;
    for r in &recs {
        let (role, subject, names) = ledger_request(r)?;
        gate.check(role, &subject, &names)?;
    }
    let signer = secret.unlock_ca(ca)?;
    let mut ledger = ca.ledger()?;
    let now = OffsetDateTime::now_utc();
    let mut done = 0;
    let mut replaced = Vec::new();
    for r in &recs {
        let new = replace_leaf(&signer, &mut ledger, r, now)?;
        println!(
            "  {} -> {} (generation {}, valid until {})",
            r.serial,
            new.serial,
            new.generation,
            fmt_time(new.not_after)
        );
        replaced.push(PathBuf::from(&new.cert_path));
        done += 1;
    }
    for f in pki_core::etcd::refresh_bundle_intermediates(&replaced, &signer.cert)? {
        println!(
            "  {} now holds the issuing intermediate ({})",
            f.display(),
            signer.cert.subject
        );
    }
    println!(
        "{done} leaf/leaves replaced in place; etcd picks up new leaf files on the next handshake"
    );
    let mut hands: Vec<String> = recs
        .iter()
        .filter_map(|r| {
            Path::new(&r.cert_path)
                .parent()
                .map(|p| p.display().to_string())
        })
        .collect();
    hands.sort();
    hands.dedup();
    println!(
        "hosts that need hands: copy these folders to their hosts (no agent renews them): {}",
        hands.join(", ")
    );
    Ok(())
}

/// A leaf an agent keeps: issued through the service, or written by `issuer etcd` into a
/// member or client folder that has agent files.
fn agent_managed(r: &pki_core::ca::LeafRecord) -> bool {
    r.cert_path.starts_with("agent:")
        || Path::new(&r.cert_path)
            .parent()
            .is_some_and(|d| d.join(pki_core::etcd::AGENT_CONFIG_FILE).exists())
}

pub fn renew(ca_dir: &Path, within: &str, dry_run: bool, secret: &SecretArgs) -> Result<()> {
    let ca = open_ca(ca_dir)?;
    // Taken before the leaves are listed: a second renewal waits, then finds them renewed.
    let _lock = (!dry_run).then(|| ca.lock_exclusive()).transpose()?;
    let filter = ListFilter {
        expiring_before: Some(after(within)?),
        active_only: true,
        generation: None,
    };
    let recs = ca.ledger()?.list(&filter)?;
    replace_all(&ca, recs, dry_run, secret, "renew")
}

/// Now plus a duration the user typed, refused (not a panic) when it leaves the calendar.
pub(super) fn after(duration: &str) -> Result<OffsetDateTime> {
    Ok(OffsetDateTime::now_utc()
        .checked_add(parse_duration(duration)?)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| {
            X509Error::BadValidity(format!(
                "'{duration}' reaches past the year 9999; give a shorter duration such as 30d"
            ))
        })?)
}

pub fn reissue(ca_dir: &Path, from: u32, dry_run: bool, secret: &SecretArgs) -> Result<()> {
    let ca = open_ca(ca_dir)?;
    let _lock = (!dry_run).then(|| ca.lock_exclusive()).transpose()?;
    let active = ca.active()?;
    if from == active {
        return Err(Usage::ReissueFromActive { from }.into());
    }
    if !ca.state.generations.iter().any(|g| g.id == from) {
        return Err(Usage::NoSuchGeneration { from }.into());
    }
    let filter = ListFilter {
        expiring_before: None,
        active_only: true,
        generation: Some(from),
    };
    let recs = ca.ledger()?.list(&filter)?;
    replace_all(&ca, recs, dry_run, secret, "reissue")
}
