//! Review findings: records and files (issue 12 items 7, 8, 9, 10, 11, 17 and the issuer parts
//! of 19). Each test runs the released binaries on an OpenSSL-made CA brought under management,
//! and checks files, modes and the ledger as an operator would see them.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use e2e_tests::fixture::{ok, tool, OpensslCa};
use e2e_tests::openssl::{openssl, path_str as s};
use e2e_tests::snapshot::{assert_snapshot, normalize};
use e2e_tests::state::State;

fn new_ca() -> (tempfile::TempDir, OpensslCa) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = OpensslCa::new(tmp.path());
    (tmp, ca)
}

fn run(ca: &OpensslCa, args: &[&str]) -> Output {
    OpensslCa::issuer_command(ca, args).output().unwrap()
}

/// Runs with the injected failures `points` (debug builds only; see pki-core's failpoint).
fn run_failing(ca: &OpensslCa, points: &str, args: &[&str]) -> Output {
    OpensslCa::issuer_command(ca, args)
        .env("PKI_FAILPOINTS", points)
        .output()
        .unwrap()
}

/// Asserts a refusal and pins its message.
fn refused(o: &Output, snapshot: &str, tmp: &Path) {
    assert!(
        !o.status.success(),
        "expected a refusal, got success:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(o.status.code(), Some(1), "an error, not a crash: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_snapshot(snapshot, &normalize(&err, &[tmp]));
}

fn rows(ca: &OpensslCa) -> Vec<serde_json::Value> {
    serde_json::from_str(&ca.ledger()).unwrap()
}

fn field<'a>(r: &'a serde_json::Value, k: &str) -> &'a str {
    r[k].as_str().unwrap_or("")
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn write_batch(path: &Path, cns: &[&str]) {
    let text: String = cns
        .iter()
        .map(|cn| format!("[[leaf]]\nprofile = \"client\"\ncn = \"{cn}\"\nkey = \"p256\"\n\n"))
        .collect();
    std::fs::write(path, text).unwrap();
}

/// The serial of the first certificate in `crt`, upper-case hex as the ledger has it.
fn serial_of(crt: &Path) -> String {
    let out = openssl(
        crt.parent().unwrap(),
        &["x509", "-noout", "-serial", "-in", s(crt)],
    );
    out.trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_uppercase()
}

/// Asserts that `dir/client.crt` is a complete leaf whose key `dir/client.key` matches it.
fn assert_complete(dir: &Path) {
    let crt = dir.join("client.crt");
    let key = dir.join("client.key");
    let a = openssl(dir, &["x509", "-noout", "-pubkey", "-in", s(&crt)]);
    let b = openssl(dir, &["pkey", "-pubout", "-in", s(&key)]);
    assert_eq!(a, b, "{}: key and certificate differ", dir.display());
}

fn active_for(rows: &[serde_json::Value], cert: &Path) -> Vec<String> {
    let abs = std::fs::canonicalize(cert.parent().unwrap())
        .map(|d| d.join(cert.file_name().unwrap()))
        .unwrap_or_else(|_| std::path::absolute(cert).unwrap());
    rows.iter()
        .filter(|r| field(r, "status") == "active" && Path::new(field(r, "cert_path")) == abs)
        .map(|r| field(r, "serial").to_string())
        .collect()
}

fn same_serial(a: &str, b: &str) -> bool {
    a.trim_start_matches('0')
        .eq_ignore_ascii_case(b.trim_start_matches('0'))
}

// ---------------------------------------------------------------------------------------------
// Item 7: key files cannot be made readable through the output folder
// ---------------------------------------------------------------------------------------------

