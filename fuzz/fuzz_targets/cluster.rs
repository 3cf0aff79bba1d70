//! The etcd cluster file: parsing, validation, and everything derived from a valid one
//! (SANs, etcd.env, etcdctl.env, rbac.sh) must not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pki_core::etcd::ClusterFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = ClusterFile::parse("fuzz", text) {
        for m in &c.members {
            let _ = c.server_names(m);
            let _ = c.peer_names(m);
            let _ = c.member_env(m, false);
        }
        for cl in &c.clients {
            let _ = c.client_env(cl);
        }
        let _ = c.rbac_script();
    }
});
