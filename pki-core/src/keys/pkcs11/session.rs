//! Opening the token: loading the module, finding the token's slot by label, logging in, and
//! the one session every call goes through.

use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::error::{Result, TokenError};
use super::raw::{RawModule, RawTokenInfo};
use super::{is_softhsm, Token, TokenConfig};

impl Token {
    /// Loads the module, finds the token by label (slot IDs change after init) and logs in.
    pub fn open(config: &TokenConfig, pin: &Zeroizing<String>) -> Result<Arc<Self>> {
        if !config.module.exists() {
            return Err(TokenError::Module {
                module: config.module.clone(),
                reason: "no such file".into(),
            });
        }
        let ctx = Pkcs11::new(&config.module).map_err(|e| TokenError::Module {
            module: config.module.clone(),
            reason: e.to_string(),
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                let hint = if is_softhsm(&config.module) {
                    "; for SoftHSM2 check that SOFTHSM2_CONF names a config whose tokendir exists"
                } else {
                    "; check the module's own configuration and that its daemon or device is up (tpm2-pkcs11: TPM2_PKCS11_TCTI and the resource manager; opencryptoki: pkcsslotd)"
                };
                return Err(TokenError::Module {
                    module: config.module.clone(),
                    reason: format!(
                        "initialisation failed ({}){hint}",
                        TokenError::pkcs11("initialise the module", e)
                    ),
                });
            }
        }
        let raw = RawModule::load(&config.module).map_err(|reason| TokenError::Module {
            module: config.module.clone(),
            reason,
        })?;
        let (slot, info) = find_slot(&ctx, &raw, config)?;
        let mechanisms = mechanisms(&ctx, slot)?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| TokenError::pkcs11("open session", e))?;
        let auth = AuthPin::from(pin.as_str().to_owned());
        match session.login(UserType::User, Some(&auth)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _))
            | Err(CkError::Pkcs11(RvError::PinLenRange, _)) => {
                return Err(TokenError::WrongPin {
                    label: config.token_label.clone(),
                })
            }
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => {
                return Err(TokenError::PinLocked {
                    label: config.token_label.clone(),
                })
            }
            Err(e) => return Err(TokenError::pkcs11("login", e)),
        }
        Ok(Arc::new(Token {
            session: Mutex::new(session),
            raw,
            _ctx: ctx,
            info,
            mechanisms,
            pin: pin.clone(),
            config: config.clone(),
        }))
    }

    /// The raw function table (see [`RawModule`]).
    pub(super) fn raw(&self) -> &RawModule {
        &self.raw
    }

    pub(super) fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One `C_Sign`; with `always_authenticate`, a context-specific login comes between
    /// `C_SignInit` and `C_Sign`, as keys with `CKA_ALWAYS_AUTHENTICATE` demand.
    pub(super) fn sign_raw(
        &self,
        mechanism: &Mechanism<'_>,
        key: ObjectHandle,
        data: &[u8],
        always_authenticate: bool,
    ) -> Result<Vec<u8>> {
        let about = format!("mechanism {}", mechanism.mechanism_type());
        let session = self.session();
        if always_authenticate {
            return self
                .raw
                .sign_with_context_login(&session, mechanism, key, &self.pin, data, 1024)
                .map_err(|e| TokenError::pkcs11_about("sign", &about, e));
        }
        session
            .sign(mechanism, key, data)
            .map_err(|e| TokenError::pkcs11_about("sign", &about, e))
    }
}

/// The token's facts: cryptoki's parse, or, when cryptoki refuses the structure (an
/// informational field it cannot parse, such as opencryptoki's clock), the raw fields.
fn token_info(ctx: &Pkcs11, raw: &RawModule, slot: Slot) -> Option<RawTokenInfo> {
    match ctx.get_token_info(slot) {
        Ok(info) => Some(RawTokenInfo {
            label: super::raw::text(info.label().as_bytes()),
            manufacturer: super::raw::text(info.manufacturer_id().as_bytes()),
            model: super::raw::text(info.model().as_bytes()),
            min_pin: info.min_pin_length() as u64,
            max_pin: info.max_pin_length() as u64,
            initialized: info.token_initialized(),
        }),
        Err(_) => raw.token_info(slot.id()).ok(),
    }
}

/// Every mechanism the slot lists, with its info where the token gives it.
fn mechanisms(
    ctx: &Pkcs11,
    slot: Slot,
) -> Result<
    Vec<(
        cryptoki::mechanism::MechanismType,
        Option<cryptoki::mechanism::MechanismInfo>,
    )>,
> {
    let list = ctx
        .get_mechanism_list(slot)
        .map_err(|e| TokenError::pkcs11("list mechanisms", e))?;
    Ok(list
        .into_iter()
        .map(|m| {
            let info = ctx.get_mechanism_info(slot, m).ok();
            (m, info)
        })
        .collect())
}

fn find_slot(ctx: &Pkcs11, raw: &RawModule, config: &TokenConfig) -> Result<(Slot, RawTokenInfo)> {
    // Not get_slots_with_initialized_token: it parses every token's whole CK_TOKEN_INFO and
    // fails on the first it cannot (opencryptoki's clock), hiding every token.
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| TokenError::pkcs11("list slots", e))?;
    let mut found = Vec::new();
    let mut matching = Vec::new();
    for s in slots {
        if let Some(info) = token_info(ctx, raw, s).filter(|i| i.initialized) {
            found.push(format!("'{}'", info.label));
            if info.label == config.token_label {
                matching.push((s, info));
            }
        }
    }
    // Two tokens under one label: picking one would sign with whichever the module lists
    // first, as key lookup refuses to guess between two keys.
    if matching.len() > 1 {
        return Err(TokenError::AmbiguousToken {
            label: config.token_label.clone(),
            module: config.module.clone(),
            count: matching.len(),
        });
    }
    if let Some(one) = matching.pop() {
        return Ok(one);
    }
    Err(TokenError::NoToken {
        label: config.token_label.clone(),
        module: config.module.clone(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
        hint: if is_softhsm(&config.module) {
            ", and SOFTHSM2_CONF for SoftHSM2".into()
        } else {
            String::new()
        },
    })
}
