//! The root ceremonies. Each one: read and check the ceremony file, check the air gap, check
//! every output is absent, show the plan (and stop there on --dry-run), and only then open the
//! token. Every token signature is verified in software before anything is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use pki_core::algorithm::KeyAlgorithm;
use std::str::FromStr;
use std::sync::Arc;

use pki_core::bundle::{Bundle, BundleKind};
use pki_core::certs::{fingerprint, normalize_fingerprint, CertFacts};
use pki_core::csr::CheckedCsr;
use pki_core::output::{self, Mode};
use pki_core::profile::{NameLimits, Profile, Subject, SubjectNames};
use pki_core::serial::Serial;
use pki_core::validity::{fmt_time, Validity};
use pki_core::{sigcheck, verify};
use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::ceremony::{self, CrlCeremony, InitCeremony, RevokeCeremony, SignCeremony};
use crate::error::{Result, RootError};
use crate::pkcs11::{self, Token, TokenKey};
use crate::state::{IntermediateEntry, RootDir, RootIndex};
use crate::{airgap, pin};

/// How a ceremony gets its PIN and where it reports.
pub struct Run<'a> {
    pub dry_run: bool,
    pub pin_file: Option<&'a Path>,
    pub out: &'a mut dyn Write,
}

fn say(run: &mut Run<'_>, text: impl AsRef<str>) {
    let _ = writeln!(run.out, "{}", text.as_ref());
}

fn open_token(run: &Run<'_>, section: &ceremony::TokenSection) -> Result<Arc<Token>> {
    let pin = pin::resolve(run.pin_file)?;
    Ok(Token::open(&section.config(), &pin)?)
}

/// Signs `params` with the token key, as the issuer `issuer_der` (None: self-signed), after a
/// pre-issuance lint on a throwaway-key signature of the same to-be-signed data; then checks
/// the token's signature in software and that the token signed exactly what was linted.
fn sign_checked(
    params: &CertificateParams,
    profile: Profile,
    subject_key: &impl PublicKeyData,
    issuer_der: Option<&[u8]>,
    key: &TokenKey,
) -> Result<Vec<u8>> {
    let alg = pki_core::signer::Signer::key_algorithm(key);
    let throwaway = alg.generate()?;
    let lint_der = match issuer_der {
        Some(root) => {
            let issuer = Issuer::from_ca_cert_der(&root.to_vec().into(), &throwaway)
                .map_err(|e| RootError::Lint(e.to_string()))?;
            params.signed_by(subject_key, &issuer)
        }
        None => params.self_signed(&throwaway),
    }
    .map_err(|e| RootError::Lint(e.to_string()))?
    .der()
    .to_vec();
    let problems = verify::ca_conformance(profile, &lint_der);
    if !problems.is_empty() {
        return Err(RootError::Lint(problems.join("; ")));
    }
    let signed = match issuer_der {
        Some(root) => {
            let issuer = Issuer::from_ca_cert_der(&root.to_vec().into(), key)
                .map_err(|e| RootError::Lint(e.to_string()))?;
            params.signed_by(subject_key, &issuer)
        }
        None => params.self_signed(key),
    }
    .map_err(|e| {
        RootError::pkcs11(
            "sign",
            pkcs11::take_sign_error().unwrap_or_else(|| e.to_string()),
        )
    })?;
    let der = signed.der().to_vec();
    sigcheck::verify_certificate(&der, &key.spki_der())
        .map_err(|e| RootError::BadTokenSignature(e.to_string()))?;
    if issuer_der.is_some() && tbs(&der)? != tbs(&lint_der)? {
        return Err(RootError::BadTokenSignature(
            "the token-signed certificate differs from the linted one".into(),
        ));
    }
    let problems = verify::ca_conformance(profile, &der);
    if !problems.is_empty() {
        return Err(RootError::Lint(problems.join("; ")));
    }
    Ok(der)
}

fn tbs(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    Ok(c.tbs_certificate.as_ref().to_vec())
}

fn describe_params(
    run: &mut Run<'_>,
    title: &str,
    subject: &Subject,
    v: &Validity,
    serial: &Serial,
    extras: &[String],
) {
    say(run, title);
    say(run, format!("  subject:    CN={}", subject.common_name));
    say(run, format!("  serial:     {}", serial.to_hex()));
    say(
        run,
        format!(
            "  validity:   {} .. {}",
            fmt_time(v.not_before),
            fmt_time(v.not_after)
        ),
    );
    for e in extras {
        say(run, format!("  {e}"));
    }
}

