//! The CRL files etcd loads: format for the target version, signature, freshness, size.

use super::*;

/// A CRL file as the strictest etcd reads it. etcd 3.6 hands the whole file to Go's
/// `x509.ParseRevocationList`: one DER CertificateList, nothing before or after it (facts
/// C8). 3.4 and 3.5 use `x509.ParseCRL`, which also takes PEM (first block only, facts C5).
/// `version` is the member's target, `None` when unknown (the bundle's top-level copy).
pub(super) fn check_crl(cx: &mut Ctx, path: &Path, version: Option<EtcdVersion>) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    check_crl_size(cx, path, &bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        cx.fail("crl", path, "empty: etcd cannot parse it and refuses every connection that presents a certificate; publish the CRL with `issuer crl --etcd-bundle`");
        return;
    }
    // PEM may have text before its block (Go's pem.Decode skips it); a DER file starts with
    // its SEQUENCE tag, whatever bytes its names hold.
    let pem_armour = bytes.first() != Some(&0x30) && bytes.windows(10).any(|w| w == b"-----BEGIN");
    let der = if pem_armour {
        let fix = "run `issuer crl --etcd-bundle` to write crl.der and set ETCD_CLIENT_CRL_FILE and ETCD_PEER_CRL_FILE to it";
        match version {
            Some(v) if v.crl_der_only() => cx.fail("crl", path, format!(
                "PEM, but etcd {v} reads the CRL file as DER only and refuses every client and peer connection that presents a certificate (facts C8); {fix}"
            )),
            Some(v) => cx.warn("crl", path, format!(
                "PEM: etcd {v} reads it, 3.6 does not (facts C8) and would refuse every connection after an upgrade; {fix}"
            )),
            None => cx.warn("crl", path, format!(
                "PEM: etcd 3.4 and 3.5 read it, 3.6 does not (facts C8); {fix}"
            )),
        }
        let blocks = pem::parse_many(&bytes).unwrap_or_default();
        if blocks.len() > 1 {
            cx.fail("crl", path, format!(
                "{} PEM blocks: etcd reads only the first one, so the others are silently ignored (facts C5)",
                blocks.len()
            ));
        }
        let Some(first) = blocks.first() else {
            cx.fail(
                "crl",
                path,
                "no readable PEM block: etcd would reject every client (facts C5)",
            );
            return;
        };
        first.contents().to_vec()
    } else {
        match strict_der_crl(&bytes) {
            Ok(()) => bytes,
            Err(e) => {
                cx.fail("crl", path, format!(
                    "not one DER CRL ({e}): etcd cannot parse it and refuses every connection that presents a certificate; publish the CRL again with `issuer crl --etcd-bundle`"
                ));
                return;
            }
        }
    };
    match x509_parser::revocation_list::CertificateRevocationList::from_der(&der) {
        Err(e) => cx.fail("crl", path, format!("unparseable CRL ({e}): etcd would reject every client")),
        Ok((_, crl)) => match crl.next_update() {
            Some(n) if n.to_datetime() < cx.opts.now => cx.fail("crl", path, format!(
                "stale: nextUpdate was {}; etcd does not check dates (facts C4), so publish a fresh one",
                crate::x509::validity::fmt_time(n.to_datetime())
            )),
            Some(n) if (n.to_datetime() - cx.opts.now).whole_days() < 2 => {
                cx.warn("crl", path, format!("nextUpdate {} is close", crate::x509::validity::fmt_time(n.to_datetime())))
            }
            None => cx.warn("crl", path, "no nextUpdate"),
            _ => {}
        },
    }
}

/// What Go's `x509.ParseRevocationList` (etcd 3.6) accepts: the whole input is one DER
/// CertificateList (a SEQUENCE), with no PEM armour and no byte after it.
pub fn strict_der_crl(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.first() != Some(&0x30) {
        return Err("it does not start with a DER SEQUENCE".into());
    }
    match x509_parser::revocation_list::CertificateRevocationList::from_der(bytes) {
        Err(e) => Err(e.to_string()),
        Ok((rest, _)) if !rest.is_empty() => {
            Err(format!("{} bytes follow the CertificateList", rest.len()))
        }
        Ok(_) => Ok(()),
    }
}

/// Above either, `check-etcd` warns that the CRL slows every connection down. etcd reads and
/// parses the whole CRL file on every new TLS connection, client and peer (facts C9). On etcd
/// 3.4.23 (scripts/bench-etcd-crl.sh, docs/crl.md) each entry costs about 3 µs against a 3 ms
/// handshake: at 100 entries a new connection is already about 10% slower than with an empty
/// CRL, at 1,000 half as fast, at 10,000 ten times slower. A cluster of 500 leaves under the
/// expiry rule holds about 20 after a year (docs/crl.md), so past 100 something is off, e.g.
/// leaves revoked one by one where their intermediate should have been.
pub const CRL_WARN_ENTRIES: usize = 100;

/// The same point by DER size: about 50 bytes an entry (16-byte serial, date, reason) and a
/// header; entries naming their issuer (indirect CRL) are bigger and cost more to parse.
pub const CRL_WARN_BYTES: usize = 6_000;

