//! Ceremony files: every kind must reject or accept arbitrary text without panicking.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use root_ca::ceremony::{self, CrlCeremony, InitCeremony, RevokeCeremony, SignCeremony};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let p = Path::new("fuzz.toml");
    let _ = ceremony::parse::<InitCeremony>(p, text);
    let _ = ceremony::parse::<SignCeremony>(p, text);
    let _ = ceremony::parse::<RevokeCeremony>(p, text);
    let _ = ceremony::parse::<CrlCeremony>(p, text);
});
