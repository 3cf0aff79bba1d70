//! Hardening of `issuer`: SIGKILL at random moments of a 10,000-leaf batch, four issuer
//! processes at once on one CA folder, and a full disk (a tiny tmpfs).
//!
//! The invariants checked after every event: every certificate file at a final name is
//! complete (leaf + intermediate, a matching PKCS#8 key beside it) and is in the ledger with
//! status `active` and its own path; serials never repeat; no common name has two active rows;
//! a complete leaf on disk is never replaced; ledger rows without a file exist only between a
//! crash and the next run, which voids them.
//!
//! The crash test's randomness comes from a printed seed; replay a run with
//! `HARDENING_SEED=<seed> cargo test -p e2e-tests --test e2e hardening:: -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::fixture::{ok, OpensslCa};
use e2e_tests::openssl::path_str as s;
use e2e_tests::serial::exclusive;

// ---------------------------------------------------------------------------------------------
// Helpers of this file
// ---------------------------------------------------------------------------------------------

/// A tiny deterministic generator (no extra dependency): Knuth's MMIX LCG, high bits out.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform-enough in `0..n` (0 when n is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A CA made by scripts/openssl-reference-ca.sh and imported, in its own folder under `base`.
fn new_ca(base: &Path, name: &str) -> OpensslCa {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    OpensslCa::new(&dir)
}

