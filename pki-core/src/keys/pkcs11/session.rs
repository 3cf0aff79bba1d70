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
use super::{Token, TokenConfig};

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
                return Err(TokenError::Module {
                    module: config.module.clone(),
                    reason: format!("initialisation failed ({e}); for SoftHSM2 check that SOFTHSM2_CONF names a config whose tokendir exists"),
                })
            }
        }
        let slot = find_slot(&ctx, config)?;
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
            _ctx: ctx,
            session: Mutex::new(session),
            config: config.clone(),
        }))
    }

    pub(super) fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn sign_raw(
        &self,
        mechanism: &Mechanism<'_>,
        key: ObjectHandle,
        data: &[u8],
    ) -> Result<Vec<u8>> {
        self.session()
            .sign(mechanism, key, data)
            .map_err(|e| TokenError::pkcs11("sign", e))
    }
}

fn find_slot(ctx: &Pkcs11, config: &TokenConfig) -> Result<Slot> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| TokenError::pkcs11("list slots", e))?;
    let mut found = Vec::new();
    let mut matching = Vec::new();
    for s in slots {
        if let Ok(info) = ctx.get_token_info(s) {
            let label = info.label().trim_end().to_string();
            if label == config.token_label {
                matching.push(s);
            }
            found.push(format!("'{label}'"));
        }
    }
    // Two tokens under one label: picking one would sign with whichever the module lists
    // first, as key lookup refuses to guess between two keys.
    match matching.as_slice() {
        [one] => return Ok(*one),
        [] => {}
        many => {
            return Err(TokenError::AmbiguousToken {
                label: config.token_label.clone(),
                module: config.module.clone(),
                count: many.len(),
            })
        }
    }
    Err(TokenError::NoToken {
        label: config.token_label.clone(),
        module: config.module.clone(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}