// ---------------------------------------------------------------------------------- init

pub fn init(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let (c, base): (InitCeremony, PathBuf) = ceremony::load(file)?;
    airgap::check(c.allow_network)?;
    let alg: KeyAlgorithm = c.key.algorithm.parse()?;
    if matches!(alg, KeyAlgorithm::Rsa(b) if b < 3072) {
        return Err(RootError::Refused(
            "a root key must be P-256, P-384, Ed25519 or RSA of at least 3072 bits".into(),
        ));
    }
    let dir = RootDir::new(&ceremony::resolve(&base, &c.output.dir));
    if dir.path.exists()
        && std::fs::read_dir(&dir.path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(pki_core::Error::OutputExists {
            path: dir.path.clone(),
        }
        .into());
    }
    let mut subject = Subject::cn(c.root.common_name.clone());
    subject.organization.extend(c.root.organization.clone());
    subject.country.extend(c.root.country.clone());
    let validity = Validity::within_issuer(
        c.root.days,
        Profile::Root.max_days(),
        None,
        OffsetDateTime::now_utc(),
    )?;
    let serial = Serial::random();
    let params = Profile::Root.params(
        &subject,
        &SubjectNames::default(),
        &validity,
        &serial,
        alg,
        None,
    )?;
    describe_params(
        run,
        &format!("root-ca init: new {alg} key '{}' in token '{}', self-signed root:", c.token.key_label, c.token.token_label),
        &subject,
        &validity,
        &serial,
        &[
            "extensions: basicConstraints critical CA:TRUE pathlen:1; keyUsage critical keyCertSign, cRLSign; subjectKeyIdentifier".into(),
            format!("state folder: {}", dir.path.display()),
        ],
    );
    if run.dry_run {
        say(run, "dry run: nothing generated, the token was not opened");
        return Ok(());
    }

    let token = open_token(run, &c.token)?;
    let (key, attrs) = token.generate(alg)?;
    let der = sign_checked(&params, Profile::Root, &key, None, &key)?;
    let facts = CertFacts::from_der("root certificate", &der)?;

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = Zeroizing::new(
        age::secrecy::ExposeSecret::expose_secret(&identity.to_string()).to_string(),
    );
    let sealed = token.seal_transport(secret.as_bytes())?;

    output::create_dir(&dir.path, 0o755)?;
    output::create_dir(&dir.path.join("intermediates"), 0o755)?;
    output::write_atomic(
        &dir.cert_path(),
        facts.pem().as_bytes(),
        Mode::Public,
        false,
    )?;
    output::write_atomic(&dir.sealed_identity_path(), &sealed, Mode::Secret, false)?;
    output::write_atomic(
        &dir.recipient_path(),
        format!("{recipient}\n").as_bytes(),
        Mode::Public,
        false,
    )?;
    let mut index = RootIndex {
        token_label: c.token.token_label.clone(),
        key_label: c.token.key_label.clone(),
        crl_number: 0,
        log_head: String::new(),
        intermediates: Vec::new(),
    };
    dir.log(
        &mut index,
        "key-generated",
        json!({ "token": c.token.token_label, "attributes": attrs }),
    )?;
    dir.log(
        &mut index,
        "root-signed",
        json!({ "serial": facts.serial.to_hex(), "subject": facts.subject, "fingerprint": facts.fingerprint,
                "not_before": fmt_time(facts.not_before), "not_after": fmt_time(facts.not_after) }),
    )?;
    dir.log(
        &mut index,
        "transport-identity-created",
        json!({ "recipient": recipient }),
    )?;
    say(
        run,
        format!("root certificate:     {}", dir.cert_path().display()),
    );
    say(
        run,
        format!("root fingerprint:     SHA256 {}", facts.fingerprint),
    );
    say(run, format!("transport recipient:  {recipient}"));
    say(run, format!("key attributes:       sensitive={} extractable={} never-extractable={} always-sensitive={}",
        attrs.sensitive, attrs.extractable, attrs.never_extractable, attrs.always_sensitive));
    say(
        run,
        format!("ceremony log head:    {} (write it down)", index.log_head),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------- sign

fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8)> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| RootError::Refused(format!("'{s}' is not a CIDR range like 10.0.0.0/8")))?;
    let ip = ip
        .parse()
        .map_err(|_| RootError::Refused(format!("'{s}': bad IP address")))?;
    let len = len
        .parse()
        .map_err(|_| RootError::Refused(format!("'{s}': bad prefix length")))?;
    Ok((ip, len))
}

