//! CSR intake: PEM and DER parsing, signature and policy checks must never panic or hang.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pki_core::x509::CheckedCsr::from_der("fuzz", data);
    let _ = pki_core::x509::CheckedCsr::from_pem("fuzz", data);
});
