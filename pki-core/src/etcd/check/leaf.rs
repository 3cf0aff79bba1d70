//! A leaf's chain file and key: order, issuer, EKU for its role, names inside the issuer's
//! constraints, expiry, key mode and match.

use super::*;
use crate::x509::X509Error;

/// Checks one leaf chain file and its key; returns the leaf's DNS names and IPs.
pub(super) fn check_leaf(
    cx: &mut Ctx,
    cert: &Path,
    key: &Path,
    role: Role,
) -> Option<(Vec<String>, Vec<IpAddr>)> {
    let Ok(bytes) = std::fs::read(cert) else {
        cx.fail("missing", cert, "missing");
        return None;
    };
    let chain = match pem_blocks("chain file", &bytes, "CERTIFICATE") {
        Ok(c) => c,
        Err(e) => {
            cx.fail("chain", cert, e.to_string());
            return None;
        }
    };
    if chain.len() < 2 {
        cx.fail("chain", cert, "holds only the leaf: the intermediate must follow it in the same file, or TLS peers cannot build the chain (facts D1-D3)");
    }
    let Ok((_, leaf)) = X509Certificate::from_der(&chain[0]) else {
        cx.fail("chain", cert, "the first certificate does not parse");
        return None;
    };
    if chain.len() >= 2 {
        if let Ok((_, int)) = X509Certificate::from_der(&chain[1]) {
            if leaf.issuer() != int.subject() {
                cx.fail("chain", cert, "the second certificate is not the leaf's issuer: wrong order or wrong intermediate");
            }
        }
    }
    if let (Some(want), Some(got)) = (&cx.bundle_int, chain.get(1)) {
        if want != got {
            cx.fail("chain", cert, format!(
                "carries intermediate serial {}, not the bundle's intermediate.crt (serial {}): members, clients and the bundle disagree on the issuer; finish the rotation (`issuer reissue`) or install the files of one generation",
                serial_of(got),
                serial_of(want)
            ));
        }
    }
    let issuer_der = chain.get(1).or(cx.bundle_int.as_ref()).cloned();
    let (mut server, mut client) = (false, false);
    for ext in leaf.extensions() {
        if let ParsedExtension::ExtendedKeyUsage(e) = ext.parsed_extension() {
            server = e.server_auth || e.any;
            client = e.client_auth || e.any;
        }
    }
    let crate::x509::profile::SubjectNames { dns, ips } = crate::x509::certs::san_names(&leaf);
    if let Some(der) = &issuer_der {
        check_name_constraints(cx, cert, der, &dns, &ips);
    }
    match role {
        Role::Server if !client => cx.fail("eku", cert, "server certificate without clientAuth: etcd's gateway dials itself with it and the JSON API breaks (facts I1)"),
        Role::Server | Role::Peer if !server => cx.fail("eku", cert, "no serverAuth"),
        Role::Peer if !client => cx.fail("eku", cert, "peer certificate without clientAuth: members dial each other with it"),
        Role::Client if !client => cx.fail("eku", cert, "client certificate without clientAuth"),
        _ => {}
    }
    let not_after = leaf.validity().not_after.to_datetime();
    let left = (not_after - cx.opts.now).whole_days();
    if not_after < cx.opts.now {
        cx.fail(
            "expiry",
            cert,
            format!("expired {}", crate::x509::validity::fmt_time(not_after)),
        );
    } else if left < cx.opts.warn_days {
        cx.fail(
            "expiry",
            cert,
            format!(
                "expires in {left} days ({}): renew it",
                crate::x509::validity::fmt_time(not_after)
            ),
        );
    }
    check_key(cx, cert, key, leaf.public_key().raw);
    Some((dns, ips))
}

/// The leaf's key file: present, readable by its owner only, and the key of `cert`.
pub(super) fn check_key(cx: &mut Ctx, cert: &Path, key: &Path, leaf_spki: &[u8]) {
    match std::fs::metadata(key) {
        Err(_) => cx.fail("key", key, "missing"),
        Ok(meta) => {
            if meta.permissions().mode() & 0o077 != 0 {
                cx.fail(
                    "key-mode",
                    key,
                    format!(
                        "mode {:o}: a private key must be readable by its owner only (chmod 600)",
                        meta.permissions().mode() & 0o777
                    ),
                );
            }
            match std::fs::read_to_string(key)
                .map_err(|e| e.to_string())
                .and_then(|t| FileKey::from_pkcs8_pem("key", &t).map_err(|e| e.to_string()))
            {
                Err(e) => cx.fail("key", key, e),
                Ok(k) if k.spki_der() != leaf_spki => cx.fail(
                    "key-match",
                    key,
                    format!(
                        "does not match {}: etcd will fail the handshake",
                        cert.display()
                    ),
                ),
                Ok(_) => {}
            }
        }
    }
}

pub(super) fn serial_of(der: &[u8]) -> String {
    X509Certificate::from_der(der)
        .map(|(_, c)| {
            c.tbs_certificate
                .raw_serial()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        })
        .unwrap_or_else(|_| "unreadable".into())
}

/// Every SAN of a leaf against its issuer's name constraints, with the issuance gate's matcher
/// (RFC 5280 4.2.1.10): etcd (Go's verifier) refuses a chain with a name outside them ("is not
/// permitted by any constraint"), and an `issuer etcd` leaf always carries the member name,
/// which a constraint must therefore cover.
pub(super) fn check_name_constraints(
    cx: &mut Ctx,
    cert: &Path,
    issuer: &[u8],
    dns: &[String],
    ips: &[IpAddr],
) {
    let Ok(Some(c)) = crate::ca::policy::Constraints::of_certificate("issuing certificate", issuer)
    else {
        return;
    };
    const FIX: &str = "etcd and every TLS client refuse this certificate; sign an intermediate whose constraints cover every name in the cluster file (docs/etcd.md, section 2), or remove the name";
    let names = dns
        .iter()
        .map(|d| LeafName::Dns(d.clone()))
        .chain(ips.iter().map(|ip| LeafName::Ip(*ip)));
    for name in names {
        let why = match c.check(&name) {
            Ok(()) => continue,
            Err(crate::Error::X509(X509Error::NameNotPermitted { rule, .. })) => {
                format!("{name} is outside the intermediate's name constraints ({rule})")
            }
            Err(crate::Error::X509(X509Error::UncheckableConstraint { constraint, .. })) => format!(
                "the intermediate carries a name constraint this toolkit cannot check ({constraint})"
            ),
            Err(e) => e.to_string(),
        };
        cx.fail("name-constraints", cert, format!("{why}: {FIX}"));
    }
}
