//! The root CRL a CA folder holds (`root-crl.pem`): checked against the pinned root before it
//! is trusted, consulted by the issuance gate, and replaced only by a newer one.

use crate::x509::X509Error;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use crate::ca::folder::CaDir;
use crate::error::{CrlProblem, Error, ResponseProblem, Result};
use crate::output::{self, Mode};
use crate::x509::certs::{to_pem, CertFacts};
use crate::x509::serial::Serial;

/// A root CRL whose signature verified against the root certificate.
#[derive(Clone, Debug)]
pub struct RootCrl {
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// The CRL number's big-endian magnitude, without leading zeros.
    pub number: Option<Vec<u8>>,
    /// Its nextUpdate, when present.
    pub next_update: Option<OffsetDateTime>,
    issuer: String,
    /// (serial, revocation time)
    revoked: Vec<(Serial, OffsetDateTime)>,
}

/// The first CRL of a file, PEM or DER.
pub fn read_der(path: &Path) -> Result<Vec<u8>> {
    let bytes = output::read(path)?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    let mut blocks =
        crate::x509::certs::pem_blocks(&path.display().to_string(), &bytes, "X509 CRL")?;
    Ok(blocks.remove(0))
}

impl RootCrl {
    /// Reads and checks the root CRL at `path`.
    pub fn load(path: &Path, root: &CertFacts) -> Result<Self> {
        Self::parse(&path.display().to_string(), &read_der(path)?, root)
    }

    /// Checks that `der` is a CRL issued and signed by `root`.
    pub fn parse(what: &str, der: &[u8], root: &CertFacts) -> Result<Self> {
        let bad = |problem| X509Error::BadCrl {
            what: what.into(),
            problem,
        };
        let (rest, crl) = CertificateRevocationList::from_der(der).map_err(|e| {
            bad(CrlProblem::NotCrl {
                detail: e.to_string(),
            })
        })?;
        if !rest.is_empty() {
            return Err(bad(CrlProblem::TrailingBytes).into());
        }
        let issuer = crl.issuer().to_string();
        if crl.issuer().as_raw() != root.subject_der.as_slice() {
            return Err(bad(CrlProblem::OtherIssuer {
                issuer,
                root: root.subject.clone(),
            })
            .into());
        }
        crate::x509::crl::verify_signature(der, &root.spki_der).map_err(|_| {
            bad(CrlProblem::NotSignedByRoot {
                root: root.subject.clone(),
            })
        })?;
        Ok(RootCrl {
            der: der.to_vec(),
            number: crl
                .crl_number()
                .map(|n| Serial::from_bytes(&n.to_bytes_be()).as_bytes().to_vec()),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            issuer,
            revoked: crl
                .iter_revoked_certificates()
                .map(|r| {
                    (
                        Serial::from_bytes(r.raw_serial()),
                        r.revocation_date.to_datetime(),
                    )
                })
                .collect(),
        })
    }

    /// When `cert` (issued by this CRL's issuer) is listed, its revocation time.
    pub fn revocation_of(&self, cert: &CertFacts) -> Option<String> {
        if cert.issuer != self.issuer {
            return None;
        }
        self.revoked
            .iter()
            .find(|(s, _)| *s == cert.serial)
            .map(|(_, at)| crate::x509::validity::fmt_time(*at))
    }

    /// The serials it revokes, lower-case hex.
    pub fn revoked_serials(&self) -> Vec<String> {
        self.revoked.iter().map(|(s, _)| s.to_hex()).collect()
    }

    /// The CRL number as decimal text (for messages), `none` when absent.
    pub fn number_text(&self) -> String {
        match &self.number {
            None => "none".into(),
            Some(b) => x509_parser::num_bigint::BigUint::from_bytes_be(b).to_string(),
        }
    }

    /// Orders CRL numbers as integers; a CRL without a number is older than any with one.
    fn cmp_number(&self, other: &RootCrl) -> std::cmp::Ordering {
        let key = |n: &Option<Vec<u8>>| n.as_ref().map(|b| (b.len(), b.clone()));
        key(&self.number).cmp(&key(&other.number))
    }
}

/// What [`install`] did.
#[derive(Debug)]
pub struct Installed {
    /// Where the folder keeps its root CRL.
    pub path: PathBuf,
    /// The CRL given, checked against the pinned root.
    pub crl: RootCrl,
    /// False when the same CRL was already installed.
    pub replaced: bool,
    /// Generations of this folder the CRL revokes (the active one among them means issuing
    /// stops until a new intermediate is installed).
    pub revoked_generations: Vec<u32>,
}

