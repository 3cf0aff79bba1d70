//! What the token tests of pki-core share: a throwaway SoftHSM2 configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A SoftHSM2 configuration in `dir` with its own token folder; returns the file.
pub fn softhsm_conf(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    conf
}

/// A token labelled `label` (user PIN `1234-user`, SO PIN `1234-so`) in `conf`'s folder.
pub fn init_token(conf: &Path, label: &str) {
    let o = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", "1234-user", "--so-pin", "1234-so"])
        .env("SOFTHSM2_CONF", conf)
        .output()
        .expect("softhsm2-util (apt-get install softhsm2)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
