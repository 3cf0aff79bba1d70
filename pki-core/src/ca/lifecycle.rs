//! Revocation lists, renewal and re-issue over the ledger.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::ca::folder::CaDir;
use crate::ca::issuing::{IssuingCa, LeafKey, LeafPaths, LeafRequest};
use crate::ca::ledger::{CrlKind, LeafRecord, Ledger, RevokedLeaf};
use crate::error::{Error, Result};
use crate::keys::signer::Signer;
use crate::output::{self, Mode};
use crate::x509::certs::CertFacts;
use crate::x509::crl::{CrlEntry, Reason};
use crate::x509::profile::{LeafRole, Subject, SubjectNames};
use crate::x509::serial::Serial;

fn entry(
    serial_hex: &str,
    at: OffsetDateTime,
    reason: Option<&str>,
    issuer: Option<Vec<u8>>,
) -> Option<CrlEntry> {
    Some(CrlEntry {
        serial: Serial::from_hex(serial_hex)?.as_bytes().to_vec(),
        revoked_at: at,
        reason: reason.and_then(|r| Reason::parse(r).ok()),
        certificate_issuer: issuer,
    })
}

/// What goes into one CRL: its entries, and the expired revoked leaves it lists for the last
/// time. Once that CRL is published, record them with [`Selection::published`].
pub struct Selection {
    /// The CRL's entries, in the order they are written.
    pub entries: Vec<CrlEntry>,
    /// The CRL they are for.
    pub kind: CrlKind,
    /// Serials (hex) of the expired revoked leaves this CRL lists for the last time.
    pub listed_expired: Vec<String>,
}

impl Selection {
    /// Records that CRL `number` is out: the expired entries it listed leave the next CRL of
    /// its kind. Called only after every copy is written, so an entry is never dropped on the
    /// strength of a CRL nobody received.
    pub fn published(&self, ledger: &mut Ledger, number: u64) -> Result<()> {
        ledger.mark_listed_expired(self.kind, &self.listed_expired, number)
    }
}

/// The expiry rule (docs/crl.md): a revoked leaf is listed while it is valid, and in the first
/// CRL published after its notAfter (RFC 5280 §3.3: an entry stays until it appeared on one
/// CRL issued beyond the certificate's validity, so no validator sees a gap); after that it is
/// dropped. etcd parses the whole CRL on every new connection, so entries nobody can present
/// any more only cost connection time. Returns None when dropped, else whether this is the
/// last listing.
fn listing(r: &RevokedLeaf, kind: CrlKind, this_update: OffsetDateTime) -> Option<bool> {
    if r.not_after >= this_update {
        return Some(false);
    }
    r.listed_expired(kind).is_none().then_some(true)
}

/// Entries of the active intermediate's direct CRL signed at `this_update`: the revoked leaves
/// it issued, under the expiry rule.
pub fn direct_entries(
    ledger: &Ledger,
    generation: u32,
    this_update: OffsetDateTime,
) -> Result<Selection> {
    let mut sel = Selection {
        entries: Vec::new(),
        kind: CrlKind::Direct,
        listed_expired: Vec::new(),
    };
    for r in ledger
        .revoked()?
        .into_iter()
        .filter(|r| r.generation == generation)
    {
        let Some(last) = listing(&r, sel.kind, this_update) else {
            continue;
        };
        if let Some(e) = entry(&r.serial, r.revoked_at, r.reason.as_deref(), None) {
            sel.entries.push(e);
            if last {
                sel.listed_expired.push(r.serial);
            }
        }
    }
    Ok(sel)
}

/// The root's revocations for the etcd CRL: the root, its CRL (DER), and the serials (lower-case
/// hex) of the entries held back for now (see [`crate::ca::RootHold`]; empty: all of them).
pub type RootEntries<'a> = (&'a CertFacts, &'a [u8], &'a [String]);

/// Entries of the etcd CRL signed at `this_update`: every revoked leaf of every generation
/// under the expiry rule (leaves of other generations name their issuer), then every
/// certificate the root revoked (naming the root), as the root CRL lists them, but for those
/// held back.
pub fn etcd_entries(
    ca: &CaDir,
    ledger: &Ledger,
    active: u32,
    root: Option<RootEntries<'_>>,
    this_update: OffsetDateTime,
) -> Result<Selection> {
    let mut own = Vec::new();
    let mut others = Vec::new();
    let mut listed_expired = Vec::new();
    for r in ledger.revoked()? {
        let Some(last) = listing(&r, CrlKind::Etcd, this_update) else {
            continue;
        };
        let issuer = match r.generation == active {
            true => None,
            false => Some(ca.cert(r.generation)?.subject_der),
        };
        let Some(e) = entry(&r.serial, r.revoked_at, r.reason.as_deref(), issuer) else {
            continue;
        };
        match e.certificate_issuer {
            None => own.push(e),
            Some(_) => others.push(e),
        }
        if last {
            listed_expired.push(r.serial);
        }
    }
    // Entries without certificateIssuer must come first: the extension carries over to the
    // entries that follow it (RFC 5280 §5.3.3).
    own.extend(others);
    if let Some((root_cert, crl_der, held)) = root {
        crate::x509::crl::verify_signature(crl_der, &root_cert.spki_der)
            .map_err(|_| Error::RootCrlNotByRoot)?;
        for mut e in crate::x509::crl::parse_entries("root CRL", crl_der)? {
            if held.contains(&Serial::from_bytes(&e.serial).to_hex()) {
                continue;
            }
            e.certificate_issuer = Some(root_cert.subject_der.clone());
            own.push(e);
        }
    }
    Ok(Selection {
        entries: own,
        kind: CrlKind::Etcd,
        listed_expired,
    })
}

