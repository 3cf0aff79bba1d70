//! `root-ca sign`: sign one intermediate CA certificate in the token, from a request bundle or
//! a plain CSR, and deliver it.

use std::path::{Path, PathBuf};

use pki_core::bundle::{Bundle, BundleKind};
use pki_core::output::{self, Mode};
use pki_core::x509::fmt_time;
use pki_core::x509::CertFacts;
use pki_core::x509::Profile;
use serde_json::json;
use time::OffsetDateTime;

use super::log::check_log;
use super::{
    ceremony_record, check_folder, check_output, open_token, recorded_key_id, root_key, say,
    sign_checked, Run,
};
use crate::airgap;
use crate::ceremony::{self, SignCeremony};
use crate::error::{Result, RootError};
use crate::state::{IntermediateEntry, RootDir};
use plan::{constraints_json, describe_sign, plan_intermediate, preview_sign};
use request::{check_request_key, check_resign, read_request};

mod plan;
mod request;

/// The outputs of a sign ceremony, each checked before anything is signed. Which outputs a
/// request needs is the ceremony file's own check ([`ceremony::Validate`]).
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

pub fn sign(file: &Path, run: &mut Run<'_>) -> Result<()> {
    let ceremony::Loaded { c, base, sha256 } = ceremony::load::<SignCeremony>(file)?;
    airgap::check(c.allow_network)?;
    let dir = RootDir::new(&ceremony::resolve(&base, &c.root_dir));
    let root = dir.cert()?;
    let mut index = dir.index()?;
    check_log(&dir, &index)?;
    let outs = SignOutputs::check(&c, &base, &dir)?;
    let req = read_request(file, &c, &base, &dir, &index, run)?;
    let got = check_request_key(&c, &req.csr)?;
    let request_id = req.bundle.as_ref().map(|b| b.request_id.clone());
    check_resign(&c, &dir, &index, request_id.as_deref(), &got)?;
    let plan = plan_intermediate(file, &c, &root, &req.csr)?;
    let subject_key = req.csr.public_key()?;
    describe_sign(run, &c, &plan, &req, &root, &outs, &got);
    if run.dry_run {
        return preview_sign(run, &plan, &subject_key, &root, req.token.is_some());
    }

    let token = match req.token {
        Some(t) => t,
        None => open_token(
            run,
            &c.token,
            recorded_key_id(&index, &c.token),
            &dir,
            "sign",
        )?,
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
        kind: None,
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
        for block in pki_core::x509::pem_blocks("root CRL", &crl, "X509 CRL")? {
            resp.blocks.push(("X509 CRL".into(), block));
        }
    }
    Ok(resp.seal(req.header("reply-to").unwrap_or_default())?)
}
