//! What the agent remembers between runs: when each leaf was last renewed, a renewal not yet
//! confirmed to the service, and the CRL installed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::AgentResult;

/// The state file (JSON).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Per role.
    #[serde(default)]
    pub leaves: BTreeMap<String, LeafState>,
    /// The CRL installed.
    #[serde(default)]
    pub crl: Option<CrlState>,
    /// The intermediates and root CRL this host trusts (see [`crate::trust`]).
    #[serde(default)]
    pub trust: crate::trust::Pins,
}

/// One leaf's memory.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct LeafState {
    /// When it was last renewed, RFC 3339.
    pub last_renewal: Option<String>,
    /// A renewed serial installed but not yet confirmed to the service.
    pub unconfirmed: Option<String>,
    /// When the agent last tried to renew it, RFC 3339.
    #[serde(default)]
    pub last_attempt: Option<String>,
    /// How that attempt ended: `renewed`, `failed` (may pass later) or `refused` (for good).
    #[serde(default)]
    pub last_outcome: Option<String>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The service's code when it refused this leaf for good (`revoked`, `superseded`,
    /// `unknown-leaf`, `expired`): the agent stops asking; `pki-agent enrol --replace` with a
    /// new token is the way back.
    #[serde(default)]
    pub refused: Option<String>,
}

/// The CRL installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrlState {
    /// Its number.
    pub number: u64,
    /// When it was fetched, RFC 3339.
    pub fetched_at: String,
    /// Its nextUpdate, RFC 3339.
    pub next_update: String,
    /// The CRL in the file was put there by other means (by hand, `issuer etcd`) and is newer
    /// than what the service serves: kept, but not a floor for the service's answers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kept_from_file: bool,
    /// Fingerprint of the intermediate that signed it: the number is a floor for that
    /// intermediate's CRLs only, so a high number forged with a stolen intermediate cannot
    /// lock out the next generation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl State {
    /// Reads the state; a missing file is an empty state.
    pub fn load(path: &Path) -> AgentResult<Self> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                pki_core::Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
                .into()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(pki_core::Error::io(path, e).into()),
        }
    }

    /// Writes the state atomically.
    pub fn save(&self, path: &Path) -> AgentResult<()> {
        if let Some(dir) = path.parent() {
            pki_core::output::create_dir(dir, 0o750)?;
        }
        let bytes = serde_json::to_vec_pretty(self).expect("json");
        pki_core::output::write_atomic(path, &bytes, pki_core::output::Mode::Public, true)?;
        Ok(())
    }
}