/// How a CRL file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlFormat {
    /// One `X509 CRL` PEM block: what OpenSSL and most validators read by default.
    Pem,
    /// The bare DER CertificateList: the only form etcd 3.6 reads (facts C8), and read by 3.4
    /// and 3.5 too.
    Der,
}

impl CrlFormat {
    /// For an etcd CRL file named by the user: PEM only when its name says so (`.pem`), DER
    /// otherwise, so that a file etcd loads is DER unless someone asked for PEM by name.
    pub fn for_etcd_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pem") => CrlFormat::Pem,
            _ => CrlFormat::Der,
        }
    }
}

/// A CRL file's DER, whether the file is PEM (first `X509 CRL` block) or DER.
pub fn crl_file_der(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.starts_with(b"-----BEGIN") || bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        crate::x509::certs::pem_blocks("CRL", bytes, "X509 CRL")
            .ok()
            .and_then(|b| b.into_iter().next())
    } else {
        Some(bytes.to_vec())
    }
}

/// Writes a CRL file atomically. CRL files are meant to be replaced (etcd re-reads them on
/// every connection), so an existing file is swapped, never half-written; but never by an
/// older CRL of the same issuer (a lower CRL number), whatever order two commands finish in.
/// The file on disk is compared in whichever format it is in, so a bundle moving from PEM to
/// DER keeps that guard.
pub fn publish_crl(path: &Path, der: &[u8], format: CrlFormat) -> Result<()> {
    let bytes = match format {
        CrlFormat::Pem => crate::x509::certs::to_pem("X509 CRL", der).into_bytes(),
        CrlFormat::Der => der.to_vec(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        output::create_dir(parent, 0o755)?;
    }
    if let (Some((issuer, new)), Ok(existing)) = (crl_number(der), std::fs::read(path)) {
        let on_disk = crl_file_der(&existing).and_then(|d| crl_number(&d));
        if let Some((old_issuer, on_disk)) = on_disk {
            if old_issuer == issuer && on_disk > new {
                return Err(Error::CrlNotNewer {
                    path: path.to_path_buf(),
                    on_disk,
                    new,
                });
            }
        }
    }
    output::write_atomic(path, &bytes, Mode::Public, true)
}

/// A CRL's issuer name (DER) and CRL number.
fn crl_number(der: &[u8]) -> Option<(Vec<u8>, u64)> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).ok()?;
    let n = crl.crl_number()?.to_string().parse().ok()?;
    Some((crl.issuer().as_raw().to_vec(), n))
}

/// A signed CRL, not yet published: once every copy is written, call
/// [`Selection::published`] on its selection so expired entries listed for the last time
/// leave the next one.
pub struct SignedCrl {
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// Its CRL number.
    pub number: u64,
    /// The entries it lists.
    pub selection: Selection,
}

/// Signs the etcd CRL (indirect: every generation's revoked leaves, and the root's
/// revocations when `root` gives the root and its CRL), valid for `days` from `now`.
pub fn sign_etcd_crl<S: Signer>(
    ca: &CaDir,
    signer: &IssuingCa<S>,
    ledger: &mut Ledger,
    root: Option<RootEntries<'_>>,
    now: OffsetDateTime,
    days: u32,
) -> Result<SignedCrl> {
    let now = now.replace_nanosecond(0).expect("ns");
    let selection = etcd_entries(ca, ledger, signer.generation, root, now)?;
    let number = ledger.next_crl_number()?;
    let next = now + time::Duration::days(days as i64);
    let der = signer.sign_crl(&selection.entries, number, now, next, true)?;
    Ok(SignedCrl {
        der,
        number,
        selection,
    })
}

/// Signs the active intermediate's own CRL (its revoked leaves), valid for `days` from `now`.
pub fn sign_direct_crl<S: Signer>(
    signer: &IssuingCa<S>,
    ledger: &mut Ledger,
    now: OffsetDateTime,
    days: u32,
) -> Result<SignedCrl> {
    let now = now.replace_nanosecond(0).expect("ns");
    let selection = direct_entries(ledger, signer.generation, now)?;
    let number = ledger.next_crl_number()?;
    let next = now + time::Duration::days(days as i64);
    let der = signer.sign_crl(&selection.entries, number, now, next, false)?;
    Ok(SignedCrl {
        der,
        number,
        selection,
    })
}