/// Warns when the CRL etcd loads is big enough to cost connection time (PEM or DER file).
pub(super) fn check_crl_size(cx: &mut Ctx, path: &Path, bytes: &[u8]) {
    let Some(der) = crate::ca::lifecycle::crl_file_der(bytes) else {
        return;
    };
    let Ok((_, crl)) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der)
    else {
        return;
    };
    let entries = crl.iter_revoked_certificates().count();
    // The DER size, whatever the file's format: it is what the parse walks through (and the
    // benchmark's measure); PEM adds a third in base64 on top.
    if entries > CRL_WARN_ENTRIES || der.len() > CRL_WARN_BYTES {
        cx.warn("crl-size", path, format!(
            "{entries} entries, {} bytes DER: etcd parses the whole CRL on every new connection, so each one pays for it (above {CRL_WARN_ENTRIES} entries or {CRL_WARN_BYTES} bytes a new connection was measured ≥ 10% slower than with an empty CRL); `issuer crl` drops entries of expired leaves, and a compromised intermediate is one entry where its leaves are thousands: revoke the intermediate (docs/crl.md)",
            der.len()
        ));
    }
}

/// The CRL files a member loads: the ones its `etcd.env` names (looked up in the member
/// folder, which is what gets installed), else `crl.der` or a legacy `crl.pem`.
pub(super) fn check_member_crls(
    cx: &mut Ctx,
    m: &Path,
    env_path: &Path,
    env: Option<&BTreeMap<String, String>>,
    version: Option<EtcdVersion>,
) {
    let Some(env) = env else {
        // Without an etcd.env (a bare reference bundle) the CRL is optional.
        for f in [ETCD_CRL_FILE, LEGACY_ETCD_CRL_FILE] {
            if m.join(f).exists() {
                check_crl(cx, &m.join(f), version);
            }
        }
        return;
    };
    let mut named = BTreeSet::new();
    for var in ["ETCD_CLIENT_CRL_FILE", "ETCD_PEER_CRL_FILE"] {
        if let Some(file) = env
            .get(var)
            .and_then(|v| Path::new(v).file_name())
            .map(|f| f.to_string_lossy().to_string())
        {
            named.insert(file);
        }
    }
    for file in &named {
        let p = m.join(file);
        if !p.exists() {
            cx.fail("crl", &p, format!(
                "missing: etcd reads the CRL file on every connection and refuses them all when it cannot; copy the bundle's {ETCD_CRL_FILE} here"
            ));
            continue;
        }
        check_crl(cx, &p, version);
        if file == LEGACY_ETCD_CRL_FILE && m.join(ETCD_CRL_FILE).exists() {
            cx.warn("crl", env_path, format!(
                "names {LEGACY_ETCD_CRL_FILE}, made before {ETCD_CRL_FILE}: set ETCD_CLIENT_CRL_FILE and ETCD_PEER_CRL_FILE to {ETCD_CRL_FILE} (same directory), restart the member, then delete {LEGACY_ETCD_CRL_FILE}"
            ));
        }
    }
}

#[cfg(test)]
mod crl_size_tests {
    use super::*;
    use crate::x509::crl::{sign_crl, CrlEntry, CrlParams};

    fn crl_of(n: usize) -> Vec<u8> {
        let key =
            crate::keys::signer::FileKey::generate(crate::keys::algorithm::KeyAlgorithm::P256)
                .unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let entries: Vec<CrlEntry> = (0..n as u64)
            .map(|i| CrlEntry {
                serial: [&[0x7e_u8; 8][..], &i.to_be_bytes()].concat(),
                revoked_at: now,
                reason: None,
                certificate_issuer: None,
            })
            .collect();
        let params = CrlParams {
            issuer_name: &[0x30, 0x00],
            issuer_key_id: &[1; 20],
            number: 1,
            this_update: now,
            next_update: now + time::Duration::days(30),
            indirect: true,
        };
        sign_crl(&key, &params, &entries).unwrap()
    }

    fn size_findings(file: &str, bytes: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(file), bytes).unwrap();
        let mut cx = Ctx {
            out: Vec::new(),
            opts: CheckOptions {
                warn_days: 30,
                now: OffsetDateTime::now_utc(),
                etcd_version: None,
            },
            bundle_int: None,
        };
        check_crl_size(&mut cx, &dir.path().join(file), bytes);
        cx.out.iter().map(|f| format!("{f:?}")).collect()
    }

    #[test]
    fn a_crl_past_the_threshold_is_a_warning_in_pem_and_der() {
        let small = crl_of(CRL_WARN_ENTRIES);
        assert!(small.len() <= CRL_WARN_BYTES, "{}", small.len());
        let big = crl_of(CRL_WARN_ENTRIES + 1);
        for (file, small, big) in [
            ("crl.der", small.clone(), big.clone()),
            (
                "crl.pem",
                crate::x509::certs::to_pem("X509 CRL", &small).into_bytes(),
                crate::x509::certs::to_pem("X509 CRL", &big).into_bytes(),
            ),
        ] {
            assert!(size_findings(file, &small).is_empty(), "{file}");
            let f = size_findings(file, &big);
            assert_eq!(f.len(), 1, "{file}: {f:?}");
            assert!(
                f[0].contains(&format!("{} entries", CRL_WARN_ENTRIES + 1))
                    && f[0].contains("Warn"),
                "{file}: {f:?}"
            );
        }
    }
}
