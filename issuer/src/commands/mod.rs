//! What each `issuer` subcommand does, on top of pki-core.

mod crl;
mod etcd;
mod fleet;
mod inspect;
mod issue;
mod ledger;
mod replace;
mod service;

use crate::cli::SecretArgs;
use crate::error::{Result, Usage};
use pki_core::ca::CaDir;
use pki_core::ca::ListFilter;
use pki_core::ca::{
    approve_cn, approve_csr, ledger_request, publish_crl, replace_leaf, sign_direct_crl, Approval,
    CrlFormat, Gate,
};
use pki_core::ca::{LeafKey, LeafPaths, LeafRequest};
use pki_core::etcd::parse_cfssl;
use pki_core::x509::CertFacts;
use pki_core::x509::CheckedCsr;
use pki_core::x509::{self, VerifyRequest};
use pki_core::x509::{fmt_time, parse_duration};
use pki_core::x509::{LeafRole, Profile, Subject, SubjectNames};
use pki_core::{output, Error};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

pub use crl::{crl, revoke, root_crl_release};
pub use etcd::{check_etcd, etcd};
pub use fleet::fleet;
pub use inspect::{list, verify};
pub use issue::{batch, issue};
pub use ledger::{ledger_accept_restore, ledger_migrate};
pub use replace::{reissue, renew};
pub use service::{audit_verify, serve, token_create};
// Helpers one command file shares with another.
use etcd::{crl_size, etcd_crl, root_and_crl};
use replace::after;

/// Opens a CA folder and warns (on stderr) when its active intermediate or the root CRL it
/// holds is close to expiry: every issuer command says so, not only `list`.
pub(super) fn open_ca(path: &Path) -> Result<CaDir> {
    let ca = CaDir::open(path)?;
    for w in pki_core::ca::expiry_warnings(&ca, OffsetDateTime::now_utc()) {
        eprintln!("issuer: warning: {w}");
    }
    Ok(ca)
}

/// The root certificate a CA folder chains to: `--root`, else the one pinned at install.
pub(super) fn root_of(ca: &CaDir, root: Option<&Path>) -> Result<String> {
    let path = root
        .map(Path::to_path_buf)
        .unwrap_or_else(|| ca.root_path());
    let pem = output::read_to_string(&path).map_err(|_| Usage::NoRoot { path: path.clone() })?;
    Ok(pem)
}