/// The pinned root of a CA folder, needed to trust any root CRL.
pub fn pinned_root(ca: &CaDir) -> Result<CertFacts> {
    let p = ca.root_path();
    if !p.exists() {
        return Err(Error::NoPinnedRoot {
            folder: ca.path.clone(),
            root: p,
        });
    }
    CertFacts::from_pem(&p.display().to_string(), &output::read(&p)?)
}

/// Installs the root CRL `file` into the CA folder after checking it against the pinned root:
/// its signature, and a CRL number greater than the installed one's (the same CRL again is a
/// no-op; an older one, or another with the same number, is refused).
pub fn install(ca: &CaDir, file: &Path) -> Result<Installed> {
    let root = pinned_root(ca)?;
    let new = RootCrl::parse(&file.display().to_string(), &read_der(file)?, &root)?;
    let path = ca.root_crl_path();
    let replaced = match installed(ca, &root)? {
        None => true,
        Some(old) if old.der == new.der => false,
        Some(old) if new.cmp_number(&old).is_gt() => true,
        Some(old) => {
            return Err(Error::RootCrlNotNewer {
                file: file.to_path_buf(),
                number: new.number_text(),
                installed: old.number_text(),
            })
        }
    };
    if replaced {
        output::write_atomic(
            &path,
            to_pem("X509 CRL", &new.der).as_bytes(),
            Mode::Public,
            true,
        )?;
    }
    let revoked_generations = revoked_generations(ca, &new);
    Ok(Installed {
        path,
        crl: new,
        replaced,
        revoked_generations,
    })
}

/// The root CRL installed in the folder, checked; None when there is none.
pub fn installed(ca: &CaDir, root: &CertFacts) -> Result<Option<RootCrl>> {
    let path = ca.root_crl_path();
    if !path.exists() {
        return Ok(None);
    }
    RootCrl::load(&path, root)
        .map(Some)
        .map_err(|e| unusable(path, e))
}

/// A root CRL that cannot be trusted, named once (the parse error names the file too).
pub fn unusable(crl: PathBuf, e: Error) -> Error {
    let reason = match e {
        crate::Error::X509(X509Error::BadCrl { problem, .. }) => problem.to_string(),
        other => other.to_string(),
    };
    Error::RootCrlUnusable { crl, reason }
}

fn revoked_generations(ca: &CaDir, crl: &RootCrl) -> Vec<u32> {
    ca.state
        .generations
        .iter()
        .filter_map(|g| ca.cert(g.id).ok().map(|c| (g.id, c)))
        .filter(|(_, c)| crl.revocation_of(c).is_some())
        .map(|(id, _)| id)
        .collect()
}

/// For `intermediate-ca install`: of the response's CRL and the installed one, the CRL the
/// folder should hold (the newest), after checking that neither is foreign or revokes `int`.
pub fn check_for_install(
    ca: &CaDir,
    response_crl: Option<&[u8]>,
    root: &CertFacts,
    int: &CertFacts,
) -> Result<Option<RootCrl>> {
    let what = "root CRL in the response";
    let incoming = response_crl
        .map(|der| {
            RootCrl::parse(what, der, root).map_err(|e| match e {
                crate::Error::X509(X509Error::BadCrl { problem, .. }) => {
                    Error::Response(ResponseProblem::RootCrl(problem))
                }
                other => other,
            })
        })
        .transpose()?;
    // A folder pinned to another root is refused later with its own message; its CRL is not
    // this root's to judge.
    let same_root = pinned_root(ca)
        .map(|r| r.fingerprint == root.fingerprint)
        .unwrap_or(false);
    let current = if same_root {
        installed(ca, root)?
    } else {
        None
    };
    for crl in incoming.iter().chain(current.iter()) {
        if let Some(revoked_at) = crl.revocation_of(int) {
            return Err(Error::InstallingRevoked {
                issuer: int.subject.clone(),
                serial: int.serial.to_hex(),
                crl: if incoming.as_ref().is_some_and(|c| c.der == crl.der) {
                    PathBuf::from("root CRL in the response")
                } else {
                    ca.root_crl_path()
                },
                revoked_at,
            });
        }
    }
    Ok(to_install(incoming, current))
}

