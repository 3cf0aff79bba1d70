//! The root ceremonies. Each one: read and check the ceremony file, check the air gap, check
//! every output is absent, show the plan (and stop there on --dry-run), and only then open the
//! token. Every token signature is verified in software before anything is written.

use std::io::Write;
use std::path::{Path, PathBuf};

use pki_core::keys::algorithm::KeyAlgorithm;
use std::str::FromStr;
use std::sync::Arc;

use pki_core::bundle::{Bundle, BundleKind};
use pki_core::keys::sigcheck;
use pki_core::output::{self, Mode};
use pki_core::x509::certs::{fingerprint, normalize_fingerprint, CertFacts};
use pki_core::x509::conformance;
use pki_core::x509::csr::CheckedCsr;
use pki_core::x509::profile::{NameLimits, Profile, Subject, SubjectNames};
use pki_core::x509::serial::Serial;
use pki_core::x509::validity::{fmt_time, Validity};
use rcgen::{CertificateParams, Issuer, KeyPair, PublicKeyData};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::ceremony::{self, CrlCeremony, InitCeremony, RevokeCeremony, SignCeremony};
use crate::error::{Result, RootError};
use crate::state::{IntermediateEntry, RootDir, RootIndex};
use crate::{airgap, pin};
use pki_core::keys::pkcs11::{self, Token, TokenKey};

/// How a ceremony gets its PIN and where it reports.
pub struct Run<'a> {
    pub dry_run: bool,
    pub pin_file: Option<&'a Path>,
    pub out: &'a mut dyn Write,
}

fn say(run: &mut Run<'_>, text: impl AsRef<str>) {
    let _ = writeln!(run.out, "{}", text.as_ref());
}

fn open_token(
    run: &Run<'_>,
    section: &ceremony::TokenSection,
    key_id: Option<String>,
) -> Result<Arc<Token>> {
    let pin = pin::resolve(run.pin_file)?;
    Ok(Token::open(&section.config(key_id), &pin)?)
}