/// Issues the successor of `old` (same names and profile; a new key when we generated the old
/// one) and swaps it into place: the new key and certificate are written beside the old files
/// as `*.new`, then renamed over them, key first. The old leaf is marked superseded.
pub fn replace_leaf<S: Signer>(
    ca: &IssuingCa<S>,
    ledger: &mut Ledger,
    old: &LeafRecord,
    now: OffsetDateTime,
) -> Result<LeafRecord> {
    let role: LeafRole = old.profile.parse()?;
    let cert_path = PathBuf::from(&old.cert_path);
    // The key sits beside its certificate under the same stem: server.crt/server.key, and
    // kubeadm's apiserver-etcd-client.crt/.key in a kube-apiserver client folder.
    let final_paths = LeafPaths {
        cert: cert_path.clone(),
        key: cert_path.with_extension("key"),
    };
    let key = if old.key_source == "generated" {
        LeafKey::Generate(old.key_alg.parse()?)
    } else {
        let der = ledger.cert_der(&old.serial)?;
        let facts = CertFacts::from_der("ledger certificate", &der)?;
        LeafKey::Spki {
            alg: crate::keys::algorithm::KeyAlgorithm::from_spki_der(&facts.spki_der)?,
            spki_der: facts.spki_der,
        }
    };
    let names = SubjectNames {
        dns: old.dns.clone(),
        ips: old
            .ips
            .iter()
            .map(|i| i.parse().map_err(|_| Error::LedgerIp { value: i.clone() }))
            .collect::<Result<_>>()?,
    };
    let leaf = ca.sign_leaf(
        LeafRequest {
            role,
            subject: Subject::cn(old.subject.clone()),
            names,
            // A successor gets the profile's lifetime, not the old leaf's: a short-lived leaf
            // renewed for the same short time would be expiring again at once.
            days: None,
            key,
        },
        now,
    )?;
    let staged = LeafPaths {
        cert: with_suffix(&final_paths.cert, ".new"),
        key: with_suffix(&final_paths.key, ".new"),
    };
    // The ledger knows the new leaf, under its final path, before any file exists.
    let rec = leaf.commit_as(ledger, ca.generation, &staged, &final_paths.cert, true)?;
    crate::failpoint::check("replace.before_swap", &final_paths.cert)
        .and_then(|()| match leaf.key_pem.is_some() {
            true => rename(&staged.key, &final_paths.key),
            false => Ok(()),
        })
        .inspect_err(|_| {
            // Nothing reached a final name: the successor never left this machine.
            output::remove_quietly(&staged.key);
            output::remove_quietly(&staged.cert);
            let _ = ledger.forget_unwritten(&rec.serial);
        })?;
    rename(&staged.cert, &final_paths.cert).map_err(|e| Error::IssuedButFailed {
        path: final_paths.cert.clone(),
        serial: rec.serial.clone(),
        source: Box::new(e),
    })?;
    ledger.supersede(&old.serial)?;
    Ok(rec)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    if let Some(d) = to.parent() {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
    }
    Ok(())
}

/// Days before its end at which the active intermediate is reported as close to expiry.
pub const INTERMEDIATE_WARN_DAYS: i64 = 60;
/// Days before nextUpdate at which a CRL is reported as close to going stale.
pub const CRL_WARN_DAYS: i64 = 3;

/// Warnings about a CA folder: the active intermediate close to (or past) its end, and the
/// root CRL it holds close to (or past) its nextUpdate.
pub fn expiry_warnings(ca: &CaDir, now: OffsetDateTime) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(active) = ca.state.active {
        if let Ok(cert) = ca.cert(active) {
            let left = (cert.not_after - now).whole_days();
            if left < INTERMEDIATE_WARN_DAYS {
                w.push(format!(
                    "the active intermediate (generation {active}) expires {} ({left} days): enrol its successor now (intermediate-ca request)",
                    crate::x509::validity::fmt_time(cert.not_after)
                ));
            }
        }
    }
    if let Ok(bytes) = std::fs::read(ca.root_crl_path()) {
        if let Ok(blocks) = crate::x509::certs::pem_blocks("root CRL", &bytes, "X509 CRL") {
            use x509_parser::prelude::FromDer;
            if let Ok((_, crl)) =
                x509_parser::revocation_list::CertificateRevocationList::from_der(&blocks[0])
            {
                if let Some(next) = crl.next_update() {
                    let next = next.to_datetime();
                    let left = (next - now).whole_days();
                    if left < CRL_WARN_DAYS {
                        w.push(format!(
                            "the root CRL in {} is due {} ({left} days): get a fresh one from the root ceremony",
                            ca.root_crl_path().display(),
                            crate::x509::validity::fmt_time(next)
                        ));
                    }
                }
            }
        }
    }
    w
}