/// The root CRL a response installs: its own, only when it is strictly newer than the one
/// installed (as with `install`); an older one, or another CRL under the same number, leaves
/// the installed one in place.
fn to_install(incoming: Option<RootCrl>, current: Option<RootCrl>) -> Option<RootCrl> {
    match (incoming, current) {
        (Some(new), Some(old)) if !new.cmp_number(&old).is_gt() => None,
        (new, _) => new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::algorithm::KeyAlgorithm;
    use crate::keys::signer::FileKey;
    use crate::x509::crl::{sign_crl, CrlEntry, CrlParams};
    use crate::x509::profile::{Profile, Subject, SubjectNames};
    use crate::x509::validity::Validity;

    fn make_root(cn: &str) -> (CertFacts, FileKey) {
        let key = FileKey::generate(KeyAlgorithm::P256).unwrap();
        let v = Validity::within_issuer(3650, 9132, None, OffsetDateTime::now_utc()).unwrap();
        let cert = Profile::Root
            .params(
                &Subject::cn(cn),
                &SubjectNames::default(),
                &v,
                &Serial::random(),
                KeyAlgorithm::P256,
                None,
            )
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (CertFacts::from_der("root", cert.der()).unwrap(), key)
    }

    fn crl(root: &CertFacts, key: &FileKey, number: u64, revoked: &[&Serial]) -> Vec<u8> {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let entries: Vec<CrlEntry> = revoked
            .iter()
            .map(|s| CrlEntry {
                serial: s.as_bytes().to_vec(),
                revoked_at: now,
                reason: None,
                certificate_issuer: None,
            })
            .collect();
        sign_crl(
            key,
            &CrlParams {
                issuer_name: &root.subject_der,
                issuer_key_id: &[1, 2, 3],
                number,
                this_update: now,
                next_update: now + time::Duration::days(30),
                indirect: false,
            },
            &entries,
        )
        .unwrap()
    }

    #[test]
    fn a_root_crl_is_trusted_only_from_its_root_and_numbers_order_as_integers() {
        let (root, key) = make_root("crl root");
        let (other, other_key) = make_root("other root");
        let serial = Serial::random();
        let listed = RootCrl::parse("c", &crl(&root, &key, 256, &[&serial]), &root).unwrap();
        assert_eq!(listed.number_text(), "256");
        let mut int = root.clone();
        int.serial = serial;
        assert!(listed.revocation_of(&int).is_some());
        int.issuer = "CN=someone else".into();
        assert!(
            listed.revocation_of(&int).is_none(),
            "another issuer's serial"
        );
        let small = RootCrl::parse("c", &crl(&root, &key, 255, &[]), &root).unwrap();
        assert!(
            listed.cmp_number(&small).is_gt(),
            "256 > 255 although 0x0100 is longer"
        );
        // Signed by another key under the same name, or issued by another root: refused.
        let forged = crl(&root, &other_key, 300, &[]);
        let e = RootCrl::parse("c", &forged, &root).unwrap_err();
        assert!(e.to_string().contains("signature does not verify"), "{e}");
        let foreign = crl(&other, &other_key, 300, &[]);
        let e = RootCrl::parse("c", &foreign, &root).unwrap_err();
        assert!(e.to_string().contains("not by the pinned root"), "{e}");
    }

    #[test]
    fn a_response_installs_its_root_crl_only_when_strictly_newer() {
        let (root, key) = make_root("crl root");
        let parsed = |n: u64, revoked: &[&Serial]| {
            RootCrl::parse("c", &crl(&root, &key, n, revoked), &root).unwrap()
        };
        let number = |c: Option<RootCrl>| c.map(|c| c.number_text());
        assert_eq!(
            number(to_install(Some(parsed(5, &[])), None)),
            Some("5".into())
        );
        assert_eq!(
            number(to_install(Some(parsed(6, &[])), Some(parsed(5, &[])))),
            Some("6".into())
        );
        assert_eq!(
            number(to_install(Some(parsed(4, &[])), Some(parsed(5, &[])))),
            None
        );
        // Another CRL under the installed number (here: one that lists nothing more) is not
        // a reason to replace what is installed.
        let s = Serial::random();
        assert_eq!(
            number(to_install(Some(parsed(5, &[])), Some(parsed(5, &[&s])))),
            None
        );
        assert_eq!(number(to_install(None, Some(parsed(5, &[])))), None);
    }
}
