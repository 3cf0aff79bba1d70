//! M-of-N custody of the root's token PIN, and a backup of the root key that survives its
//! token, end to end on real SoftHSM2 tokens: `root-ca custody split` (3 of 5), ceremonies that
//! open the token with 3 custodians and refuse 2 or an altered share (naming it), a re-split,
//! the PIN nowhere on disk, in argv, the environment or the output; `root-ca backup` on one
//! token, `root-ca restore` into a fresh one, and certificates and CRLs signed by the restored
//! key checked against the old `root.crt` by the OpenSSL CLI.
//!
//! The custody PIN is rebuilt here independently of root-ca: the shares are decrypted with the
//! `age` CLI and interpolated by a short Python program (Lagrange over the P-256 group order),
//! and the PIN derived from the result must open the token with pkcs11-tool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e_tests::fixture::{fails_with, ok, run, snapshot_files, softhsm_token, workspace};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const NAMES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

struct Bench {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    conf: PathBuf,
}

impl Bench {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let conf = softhsm_token(&dir.join("tok"));
        for name in NAMES {
            let o = Command::new("age-keygen")
                .arg("-o")
                .arg(dir.join(format!("{name}.key")))
                .output()
                .expect("age-keygen (apt-get install age)");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        Bench {
            _tmp: tmp,
            dir,
            conf,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn recipient(&self, name: &str) -> String {
        self.read(&format!("{name}.key"))
            .lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .expect("age-keygen public key line")
            .to_string()
    }

    fn identity(&self, name: &str) -> String {
        self.path(&format!("{name}.key")).display().to_string()
    }

    fn root_ca_with(&self, conf: &Path, args: &[&str]) -> Output {
        run(&self.dir, "root-ca", args, &[("SOFTHSM2_CONF", conf)])
    }

    fn root_ca(&self, args: &[&str]) -> Output {
        self.root_ca_with(&self.conf, args)
    }

    /// `root-ca ARGS FILE --custodian-identity ...` for the named custodians.
    fn with_custodians(&self, args: &[&str], who: &[&str]) -> Output {
        let ids: Vec<String> = who.iter().map(|n| self.identity(n)).collect();
        let mut all: Vec<&str> = args.to_vec();
        for id in &ids {
            all.push("--custodian-identity");
            all.push(id);
        }
        self.root_ca(&all)
    }

    fn init(&self, backup: bool) {
        let f = self.write(
            "init.toml",
            &format!(
                "allow-network = true\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca\"\nkey-label = \"root-key\"\n[key]\nalgorithm = \"p256\"\nbackup = {backup}\n[root]\ncommon-name = \"Custody Test Root\"\ndays = 365\n[output]\ndir = \"root\"\n"
            ),
        );
        ok(self.root_ca(&[
            "init",
            f.to_str().unwrap(),
            "--pin-file",
            self.path("tok/user.pin").to_str().unwrap(),
        ]));
    }

    fn custody_file(
        &self,
        name: &str,
        threshold: usize,
        who: &[&str],
        new_secret: bool,
    ) -> PathBuf {
        let mut t = format!(
            "allow-network = true\nroot-dir = \"root\"\nthreshold = {threshold}\nnew-secret = {new_secret}\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca\"\nkey-label = \"root-key\"\n"
        );
        for n in who {
            t += &format!(
                "[[custodian]]\nname = \"{n}\"\nrecipient = \"{}\"\n",
                self.recipient(n)
            );
        }
        self.write(name, &t)
    }

    fn split_3_of_5(&self) -> String {
        let f = self.custody_file("custody.toml", 3, &NAMES, false);
        ok(self.root_ca(&[
            "custody",
            "split",
            f.to_str().unwrap(),
            "--pin-file",
            self.path("tok/user.pin").to_str().unwrap(),
        ]))
    }

    fn crl_file(&self, name: &str, token_label: &str) -> PathBuf {
        self.write(
            &format!("{name}.toml"),
            &format!(
                "allow-network = true\nroot-dir = \"root\"\nnext-update-days = 30\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"{token_label}\"\nkey-label = \"root-key\"\n[output]\ncrl = \"{name}.pem\"\n"
            ),
        )
    }

    /// Decrypts a custodian's share with the age CLI: (share number, share value) as hex.
    fn decrypt_share(&self, name: &str) -> String {
        let o = Command::new("age")
            .args(["-d", "-i", &self.identity(name)])
            .arg(self.path(&format!("root/custody/g1/{name}.share.age")))
            .output()
            .expect("age");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    }

    /// The token PIN rebuilt outside root-ca from three shares (Python, Lagrange at 0 modulo
    /// the P-256 group order, then the documented derivation).
    fn independent_pin(&self, who: [&str; 3]) -> String {
        let shares: Vec<String> = who
            .iter()
            .map(|n| {
                self.decrypt_share(n)
                    .lines()
                    .find_map(|l| l.strip_prefix("share: "))
                    .expect("share line")
                    .to_string()
            })
            .collect();
        let script = r#"
import hashlib, sys
n = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551
pts = [(int(s[:64], 16), int(s[64:], 16)) for s in sys.argv[1:]]
secret = 0
for i, (xi, yi) in enumerate(pts):
    num, den = 1, 1
    for j, (xj, _) in enumerate(pts):
        if i != j:
            num = num * (-xj) % n
            den = den * (xi - xj) % n
    secret = (secret + yi * num * pow(den, -1, n)) % n
h = hashlib.sha256(b"root-ca custody v1\0" + b"token user PIN" + b"\0" + secret.to_bytes(32, "big"))
print(h.hexdigest()[:32])
"#;
        let o = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(&shares)
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    }

    /// Whether `pin` opens the token (pkcs11-tool logs in and lists objects).
    fn pin_opens(&self, conf: &Path, label: &str, pin: &str) -> bool {
        Command::new("pkcs11-tool")
            .args([
                "--module",
                MODULE,
                "--token-label",
                label,
                "--login",
                "--pin",
                pin,
                "-O",
            ])
            .env("SOFTHSM2_CONF", conf)
            .output()
            .expect("pkcs11-tool")
            .status
            .success()
    }

    fn log(&self) -> Vec<serde_json::Value> {
        self.read("root/ceremony.log")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// Every byte of every file under `dir`, with its path, for a PIN scan.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    snapshot_files(dir)
        .into_iter()
        .filter(|(_, c)| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(p, _)| p.display().to_string())
        .collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs root-ca and reads its /proc/<pid>/cmdline and environ while it runs; returns the
/// output and every distinct argv and environment seen.
fn watch(mut cmd: Command) -> (Output, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn root-ca");
    let proc_dir = PathBuf::from(format!("/proc/{}", child.id()));
    let mut seen = Vec::new();
    loop {
        for f in ["cmdline", "environ"] {
            if let Ok(b) = std::fs::read(proc_dir.join(f)) {
                let s = String::from_utf8_lossy(&b).replace('\0', " ");
                if !s.is_empty() && !seen.contains(&s) {
                    seen.push(s);
                }
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
    }
    (child.wait_with_output().expect("output"), seen)
}

#[test]
fn three_of_five_custodians_open_the_token_two_or_an_altered_share_do_not() {
    let b = Bench::new();
    b.init(false);
    let old_pin = b.read("tok/user.pin").trim().to_string();
    let out = b.split_3_of_5();
    assert!(
        out.contains("custody generation 1: 3 of 5 custodians"),
        "{out}"
    );
    assert!(out.contains("the old PIN no longer opens it"), "{out}");

    // The split replaced the token PIN: the operator's PIN opens nothing any more, and the PIN
    // rebuilt independently from three shares opens the token.
    assert!(!b.pin_opens(&b.conf, "root-ca", &old_pin));
    let pin = b.independent_pin(["alice", "carol", "erin"]);
    assert_eq!(pin.len(), 32);
    assert!(
        b.pin_opens(&b.conf, "root-ca", &pin),
        "the rebuilt PIN must open the token"
    );
    assert_eq!(pin, b.independent_pin(["bob", "dave", "erin"]));

    // Share files: one per custodian, 0600, encrypted to them, with a printable sheet.
    use std::os::unix::fs::PermissionsExt;
    for n in NAMES {
        for ext in ["age", "txt"] {
            let p = b.path(&format!("root/custody/g1/{n}.share.{ext}"));
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let sheet = b.read(&format!("root/custody/g1/{n}.share.txt"));
        assert!(
            sheet.contains(&format!("custodian:          {n}")),
            "{sheet}"
        );
        assert!(
            sheet.contains("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{sheet}"
        );
        assert!(
            !sheet.contains("share: "),
            "the sheet must not hold the share in clear"
        );
    }

    // The operator's PIN sources are refused once the root is under custody.
    let crl = b.crl_file("crl-1", "root-ca");
    fails_with(
        b.root_ca(&[
            "crl",
            crl.to_str().unwrap(),
            "--pin-file",
            b.path("tok/user.pin").to_str().unwrap(),
        ]),
        "is held in custody",
    );

    // Two custodians: refused, nothing written, nothing logged.
    let before = snapshot_files(&b.path("root"));
    let err = fails_with(
        b.with_custodians(&["crl", crl.to_str().unwrap()], &["alice", "bob"]),
        "2 of the 3 custodian shares",
    );
    assert!(err.contains("alice, bob"), "{err}");
    assert_eq!(before, snapshot_files(&b.path("root")));
    assert!(!b.path("crl-1.pem").exists());

    // Three custodians: the CRL is signed, and the log names them.
    let mut cmd = Command::new(e2e_tests::fixture::tool("root-ca"));
    cmd.current_dir(&b.dir)
        .env("SOFTHSM2_CONF", &b.conf)
        .env_remove("ROOT_CA_PIN")
        .args(["crl", crl.to_str().unwrap()]);
    for n in ["alice", "carol", "erin"] {
        cmd.arg("--custodian-identity").arg(b.identity(n));
    }
    let (o, seen) = watch(cmd);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        seen.iter()
            .any(|s| s.contains("root-ca") && s.contains("crl")),
        "{seen:?}"
    );
    for s in &seen {
        assert!(
            !s.contains(&pin),
            "the PIN is in /proc/<pid>/cmdline or environ: {s}"
        );
    }
    assert!(!text(&o).contains(&pin));
    let log = b.log();
    let quorum = log
        .iter()
        .rev()
        .find(|r| r["op"] == "custody-quorum")
        .expect("custody-quorum record");
    assert_eq!(quorum["for"], "crl");
    assert_eq!(
        quorum["custodians"],
        serde_json::json!(["alice", "carol", "erin"])
    );
    assert_eq!(log.last().unwrap()["op"], "crl-signed");
    let (okv, _, verr) = e2e_tests::openssl::try_openssl(
        &b.dir,
        &[
            "crl",
            "-in",
            "crl-1.pem",
            "-CAfile",
            "root/root.crt",
            "-noout",
        ],
    );
    assert!(okv && verr.contains("verify OK"), "{verr}");

    // A share altered after decryption (re-encrypted to its custodian): refused, named.
    let plain = b.decrypt_share("carol");
    let line = plain.lines().find(|l| l.starts_with("share: ")).unwrap();
    let last = line.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &line[..line.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let altered = plain.replace(line, &flipped);
    let carol_share = b.path("root/custody/g1/carol.share.age");
    let original = std::fs::read(&carol_share).unwrap();
    let mut age = Command::new("age")
        .args(["-a", "-r", &b.recipient("carol"), "-o"])
        .arg(&carol_share)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(age.stdin.as_mut().unwrap(), altered.as_bytes()).unwrap();
    assert!(age.wait().unwrap().success());
    let crl2 = b.crl_file("crl-2", "root-ca");
    let err = fails_with(
        b.with_custodians(
            &["crl", crl2.to_str().unwrap()],
            &["alice", "carol", "erin"],
        ),
        "the share of custodian 'carol' (share 3",
    );
    assert!(err.contains("Feldman commitments"), "{err}");
    assert!(!b.path("crl-2.pem").exists());
    // Carol checks her share herself and learns the same.
    fails_with(
        b.root_ca(&[
            "custody",
            "verify",
            "--root-dir",
            "root",
            "--identity",
            &b.identity("carol"),
        ]),
        "custodian 'carol'",
    );
    let v = ok(b.root_ca(&[
        "custody",
        "verify",
        "--root-dir",
        "root",
        "--identity",
        &b.identity("bob"),
    ]));
    assert!(v.contains("share 2 of custodian 'bob' is valid"), "{v}");

    // A damaged ciphertext is named too.
    std::fs::write(&carol_share, &original).unwrap();
    let dave_share = b.path("root/custody/g1/dave.share.age");
    let mut bytes = std::fs::read(&dave_share).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    std::fs::write(&dave_share, &bytes).unwrap();
    fails_with(
        b.with_custodians(&["crl", crl2.to_str().unwrap()], &["dave", "alice", "bob"]),
        "custodian 'dave'",
    );
    // A stranger's identity is named as no custodian.
    let stranger = b.path("stranger.key");
    assert!(Command::new("age-keygen")
        .arg("-o")
        .arg(&stranger)
        .output()
        .unwrap()
        .status
        .success());
    let stranger_id = stranger.display().to_string();
    fails_with(
        b.root_ca(&[
            "crl",
            crl2.to_str().unwrap(),
            "--custodian-identity",
            &stranger_id,
        ]),
        "is not a custodian of custody generation 1",
    );
    // The same custodian twice counts once.
    fails_with(
        b.with_custodians(&["crl", crl2.to_str().unwrap()], &["alice", "alice", "bob"]),
        "custodian 'alice' presented their share twice",
    );

    // With carol's share restored, three custodians work again.
    ok(b.with_custodians(&["crl", crl2.to_str().unwrap()], &["carol", "bob", "alice"]));

    // A root made without backup cannot be backed up.
    let bf = b.write(
        "backup.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca\"\nkey-label = \"root-key\"\n[output]\nbackup = \"root-key.backup\"\n"),
    );
    fails_with(
        b.with_custodians(
            &["backup", bf.to_str().unwrap()],
            &["alice", "bob", "carol"],
        ),
        "can never leave its token",
    );

    // Re-split: erin leaves, 2 of 4; the old generation's files are gone, the new quorum
    // opens the token, and the log records who re-split and who holds shares now.
    let rf = b.custody_file("resplit.toml", 2, &["alice", "bob", "carol", "dave"], false);
    // dave's g1 share was damaged above; the re-split is done by three others.
    let out = ok(b.with_custodians(
        &["custody", "resplit", rf.to_str().unwrap()],
        &["erin", "alice", "bob"],
    ));
    assert!(
        out.contains("custody generation 2: 2 of 4 custodians"),
        "{out}"
    );
    assert!(!b.path("root/custody/g1").exists());
    let crl3 = b.crl_file("crl-3", "root-ca");
    fails_with(
        b.with_custodians(&["crl", crl3.to_str().unwrap()], &["erin", "alice"]),
        "is not a custodian of custody generation 2",
    );
    ok(b.with_custodians(&["crl", crl3.to_str().unwrap()], &["dave", "carol"]));
    let resplit = b
        .log()
        .into_iter()
        .find(|r| r["op"] == "custody-resplit")
        .unwrap();
    assert_eq!(
        resplit["quorum"],
        serde_json::json!(["erin", "alice", "bob"])
    );
    assert_eq!(resplit["generation"], 2);
    ok(b.root_ca(&["log", "verify", "root"]));

    // The PIN is nowhere on disk: not in the root folder, the ceremony files, the token store
    // or anything else the test wrote.
    let found = files_containing(&b.dir, &pin);
    assert!(found.is_empty(), "the PIN is in {found:?}");
}

#[test]
fn a_backup_on_one_token_restores_into_a_fresh_token_and_signs_for_the_old_root() {
    let b = Bench::new();
    b.init(true);
    b.split_3_of_5();
    let pin = b.independent_pin(["alice", "bob", "carol"]);

    let bf = b.write(
        "backup.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca\"\nkey-label = \"root-key\"\n[output]\nbackup = \"root-key.backup\"\n"),
    );
    let so_pin = b.path("tok/so.pin").display().to_string();
    fails_with(
        b.with_custodians(
            &["backup", bf.to_str().unwrap(), "--so-pin-file", &so_pin],
            &["alice", "bob"],
        ),
        "2 of the 3 custodian shares",
    );
    // The key may be wrapped only under a key the security officer made trusted: without the
    // SO, or with a wrong SO PIN, there is no backup.
    fails_with(
        b.with_custodians(
            &["backup", bf.to_str().unwrap()],
            &["alice", "dave", "erin"],
        ),
        "no security officer PIN",
    );
    let wrong_so = b.path("wrong-so.pin");
    e2e_tests::secret::write_secret(&wrong_so, "0000000000\n");
    fails_with(
        b.with_custodians(
            &[
                "backup",
                bf.to_str().unwrap(),
                "--so-pin-file",
                wrong_so.to_str().unwrap(),
            ],
            &["alice", "dave", "erin"],
        ),
        "security officer login",
    );
    assert!(!b.path("root-key.backup").exists());
    let out = ok(b.with_custodians(
        &["backup", bf.to_str().unwrap(), "--so-pin-file", &so_pin],
        &["alice", "dave", "erin"],
    ));
    assert!(out.contains("backup written"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(b.path("root-key.backup"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let backup = b.read("root-key.backup");
    assert!(
        backup.contains("mechanism = \"CKM_AES_KEY_WRAP_PAD\""),
        "{backup}"
    );
    // Never overwritten.
    fails_with(
        b.with_custodians(
            &["backup", bf.to_str().unwrap(), "--so-pin-file", &so_pin],
            &["alice", "dave", "erin"],
        ),
        "already exists",
    );

    // The token is lost. A fresh token, with its own initial PIN.
    let tok2 = b.path("tok2");
    let o = Command::new("bash")
        .arg(workspace().join("softhsm/new-token.sh"))
        .arg(&tok2)
        .arg("root-ca-2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conf2 = tok2.join("softhsm2.conf");
    let rf = b.write(
        "restore.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca-2\"\nkey-label = \"root-key\"\n[input]\nbackup = \"root-key.backup\"\n"),
    );
    let pin2 = tok2.join("user.pin").display().to_string();
    let restore_args = |who: &[&str]| {
        let mut a = vec![
            "restore".to_string(),
            rf.display().to_string(),
            "--pin-file".into(),
            pin2.clone(),
        ];
        for n in who {
            a.push("--custodian-identity".into());
            a.push(b.identity(n));
        }
        a
    };
    let args = restore_args(&["bob", "carol"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_with(b.root_ca_with(&conf2, &args), "2 of the 3 custodian shares");
    let args = restore_args(&["bob", "carol", "dave"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(b.root_ca_with(&conf2, &args));
    assert!(
        out.contains("restored: token 'root-ca-2' holds the root key"),
        "{out}"
    );
    // The fresh token now takes the custody PIN, not its initial one.
    assert!(b.pin_opens(&conf2, "root-ca-2", &pin));
    assert!(!b.pin_opens(
        &conf2,
        "root-ca-2",
        std::fs::read_to_string(tok2.join("user.pin"))
            .unwrap()
            .trim()
    ));

    // The restored key signs a CRL and an intermediate that the old root.crt verifies
    // (OpenSSL, an implementation independent of ours).
    let crl = b.crl_file("crl-restored", "root-ca-2");
    let o = run(
        &b.dir,
        "root-ca",
        &[
            "crl",
            crl.to_str().unwrap(),
            "--custodian-identity",
            &b.identity("erin"),
            "--custodian-identity",
            &b.identity("alice"),
            "--custodian-identity",
            &b.identity("carol"),
        ],
        &[("SOFTHSM2_CONF", &conf2)],
    );
    ok(o);
    let (okv, _, verr) = e2e_tests::openssl::try_openssl(
        &b.dir,
        &[
            "crl",
            "-in",
            "crl-restored.pem",
            "-CAfile",
            "root/root.crt",
            "-noout",
        ],
    );
    assert!(okv && verr.contains("verify OK"), "{verr}");

    let (okk, _, e) = e2e_tests::openssl::try_openssl(
        &b.dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "int.key",
        ],
    );
    assert!(okk, "{e}");
    let (okr, _, e) = e2e_tests::openssl::try_openssl(
        &b.dir,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/CN=Restored Intermediate",
            "-out",
            "int.csr",
        ],
    );
    assert!(okr, "{e}");
    let spki = Command::new("bash")
        .arg("-c")
        .arg("openssl req -in int.csr -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1")
        .current_dir(&b.dir)
        .output()
        .unwrap();
    let fp = String::from_utf8(spki.stdout).unwrap().trim().to_string();
    let sf = b.write(
        "sign.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca-2\"\nkey-label = \"root-key\"\n[request]\ncsr = \"int.csr\"\nkey-fingerprint = \"{fp}\"\n[certificate]\ndays = 100\n[output]\ncertificate = \"int.crt\"\n"),
    );
    ok(run(
        &b.dir,
        "root-ca",
        &[
            "sign",
            sf.to_str().unwrap(),
            "--custodian-identity",
            &b.identity("dave"),
            "--custodian-identity",
            &b.identity("bob"),
            "--custodian-identity",
            &b.identity("erin"),
        ],
        &[("SOFTHSM2_CONF", &conf2)],
    ));
    let (okv, vout, verr) =
        e2e_tests::openssl::try_openssl(&b.dir, &["verify", "-CAfile", "root/root.crt", "int.crt"]);
    assert!(okv && vout.contains("int.crt: OK"), "{vout}{verr}");

    // The transport identity came back too: a request bundle encrypted to the recipient
    // published at init opens on the new token, and the response installs against the pinned
    // root fingerprint.
    ok(run(
        &b.dir,
        "intermediate-ca",
        &["new-identity", "ica-id.txt"],
        &[],
    ));
    let req = ok(run(
        &b.dir,
        "intermediate-ca",
        &[
            "request",
            "--dir",
            "ica",
            "--to-file",
            "root/transport.recipient",
            "--out",
            "req.age",
            "--identity",
            "ica-id.txt",
        ],
        &[],
    ));
    let req_fp = req
        .lines()
        .find_map(|l| l.strip_prefix("CSR key fingerprint (SHA-256 of the public key): "))
        .expect("fingerprint line")
        .to_string();
    let bf2 = b.write(
        "sign-bundle.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\n[token]\nmodule = \"{MODULE}\"\ntoken-label = \"root-ca-2\"\nkey-label = \"root-key\"\n[request]\nbundle = \"req.age\"\nkey-fingerprint = \"{req_fp}\"\n[certificate]\ndays = 100\n[output]\nresponse = \"resp.age\"\n"),
    );
    ok(run(
        &b.dir,
        "root-ca",
        &[
            "sign",
            bf2.to_str().unwrap(),
            "--custodian-identity",
            &b.identity("carol"),
            "--custodian-identity",
            &b.identity("dave"),
            "--custodian-identity",
            &b.identity("alice"),
        ],
        &[("SOFTHSM2_CONF", &conf2)],
    ));
    let root_fp = e2e_tests::openssl::openssl(
        &b.dir,
        &[
            "x509",
            "-in",
            "root/root.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let root_fp = root_fp.trim().split('=').nth(1).unwrap().to_string();
    ok(run(
        &b.dir,
        "intermediate-ca",
        &[
            "install",
            "resp.age",
            "--dir",
            "ica",
            "--identity",
            "ica-id.txt",
            "--root-fingerprint",
            &root_fp,
        ],
        &[],
    ));

    // Revoking it is a decision of M custodians too, though the token is not opened.
    let serial =
        e2e_tests::openssl::openssl(&b.dir, &["x509", "-in", "int.crt", "-noout", "-serial"]);
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let vf = b.write(
        "revoke.toml",
        &format!("allow-network = true\nroot-dir = \"root\"\nserial = \"{serial}\"\nreason = \"superseded\"\n"),
    );
    fails_with(
        b.with_custodians(&["revoke", vf.to_str().unwrap()], &["alice", "bob"]),
        "2 of the 3 custodian shares",
    );
    assert!(b.read("root/index.toml").contains("status = \"active\""));
    ok(b.with_custodians(&["revoke", vf.to_str().unwrap()], &["alice", "bob", "erin"]));
    assert!(b.read("root/index.toml").contains("status = \"revoked\""));
    let log = b.log();
    let n = log.len();
    assert_eq!(log[n - 2]["op"], "custody-quorum");
    assert_eq!(log[n - 2]["for"], "revoke");
    assert_eq!(log[n - 1]["op"], "intermediate-revoked");

    let log = b.log();
    let restored = log.iter().find(|r| r["op"] == "root-key-restored").unwrap();
    assert_eq!(restored["token"], "root-ca-2");
    assert_eq!(
        restored["custodians"],
        serde_json::json!(["bob", "carol", "dave"])
    );
    ok(b.root_ca(&["log", "verify", "root"]));
    let found = files_containing(&b.dir, &pin);
    assert!(found.is_empty(), "the PIN is in {found:?}");
}
