//! `issuer serve` and `issuer token create`: the online service and its enrolment tokens.

use super::*;
use crate::cli::{ServeArgs, TokenCreateArgs};
use pki_core::ca::EnrolLeaf;
use pki_core::etcd::ClusterFile;
use pki_core::keys::KeyError;

/// Longest an enrolment token may live.
const MAX_TOKEN_TTL: time::Duration = time::Duration::hours(24);

/// Runs the service until SIGTERM; `Ok(false)` when it could not start for a reason of its
/// own (printed here), not a CA-folder error.
pub fn serve(a: &ServeArgs) -> Result<bool> {
    let refresh = parse_duration(&a.crl_refresh)?;
    let mut config = pki_service::server::Config::new(
        a.ca.clone(),
        a.listen,
        a.tls_cert.clone(),
        a.tls_key.clone(),
    );
    config.crl_days = a.crl_days;
    config.root = a.root.clone();
    if let Some(life) = &a.leaf_lifetime {
        let life = parse_duration(life)?;
        if life < time::Duration::seconds(10) || life > time::Duration::days(825) {
            return Err(Usage::LeafLifetime {
                lifetime: a.leaf_lifetime.clone().unwrap_or_default(),
            }
            .into());
        }
        config.leaf_lifetime = Some(life);
    }
    config.crl_refresh = std::time::Duration::from_secs(refresh.whole_seconds().max(60) as u64);
    let hold = parse_duration(&a.root_crl_hold)?;
    if hold > time::Duration::days(7) {
        return Err(Usage::RootCrlHold {
            hold: a.root_crl_hold.clone(),
        }
        .into());
    }
    config.root_crl_hold = hold;
    if let Some(addr) = a.metrics_listen.filter(|m| !m.ip().is_loopback()) {
        return Err(Usage::MetricsListen {
            addr: addr.to_string(),
        }
        .into());
    }
    config.max_per_source = a.max_connections_per_source as usize;
    config.metrics_listen = a.metrics_listen;
    config.rate = pki_service::server::RateLimit {
        burst: a.rate_burst,
        per_minute: a.rate_per_minute,
    };
    // The same files (or prompt) unlock the key at start and at every SIGHUP reload; the key
    // itself is zeroized when the service stops.
    let secret = SecretArgs {
        identity: a.secret.identity.clone(),
        passphrase_file: a.secret.passphrase_file.clone(),
        pin_file: a.secret.pin_file.clone(),
    };
    open_ca(&a.ca)?;
    let unlock: Box<pki_service::server::Unlock> = match a.identity_list.clone() {
        Some(list) => Box::new(move |ca| unlock_with_list(ca, &list, secret.pin_file.as_deref())),
        None => Box::new(move |ca| secret.unlock_ca(ca)),
    };
    match pki_service::server::run(config, unlock) {
        Ok(()) => Ok(true),
        Err(pki_service::ServiceError::Core(e)) => Err(e.into()),
        Err(e) => {
            eprintln!("issuer: error: {e}");
            Ok(false)
        }
    }
}

/// Unlocks the active intermediate with the first identity file `list` names (one path per
/// line; `#` comments and blank lines skipped) that opens it. The list is read anew each time,
/// so a SIGHUP after adding a new generation's identity loads that generation.
fn unlock_with_list(
    ca: &pki_core::ca::CaDir,
    list: &Path,
    pin_file: Option<&Path>,
) -> pki_core::Result<pki_core::ca::IssuingCa<pki_core::keys::CaKey>> {
    let text = String::from_utf8_lossy(&output::read(list)?).into_owned();
    let mut last = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let args = SecretArgs {
            identity: Some(PathBuf::from(line)),
            passphrase_file: None,
            pin_file: pin_file.map(Path::to_path_buf),
        };
        match args.unlock_ca(ca) {
            Ok(unlocked) => return Ok(unlocked),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(KeyError::NoKeySecret.into()))
}

/// The leaves one cluster-file entry gets: a member its server and peer leaves, a client its
/// client leaf; each checked against the issuance policy now, so a token never promises
/// what the CA would refuse.
pub(super) fn grant_for(
    cluster: &ClusterFile,
    member: Option<&str>,
    client: Option<&str>,
) -> Result<(String, Vec<EnrolLeaf>)> {
    let leaf = |role: LeafRole, cn: &str, names: SubjectNames| EnrolLeaf {
        role: role.as_str().into(),
        subject: cn.into(),
        dns: names.dns.clone(),
        ips: names.ips.iter().map(|i| i.to_string()).collect(),
    };
    if let Some(name) = member {
        let m = cluster
            .members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Usage::NoSuchMember {
                name: name.to_string(),
            })?;
        return Ok((
            format!("member {name}"),
            vec![
                leaf(LeafRole::Server, name, cluster.server_names(m)),
                leaf(LeafRole::Peer, name, cluster.peer_names(m)),
            ],
        ));
    }
    let name = client.unwrap_or_default();
    cluster
        .clients
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| Usage::NoSuchClient {
            name: name.to_string(),
        })?;
    Ok((
        format!("client {name}"),
        vec![leaf(LeafRole::Client, name, SubjectNames::default())],
    ))
}

