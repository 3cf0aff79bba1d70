//! What a sign ceremony will sign, as the operator reviews it: the planned certificate, its
//! name constraints, and on --dry-run the pre-issuance check of a throwaway-key signature.

use std::path::Path;

use pki_core::keys::KeyAlgorithm;
use pki_core::x509::ca_conformance;
use pki_core::x509::CertFacts;
use pki_core::x509::CheckedCsr;
use pki_core::x509::Serial;
use pki_core::x509::Validity;
use pki_core::x509::{NameLimits, Profile, Subject, SubjectNames};
use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData};
use serde_json::json;
use time::OffsetDateTime;

use super::super::{describe_params, say, Run};
use super::request::Request;
use super::SignOutputs;
use crate::ceremony::SignCeremony;
use crate::error::{Result, RootError};

/// What will be signed: everything but the signature.
pub(super) struct Plan {
    pub(super) subject: Subject,
    pub(super) validity: Validity,
    pub(super) limits: Option<NameLimits>,
    pub(super) serial: Serial,
    pub(super) params: CertificateParams,
}

pub(super) fn plan_intermediate(
    file: &Path,
    c: &SignCeremony,
    root: &CertFacts,
    csr: &CheckedCsr,
) -> Result<Plan> {
    let cn = c
        .certificate
        .common_name
        .clone()
        .or(csr.common_name.clone())
        .ok_or(RootError::NoCommonName)?;
    let subject = Subject::cn(cn);
    let days = c
        .certificate
        .days
        .unwrap_or(Profile::Intermediate.default_days());
    let validity = Validity::within_issuer(
        days,
        Profile::Intermediate.max_days(),
        Some((root.not_before, root.not_after)),
        OffsetDateTime::now_utc(),
    )?;
    let limits = if c.certificate.permitted_dns.is_empty() && c.certificate.permitted_ips.is_empty()
    {
        None
    } else {
        Some(NameLimits {
            permitted_dns: c.certificate.permitted_dns.clone(),
            permitted_ips: c
                .certificate
                .permitted_ip_ranges()
                .map_err(|i| i.at(file))?,
        })
    };
    let serial = Serial::random();
    let params = Profile::Intermediate.params(
        &subject,
        &SubjectNames::default(),
        &validity,
        &serial,
        csr.key_alg,
        limits.as_ref(),
    )?;
    Ok(Plan {
        subject,
        validity,
        limits,
        serial,
        params,
    })
}

/// The name constraints as signed, closing included, for the preview and the log.
pub(super) fn constraints_json(limits: Option<&NameLimits>) -> serde_json::Value {
    match limits {
        None => serde_json::Value::Null,
        Some(l) => {
            let ex = l.excluded();
            let cidr = |v: &[(std::net::IpAddr, u8)]| -> Vec<String> {
                v.iter().map(|(ip, p)| format!("{ip}/{p}")).collect()
            };
            json!({ "permitted_dns": l.permitted_dns, "permitted_ips": cidr(&l.permitted_ips),
                    "excluded_dns": ex.dns, "excluded_ips": cidr(&ex.ips) })
        }
    }
}

pub(super) fn constraint_lines(limits: Option<&NameLimits>) -> Vec<String> {
    let Some(l) = limits else {
        return vec!["name constraints: none (the intermediate may sign any name)".into()];
    };
    let ex = l.excluded();
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let cidr = |v: &[(std::net::IpAddr, u8)]| -> Vec<String> {
        v.iter().map(|(ip, p)| format!("{ip}/{p}")).collect()
    };
    let excluded_dns = if ex.dns.iter().any(String::is_empty) {
        "every DNS name (\"\")".to_string()
    } else {
        list(ex.dns.clone())
    };
    vec![
        "name constraints (critical), as they will be signed:".into(),
        format!("  permitted DNS: {}", list(l.permitted_dns.clone())),
        format!("  permitted IP:  {}", list(cidr(&l.permitted_ips))),
        format!("  excluded DNS:  {excluded_dns}"),
        format!("  excluded IP:   {}", list(cidr(&ex.ips))),
    ]
}

pub(super) fn describe_sign(
    run: &mut Run<'_>,
    c: &SignCeremony,
    plan: &Plan,
    req: &Request,
    root: &CertFacts,
    outs: &SignOutputs,
    got: &str,
) {
    let mut extras = vec![
        format!("key:        {} (fingerprint {got}, matches the ceremony file)", req.csr.key_alg),
        "extensions: basicConstraints critical CA:TRUE pathlen:0; keyUsage critical keyCertSign, cRLSign; SKI; AKI".into(),
    ];
    extras.extend(constraint_lines(plan.limits.as_ref()));
    if req.csr.requested_ca || !req.csr.requested_names.is_empty() {
        extras
            .push("note: extensions requested in the CSR are ignored; the profile decides".into());
    }
    extras.push(format!(
        "issuer:     {} (root fingerprint {})",
        root.subject, root.fingerprint
    ));
    if let Some(b) = &req.bundle {
        extras.push(format!(
            "request:    {} (response encrypted to {})",
            b.request_id,
            b.header("reply-to").unwrap_or("?")
        ));
    }
    if c.allow_resign {
        extras.push("allow-resign: a request this root already signed is signed again".into());
    }
    for p in outs.cert.iter().chain(outs.response.iter()) {
        extras.push(format!("output:     {}", p.display()));
    }
    describe_params(
        run,
        "root-ca sign: intermediate certificate",
        &plan.subject,
        &plan.validity,
        &plan.serial,
        &extras,
    );
}

