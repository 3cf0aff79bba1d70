//! The root key in a PKCS#11 token. The private key is generated inside the token
//! (sensitive, never extractable) and every signature is a `C_Sign` call; this module is the
//! only place that talks to the token, and [`TokenKey`] is the same
//! [`Signer`](crate::keys::signer::Signer) the file-backed intermediate key is.

mod attributes;
mod backup;
mod capability;
mod ckr;
mod der;
mod error;
mod generate;
mod key;
mod lookup;
#[allow(unsafe_code)]
mod raw;
mod session;
mod transport;

pub use attributes::KeyAttributes;
pub use backup::{KeyBackup, PublicParts};
pub use capability::{Capabilities, CeremonyNeed, Verdict, CUSTODY_PIN_LEN};
pub use ckr::name_and_number as pkcs11_return_value;
pub use error::TokenError;
pub use key::TokenKey;
pub use raw::RawTokenInfo;
pub use transport::SealScheme;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::{MechanismInfo, MechanismType};
use cryptoki::session::Session;
use zeroize::Zeroizing;

/// Which module, token and key a ceremony uses.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// Path of the PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label; the token is found in whichever slot holds it.
    pub token_label: String,
    /// The key pair's label (CKA_LABEL).
    pub key_label: String,
    /// The key's CKA_ID (hex) recorded when it was generated; None for state written before
    /// IDs were recorded, when the label alone must then match exactly one key pair.
    pub key_id: Option<String>,
}

/// An open, logged-in session with the token.
pub struct Token {
    // Field order is drop order: the session closes before the library handles go.
    session: Mutex<Session>,
    raw: raw::RawModule,
    _ctx: Pkcs11,
    /// What the token says of itself (label, maker, model, PIN lengths).
    pub info: RawTokenInfo,
    /// The mechanisms the token lists, with their key sizes and flags.
    mechanisms: Vec<(MechanismType, Option<MechanismInfo>)>,
    /// The user PIN, kept for keys that demand a context-specific login before each
    /// signature (`CKA_ALWAYS_AUTHENTICATE`); zeroized on drop.
    pin: Zeroizing<String>,
    /// The configuration the session was opened with.
    pub config: TokenConfig,
}

/// What a root key may do besides signing: stay in the token for ever (the default), or leave
/// it wrapped, for a backup that survives the token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyPolicy {
    /// Sensitive and never extractable: the key dies with the token.
    #[default]
    NeverExtractable,
    /// Sensitive and extractable: the token reveals it only wrapped under another key
    /// (SoftHSM2 and PKCS#11 never return a sensitive key in clear).
    WrappedBackup,
}

/// Whether `module` is SoftHSM2's (its hints name SoftHSM2's configuration and tools).
pub fn is_softhsm(module: &Path) -> bool {
    module
        .file_name()
        .map(|n| n.to_string_lossy().contains("softhsm"))
        .unwrap_or(false)
}

/// The module path SoftHSM2 installs on Debian.
pub fn default_module() -> &'static Path {
    Path::new("/usr/lib/softhsm/libsofthsm2.so")
}
