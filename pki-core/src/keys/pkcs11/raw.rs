//! The few PKCS#11 calls made below cryptoki's high-level API, through the module's own
//! function list: reading `CK_TOKEN_INFO` field by field (cryptoki 0.12.1 refuses a whole
//! token whose informational clock is not `YYYYMMDDhhmmss00`, as opencryptoki's soft token
//! returns it), a single-call `C_Decrypt` into a buffer of known size (tpm2-pkcs11 fails
//! the two-call length query), and a signature with the context-specific login some keys
//! demand (`CKA_ALWAYS_AUTHENTICATE`) between `C_SignInit` and `C_Sign`.
//!
//! The module is the one cryptoki already loaded and initialised: `dlopen` of the same path
//! returns the same library, and `C_GetFunctionList` the same table.

use std::path::Path;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, Rv};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki_sys::{
    CKU_CONTEXT_SPECIFIC, CK_FUNCTION_LIST, CK_FUNCTION_LIST_PTR_PTR, CK_MECHANISM, CK_RV,
    CK_SLOT_ID, CK_TOKEN_INFO, CK_ULONG,
};
use zeroize::Zeroizing;

/// The fields of `CK_TOKEN_INFO` the toolkit uses, read without parsing the clock.
#[derive(Clone, Debug, Default)]
pub struct RawTokenInfo {
    /// CKA label, trailing blanks removed.
    pub label: String,
    /// manufacturerID, trailing blanks removed.
    pub manufacturer: String,
    /// model, trailing blanks removed.
    pub model: String,
    /// ulMinPinLen.
    pub min_pin: u64,
    /// ulMaxPinLen.
    pub max_pin: u64,
    /// CKF_TOKEN_INITIALIZED is set.
    pub initialized: bool,
}

/// The module's function table, with the library handle that keeps it mapped.
pub struct RawModule {
    _lib: libloading::Library,
    list: *const CK_FUNCTION_LIST,
}

// The table is immutable after C_GetFunctionList and the module is initialised with
// CKF_OS_LOCKING_OK, so calls from several threads are the module's to serialise.
unsafe impl Send for RawModule {}
unsafe impl Sync for RawModule {}

fn check(rv: CK_RV, function: Function) -> Result<(), CkError> {
    Rv::from(rv).into_result(function)
}

/// A blank-padded CK_UTF8CHAR field as text (some modules pad with NULs as well).
pub(super) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

impl RawModule {
    /// Loads the module at `path` (already loaded by cryptoki: the same mapping) and reads
    /// its function list.
    pub fn load(path: &Path) -> Result<Self, String> {
        // Loading a PKCS#11 module runs its initialisers; cryptoki has just done the same.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        unsafe {
            let get: libloading::Symbol<unsafe extern "C" fn(CK_FUNCTION_LIST_PTR_PTR) -> CK_RV> =
                lib.get(b"C_GetFunctionList\0")
                    .map_err(|e| format!("no C_GetFunctionList: {e}"))?;
            check(get(&mut list), Function::GetFunctionList).map_err(|e| e.to_string())?;
        }
        if list.is_null() {
            return Err("C_GetFunctionList returned no table".into());
        }
        Ok(RawModule { _lib: lib, list })
    }

    fn table(&self) -> &CK_FUNCTION_LIST {
        // Non-null (checked at load) and owned by the module, which stays mapped.
        unsafe { &*self.list }
    }

    /// `C_GetTokenInfo`, keeping only what the toolkit reads.
    // CK_ULONG is 64 bits here, 32 on other platforms: the casts are not always no-ops.
    #[allow(clippy::unnecessary_cast)]
    pub fn token_info(&self, slot: CK_SLOT_ID) -> Result<RawTokenInfo, CkError> {
        let f = self
            .table()
            .C_GetTokenInfo
            .ok_or(CkError::NullFunctionPointer)?;
        let mut info = CK_TOKEN_INFO::default();
        check(unsafe { f(slot, &mut info) }, Function::GetTokenInfo)?;
        Ok(RawTokenInfo {
            label: text(&info.label),
            manufacturer: text(&info.manufacturerID),
            model: text(&info.model),
            min_pin: info.ulMinPinLen as u64,
            max_pin: info.ulMaxPinLen as u64,
            initialized: info.flags & cryptoki_sys::CKF_TOKEN_INITIALIZED != 0,
        })
    }

    /// `C_DecryptInit` then one `C_Decrypt` into a buffer of `capacity` bytes (the modulus
    /// length for RSA): no length query.
    pub fn decrypt(
        &self,
        session: &Session,
        mechanism: &Mechanism<'_>,
        key: ObjectHandle,
        data: &[u8],
        capacity: usize,
    ) -> Result<Zeroizing<Vec<u8>>, CkError> {
        let t = self.table();
        let init = t.C_DecryptInit.ok_or(CkError::NullFunctionPointer)?;
        let decrypt = t.C_Decrypt.ok_or(CkError::NullFunctionPointer)?;
        let mut mech: CK_MECHANISM = mechanism.into();
        check(
            unsafe { init(session.handle(), &mut mech, key.handle()) },
            Function::DecryptInit,
        )?;
        let mut out = Zeroizing::new(vec![0u8; capacity]);
        let mut len: CK_ULONG = capacity as CK_ULONG;
        check(
            unsafe {
                decrypt(
                    session.handle(),
                    data.as_ptr() as *mut u8,
                    data.len() as CK_ULONG,
                    out.as_mut_ptr(),
                    &mut len,
                )
            },
            Function::Decrypt,
        )?;
        out.truncate(len as usize);
        Ok(out)
    }

    /// `C_SignInit`, `C_Login(CKU_CONTEXT_SPECIFIC)` with the user PIN, then one `C_Sign` into
    /// a buffer of `capacity` bytes: for keys with `CKA_ALWAYS_AUTHENTICATE`.
    pub fn sign_with_context_login(
        &self,
        session: &Session,
        mechanism: &Mechanism<'_>,
        key: ObjectHandle,
        pin: &Zeroizing<String>,
        data: &[u8],
        capacity: usize,
    ) -> Result<Vec<u8>, CkError> {
        let t = self.table();
        let init = t.C_SignInit.ok_or(CkError::NullFunctionPointer)?;
        let login = t.C_Login.ok_or(CkError::NullFunctionPointer)?;
        let sign = t.C_Sign.ok_or(CkError::NullFunctionPointer)?;
        let mut mech: CK_MECHANISM = mechanism.into();
        check(
            unsafe { init(session.handle(), &mut mech, key.handle()) },
            Function::SignInit,
        )?;
        let pin_bytes = Zeroizing::new(pin.as_bytes().to_vec());
        check(
            unsafe {
                login(
                    session.handle(),
                    CKU_CONTEXT_SPECIFIC,
                    pin_bytes.as_ptr() as *mut u8,
                    pin_bytes.len() as CK_ULONG,
                )
            },
            Function::Login,
        )?;
        let mut out = vec![0u8; capacity];
        let mut len: CK_ULONG = capacity as CK_ULONG;
        check(
            unsafe {
                sign(
                    session.handle(),
                    data.as_ptr() as *mut u8,
                    data.len() as CK_ULONG,
                    out.as_mut_ptr(),
                    &mut len,
                )
            },
            Function::Sign,
        )?;
        out.truncate(len as usize);
        Ok(out)
    }
}