/// Shows the exact to-be-signed result by signing it with a throwaway key.
pub(super) fn preview_sign(
    run: &mut Run<'_>,
    plan: &Plan,
    subject_key: &impl PublicKeyData,
    root: &CertFacts,
    token_opened: bool,
) -> Result<()> {
    let throwaway = KeyPair::generate_for(root_alg(root)?.signature_algorithm())
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let issuer = Issuer::from_ca_cert_der(&root.der.clone().into(), &throwaway)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let preview = plan
        .params
        .signed_by(subject_key, &issuer)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let problems = ca_conformance(Profile::Intermediate, preview.der());
    say(
        run,
        format!(
            "pre-issuance check: {}",
            if problems.is_empty() {
                "conforms to the intermediate profile".to_string()
            } else {
                problems.join("; ")
            }
        ),
    );
    say(
        run,
        "drawn at signing time: the serial and the validity dates above are examples; the real ceremony draws a new random serial and starts the validity when the token signs",
    );
    say(
        run,
        if token_opened {
            "dry run: nothing signed or written; the token was opened only to unseal the transport identity, the root key was not used"
        } else {
            "dry run: nothing signed or written; the token was not opened"
        },
    );
    Ok(())
}

fn root_alg(root: &CertFacts) -> Result<KeyAlgorithm> {
    Ok(KeyAlgorithm::from_spki_der(&root.spki_der)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(dns: &[&str], ips: &[&str]) -> NameLimits {
        NameLimits {
            permitted_dns: dns.iter().map(|s| s.to_string()).collect(),
            permitted_ips: ips
                .iter()
                .map(|s| crate::ceremony::parse_cidr(s).unwrap())
                .collect(),
        }
    }

    /// The preview names every constraint as signed, the closing exclusions included.
    #[test]
    fn constraint_lines_show_what_is_signed() {
        let table: &[(&str, Option<NameLimits>, &[&str])] = &[
            (
                "no constraints",
                None,
                &["name constraints: none (the intermediate may sign any name)"],
            ),
            (
                "DNS only closes every IP address",
                Some(limits(&["etcd.test", "localhost"], &[])),
                &[
                    "name constraints (critical), as they will be signed:",
                    "  permitted DNS: etcd.test, localhost",
                    "  permitted IP:  none",
                    "  excluded DNS:  none",
                    "  excluded IP:   0.0.0.0/0, ::/0",
                ],
            ),
            (
                "IP only closes every DNS name",
                Some(limits(&[], &["10.0.0.0/8", "fd00::/8"])),
                &[
                    "name constraints (critical), as they will be signed:",
                    "  permitted DNS: none",
                    "  permitted IP:  10.0.0.0/8, fd00::/8",
                    "  excluded DNS:  every DNS name (\"\")",
                    "  excluded IP:   none",
                ],
            ),
            (
                "both types: nothing excluded",
                Some(limits(&["etcd.test"], &["127.0.0.0/8"])),
                &[
                    "name constraints (critical), as they will be signed:",
                    "  permitted DNS: etcd.test",
                    "  permitted IP:  127.0.0.0/8",
                    "  excluded DNS:  none",
                    "  excluded IP:   none",
                ],
            ),
        ];
        for (name, l, want) in table {
            assert_eq!(constraint_lines(l.as_ref()), *want, "{name}");
        }
    }

    /// The log records the same constraints as the preview shows.
    #[test]
    fn constraints_json_matches_the_lines() {
        assert_eq!(constraints_json(None), serde_json::Value::Null);
        let dns_only = limits(&["etcd.test"], &[]);
        assert_eq!(
            constraints_json(Some(&dns_only)),
            json!({ "permitted_dns": ["etcd.test"], "permitted_ips": [],
                    "excluded_dns": [], "excluded_ips": ["0.0.0.0/0", "::/0"] })
        );
        let ip_only = limits(&[], &["10.0.0.0/8"]);
        assert_eq!(
            constraints_json(Some(&ip_only)),
            json!({ "permitted_dns": [], "permitted_ips": ["10.0.0.0/8"],
                    "excluded_dns": [""], "excluded_ips": [] })
        );
    }
}
