//! Shared set-up of the benchmarks: a throwaway two-tier CA in a folder.

use std::path::{Path, PathBuf};

use pki_core::ca::CaDir;
use pki_core::ca::IssuingCa;
use pki_core::keys::FileKey;
use pki_core::keys::KeyAlgorithm;
use pki_core::keys::{new_identity_file, KeySecret};
use pki_core::x509::Serial;
use pki_core::x509::Validity;
use pki_core::x509::{Profile, Subject, SubjectNames};
use rcgen::Issuer;
use time::OffsetDateTime;

/// Where benchmarks write: $BENCH_DIR, else target/bench (on the project's disk, not tmpfs).
pub fn bench_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench"));
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("bench dir");
    d
}

/// Makes a root and an intermediate of `alg` and imports the intermediate into `dir/ca`.
pub fn make_ca(dir: &Path, alg: KeyAlgorithm) -> (CaDir, KeySecret, String) {
    let now = OffsetDateTime::now_utc();
    let root_key = FileKey::generate(alg).unwrap();
    let v = Validity::within_issuer(3650, 9132, None, now).unwrap();
    let root = Profile::Root
        .params(
            &Subject::cn("bench root"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            alg,
            None,
        )
        .unwrap()
        .self_signed(&root_key)
        .unwrap();
    let int_key = FileKey::generate(alg).unwrap();
    let v = Validity::within_issuer(1800, 3653, None, now).unwrap();
    let issuer = Issuer::from_ca_cert_der(root.der(), &root_key).unwrap();
    let int = Profile::Intermediate
        .params(
            &Subject::cn("bench intermediate"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            alg,
            None,
        )
        .unwrap()
        .signed_by(&int_key, &issuer)
        .unwrap();
    let id = dir.join("identity.txt");
    new_identity_file(&id, true).unwrap();
    let secret = KeySecret::from_identity_file(&id).unwrap();
    let ca = CaDir::import(
        &dir.join("ca"),
        int.pem().as_bytes(),
        &int_key.to_pkcs8_pem(),
        &secret,
    )
    .unwrap();
    (ca, secret, root.pem())
}

#[allow(dead_code)]
pub fn open_signer(ca: &CaDir, secret: &KeySecret) -> IssuingCa<FileKey> {
    IssuingCa::open(ca, secret).unwrap()
}