/// The review's reproduction: temp files planted (0666 files, and symlinks to a file the
/// attacker can read) at every name the old `.<name>.tmp-<pid>` scheme could use next. The key
/// must still be a regular 0600 file, and nothing may be written through a symlink.
#[test]
fn item7_planted_temp_files_cannot_make_a_key_readable() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("out");
    let (plain, linked) = (out.join("u1"), out.join("u2"));
    for d in [&out, &plain, &linked] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let stolen = tmp.path().join("stolen");
    std::fs::create_dir(&stolen).unwrap();
    // pids are handed out in order: the batch's pid is just after this probe's.
    let base = Command::new("true").spawn().unwrap().id();
    for pid in base..base + 3000 {
        for name in ["client.key", "client.crt"] {
            let f = plain.join(format!(".{name}.tmp-{pid}"));
            std::fs::write(&f, b"").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
            let target = stolen.join(format!("{name}-{pid}"));
            symlink(&target, linked.join(format!(".{name}.tmp-{pid}"))).unwrap();
        }
    }
    let batch = tmp.path().join("batch.toml");
    write_batch(&batch, &["u1", "u2"]);
    ok(run(
        &ca,
        &["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&batch)],
    ));

    for d in [&plain, &linked] {
        let key = d.join("client.key");
        let meta = std::fs::symlink_metadata(&key).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{} is not a regular file",
            key.display()
        );
        assert_eq!(mode(&key), 0o600, "{}", key.display());
        assert!(!std::fs::symlink_metadata(d.join("client.crt"))
            .unwrap()
            .is_symlink());
        assert_complete(d);
    }
    let leaked: Vec<_> = std::fs::read_dir(&stolen).unwrap().flatten().collect();
    assert!(
        leaked.is_empty(),
        "written through a planted symlink: {:?}",
        leaked.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
}

/// Output folders that group or others may write to are refused, before anything is signed,
/// recorded or written: `issuer batch --out`, a leaf folder inside it, `issuer issue --out`.
#[test]
fn item7_output_folder_writable_by_others_is_refused() {
    let (tmp, ca) = new_ca();
    let batch = tmp.path().join("batch.toml");
    write_batch(&batch, &["u1", "u2"]);
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();

    let before = State::capture(tmp.path(), &[&ca.ca]);
    let o = run(
        &ca,
        &["batch", "--ca", s(&ca.ca), "--out", s(&open), s(&batch)],
    );
    refused(&o, "trust-7-batch-out-0777", tmp.path());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "batch into a 0777 OUT",
    );

    let o = run(
        &ca,
        &[
            "issue",
            "client",
            "--ca",
            s(&ca.ca),
            "--out",
            s(&open),
            "--cn",
            "u1",
        ],
    );
    refused(&o, "trust-7-issue-out-0777", tmp.path());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "issue into a 0777 OUT",
    );

    // A private OUT with one leaf folder others may write to (0775: group-writable).
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("u2")).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(out.join("u2"), std::fs::Permissions::from_mode(0o775)).unwrap();
    let before = State::capture(tmp.path(), &[&ca.ca]);
    let o = run(
        &ca,
        &["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&batch)],
    );
    refused(&o, "trust-7-batch-leaf-folder-0775", tmp.path());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "batch, 0775 leaf folder",
    );
    assert!(
        !out.join("u1").exists(),
        "no leaf of the refused batch was written"
    );
}

/// A killed run's temp files (its pid is gone) are removed by the next run in that folder; a
/// live writer's and files that only look alike are left alone.
#[test]
fn item7_temp_files_of_a_killed_run_are_swept() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("out");
    let leaf = out.join("u1");
    std::fs::create_dir_all(&leaf).unwrap();
    for d in [&out, &leaf] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Above pid_max: no live process can have it.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dead = pid_max + 1;
    let left = [
        format!(".client.key.tmp-{dead}"),
        format!(".client.crt.tmp-{dead}-0123456789abcdef"),
    ];
    let kept = [
        format!(".client.key.tmp-{}-0123456789abcdef", std::process::id()),
        ".notes.tmp-draft".to_string(),
        "client.key.tmp-1".to_string(),
    ];
    for n in left.iter().chain(&kept) {
        std::fs::write(leaf.join(n), b"secret").unwrap();
    }
    std::fs::write(out.join(format!(".batch.toml.tmp-{dead}")), b"").unwrap();
    let batch = tmp.path().join("batch.toml");
    write_batch(&batch, &["u1"]);
    let stdout = ok(run(
        &ca,
        &["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&batch)],
    ));
    assert!(
        stdout.contains("3 temp file(s) left by a killed run removed"),
        "{stdout}"
    );
    for n in &left {
        assert!(!leaf.join(n).exists(), "{n} was not swept");
    }
    assert!(!out.join(format!(".batch.toml.tmp-{dead}")).exists());
    for n in &kept {
        assert!(leaf.join(n).exists(), "{n} is not ours to remove");
    }
    assert_complete(&leaf);
}