pub fn sign(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let (c, base): (SignCeremony, PathBuf) = ceremony::load(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let cert_out = c
        .output
        .certificate
        .as_ref()
        .map(|p| ceremony::resolve(&base, p));
    let response_out = c
        .output
        .response
        .as_ref()
        .map(|p| ceremony::resolve(&base, p));
    for p in cert_out.iter().chain(response_out.iter()) {
        output::ensure_absent(p, false)?;
    }

    let mut token: Option<Arc<Token>> = None;
    let mut request: Option<Bundle> = None;
    let csr = match (&c.request.csr, &c.request.bundle) {
        (Some(csr_path), None) => {
            if cert_out.is_none() {
                return Err(RootError::Refused(
                    "[output] certificate is required when signing a CSR file".into(),
                ));
            }
            let csr_path = ceremony::resolve(&base, csr_path);
            CheckedCsr::from_pem(&csr_path.display().to_string(), &output::read(&csr_path)?)?
        }
        (None, Some(bundle_path)) => {
            if response_out.is_none() {
                return Err(RootError::Refused(
                    "[output] response is required when signing a request bundle".into(),
                ));
            }
            let bundle_path = ceremony::resolve(&base, bundle_path);
            let data = output::read(&bundle_path)?;
            // The transport identity is unsealed by the token's AES key; the root signing key
            // is not used for this, so a dry run does it too.
            let t = open_token(run, &c.token)?;
            let identity = transport_identity(&t, &dir)?;
            let b = Bundle::open(
                &bundle_path.display().to_string(),
                &data,
                &identity,
                BundleKind::IntermediateRequest,
            )?;
            let csrs = b.blocks_tagged("CERTIFICATE REQUEST");
            if csrs.len() != 1 {
                return Err(RootError::Refused(
                    "the request bundle must carry exactly one CSR".into(),
                ));
            }
            let parsed =
                CheckedCsr::from_der(&format!("CSR in {}", bundle_path.display()), csrs[0])?;
            if b.header("reply-to").is_none() {
                return Err(RootError::Refused(
                    "the request bundle has no reply-to recipient".into(),
                ));
            }
            token = Some(t);
            request = Some(b);
            parsed
        }
        _ => {
            return Err(RootError::Refused(
                "[request] needs exactly one of csr or bundle".into(),
            ))
        }
    };
    let got = fingerprint(&csr.spki_der);
    let want = normalize_fingerprint(&c.request.key_fingerprint);
    if got != want {
        return Err(RootError::Refused(format!(
            "the request's key fingerprint is {got}, but the ceremony file expects {want}: this is not the request that was read out; stop and check with the requester"
        )));
    }
    if matches!(csr.key_alg, KeyAlgorithm::Rsa(b) if b < 3072) {
        return Err(RootError::Refused(
            "an intermediate key must be P-256, P-384, Ed25519 or RSA of at least 3072 bits".into(),
        ));
    }
    let cn = c
        .certificate
        .common_name
        .clone()
        .or(csr.common_name.clone())
        .ok_or_else(|| {
            RootError::Refused(
                "the request has no common name; set [certificate] common-name".into(),
            )
        })?;
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
                .permitted_ips
                .iter()
                .map(|s| parse_cidr(s))
                .collect::<Result<_>>()?,
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
    let subject_key = csr.public_key()?;
    let mut extras = vec![
        format!("key:        {} (fingerprint {got}, matches the ceremony file)", csr.key_alg),
        "extensions: basicConstraints critical CA:TRUE pathlen:0; keyUsage critical keyCertSign, cRLSign; SKI; AKI".into(),
    ];
    if let Some(l) = &limits {
        extras.push(format!(
            "name constraints: permitted DNS {:?}, IP {:?}",
            l.permitted_dns, c.certificate.permitted_ips
        ));
    }
    if csr.requested_ca || !csr.requested_names.is_empty() {
        extras
            .push("note: extensions requested in the CSR are ignored; the profile decides".into());
    }
    extras.push(format!(
        "issuer:     {} (root fingerprint {})",
        root.subject, root.fingerprint
    ));
    if let Some(b) = &request {
        extras.push(format!(
            "request:    {} (response encrypted to {})",
            b.request_id,
            b.header("reply-to").unwrap_or("?")
        ));
    }
    for p in cert_out.iter().chain(response_out.iter()) {
        extras.push(format!("output:     {}", p.display()));
    }
    describe_params(
        run,
        "root-ca sign: intermediate certificate",
        &subject,
        &validity,
        &serial,
        &extras,
    );
    if run.dry_run {
        // Show the exact to-be-signed result by signing it with a throwaway key.
        let throwaway = KeyPair::generate_for(root_alg(&root)?.signature_algorithm())
            .map_err(|e| RootError::Lint(e.to_string()))?;
        let issuer = Issuer::from_ca_cert_der(&root.der.clone().into(), &throwaway)
            .map_err(|e| RootError::Lint(e.to_string()))?;
        let preview = params
            .signed_by(&subject_key, &issuer)
            .map_err(|e| RootError::Lint(e.to_string()))?;
        let problems = verify::ca_conformance(Profile::Intermediate, preview.der());
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
        say(run, "dry run: nothing signed; the root key was not used");
        return Ok(());
    }

    let token = match token {
        Some(t) => t,
        None => open_token(run, &c.token)?,
    };
    let key = token.key()?;
    if key.spki_der() != root.spki_der {
        return Err(RootError::TokenKeyMismatch {
            key: c.token.key_label.clone(),
            cert: dir.cert_path(),
        });
    }
    let der = sign_checked(
        &params,
        Profile::Intermediate,
        &subject_key,
        Some(&root.der),
        &key,
    )?;
    let facts = CertFacts::from_der("intermediate certificate", &der)?;
    if let (Some(req), Some(out)) = (&request, &response_out) {
        let mut resp = Bundle::new(BundleKind::IntermediateResponse, &req.request_id);
        resp.headers
            .insert("created".into(), fmt_time(OffsetDateTime::now_utc()));
        resp.headers.insert("subject".into(), facts.subject.clone());
        resp.blocks.push(("CERTIFICATE".into(), der.clone()));
        resp.blocks.push(("CERTIFICATE".into(), root.der.clone()));
        if let Ok(crl) = output::read(&dir.crl_path()) {
            for block in pki_core::certs::pem_blocks("root CRL", &crl, "X509 CRL")? {
                resp.blocks.push(("X509 CRL".into(), block));
            }
        }
        let sealed = resp.seal(req.header("reply-to").unwrap_or_default())?;
        output::write_atomic(out, &sealed, Mode::Public, false)?;
        say(
            run,
            format!(
                "response bundle: {} (request {})",
                out.display(),
                req.request_id
            ),
        );
    }
    if let Some(out) = &cert_out {
        output::write_atomic(out, facts.pem().as_bytes(), Mode::Public, false)?;
        say(run, format!("certificate: {}", out.display()));
    }
    output::create_dir(&dir.path.join("intermediates"), 0o755)?;
    output::write_atomic(
        &dir.intermediate_path(&facts.serial.to_hex()),
        facts.pem().as_bytes(),
        Mode::Public,
        false,
    )?;
    index.intermediates.push(IntermediateEntry {
        serial: facts.serial.to_hex(),
        subject: facts.subject.clone(),
        fingerprint: facts.fingerprint.clone(),
        not_after: fmt_time(facts.not_after),
        status: "active".into(),
        reason: None,
        revoked_at: None,
    });
    dir.log(
        &mut index,
        "intermediate-signed",
        json!({ "serial": facts.serial.to_hex(), "subject": facts.subject, "fingerprint": facts.fingerprint,
                "key_fingerprint": got, "not_after": fmt_time(facts.not_after),
                "request_id": request.as_ref().map(|r| r.request_id.clone()) }),
    )?;
    say(
        run,
        format!("signed intermediate serial {}", facts.serial.to_hex()),
    );
    say(
        run,
        format!("intermediate fingerprint: SHA256 {}", facts.fingerprint),
    );
    say(
        run,
        format!(
            "ceremony log head:        {} (write it down)",
            index.log_head
        ),
    );
    Ok(())
}

/// Unseals the root's transport identity with the token's AES key.
fn transport_identity(token: &Token, dir: &RootDir) -> Result<age::x25519::Identity> {
    let sealed = output::read(&dir.sealed_identity_path())?;
    let secret = token.open_transport(&sealed)?;
    let damaged = || {
        RootError::Refused(format!(
            "{} is damaged",
            dir.sealed_identity_path().display()
        ))
    };
    let text = std::str::from_utf8(&secret).map_err(|_| damaged())?;
    age::x25519::Identity::from_str(text.trim()).map_err(|_| damaged())
}

fn root_alg(root: &CertFacts) -> Result<KeyAlgorithm> {
    Ok(KeyAlgorithm::from_spki_der(&root.spki_der)?)
}

// ---------------------------------------------------------------------------------- revoke

/// RFC 5280 §5.3.1 reason names and codes.
pub fn reason_code(name: &str) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match name {
        "unspecified" => R::Unspecified,
        "keyCompromise" => R::KeyCompromise,
        "cACompromise" => R::CaCompromise,
        "affiliationChanged" => R::AffiliationChanged,
        "superseded" => R::Superseded,
        "cessationOfOperation" => R::CessationOfOperation,
        "privilegeWithdrawn" => R::PrivilegeWithdrawn,
        _ => return None,
    })
}