/// The CKA_ID init recorded, for the key label it recorded. A ceremony naming another label
/// finds that key by label alone; the root certificate check then names the mismatch.
fn recorded_key_id(index: &RootIndex, section: &ceremony::TokenSection) -> Option<String> {
    (section.key_label == index.key_label)
        .then(|| index.key_id.clone())
        .flatten()
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
    let alg = pki_core::keys::signer::Signer::key_algorithm(key);
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
    let problems = conformance::ca_conformance(profile, &lint_der);
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
    let problems = conformance::ca_conformance(profile, &der);
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
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<InitCeremony>(file)?;
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
        return Err(RootError::OutputExists {
            path: dir.path.clone(),
        });
    }
    if let Some(parent) = dir.path.parent().filter(|p| !p.as_os_str().is_empty()) {
        check_folder(parent)?;
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
        say(run, "drawn at signing time: the serial and the validity dates above are examples; the real ceremony draws a new random serial and starts the validity when the token signs");
        say(run, "dry run: nothing generated, the token was not opened");
        return Ok(());
    }

    let token = open_token(run, &c.token, None)?;
    // A transport key left in the token is reused only if it never left it: checked before
    // the root key exists, so a refusal leaves nothing new in the token.
    token.check_transport_key()?;
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
    )
    .map_err(RootError::from_output)?;
    output::write_atomic(&dir.sealed_identity_path(), &sealed, Mode::Secret, false)
        .map_err(RootError::from_output)?;
    output::write_atomic(
        &dir.recipient_path(),
        format!("{recipient}\n").as_bytes(),
        Mode::Public,
        false,
    )
    .map_err(RootError::from_output)?;
    let mut index = RootIndex {
        token_label: c.token.token_label.clone(),
        key_label: c.token.key_label.clone(),
        key_id: Some(attrs.id.clone()),
        crl_number: 0,
        log_head: String::new(),
        intermediates: Vec::new(),
    };
    dir.log(
        &mut index,
        "key-generated",
        json!({ "token": c.token.token_label, "attributes": attrs,
                "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
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

/// Checks an output before the token is opened: absent, and its folder exists and takes a
/// new file (probed by creating one: permission bits say nothing for root or a read-only mount).
fn check_output(path: &Path) -> Result<()> {
    output::ensure_absent(path, false).map_err(RootError::from_output)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    check_folder(&parent)
}

fn check_folder(folder: &Path) -> Result<()> {
    let bad = |reason: String| RootError::OutputFolder {
        path: folder.to_path_buf(),
        reason,
    };
    match std::fs::metadata(folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(bad("is not a folder".into())),
        Err(e) => return Err(bad(e.to_string())),
    }
    let probe = folder.join(format!(
        ".root-ca-probe-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| bad(format!("cannot create a file there ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The ceremony file behind a log record: which reviewed bytes, with which overrides.
fn ceremony_record(file: &Path, sha256: &str, allow_network: bool) -> serde_json::Value {
    json!({ "file": file.display().to_string(), "sha256": sha256, "allow_network": allow_network })
}

/// The outputs of a sign ceremony, each checked before anything is signed.
struct SignOutputs {
    cert: Option<PathBuf>,
    response: Option<PathBuf>,
}

impl SignOutputs {
    fn check(c: &SignCeremony, base: &Path, dir: &RootDir) -> Result<Self> {
        let resolve = |p: &Option<PathBuf>| p.as_ref().map(|p| ceremony::resolve(base, p));
        let outs = SignOutputs {
            cert: resolve(&c.output.certificate),
            response: resolve(&c.output.response),
        };
        if c.request.csr.is_some() && outs.cert.is_none() {
            return Err(RootError::Refused(
                "[output] certificate is required when signing a CSR file".into(),
            ));
        }
        if c.request.bundle.is_some() && outs.response.is_none() {
            return Err(RootError::Refused(
                "[output] response is required when signing a request bundle".into(),
            ));
        }
        if let (Some(a), Some(b)) = (&outs.cert, &outs.response) {
            if a == b {
                return Err(RootError::OutputTwice { path: a.clone() });
            }
        }
        for p in outs.cert.iter().chain(outs.response.iter()) {
            check_output(p)?;
        }
        // The root's own record (index, log, intermediates/) is written first: check it too.
        check_folder(&dir.path)?;
        Ok(outs)
    }
}

/// The request being signed: its CSR and, for a bundle, the bundle and the opened token.
struct Request {
    csr: CheckedCsr,
    bundle: Option<Bundle>,
    token: Option<Arc<Token>>,
}

fn read_request(
    c: &SignCeremony,
    base: &Path,
    dir: &RootDir,
    index: &RootIndex,
    run: &Run<'_>,
) -> Result<Request> {
    match (&c.request.csr, &c.request.bundle) {
        (Some(csr_path), None) => {
            let csr_path = ceremony::resolve(base, csr_path);
            Ok(Request {
                csr: CheckedCsr::from_pem(
                    &csr_path.display().to_string(),
                    &output::read(&csr_path)?,
                )?,
                bundle: None,
                token: None,
            })
        }
        (None, Some(bundle_path)) => {
            let bundle_path = ceremony::resolve(base, bundle_path);
            let data = output::read(&bundle_path)?;
            // The transport identity is unsealed by the token's AES key; the root signing key
            // is not used for this, so a dry run does it too.
            let t = open_token(run, &c.token, recorded_key_id(index, &c.token))?;
            let identity = transport_identity(&t, dir)?;
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
            let reply_to = b.header("reply-to").ok_or_else(|| {
                RootError::Refused("the request bundle has no reply-to recipient".into())
            })?;
            // The response is sealed after signing: a recipient that cannot be used must be
            // refused now, not after a certificate exists.
            age::x25519::Recipient::from_str(reply_to.trim()).map_err(|e| {
                RootError::Refused(format!(
                    "the request bundle's reply-to '{}' is not an age X25519 recipient ({e})",
                    reply_to.trim()
                ))
            })?;
            Ok(Request {
                csr: parsed,
                bundle: Some(b),
                token: Some(t),
            })
        }
        _ => Err(RootError::Refused(
            "[request] needs exactly one of csr or bundle".into(),
        )),
    }
}

/// Refuses a second signature for a request ID or key this root already signed, unless the
/// ceremony file says `allow-resign = true`.
fn check_resign(
    c: &SignCeremony,
    dir: &RootDir,
    index: &RootIndex,
    request_id: Option<&str>,
    key_fp: &str,
) -> Result<()> {
    if c.allow_resign {
        return Ok(());
    }
    for e in &index.intermediates {
        // Rows written before the key fingerprint was recorded: read it from the kept copy.
        let signed_key = e.key_fingerprint.clone().or_else(|| {
            let path = dir.intermediate_path(&e.serial);
            let pem = output::read(&path).ok()?;
            let facts = CertFacts::from_pem(&path.display().to_string(), &pem).ok()?;
            Some(fingerprint(&facts.spki_der))
        });
        let what = match (&e.request_id, request_id) {
            (Some(a), Some(b)) if a == b => format!("request {b}"),
            _ if signed_key.as_deref() == Some(key_fp) => {
                format!("the key with fingerprint {key_fp}")
            }
            _ => continue,
        };
        return Err(RootError::AlreadySigned {
            what,
            serial: e.serial.clone(),
            index: dir.index_path(),
            kept: dir.intermediate_path(&e.serial),
        });
    }
    Ok(())
}

/// Checks the request's key against the fingerprint read out at the ceremony; returns it.
fn check_request_key(c: &SignCeremony, csr: &CheckedCsr) -> Result<String> {
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
    Ok(got)
}

/// What will be signed: everything but the signature.
struct Plan {
    subject: Subject,
    validity: Validity,
    limits: Option<NameLimits>,
    serial: Serial,
    params: CertificateParams,
}

fn plan_intermediate(c: &SignCeremony, root: &CertFacts, csr: &CheckedCsr) -> Result<Plan> {
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
    Ok(Plan {
        subject,
        validity,
        limits,
        serial,
        params,
    })
}

/// The name constraints as signed, closing included, for the preview and the log.
fn constraints_json(limits: Option<&NameLimits>) -> serde_json::Value {
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

fn constraint_lines(limits: Option<&NameLimits>) -> Vec<String> {
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

pub fn sign(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<SignCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let outs = SignOutputs::check(&c, &base, &dir)?;
    let req = read_request(&c, &base, &dir, &index, run)?;
    let got = check_request_key(&c, &req.csr)?;
    let request_id = req.bundle.as_ref().map(|b| b.request_id.clone());
    check_resign(&c, &dir, &index, request_id.as_deref(), &got)?;
    let plan = plan_intermediate(&c, &root, &req.csr)?;
    let subject_key = req.csr.public_key()?;
    describe_sign(run, &c, &plan, &req, &root, &outs, &got);
    if run.dry_run {
        return preview_sign(run, &plan, &subject_key, &root, req.token.is_some());
    }

    let token = match req.token {
        Some(t) => t,
        None => open_token(run, &c.token, recorded_key_id(&index, &c.token))?,
    };
    let key = root_key(&token, &c.token, &dir, &root)?;
    let der = sign_checked(
        &plan.params,
        Profile::Intermediate,
        &subject_key,
        Some(&root.der),
        &key,
    )?;
    let facts = CertFacts::from_der("intermediate certificate", &der)?;
    let serial = facts.serial.to_hex();
    // Recorded before the first byte of output: whatever fails next, the root knows this
    // intermediate and `root-ca revoke` works on it.
    output::create_dir(&dir.path.join("intermediates"), 0o755)?;
    output::write_atomic(
        &dir.intermediate_path(&serial),
        facts.pem().as_bytes(),
        Mode::Public,
        false,
    )
    .map_err(RootError::from_output)?;
    index.intermediates.push(IntermediateEntry {
        serial: serial.clone(),
        subject: facts.subject.clone(),
        fingerprint: facts.fingerprint.clone(),
        not_after: fmt_time(facts.not_after),
        status: "active".into(),
        reason: None,
        revoked_at: None,
        request_id: request_id.clone(),
        key_fingerprint: Some(got.clone()),
    });
    let mut record = ceremony_record(file, &sha256, c.allow_network);
    record["allow_resign"] = json!(c.allow_resign);
    dir.log(
        &mut index,
        "intermediate-signed",
        json!({ "serial": serial, "subject": facts.subject, "fingerprint": facts.fingerprint,
                "key_fingerprint": got, "not_after": fmt_time(facts.not_after),
                "request_id": request_id,
                "name_constraints": constraints_json(plan.limits.as_ref()),
                "ceremony": record }),
    )?;
    deliver(run, &dir, &outs, req.bundle.as_ref(), &facts, &root)?;
    say(run, format!("signed intermediate serial {serial}"));
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

/// The token's key, checked to be the root certificate's key before it signs.
fn root_key(
    token: &Arc<Token>,
    section: &ceremony::TokenSection,
    dir: &RootDir,
    root: &CertFacts,
) -> Result<TokenKey> {
    let key = token.key()?;
    if key.spki_der() != root.spki_der {
        return Err(RootError::TokenKeyMismatch {
            key: section.key_label.clone(),
            cert: dir.cert_path(),
        });
    }
    Ok(key)
}

fn describe_sign(
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
fn preview_sign(
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
    let problems = conformance::ca_conformance(Profile::Intermediate, preview.der());
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

/// Writes the outputs of a signed and recorded intermediate; a failure says what was kept.
fn deliver(
    run: &mut Run<'_>,
    dir: &RootDir,
    outs: &SignOutputs,
    request: Option<&Bundle>,
    facts: &CertFacts,
    root: &CertFacts,
) -> Result<()> {
    let serial = facts.serial.to_hex();
    let undelivered = |out: &Path, e: RootError| RootError::Undelivered {
        serial: serial.clone(),
        kept: dir.intermediate_path(&serial),
        output: out.to_path_buf(),
        reason: e.to_string(),
    };
    if let (Some(req), Some(out)) = (request, &outs.response) {
        let sealed = response_bundle(dir, req, facts, root).map_err(|e| undelivered(out, e))?;
        output::write_atomic(out, &sealed, Mode::Public, false)
            .map_err(|e| undelivered(out, RootError::from_output(e)))?;
        say(
            run,
            format!(
                "response bundle: {} (request {})",
                out.display(),
                req.request_id
            ),
        );
    }
    if let Some(out) = &outs.cert {
        output::write_atomic(out, facts.pem().as_bytes(), Mode::Public, false)
            .map_err(|e| undelivered(out, RootError::from_output(e)))?;
        say(run, format!("certificate: {}", out.display()));
    }
    Ok(())
}

fn response_bundle(
    dir: &RootDir,
    req: &Bundle,
    facts: &CertFacts,
    root: &CertFacts,
) -> Result<Vec<u8>> {
    let mut resp = Bundle::new(BundleKind::IntermediateResponse, &req.request_id);
    resp.headers
        .insert("created".into(), fmt_time(OffsetDateTime::now_utc()));
    resp.headers.insert("subject".into(), facts.subject.clone());
    resp.blocks.push(("CERTIFICATE".into(), facts.der.clone()));
    resp.blocks.push(("CERTIFICATE".into(), root.der.clone()));
    if let Ok(crl) = output::read(&dir.crl_path()) {
        for block in pki_core::x509::certs::pem_blocks("root CRL", &crl, "X509 CRL")? {
            resp.blocks.push(("X509 CRL".into(), block));
        }
    }
    Ok(resp.seal(req.header("reply-to").unwrap_or_default())?)
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
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<RevokeCeremony>(file)?;
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

// ---------------------------------------------------------------------------------- crl

pub fn crl(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<CrlCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let out_path = ceremony::resolve(&base, &c.output.crl);
    check_output(&out_path)?;
    check_folder(&dir.path)?;
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
    let token = open_token(run, &c.token, recorded_key_id(&index, &c.token))?;
    let key = root_key(&token, &c.token, &dir, &root)?;
    let der = sign_crl(&params, &root, &key)?;
    // The number is recorded before the CRL is written anywhere: a failure below burns it,
    // and the next CRL gets a higher one. Two CRLs never share a number.
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
        "next_update": fmt_time(next), "sha256": fingerprint(&der),
        "ceremony": ceremony_record(file, &sha256, c.allow_network) }),
    )?;
    write_crl(&dir, &out_path, &der, number)?;
    say(run, format!("signed CRL {number}: {}", out_path.display()));
    say(
        run,
        format!("ceremony log head: {} (write it down)", index.log_head),
    );
    Ok(())
}

/// The token signs the CRL; the signature is checked in software before it is used.
fn sign_crl(
    params: &rcgen::CertificateRevocationListParams,
    root: &CertFacts,
    key: &TokenKey,
) -> Result<Vec<u8>> {
    let issuer = Issuer::from_ca_cert_der(&root.der.clone().into(), key)
        .map_err(|e| RootError::Lint(e.to_string()))?;
    let crl = params.signed_by(&issuer).map_err(|e| {
        RootError::pkcs11(
            "sign CRL",
            pkcs11::take_sign_error().unwrap_or_else(|| e.to_string()),
        )
    })?;
    let der = crl.der().to_vec();
    verify_crl_signature(&der, &root.spki_der)?;
    Ok(der)
}

/// Writes a recorded CRL; a failure says its number is used up.
fn write_crl(dir: &RootDir, out_path: &Path, der: &[u8], number: u64) -> Result<()> {
    let pem = pki_core::x509::certs::to_pem("X509 CRL", der);
    let undelivered = |out: &Path, e: pki_core::Error| RootError::CrlUndelivered {
        number,
        next: number + 1,
        output: out.to_path_buf(),
        reason: RootError::from_output(e).to_string(),
    };
    // The latest CRL also stays in the root folder: response bundles carry it.
    output::write_atomic(&dir.crl_path(), pem.as_bytes(), Mode::Public, true)
        .map_err(|e| undelivered(&dir.crl_path(), e))?;
    output::write_atomic(out_path, pem.as_bytes(), Mode::Public, false)
        .map_err(|e| undelivered(out_path, e))
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
    // Fail closed: without the index there is no recorded head, and a chain-only check
    // cannot tell a truncated log from a whole one.
    let index = root.index()?;
    let (n, head) = check_log(&root, &index)?;
    let _ = writeln!(
        out,
        "{}: {n} records, hash chain intact, head {head}",
        root.log_path().display()
    );
    Ok(())
}