/// A token's life from `--ttl`/`--token-ttl`: more than nothing, at most a day.
pub(super) fn token_ttl(text: &str) -> Result<time::Duration> {
    let ttl = parse_duration(text)?;
    if ttl <= time::Duration::ZERO || ttl > MAX_TOKEN_TTL {
        return Err(Usage::TokenTtl {
            ttl: text.to_string(),
        }
        .into());
    }
    Ok(ttl)
}

/// A new one-time token for one entry of `cluster`, stored in `ca`'s ledger as its hash.
pub(super) struct NewToken {
    /// The token itself: shown or written once.
    pub token: zeroize::Zeroizing<String>,
    /// `member NAME` or `client NAME`.
    pub entry: String,
    /// The roles it obtains.
    pub roles: Vec<String>,
    /// When it stops working.
    pub expires: OffsetDateTime,
}

pub(super) fn new_token(
    ca: &pki_core::ca::CaDir,
    cluster: &ClusterFile,
    member: Option<&str>,
    client: Option<&str>,
    ttl: time::Duration,
) -> Result<NewToken> {
    let (entry, leaves) = grant_for(cluster, member, client)?;
    let gate = Gate::for_ca(ca)?;
    for l in &leaves {
        let (role, subject, names) = l.request()?;
        gate.check(role, &subject, &names)?;
    }
    let token = zeroize::Zeroizing::new(hex::encode(rand::random::<[u8; 32]>()));
    let expires = OffsetDateTime::now_utc() + ttl;
    ca.ledger()?.add_enrol_token(
        &pki_service::server::token_hash(&token),
        &entry,
        &leaves,
        expires,
    )?;
    Ok(NewToken {
        token,
        entry,
        roles: leaves.iter().map(|l| l.role.clone()).collect(),
        expires,
    })
}

/// The serials of active, unexpired leaves the ledger holds for `cn` in `roles`.
pub(super) fn active_leaves_of(
    ca: &pki_core::ca::CaDir,
    cn: &str,
    roles: &[String],
) -> Result<Vec<String>> {
    let now = OffsetDateTime::now_utc();
    let rows = ca.ledger()?.list(&pki_core::ca::ListFilter {
        active_only: true,
        ..Default::default()
    })?;
    Ok(rows
        .into_iter()
        .filter(|r| r.subject == cn && r.not_after > now && roles.contains(&r.profile))
        .map(|r| r.serial)
        .collect())
}

pub fn token_create(a: &TokenCreateArgs) -> Result<()> {
    let ttl = token_ttl(&a.ttl)?;
    let cluster = ClusterFile::load(&a.cluster)?;
    let ca = open_ca(&a.ca)?;
    if let Some(out) = &a.out {
        output::ensure_absent(out, false)?;
    }
    let NewToken {
        token,
        entry,
        roles,
        expires,
    } = new_token(&ca, &cluster, a.member.as_deref(), a.client.as_deref(), ttl)?;
    let cn = a
        .member
        .as_deref()
        .or(a.client.as_deref())
        .unwrap_or_default();
    let active = active_leaves_of(&ca, cn, &roles)?;
    if !active.is_empty() {
        eprintln!(
            "issuer: warning: {entry} already has {} active leaf/leaves ({}), issued earlier (their keys were made where they were issued); enrolling adds new ones beside them. Once the host has enrolled, revoke the old ones (issuer revoke --ca {} SERIAL --reason superseded). (Entry names are unique across the clusters one CA folder serves: if another cluster's host holds these, give this one another name.)",
            active.len(),
            active.join(", "),
            a.ca.display()
        );
    }
    match &a.out {
        Some(out) => {
            output::write_atomic(
                out,
                format!("{}\n", *token).as_bytes(),
                output::Mode::Secret,
                false,
            )?;
            println!(
                "enrolment token for {entry} ({}) written to {}; it works once, until {}",
                roles.join(" + "),
                out.display(),
                fmt_time(expires)
            );
        }
        None => {
            eprintln!(
                "issuer: enrolment token for {entry} ({}); it works once, until {}; it is not shown again:",
                roles.join(" + "),
                fmt_time(expires)
            );
            println!("{}", *token);
        }
    }
    Ok(())
}

/// `issuer audit verify`: the audit log's hash chain, checked line by line.
pub fn audit_verify(dir: &Path) -> Result<bool> {
    let path = pki_service::server::audit_log_path(dir);
    let text = output::read(&path)?;
    match pki_service::server::verify_audit_log(&text) {
        Ok(v) => {
            let before = match v.unchained {
                0 => String::new(),
                n => format!(" ({n} written before the chain began, not covered)"),
            };
            println!(
                "{}: {} lines{before}, chain intact; head {}",
                path.display(),
                v.lines,
                v.head
            );
            Ok(true)
        }
        Err(b) => {
            eprintln!(
                "issuer: error: {} line {}: {}; keep this copy as evidence and compare it with your backups",
                path.display(),
                b.line,
                b.reason
            );
            Ok(false)
        }
    }
}
