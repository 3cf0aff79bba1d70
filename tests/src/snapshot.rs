//! Message snapshots of the e2e suites: the exact text of error messages that only a token, a
//! cluster or a multi-step setup can provoke lives in `tests/snapshots/*.txt`, so a changed
//! message is a visible change in review. (`--help` screens and the messages that need only
//! files are pinned by the case files beside each binary, `*/tests/cmd/*.toml`.)
//! `SNAPSHOTS=overwrite cargo test ...` rewrites them; otherwise a difference fails the test.

use std::path::{Path, PathBuf};

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots")
}

/// Replaces volatile parts (temp dirs, serials, fingerprints, times) with stable tokens.
pub fn normalize(text: &str, temp_dirs: &[&Path]) -> String {
    let mut s = text.to_string();
    for d in temp_dirs {
        s = s.replace(&d.display().to_string(), "[TMP]");
    }
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let mut l = line.to_string();
        // 32+ hex digit runs (serials, hashes) and colon-separated fingerprints
        l = replace_runs(&l, |c| c.is_ascii_hexdigit(), 24, "[HEX]");
        l = replace_runs(&l, |c| c.is_ascii_hexdigit() || c == ':', 40, "[HEX]");
        // RFC 3339 times
        l = replace_times(&l);
        // age recipients
        if let Some(i) = l.find("age1") {
            let end = l[i..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .map(|e| i + e)
                .unwrap_or(l.len());
            if end - i > 40 {
                l.replace_range(i..end, "[AGE-RECIPIENT]");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

fn replace_runs(line: &str, pred: impl Fn(char) -> bool, min: usize, token: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if pred(chars[i]) {
            let mut j = i;
            while j < chars.len() && pred(chars[j]) {
                j += 1;
            }
            if j - i >= min && chars[i..j].iter().filter(|c| c.is_ascii_digit()).count() > 0 {
                out.push_str(token);
            } else {
                out.extend(&chars[i..j]);
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn replace_times(line: &str) -> String {
    // YYYY-MM-DDTHH:MM:SS(.frac)?Z
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let is_time = i + 20 <= b.len()
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 7] == b'-'
            && b[i + 10] == b'T'
            && b[i + 13] == b':'
            && b[i + 16] == b':';
        if is_time {
            let mut j = i + 19;
            while j < b.len() && (b[j] == b'.' || b[j].is_ascii_digit()) {
                j += 1;
            }
            if j < b.len() && b[j] == b'Z' {
                j += 1;
            }
            out.push_str("[TIME]");
            i = j;
        } else {
            let ch = line[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Compares `actual` with `tests/snapshots/<name>.txt`.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_dir().join(format!("{name}.txt"));
    if std::env::var("SNAPSHOTS").as_deref() == Ok("overwrite") {
        std::fs::create_dir_all(snapshot_dir()).expect("snapshot dir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}; run with SNAPSHOTS=overwrite to create it, then review it\n--- actual ---\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "snapshot {} differs (SNAPSHOTS=overwrite to accept)\n--- expected ---\n{expected}\n--- actual ---\n{actual}",
            path.display()
        );
    }
}