pub fn revoke(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let (c, base): (RevokeCeremony, PathBuf) = ceremony::load(file)?;
    airgap::check(c.allow_network)?;
    if reason_code(&c.reason).is_none() {
        return Err(RootError::Refused(format!(
            "'{}' is not a revocation reason; use unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn",
            c.reason
        )));
    }
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let serial = Serial::from_hex(&c.serial)
        .ok_or_else(|| RootError::Refused(format!("'{}' is not a hex serial", c.serial)))?
        .to_hex();
    let entry = index
        .intermediates
        .iter_mut()
        .find(|e| e.serial == serial)
        .ok_or_else(|| {
            RootError::Refused(format!(
                "this root never signed an intermediate with serial {serial}; see {}",
                dir.index_path().display()
            ))
        })?;
    if entry.status == "revoked" {
        return Err(RootError::Refused(format!(
            "intermediate {serial} is already revoked ({})",
            entry.reason.clone().unwrap_or_default()
        )));
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
    entry.status = "revoked".into();
    entry.reason = Some(c.reason.clone());
    entry.revoked_at = Some(fmt_time(OffsetDateTime::now_utc()));
    let subject = entry.subject.clone();
    dir.log(
        &mut index,
        "intermediate-revoked",
        json!({ "serial": serial, "subject": subject, "reason": c.reason }),
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

// ---------------------------------------------------------------------------------- crl

pub fn crl(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let (c, base): (CrlCeremony, PathBuf) = ceremony::load(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let out_path = ceremony::resolve(&base, &c.output.crl);
    output::ensure_absent(&out_path, false)?;
    if c.next_update_days == 0 || c.next_update_days > 366 {
        return Err(RootError::Refused(
            "next-update-days must be between 1 and 366".into(),
        ));
    }
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    let next = now + Duration::days(c.next_update_days as i64);
    if next > root.not_after {
        return Err(pki_core::Error::OutlivesIssuer {
            requested: fmt_time(next),
            issuer: fmt_time(root.not_after),
        }
        .into());
    }
    let number = index.crl_number + 1;
    let mut revoked = Vec::new();
    for e in index.intermediates.iter().filter(|e| e.status == "revoked") {
        let when = e
            .revoked_at
            .as_deref()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(now);
        revoked.push(rcgen::RevokedCertParams {
            serial_number: Serial::from_hex(&e.serial)
                .expect("index serial")
                .to_rcgen(),
            revocation_time: when,
            reason_code: e.reason.as_deref().and_then(reason_code),
            invalidity_date: None,
        });
    }
    say(
        run,
        format!(
            "root-ca crl: CRL number {number}, {} revoked intermediate(s)",
            revoked.len()
        ),
    );
    say(
        run,
        format!(
            "  thisUpdate {}  nextUpdate {}",
            fmt_time(now),
            fmt_time(next)
        ),
    );
    for e in index.intermediates.iter().filter(|e| e.status == "revoked") {
        say(
            run,
            format!(
                "  revoked {} {} ({})",
                e.serial,
                e.subject,
                e.reason.clone().unwrap_or_default()
            ),
        );
    }
    say(run, format!("  output {}", out_path.display()));
    if run.dry_run {
        say(run, "dry run: nothing signed, the token was not opened");
        return Ok(());
    }
    let ski = root_ski(&root.der)?;
    let params = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: next,
        crl_number: rcgen::SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: rcgen::KeyIdMethod::PreSpecified(ski),
    };
    let token = open_token(run, &c.token)?;
    let key = token.key()?;
    if key.spki_der() != root.spki_der {
        return Err(RootError::TokenKeyMismatch {
            key: c.token.key_label.clone(),
            cert: dir.cert_path(),
        });
    }
    let issuer = Issuer::from_ca_cert_der(&root.der.clone().into(), &key)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let crl = params.signed_by(&issuer).map_err(|e| {
        RootError::pkcs11(
            "sign CRL",
            pkcs11::take_sign_error().unwrap_or_else(|| e.to_string()),
        )
    })?;
    let der = crl.der().to_vec();
    verify_crl_signature(&der, &root.spki_der)?;
    let pem = pki_core::certs::to_pem("X509 CRL", &der);
    output::write_atomic(&out_path, pem.as_bytes(), Mode::Public, false)?;
    // The latest CRL also stays in the root folder: response bundles carry it.
    output::write_atomic(&dir.crl_path(), pem.as_bytes(), Mode::Public, true)?;
    index.crl_number = number;
    let revoked_serials: Vec<String> = index
        .intermediates
        .iter()
        .filter(|e| e.status == "revoked")
        .map(|e| e.serial.clone())
        .collect();
    dir.log(
        &mut index,
        "crl-signed",
        json!({ "crl_number": number, "revoked": revoked_serials,
        "next_update": fmt_time(next), "sha256": fingerprint(&der) }),
    )?;
    say(run, format!("signed CRL {number}: {}", out_path.display()));
    say(
        run,
        format!("ceremony log head: {} (write it down)", index.log_head),
    );
    Ok(())
}

fn root_ski(der: &[u8]) -> Result<Vec<u8>> {
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    for ext in c.extensions() {
        if let ParsedExtension::SubjectKeyIdentifier(k) = ext.parsed_extension() {
            return Ok(k.0.to_vec());
        }
    }
    Err(RootError::Lint(
        "the root certificate has no subjectKeyIdentifier".into(),
    ))
}

/// Checks a CRL's signature in software against the root key.
pub fn verify_crl_signature(der: &[u8], spki: &[u8]) -> Result<()> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .map_err(|e| RootError::BadTokenSignature(e.to_string()))?;
    sigcheck::verify(
        &crl.signature_algorithm.algorithm.to_id_string(),
        spki,
        crl.tbs_cert_list.as_ref(),
        crl.signature_value.as_ref(),
    )
    .map_err(|e| RootError::BadTokenSignature(e.to_string()))
}

// ---------------------------------------------------------------------------------- log

/// Checks the ceremony log's hash chain and that it ends at the head the index recorded.
/// Every ceremony calls this before it opens the token, so a tampered or truncated log is
/// refused before the root key is used or any file is written.
fn check_log(root: &RootDir, index: &RootIndex) -> Result<(usize, String)> {
    let (n, head) = crate::log::verify(&root.log_path())?;
    if index.log_head != head {
        return Err(RootError::Log {
            path: root.log_path(),
            line: n,
            reason: format!(
                "the log ends at {head}, but the root's index recorded {}: records were removed from the end or the last one was edited",
                index.log_head
            ),
        });
    }
    Ok((n, head))
}

pub fn log_verify(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let root = RootDir::new(dir);
    let (n, head) = match root.index() {
        Ok(index) => check_log(&root, &index)?,
        Err(_) => crate::log::verify(&root.log_path())?,
    };
    let _ = writeln!(
        out,
        "{}: {n} records, hash chain intact, head {head}",
        root.log_path().display()
    );
    Ok(())
}