/// A batch file of `n` client leaves (p256) named `{prefix}-0` .. `{prefix}-{n-1}`.
fn write_batch_file(path: &Path, prefix: &str, n: usize) {
    let mut s = String::with_capacity(n * 56);
    for i in 0..n {
        s.push_str(&format!(
            "[[leaf]]\nprofile = \"client\"\ncn = \"{prefix}-{i}\"\nkey = \"p256\"\n\n"
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// One row of `issuer list --json`.
#[derive(Clone, Debug)]
struct Row {
    serial: String,
    status: String,
    profile: String,
    subject: String,
    cert_path: String,
}

/// The whole ledger, through `issuer list --json`.
fn ledger_rows(ca: &OpensslCa) -> Vec<Row> {
    let text = ca.ledger();
    let v: serde_json::Value = serde_json::from_str(&text).expect("issuer list --json is JSON");
    let field = |r: &serde_json::Value, k: &str| -> String {
        r[k].as_str()
            .unwrap_or_else(|| panic!("ledger row without '{k}': {r}"))
            .to_string()
    };
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| Row {
            serial: field(r, "serial"),
            status: field(r, "status"),
            profile: field(r, "profile"),
            subject: field(r, "subject"),
            cert_path: field(r, "cert_path"),
        })
        .collect()
}

/// A complete leaf found on disk.
#[derive(Clone, Debug)]
struct DiskLeaf {
    serial: String,
    crt: PathBuf,
}

/// What an output folder of `issuer batch` (OUT/<cn>/<role>.{crt,key}) holds.
#[derive(Debug, Default)]
struct Disk {
    /// cn -> the complete leaf at OUT/<cn>/<role>.crt
    leaves: BTreeMap<String, DiskLeaf>,
    /// complete keys at a final name without a certificate beside them (a kill between the
    /// key's rename and the certificate's)
    lone_keys: usize,
    /// temp files (`.<name>.tmp-*`), never at a final name
    temps: Vec<PathBuf>,
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Checks a private key file is a complete PKCS#8 PEM key; returns its SubjectPublicKeyInfo.
fn check_key(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: unreadable ({e})", path.display()));
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----\n")
            && text.ends_with("-----END PRIVATE KEY-----\n")
            && text.matches("-----BEGIN").count() == 1,
        "{} is not one complete PKCS#8 PEM key:\n{text}",
        path.display()
    );
    let key = pki_core::keys::FileKey::from_pkcs8_pem(&path.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{}: not a usable PKCS#8 key: {e}", path.display()));
    key.spki_der()
}

/// Checks a chain file is complete: exactly two certificates, the leaf for `cn` (role
/// `role`) and then the intermediate `inter_der`; the key beside it must match the leaf.
/// Returns the leaf's serial, as the ledger writes it.
fn check_chain(crt: &Path, key: &Path, cn: &str, inter_der: &[u8]) -> String {
    let bytes =
        std::fs::read(crt).unwrap_or_else(|e| panic!("{}: unreadable ({e})", crt.display()));
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.matches("-----BEGIN CERTIFICATE-----").count() == 2
            && text.matches("-----END CERTIFICATE-----").count() == 2
            && text.ends_with("-----END CERTIFICATE-----\n"),
        "{} is not two complete PEM certificates:\n{text}",
        crt.display()
    );
    let ders = pki_core::x509::pem_blocks(&crt.display().to_string(), &bytes, "CERTIFICATE")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ders.len(), 2, "{}", crt.display());
    assert_eq!(
        ders[1],
        inter_der,
        "{}: the second certificate is not the intermediate",
        crt.display()
    );
    let (rest, leaf) = x509_parser::parse_x509_certificate(&ders[0])
        .unwrap_or_else(|e| panic!("{}: leaf does not parse: {e}", crt.display()));
    assert!(rest.is_empty(), "{}: trailing bytes", crt.display());
    let leaf_cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default();
    assert_eq!(leaf_cn, cn, "{}: the leaf is for another cn", crt.display());
    assert!(
        key.exists(),
        "{} has no key beside it ({})",
        crt.display(),
        key.display()
    );
    assert!(
        check_key(key) == leaf.public_key().raw,
        "{} and {} do not match (the key is not the certificate's)",
        crt.display(),
        key.display()
    );
    pki_core::x509::Serial::from_bytes(leaf.raw_serial()).to_hex()
}

/// Scans OUT/<cn>/ folders of a batch (`role` = client, server or peer). Panics on anything
/// half-written at a final name or on any unexpected file.
fn scan_batch_out(out: &Path, role: &str, inter_der: &[u8]) -> Disk {
    let mut disk = Disk::default();
    let Ok(rd) = std::fs::read_dir(out) else {
        return disk;
    };
    let (crt_name, key_name) = (format!("{role}.crt"), format!("{role}.key"));
    for e in rd.map(Result::unwrap) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".issuer-batch.lock" {
            // The batch's lock file (one run at a time per OUT).
            continue;
        }
        if !e.file_type().unwrap().is_dir() {
            assert!(is_temp(&name), "unexpected file {}", e.path().display());
            disk.temps.push(e.path());
            continue;
        }
        let dir = e.path();
        let (crt, key) = (dir.join(&crt_name), dir.join(&key_name));
        for f in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let n = f.file_name().to_string_lossy().into_owned();
            if is_temp(&n) {
                disk.temps.push(f.path());
            } else {
                assert!(
                    n == crt_name || n == key_name,
                    "unexpected file {}",
                    f.path().display()
                );
            }
        }
        if crt.exists() {
            let serial = check_chain(&crt, &key, &name, inter_der);
            disk.leaves.insert(name, DiskLeaf { serial, crt });
        } else if key.exists() {
            check_key(&key);
            disk.lone_keys += 1;
        }
    }
    disk
}

/// How the ledger rows under one output folder stand.
#[derive(Debug, Default)]
struct LedgerUnder {
    active_on_disk: usize,
    /// active rows whose certificate file does not exist (the next run voids them)
    dangling: usize,
    void: usize,
}

