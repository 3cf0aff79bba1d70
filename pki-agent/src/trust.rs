//! What an agent trusts beyond its root. Every intermediate the root ever signed chains to it,
//! including one stolen before a rotation; so the agent pins the intermediates of its CA folder
//! it has seen (in its own chains, the enrolment answer, the service's `GET /v1/ca`), takes a
//! new one only when it is newer than all of them, never goes back to an older generation for
//! what it installs, and refuses any intermediate the root CRL lists (the service hands the
//! root CRL out; it is the root's signature, not the service's word, that counts).

use std::collections::BTreeSet;

use pki_core::x509::{fingerprint, CertFacts, Serial};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::FromDer;

/// What a check is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// The service's TLS certificate: any pinned generation not revoked, or a newer one.
    Tls,
    /// What the agent installs (leaves, CRLs): the newest generation seen, or a newer one.
    Issuing,
}

/// The pins, kept in the agent's state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pins {
    /// Fingerprints (SHA-256) of the intermediates this host has seen from its CA folder.
    #[serde(default)]
    pub seen: BTreeSet<String>,
    /// The newest one's notBefore, Unix seconds.
    #[serde(default)]
    pub newest_not_before: i64,
    /// The highest root CRL number seen.
    #[serde(default)]
    pub root_crl_number: Option<u64>,
    /// Serials (lower-case hex) of the certificates that root CRL lists.
    #[serde(default)]
    pub revoked: BTreeSet<String>,
}

impl Pins {
    /// Whether `int` (checked against the root by the caller, or by the TLS handshake) may be
    /// trusted for `use_`; the reason when not.
    pub fn check(&self, int: &CertFacts, use_: Use) -> Result<(), String> {
        if self.revoked.contains(&int.serial.to_hex()) {
            return Err(format!(
                "its intermediate {} (serial {}) is revoked by the root CRL",
                int.subject, int.serial
            ));
        }
        let nb = int.not_before.unix_timestamp();
        let seen = self.seen.contains(&fingerprint(&int.der));
        // Not older than the newest seen: the same generation, or a rotation. (Two generations
        // signed in the same second, or clamped to the root's own start, compare equal.)
        if self.seen.is_empty() || nb >= self.newest_not_before {
            return Ok(());
        }
        match (seen, use_) {
            (true, Use::Tls) => Ok(()),
            (true, Use::Issuing) => Err(format!(
                "it comes from intermediate {}, an older generation than the newest this host has moved to; nothing from it is installed again",
                int.subject
            )),
            (false, _) => Err(format!(
                "its intermediate {} (serial {}) chains to our root but this host never saw it, and it is older than the newest it has seen: an old generation (a stolen intermediate?) is not trusted",
                int.subject, int.serial
            )),
        }
    }

    /// Remembers `int` as seen (call after [`Pins::check`] passed).
    pub fn learn(&mut self, int: &CertFacts) {
        self.seen.insert(fingerprint(&int.der));
        self.newest_not_before = self.newest_not_before.max(int.not_before.unix_timestamp());
    }

    /// Takes the root CRL `der` when it is signed by `root` and not older than the one kept;
    /// returns whether it was taken. An older or forged one changes nothing.
    pub fn learn_root_crl(&mut self, der: &[u8], root: &CertFacts) -> Result<bool, String> {
        let (rest, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
            .map_err(|e| format!("the root CRL is not a DER CRL ({e})"))?;
        if !rest.is_empty() || crl.issuer().as_raw() != root.subject_der.as_slice() {
            return Err("the root CRL is not issued by our root".into());
        }
        pki_core::x509::verify_crl_signature(der, &root.spki_der)
            .map_err(|_| "the root CRL's signature does not verify with our root".to_string())?;
        let number: u64 = crl
            .crl_number()
            .and_then(|n| n.to_string().parse().ok())
            .ok_or("the root CRL has no (usable) CRL number")?;
        if self.root_crl_number.is_some_and(|have| number < have) {
            return Ok(false);
        }
        self.root_crl_number = Some(number);
        self.revoked = crl
            .iter_revoked_certificates()
            .map(|r| Serial::from_bytes(r.raw_serial()).to_hex())
            .collect();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pki_core::x509::CertFacts;
    use time::{Duration, OffsetDateTime};

    fn ca(name: &str, not_before: OffsetDateTime) -> CertFacts {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.not_before = not_before;
        p.not_after = not_before + Duration::days(30);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        CertFacts::from_der("test", cert.der()).unwrap()
    }

    #[test]
    fn only_the_newest_generation_issues_and_an_unseen_older_one_is_refused() {
        let t = OffsetDateTime::now_utc() - Duration::days(10);
        let (old, mid, new) = (
            ca("gen1", t),
            ca("gen2", t + Duration::days(1)),
            ca("gen3", t + Duration::days(2)),
        );
        let mut pins = Pins::default();
        assert!(pins.check(&mid, Use::Issuing).is_ok(), "first contact");
        pins.learn(&mid);
        assert!(pins.check(&new, Use::Issuing).is_ok(), "a newer generation");
        let unseen_older = pins.check(&old, Use::Tls).unwrap_err();
        assert!(unseen_older.contains("never saw"), "{unseen_older}");
        pins.learn(&new);
        assert!(pins.check(&mid, Use::Tls).is_ok(), "seen, not revoked");
        let older = pins.check(&mid, Use::Issuing).unwrap_err();
        assert!(older.contains("older generation"), "{older}");
        assert!(pins.check(&new, Use::Issuing).is_ok());
        pins.revoked.insert(new.serial.to_hex());
        assert!(pins
            .check(&new, Use::Tls)
            .unwrap_err()
            .contains("revoked by the root CRL"));
    }
}