// ---------------------------------------------------------------------------------------------
// Item 8: a batch re-run never voids or re-issues a leaf that may be deployed
// ---------------------------------------------------------------------------------------------

#[test]
fn item8_rerun_refuses_to_reissue_a_moved_leaf_and_voids_only_an_interrupted_run() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("out");
    let batch = tmp.path().join("batch.toml");
    write_batch(&batch, &["u1", "u2"]);
    let args = ["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&batch)];
    ok(run(&ca, &args));
    let u1_serial = rows(&ca)
        .iter()
        .find(|r| field(r, "subject") == "u1")
        .map(|r| field(r, "serial").to_string())
        .unwrap();

    // u1's folder is deployed (moved away): the ledger row stays active, nothing is re-issued.
    let deployed = tmp.path().join("deployed-u1");
    std::fs::rename(out.join("u1"), &deployed).unwrap();
    let before = State::capture(tmp.path(), &[&ca.ca]);
    let o = run(&ca, &args);
    refused(&o, "trust-8-rerun-moved-leaf", tmp.path());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "re-run after a move",
    );
    let all = rows(&ca);
    let u1: Vec<_> = all.iter().filter(|r| field(r, "subject") == "u1").collect();
    assert_eq!(u1.len(), 1, "one certificate for u1, never a second");
    assert_eq!(field(u1[0], "status"), "active");
    assert!(same_serial(field(u1[0], "serial"), &u1_serial));

    // Left out of the batch file, it is reported and left active.
    std::fs::rename(&deployed, tmp.path().join("elsewhere")).unwrap();
    write_batch(&batch, &["u2", "u3"]);
    let o = run(&ca, &args);
    let stdout = ok(o.clone());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stdout.contains("1 issued, 1 already done, 0 stale ledger rows voided"),
        "{stdout}"
    );
    assert!(
        stderr.contains("1 leaf/leaves recorded active under") && stderr.contains(&u1_serial),
        "{stderr}"
    );
    let u1_status: Vec<_> = rows(&ca)
        .into_iter()
        .filter(|r| field(r, "subject") == "u1")
        .map(|r| field(&r, "status").to_string())
        .collect();
    assert_eq!(u1_status, ["active"]);

    // An interrupted run (killed after recording its rows, before any file): its rows, and
    // only those, are voided by the next run, which issues the leaves.
    write_batch(&batch, &["u2", "u3", "u4", "u5"]);
    let o = run_failing(&ca, "batch.after_record", &args);
    assert!(!o.status.success(), "the injected crash did not happen");
    let interrupted: Vec<String> = rows(&ca)
        .iter()
        .filter(|r| ["u4", "u5"].contains(&field(r, "subject")))
        .map(|r| field(r, "serial").to_string())
        .collect();
    assert_eq!(interrupted.len(), 2, "the crashed run recorded u4 and u5");
    let stdout = ok(run(&ca, &args));
    assert!(
        stdout.contains("2 issued, 2 already done, 2 stale ledger rows voided"),
        "{stdout}"
    );
    let all = rows(&ca);
    for serial in &interrupted {
        let r = all.iter().find(|r| field(r, "serial") == serial).unwrap();
        assert_eq!(field(r, "status"), "void");
    }
    for cn in ["u4", "u5"] {
        assert_complete(&out.join(cn));
        assert_eq!(active_for(&all, &out.join(cn).join("client.crt")).len(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Item 11: a re-run checks what it skips
// ---------------------------------------------------------------------------------------------

/// A power cut after the renames but before the final syncfs can leave an empty file at the
/// final name: the re-run must not count it as done.
#[test]
fn item11_rerun_reissues_an_empty_file_left_by_a_power_cut() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("out");
    let batch = tmp.path().join("batch.toml");
    write_batch(&batch, &["u1", "u2"]);
    let args = ["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&batch)];
    let o = run_failing(&ca, "batch.before_sync", &args);
    assert!(!o.status.success(), "the injected crash did not happen");
    let cut = out.join("u1/client.crt");
    let lost_serial = serial_of(&cut);
    // What the power cut leaves: the name, without the data.
    std::fs::write(&cut, b"").unwrap();

    let stdout = ok(run(&ca, &args));
    assert!(
        stdout.contains("1 issued, 1 already done, 1 stale ledger rows voided"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 file(s) at a final name were not a complete leaf"),
        "{stdout}"
    );
    assert_complete(&out.join("u1"));
    let all = rows(&ca);
    let lost = all
        .iter()
        .find(|r| same_serial(field(r, "serial"), &lost_serial))
        .unwrap();
    assert_eq!(field(lost, "status"), "void");
    let active = active_for(&all, &cut);
    assert_eq!(active.len(), 1);
    assert!(same_serial(&active[0], &serial_of(&cut)));

    // A key that does not match its certificate is not done either; here the leaf comes from
    // a finished run, so it is refused and reported, not silently issued a second time.
    std::fs::copy(out.join("u2/client.key"), out.join("u1/client.key")).unwrap();
    let before = State::capture(tmp.path(), &[&ca.ca]);
    let o = run(&ca, &args);
    refused(&o, "trust-11-rerun-key-mismatch", tmp.path());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "key mismatch re-run",
    );
}

// ---------------------------------------------------------------------------------------------
// Item 9: commands that change a CA folder take its lock; CRL numbers only grow
// ---------------------------------------------------------------------------------------------

fn issue_short_lived(ca: &OpensslCa, base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let out = base.join(format!("leaf-{i}"));
            ok(run(
                ca,
                &[
                    "issue",
                    "peer",
                    "--ca",
                    s(&ca.ca),
                    "--out",
                    s(&out),
                    "--cn",
                    &format!("m{i}"),
                    "--dns",
                    &format!("m{i}.example.internal"),
                    "--days",
                    "10",
                ],
            ));
            out
        })
        .collect()
}

#[test]
fn item9_two_renewals_at_once_leave_one_active_row_per_file() {
    let (tmp, ca) = new_ca();
    let leaves = issue_short_lived(&ca, tmp.path(), 12);
    let args = ["renew", "--ca", s(&ca.ca), "--expiring-within", "30d"];
    let kids: Vec<_> = (0..2)
        .map(|_| {
            OpensslCa::issuer_command(&ca, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        ok(k.wait_with_output().unwrap());
    }
    let all = rows(&ca);
    for dir in &leaves {
        let crt = dir.join("peer.crt");
        let active = active_for(&all, &crt);
        assert_eq!(active.len(), 1, "{}: active rows {active:?}", crt.display());
        assert!(
            same_serial(&active[0], &serial_of(&crt)),
            "{}",
            crt.display()
        );
        let a = openssl(dir, &["x509", "-noout", "-pubkey", "-in", s(&crt)]);
        let b = openssl(dir, &["pkey", "-pubout", "-in", s(&dir.join("peer.key"))]);
        assert_eq!(a, b, "{}: key and certificate differ", dir.display());
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "peer.crt" && n != "peer.key")
            .collect();
        assert!(names.is_empty(), "{}: stray files {names:?}", dir.display());
    }
    let superseded = all
        .iter()
        .filter(|r| field(r, "status") == "superseded")
        .count();
    assert_eq!(superseded, leaves.len(), "each leaf renewed exactly once");
}

#[test]
fn item9_parallel_crls_leave_the_highest_number_on_disk() {
    let (tmp, ca) = new_ca();
    let crl = tmp.path().join("int.crl");
    for round in 0..8 {
        let kids: Vec<_> = (0..2)
            .map(|_| {
                OpensslCa::issuer_command(&ca, &["crl", "--ca", s(&ca.ca), "--out", s(&crl)])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut drawn = Vec::new();
        for k in kids {
            let out = ok(k.wait_with_output().unwrap());
            let n: u64 = out
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("no CRL number in {out}"));
            drawn.push(n);
        }
        let on_disk = openssl(tmp.path(), &["crl", "-noout", "-crlnumber", "-in", s(&crl)]);
        let on_disk =
            u64::from_str_radix(on_disk.trim().trim_start_matches("crlNumber=0x"), 16).unwrap();
        assert_eq!(
            on_disk,
            *drawn.iter().max().unwrap(),
            "round {round}: numbers drawn {drawn:?}, on disk {on_disk}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Item 10: recorded before written, when a step fails
// ---------------------------------------------------------------------------------------------

/// The hard link put the certificate at its name, then the next step failed: the certificate
/// exists, so its row must stay (the old code deleted it, leaving a certificate nobody could
/// revoke).
#[test]
fn item10_failure_after_the_certificate_is_in_place_keeps_its_row() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("leaf");
    let args = [
        "issue",
        "client",
        "--ca",
        s(&ca.ca),
        "--out",
        s(&out),
        "--cn",
        "app",
    ];
    // The certificate's hard link is made, then the step after it fails.
    let o = run_failing(&ca, "after_link:client.crt", &args);
    refused(&o, "trust-10-after-link", tmp.path());
    let crt = out.join("client.crt");
    assert_complete(&out);
    let active = active_for(&rows(&ca), &crt);
    assert_eq!(active.len(), 1, "the certificate on disk is in the ledger");
    assert!(same_serial(&active[0], &serial_of(&crt)));
    // ...so it can be revoked.
    ok(run(
        &ca,
        &[
            "revoke",
            &active[0],
            "--ca",
            s(&ca.ca),
            "--reason",
            "superseded",
        ],
    ));
}

/// A failure before the certificate reached its name: the leaf never left the machine, so the
/// key written before it is removed and the row forgotten: nothing new on disk or in the ledger.
#[test]
fn item10_failure_before_the_certificate_leaves_no_trace() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("leaf");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let before = State::capture(tmp.path(), &[&ca.ca]);
    let args = [
        "issue",
        "client",
        "--ca",
        s(&ca.ca),
        "--out",
        s(&out),
        "--cn",
        "app",
    ];
    let o = run_failing(&ca, "commit.before_cert", &args);
    refused(&o, "trust-10-before-cert", tmp.path());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "failed before the cert",
    );

    // Renewal: a failure before the swap leaves the old leaf in place and active.
    let leaves = issue_short_lived(&ca, tmp.path(), 1);
    let before = State::capture(tmp.path(), &[&ca.ca]);
    let o = run_failing(
        &ca,
        "replace.before_swap",
        &["renew", "--ca", s(&ca.ca), "--expiring-within", "30d"],
    );
    assert!(!o.status.success());
    before.assert_unchanged(
        &State::capture(tmp.path(), &[&ca.ca]),
        "renew failed before swap",
    );
    let active = active_for(&rows(&ca), &leaves[0].join("peer.crt"));
    assert_eq!(active.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Item 17: no reasonCode `unspecified` in CRL entries
// ---------------------------------------------------------------------------------------------

#[test]
fn item17_crl_entries_omit_reason_unspecified() {
    let (tmp, ca) = new_ca();
    let mut serials = Vec::new();
    for (i, reason) in ["unspecified", "keyCompromise"].iter().enumerate() {
        let out = tmp.path().join(format!("l{i}"));
        ok(run(
            &ca,
            &[
                "issue",
                "client",
                "--ca",
                s(&ca.ca),
                "--out",
                s(&out),
                "--cn",
                &format!("c{i}"),
            ],
        ));
        let serial = serial_of(&out.join("client.crt"));
        ok(run(
            &ca,
            &["revoke", &serial, "--ca", s(&ca.ca), "--reason", reason],
        ));
        serials.push(serial);
    }
    let crl = tmp.path().join("int.crl");
    let etcd = tmp.path().join("etcd.crl");
    ok(run(
        &ca,
        &[
            "crl",
            "--ca",
            s(&ca.ca),
            "--out",
            s(&crl),
            "--etcd-out",
            s(&etcd),
            "--root",
            s(&ca.root),
        ],
    ));
    for file in [&crl, &etcd] {
        let text = openssl(tmp.path(), &["crl", "-noout", "-text", "-in", s(file)]);
        assert!(!text.contains("Unspecified"), "{}:\n{text}", file.display());
        assert_eq!(text.matches("Key Compromise").count(), 1, "{text}");
        // The unspecified entry carries no entry extensions at all (a direct CRL).
        let entry = text
            .split("Serial Number: ")
            .find(|e| same_serial(e.lines().next().unwrap_or("").trim(), &serials[0]))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", serials[0]));
        if file == &crl {
            assert!(!entry.contains("CRL entry extensions"), "{entry}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item 19 (issuer): durations, closed pipes, the list's columns
// ---------------------------------------------------------------------------------------------

#[test]
fn item19_far_future_durations_are_refused_not_a_panic() {
    let (tmp, ca) = new_ca();
    let before = State::capture(tmp.path(), &[&ca.ca]);
    let o = run(
        &ca,
        &[
            "list",
            "--ca",
            s(&ca.ca),
            "--expiring-within",
            "999999999999999d",
        ],
    );
    refused(&o, "trust-19-list-expiring-overflow", tmp.path());
    let o = run(
        &ca,
        &["list", "--ca", s(&ca.ca), "--expiring-within", "9999999w"],
    );
    refused(&o, "trust-19-list-expiring-past-9999", tmp.path());
    let o = run(
        &ca,
        &[
            "renew",
            "--ca",
            s(&ca.ca),
            "--expiring-within",
            "999999999999999d",
            "--dry-run",
        ],
    );
    refused(&o, "trust-19-renew-expiring-overflow", tmp.path());
    before.assert_unchanged(&State::capture(tmp.path(), &[&ca.ca]), "refused durations");
}

/// A reader that goes away (`issuer list | head`) ends the command quietly: no panic, no error.
#[test]
fn item19_a_closed_stdout_is_not_an_error() {
    let (tmp, ca) = new_ca();
    let out = tmp.path().join("out");
    let batch = tmp.path().join("batch.toml");
    let cns: Vec<String> = (0..1500).map(|i| format!("user-{i}")).collect();
    write_batch(&batch, &cns.iter().map(String::as_str).collect::<Vec<_>>());
    ok(run(
        &ca,
        &["batch", "--ca", s(&ca.ca), "--out", s(&out), s(&batch)],
    ));
    let crt = out.join("user-1/client.crt");
    for args in [
        vec!["list", "--ca", s(&ca.ca)],
        vec!["list", "--ca", s(&ca.ca), "--json"],
        vec!["verify", "--root", s(&ca.root), s(&crt)],
    ] {
        let mut child = OpensslCa::issuer_command(&ca, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end at once, as `head` does once it has its lines.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{args:?}: {:?}\n{err}", o.status);
        assert!(err.is_empty(), "{args:?} said:\n{err}");
    }
    // The same through a shell pipe, as a user types it.
    let script = format!(
        "'{}' list --ca '{}' 2>err.txt | head -n 2 >/dev/null; echo ${{PIPESTATUS[0]}}",
        s(&tool("issuer")),
        s(&ca.ca)
    );
    let o = Command::new("bash")
        .args(["-c", &script])
        .current_dir(tmp.path())
        .env("PKI_AGE_IDENTITY", &ca.identity)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("err.txt")).unwrap(),
        ""
    );
}

/// The other two tools print through the same guard: a template or status read by `head`.
#[test]
fn item19_root_ca_and_intermediate_ca_survive_a_closed_stdout() {
    let (tmp, ca) = new_ca();
    for (tool_name, args) in [
        ("root-ca", vec!["template", "sign"]),
        ("intermediate-ca", vec!["status", "--dir", s(&ca.ca)]),
    ] {
        let mut child = Command::new(tool(tool_name))
            .args(&args)
            .current_dir(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "{tool_name} {args:?}: {:?}\n{err}",
            o.status
        );
        assert!(
            !err.contains("panicked"),
            "{tool_name} {args:?} said:\n{err}"
        );
    }
}

#[test]
fn item19_list_columns_fit_every_status() {
    let (tmp, ca) = new_ca();
    let leaves = issue_short_lived(&ca, tmp.path(), 2);
    ok(run(
        &ca,
        &["renew", "--ca", s(&ca.ca), "--expiring-within", "30d"],
    ));
    let serial = serial_of(&leaves[1].join("peer.crt"));
    ok(run(
        &ca,
        &[
            "revoke",
            &serial,
            "--ca",
            s(&ca.ca),
            "--reason",
            "keyCompromise",
        ],
    ));
    let text = ok(run(&ca, &["list", "--ca", s(&ca.ca)]));
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let col = |name: &str| header.find(name).unwrap();
    let statuses: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l[col("STATUS")..].split(' ').next().unwrap())
        .collect();
    assert!(
        statuses.contains(&"superseded") && statuses.contains(&"revoked"),
        "{text}"
    );
    for l in lines {
        for c in ["SUBJECT", "NOT AFTER", "NAMES"] {
            let at = col(c);
            assert!(
                l.as_bytes()[at - 1] == b' ' && l.as_bytes()[at] != b' ',
                "column {c} misaligned:\n{text}"
            );
        }
    }
}