/// Checks the ledger against what is on disk under `out`; `out_abs` is how the ledger spells
/// that folder. Every complete leaf on disk must be an active row with its own path; serials
/// never repeat; no cn has two active rows under `out`.
fn check_ledger(rows: &[Row], disk: &Disk, out_abs: &Path, profile: &str) -> LedgerUnder {
    let by_serial: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.serial.as_str(), r)).collect();
    assert_eq!(
        by_serial.len(),
        rows.len(),
        "a serial appears twice in the ledger"
    );
    let on_disk: BTreeSet<&str> = disk.leaves.values().map(|l| l.serial.as_str()).collect();
    assert_eq!(
        on_disk.len(),
        disk.leaves.len(),
        "two files on disk carry the same serial"
    );
    for (cn, leaf) in &disk.leaves {
        let row = by_serial.get(leaf.serial.as_str()).unwrap_or_else(|| {
            panic!(
                "{} (serial {}) is on disk but not in the ledger",
                leaf.crt.display(),
                leaf.serial
            )
        });
        assert_eq!(
            row.status,
            "active",
            "{} is on disk but its row is {}",
            leaf.crt.display(),
            row.status
        );
        assert_eq!(&row.subject, cn, "{}", leaf.crt.display());
        assert_eq!(row.profile, profile, "{}", leaf.crt.display());
        assert_eq!(
            Path::new(&row.cert_path),
            out_abs.join(cn).join(leaf.crt.file_name().unwrap()),
            "row {} names another file",
            row.serial
        );
    }
    let prefix = format!("{}/", out_abs.display());
    let mut st = LedgerUnder::default();
    let mut active_per_cn: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.cert_path.starts_with(&prefix)) {
        match r.status.as_str() {
            "active" => {
                *active_per_cn.entry(r.subject.as_str()).or_default() += 1;
                match disk.leaves.get(&r.subject) {
                    Some(l) if l.serial == r.serial => st.active_on_disk += 1,
                    Some(l) => panic!(
                        "active row {} for {} but the file there is serial {}",
                        r.serial, r.subject, l.serial
                    ),
                    None => {
                        assert!(
                            !Path::new(&r.cert_path).exists(),
                            "{} exists but was not scanned",
                            r.cert_path
                        );
                        st.dangling += 1;
                    }
                }
            }
            "void" => st.void += 1,
            other => panic!("row {} under {prefix} has status {other}", r.serial),
        }
    }
    let twice: Vec<_> = active_per_cn.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "cns with two active rows: {twice:?}");
    st
}

/// The `N issued, M already done, V stale ledger rows voided` figures of `issuer batch`.
fn batch_report(stdout: &str) -> (usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("batch "))
        .unwrap_or_else(|| panic!("no report line in:\n{stdout}"));
    let num = |after: &str| -> usize {
        let end = line
            .find(after)
            .unwrap_or_else(|| panic!("'{after}' not in: {line}"));
        line[..end]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("no number before '{after}' in: {line}"))
    };
    (
        num(" issued"),
        num(" already done"),
        num(" stale ledger rows voided"),
    )
}

fn intermediate_der(ca: &OpensslCa) -> Vec<u8> {
    let p = ca.reference.join("intermediate.crt");
    pki_core::x509::pem_blocks("intermediate", &std::fs::read(&p).unwrap(), "CERTIFICATE")
        .unwrap()
        .remove(0)
}

// ---------------------------------------------------------------------------------------------
// 1. Crash safety: kill -9 at 20 random moments of a 10,000-leaf batch
// ---------------------------------------------------------------------------------------------

