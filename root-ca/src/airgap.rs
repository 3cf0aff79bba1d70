//! The air-gap guard: the root key's machine must have no network. We read the kernel's view
//! of interfaces (/sys/class/net) rather than trusting a checklist.

use std::fs;

use crate::error::{Result, RootError};

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

/// Names of non-loopback interfaces that are administratively up.
pub fn interfaces_up() -> Vec<String> {
    let mut up = Vec::new();
    let Ok(entries) = fs::read_dir("/sys/class/net") else {
        return up;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let flags = fs::read_to_string(e.path().join("flags"))
            .ok()
            .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        if flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0 {
            up.push(name);
        }
    }
    up.sort();
    up
}

/// Refuses to go on while a network interface is up, unless the ceremony allows it.
pub fn check(allow_network: bool) -> Result<()> {
    if allow_network {
        return Ok(());
    }
    if let Some(iface) = interfaces_up().into_iter().next() {
        return Err(RootError::NetworkUp { iface });
    }
    Ok(())
}