#[test]
fn batch_survives_kill_nine_at_twenty_random_moments() {
    // The crash test times a full batch first and the kill moments are only meaningful if no
    // other heavy test competes for the two cores: one heavy test at a time.
    let _serial = exclusive();
    const N: usize = 10_000;
    const KILLS: usize = 20;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let batch = base.join("users.toml");
    write_batch_file(&batch, "user", N);

    // How long one whole run takes here, on a separate CA folder (its ledger stays out of the
    // checks), and how long a run that finds everything done takes (start-up, unlock, the
    // void scan, 10,000 existence checks, the final sync).
    let timing = new_ca(base, "timing");
    let tout = base.join("timing-out");
    let run_timed = || {
        let t = Instant::now();
        let o = ok(OpensslCa::issuer_command(
            &timing,
            &["batch", "--ca", s(&timing.ca), "--out", s(&tout), s(&batch)],
        )
        .output()
        .unwrap());
        (t.elapsed().as_millis() as u64, o)
    };
    let (full_ms, o) = run_timed();
    assert_eq!(batch_report(&o), (N, 0, 0), "{o}");
    let (idle_ms, o) = run_timed();
    assert_eq!(batch_report(&o), (0, N, 0), "{o}");
    drop(timing);

    let seed = std::env::var("HARDENING_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!(
        "crash test: seed {seed} (replay: HARDENING_SEED={seed}); one full run of {N} leaves \
         takes {full_ms} ms, a run with nothing to do {idle_ms} ms"
    );
    let mut rng = Lcg(seed);
    // Twenty kill moments spread over the batch's whole work: each round resumes the previous
    // one, and its moment is a random point of progress (uniform over the first 95% of the
    // leaves, sorted), turned into a sleep at the measured rate, plus a random part of the
    // start-up time. So kills land in start-up, the void scan, signing, the ledger commit, the
    // file writes and the final sync, from the first chunk to the last, and the final re-run
    // usually still has work left. The full run's time includes its final sync, so its rate is a lower
    // bound; the rate is refined from the progress the killed runs made.
    let rate0 = N as f64 / full_ms.max(1) as f64; // leaves per ms
    let mut targets: Vec<u64> = (0..KILLS).map(|_| rng.below(N as u64 * 19 / 20)).collect();
    targets.sort_unstable();
    let (mut progress_total, mut work_ms_total) = (0f64, 0f64);

    let ca = new_ca(base, "main");
    let inter = intermediate_der(&ca);
    let out = base.join("out");
    // The ledger names files by the folder's one real path, whatever spelling OUT had.
    let out_abs = std::fs::canonicalize(base).unwrap().join("out");
    // The operator re-runs an interrupted batch spelling OUT however the shell gave it: the
    // re-run must still recognise (and void) the rows the kill left. The issuer runs in
    // `main/`, beside `out/`.
    std::os::unix::fs::symlink(&out, base.join("out-link")).unwrap();
    let spellings: Vec<String> = vec![
        s(&out).to_string(),
        "../out".into(),
        "../out/".into(),
        format!("{}/", out.display()),
        format!("{}/./out", base.display()),
        "../main/../out".into(),
        format!("{}//out", base.display()),
        s(&base.join("out-link")).to_string(),
        "../out-link/".into(),
    ];
    let mut seen: BTreeMap<String, String> = BTreeMap::new(); // cn -> serial, once on disk
    let (mut last_disk, mut last_ledger) = (0, LedgerUnder::default());
    let mut killed = 0;
    for (round, target) in targets.iter().enumerate() {
        let rate = if work_ms_total > 0.0 {
            (progress_total / work_ms_total).max(rate0)
        } else {
            rate0
        };
        let ahead = target.saturating_sub(last_disk as u64);
        let sleep = rng.below(idle_ms + 1) + (ahead as f64 / rate) as u64;
        let spelled = &spellings[round % spellings.len()];
        let mut child = OpensslCa::issuer_command(
            &ca,
            &["batch", "--ca", s(&ca.ca), "--out", spelled, s(&batch)],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(sleep));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
        }
        let o = child.wait_with_output().unwrap();
        let how = if finished {
            assert!(
                o.status.success(),
                "round {round}: the batch failed on its own:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            "finished before the kill"
        } else if o.status.signal() == Some(9) {
            killed += 1;
            "killed"
        } else {
            // It ended between try_wait and kill.
            assert!(o.status.success(), "round {round}: {:?}", o.status);
            "finished just before the kill"
        };

        let disk = scan_batch_out(&out, "client", &inter);
        let st = check_ledger(&ledger_rows(&ca), &disk, &out_abs, "client");
        // A complete leaf is never replaced or removed by a later run.
        for (cn, serial) in &seen {
            let now = disk.leaves.get(cn).map(|l| &l.serial);
            assert_eq!(now, Some(serial), "round {round}: {cn} changed or vanished");
        }
        for (cn, l) in &disk.leaves {
            seen.insert(cn.clone(), l.serial.clone());
        }
        println!(
            "kill {:2}: --out {spelled:?}, target {target:5}, after {sleep:5} ms, {how:28} {:5} leaves complete, {} key(s) without a \
             certificate, {} temp file(s), ledger under OUT: {} active with file, {} active \
             without file, {} void",
            round + 1,
            disk.leaves.len(),
            disk.lone_keys,
            disk.temps.len(),
            st.active_on_disk,
            st.dangling,
            st.void
        );
        assert_eq!(st.active_on_disk, disk.leaves.len());
        if how == "killed" && sleep > idle_ms {
            progress_total += disk.leaves.len().saturating_sub(last_disk) as f64;
            work_ms_total += (sleep - idle_ms) as f64;
        }
        last_disk = disk.leaves.len();
        last_ledger = st;
    }
    println!("crash test: {killed} of {KILLS} runs were killed while running");

    // The re-run, not killed, finishes the batch: it skips exactly what is complete on disk and
    // voids exactly the rows a kill left without a file.
    let spelled = &spellings[KILLS % spellings.len()];
    let o = ok(OpensslCa::issuer_command(
        &ca,
        &["batch", "--ca", s(&ca.ca), "--out", spelled, s(&batch)],
    )
    .output()
    .unwrap());
    let (issued, skipped, voided) = batch_report(&o);
    println!("final run: {}", o.trim());
    assert_eq!(skipped, last_disk, "{o}");
    assert_eq!(voided, last_ledger.dangling, "{o}");
    assert_eq!(issued, N - last_disk, "{o}");

    let disk = scan_batch_out(&out, "client", &inter);
    let rows = ledger_rows(&ca);
    let st = check_ledger(&rows, &disk, &out_abs, "client");
    assert_eq!(disk.leaves.len(), N, "exactly {N} certificate files");
    let expected: BTreeSet<String> = (0..N).map(|i| format!("user-{i}")).collect();
    let got: BTreeSet<String> = disk.leaves.keys().cloned().collect();
    assert_eq!(got, expected, "one leaf per cn of the batch file");
    assert_eq!(disk.lone_keys, 0, "a key without its certificate is left");
    assert_eq!(st.active_on_disk, N, "{N} active rows under OUT");
    assert_eq!(st.dangling, 0);
    let active = rows.iter().filter(|r| r.status == "active").count();
    assert_eq!(active, N, "active rows in the whole ledger");
    for (cn, serial) in &seen {
        assert_eq!(&disk.leaves[cn].serial, serial, "{cn} was replaced");
    }
    println!(
        "crash test: final state {} certificate files, {} distinct serials, {} active rows, \
         {} void rows (ledger {} rows), {} temp file(s) left behind by the kills",
        disk.leaves.len(),
        disk.leaves
            .values()
            .map(|l| &l.serial)
            .collect::<BTreeSet<_>>()
            .len(),
        st.active_on_disk,
        st.void,
        rows.len(),
        disk.temps.len()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Concurrency: four issuer processes at once on one CA folder
// ---------------------------------------------------------------------------------------------

#[test]
fn four_issuer_processes_at_once_on_one_ca_folder() {
    // The crash test times a full batch first and the kill moments are only meaningful if no
    // other heavy test competes for the two cores: one heavy test at a time.
    let _serial = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let ca = new_ca(base, "ca");
    let inter = intermediate_der(&ca);
    const PER: usize = 1000;
    let names = ["a", "b", "c", "d"];

    // Four batches of 1,000 leaves, each into its own folder, all at once.
    let started = Instant::now();
    let kids: Vec<_> = names
        .iter()
        .map(|p| {
            let file = base.join(format!("{p}.toml"));
            write_batch_file(&file, p, PER);
            let out = base.join(format!("out-{p}"));
            OpensslCa::issuer_command(
                &ca,
                &["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&file)],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for (p, k) in names.iter().zip(kids) {
        let o = k.wait_with_output().unwrap();
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "batch {p} failed:\n{err}");
        assert!(
            !err.to_lowercase().contains("error"),
            "batch {p} said:\n{err}"
        );
        assert_eq!(batch_report(&out), (PER, 0, 0), "{out}");
    }
    println!(
        "concurrency: 4 batches of {PER} at once in {} ms",
        started.elapsed().as_millis()
    );
    let rows = ledger_rows(&ca);
    assert_eq!(rows.len(), 4 * PER, "4,000 rows in the ledger");
    let mut all = BTreeSet::new();
    for p in names {
        let out = base.join(format!("out-{p}"));
        let disk = scan_batch_out(&out, "client", &inter);
        assert_eq!(disk.leaves.len(), PER);
        assert!(disk.temps.is_empty(), "{:?}", disk.temps);
        let st = check_ledger(&rows, &disk, &std::path::absolute(&out).unwrap(), "client");
        assert_eq!((st.active_on_disk, st.dangling, st.void), (PER, 0, 0));
        all.extend(disk.leaves.into_values().map(|l| l.serial));
    }
    assert_eq!(all.len(), 4 * PER, "4,000 distinct serials");
    println!(
        "concurrency: {} distinct serials, all in the ledger",
        all.len()
    );

    // Four processes at once, each running 50 `issuer issue client` one after the other.
    const SINGLES: usize = 50;
    let started = Instant::now();
    let workers: Vec<_> = names
        .iter()
        .map(|w| {
            let cmds: Vec<Command> = (0..SINGLES)
                .map(|i| {
                    let out = base.join(format!("single/{w}-{i}"));
                    OpensslCa::issuer_command(
                        &ca,
                        &[
                            "issue",
                            "client",
                            "--ca",
                            s(&ca.ca),
                            "--out",
                            s(&out),
                            "--cn",
                            &format!("s{w}-{i}"),
                        ],
                    )
                })
                .collect();
            std::thread::spawn(move || {
                for mut c in cmds {
                    let o = c.output().unwrap();
                    let err = String::from_utf8_lossy(&o.stderr).into_owned();
                    assert!(o.status.success(), "issue failed:\n{err}");
                    assert!(!err.to_lowercase().contains("error"), "{err}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker failed");
    }
    println!(
        "concurrency: 4 x {SINGLES} single issues at once in {} ms",
        started.elapsed().as_millis()
    );
    let rows = ledger_rows(&ca);
    assert_eq!(rows.len(), 4 * PER + 4 * SINGLES);
    let by_serial: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.serial.as_str(), r)).collect();
    assert_eq!(by_serial.len(), rows.len(), "serials repeat in the ledger");
    let mut singles = BTreeSet::new();
    for w in names {
        for i in 0..SINGLES {
            let dir = base.join(format!("single/{w}-{i}"));
            let crt = dir.join("client.crt");
            let serial = check_chain(&crt, &dir.join("client.key"), &format!("s{w}-{i}"), &inter);
            let row = by_serial
                .get(serial.as_str())
                .unwrap_or_else(|| panic!("{} is not in the ledger", crt.display()));
            assert_eq!(row.status, "active");
            assert_eq!(
                Path::new(&row.cert_path),
                std::path::absolute(&crt).unwrap()
            );
            assert!(singles.insert(serial));
            let left: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n != "client.crt" && n != "client.key")
                .collect();
            assert!(left.is_empty(), "{}: {left:?}", dir.display());
        }
    }
    assert_eq!(singles.len(), 4 * SINGLES, "200 distinct serials");
    assert!(singles.is_disjoint(&all));
    println!(
        "concurrency: {} distinct serials from single issues; ledger {} rows",
        singles.len(),
        rows.len()
    );
}

/// Two `issuer batch` runs into one OUT at once: the second is refused while the first holds
/// the folder's lock (refusing is a correct outcome), and the result is exactly N leaves, each
/// in the ledger once.
#[test]
fn two_batches_into_one_out_at_once() {
    // The crash test times a full batch first and the kill moments are only meaningful if no
    // other heavy test competes for the two cores: one heavy test at a time.
    let _serial = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let ca = new_ca(base, "ca");
    let inter = intermediate_der(&ca);
    const N: usize = 2000;
    let file = base.join("b.toml");
    write_batch_file(&file, "u", N);
    let out = base.join("out");
    let kids: Vec<_> = (0..2)
        .map(|_| {
            OpensslCa::issuer_command(
                &ca,
                &["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&file)],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut failures = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        if !o.status.success() {
            // Refusing the second run is a correct outcome.
            failures += 1;
        }
    }
    assert!(failures < 2, "both runs failed");
    let disk = scan_batch_out(&out, "client", &inter);
    let st = check_ledger(
        &ledger_rows(&ca),
        &disk,
        &std::fs::canonicalize(&out).unwrap(),
        "client",
    );
    assert_eq!(
        (disk.leaves.len(), st.active_on_disk, st.dangling),
        (N, N, 0)
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Full disk: a tiny tmpfs
// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted for one test, unmounted on drop (even when the test panics).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax, e.g. 64k) at `dir`; Err(reason) if we cannot.
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Free blocks and the block size (statfs, through `stat -f`).
    fn free(&self) -> (u64, u64) {
        let o = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.0)
            .output()
            .unwrap();
        let t = String::from_utf8_lossy(&o.stdout);
        let mut it = t.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    }

    /// Fills the filesystem with one file so that exactly `blocks` blocks stay free.
    fn fill_leaving(&self, blocks: u64) {
        let filler = self.0.join("filler");
        let _ = std::fs::remove_file(&filler);
        let (free, bs) = self.free();
        assert!(free >= blocks, "only {free} blocks free");
        std::fs::write(&filler, vec![0u8; ((free - blocks) * bs) as usize]).unwrap();
        assert_eq!(
            self.free().0,
            blocks,
            "filler did not leave {blocks} blocks"
        );
    }

    fn unfill(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Every name in `dir` (empty when it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_full_disk_fails_cleanly() {
    // The crash test times a full batch first and the kill moments are only meaningful if no
    // other heavy test competes for the two cores: one heavy test at a time.
    let _serial = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let ca = new_ca(base, "ca");
    let inter = intermediate_der(&ca);
    let fs = match Tmpfs::mount(&base.join("small"), "64k") {
        Ok(m) => m,
        Err(reason) => {
            println!("full-disk test skipped: {reason}");
            return;
        }
    };
    let issue_server = |out: &Path| {
        ca.issuer(&[
            "issue",
            "server",
            "--ca",
            s(&ca.ca),
            "--out",
            s(out),
            "--cn",
            "etcd-1",
            "--ip",
            "127.0.0.1",
            "--dns",
            "etcd-1.example.internal",
            "--key",
            "rsa4096",
        ])
    };

    // One free block: the RSA-4096 key (3.2 KB) fits, the chain after it does not. Then no
    // free block: not even the key fits.
    for free in [1, 0] {
        fs.fill_leaving(free);
        let before = ca.ledger();
        let out = fs.0.join(format!("n-free{free}"));
        let o = issue_server(&out);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!o.status.success(), "issued onto a full disk:\n{err}");
        assert!(
            err.contains("No space left on device") && err.contains("issuer: error:"),
            "unclear message:\n{err}"
        );
        assert_eq!(
            err.lines().count(),
            1,
            "one error line, no panic or backtrace:\n{err}"
        );
        let left = names_in(&out);
        assert!(
            left.is_empty(),
            "{free} free block(s): left behind in {}: {left:?}",
            out.display()
        );
        assert_eq!(ca.ledger(), before, "the ledger changed");
        assert_eq!(fs.free().0, free, "space was not given back");
        println!("full disk, {free} block(s) free: {}", err.trim());
        // With room again, the very same command works: the failure left nothing in the way.
        fs.unfill();
        ok(issue_server(&out));
        let serial = check_chain(
            &out.join("server.crt"),
            &out.join("server.key"),
            "etcd-1",
            &inter,
        );
        let rows = ledger_rows(&ca);
        assert!(rows
            .iter()
            .any(|r| r.serial == serial && r.status == "active"));
    }

    // A batch onto a nearly full disk, failing in its second chunk of 512: the leaves that
    // reached the disk are complete and in the ledger, the rest left no file and no live row;
    // with room again the re-run finishes it.
    let big = match Tmpfs::mount(&base.join("big"), "8m") {
        Ok(m) => m,
        Err(reason) => panic!("the first tmpfs mounted but not the second: {reason}"),
    };
    const N: usize = 700;
    const FIT: u64 = 600; // two blocks per leaf (key, chain); the 601st key fits, its chain not
    let file = base.join("b.toml");
    write_batch_file(&file, "u", N);
    let bo = big.0.join("bo");
    let bo_abs = std::path::absolute(&bo).unwrap();
    big.fill_leaving(2 * FIT + 1);
    let rows_before = ledger_rows(&ca).len();
    let o = ca.issuer(&["batch", "--ca", s(&ca.ca), "--out", s(&bo), s(&file)]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "the batch succeeded on a full disk");
    assert!(
        err.contains("No space left on device") && err.contains("issuer: error:"),
        "unclear message:\n{err}"
    );
    let disk = scan_batch_out(&bo, "client", &inter);
    let rows = ledger_rows(&ca);
    let st = check_ledger(&rows, &disk, &bo_abs, "client");
    println!(
        "full disk, batch of {N}: {}; {} leaves on disk, {} keys without certificate, {} temp \
         files, ledger under OUT: {} active with file, {} without file",
        err.trim(),
        disk.leaves.len(),
        disk.lone_keys,
        disk.temps.len(),
        st.active_on_disk,
        st.dangling
    );
    assert!(
        disk.leaves.len() > 512 && disk.leaves.len() < N,
        "expected the failure in the second chunk, {} leaves on disk",
        disk.leaves.len()
    );
    assert_eq!(disk.lone_keys, 0, "a key without its certificate is left");
    assert!(disk.temps.is_empty(), "temp files left: {:?}", disk.temps);
    assert_eq!(
        st.dangling, 0,
        "rows for leaves that never reached the disk are still live"
    );
    assert_eq!(rows.len(), rows_before + disk.leaves.len());

    big.unfill();
    let o = ok(ca.issuer(&["batch", "--ca", s(&ca.ca), "--out", s(&bo), s(&file)]));
    let (issued, skipped, voided) = batch_report(&o);
    assert_eq!(
        (issued, skipped, voided),
        (N - disk.leaves.len(), disk.leaves.len(), st.dangling),
        "{o}"
    );
    let after = scan_batch_out(&bo, "client", &inter);
    let st = check_ledger(&ledger_rows(&ca), &after, &bo_abs, "client");
    assert_eq!(after.leaves.len(), N);
    assert_eq!((st.active_on_disk, st.dangling), (N, 0));
    for (cn, l) in &disk.leaves {
        assert_eq!(after.leaves[cn].serial, l.serial, "{cn} was replaced");
    }
    println!("full disk, batch re-run with room: {}", o.trim());
    drop(big);
    drop(fs);
}
