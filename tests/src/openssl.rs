//! Reading certificates the way an operator would: through the `openssl` CLI and its text
//! output, plus the little PEM/base64 and date plumbing the end-to-end tests need.

use std::path::Path;
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; returns (success, stdout, stderr).
pub fn try_openssl(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `openssl ARGS` in `dir`, panics on failure, returns stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let (ok, out, err) = try_openssl(dir, args);
    assert!(ok, "openssl {} failed:\n{out}{err}", args.join(" "));
    out
}

/// `openssl x509 -noout -text` of the first certificate in `file`.
pub fn x509_text(file: &Path) -> String {
    openssl(
        file.parent().unwrap_or(Path::new(".")),
        &["x509", "-in", path_str(file), "-noout", "-text"],
    )
}

/// One X.509v3 extension as `openssl x509 -text` shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ext {
    pub name: String,
    pub critical: bool,
    /// The value lines, trimmed and joined with a single space.
    pub value: String,
}

impl Ext {
    pub fn new(name: &str, critical: bool, value: &str) -> Self {
        Ext {
            name: name.into(),
            critical,
            value: value.into(),
        }
    }
}

/// The "X509v3 extensions:" section of `openssl x509 -text` output, in certificate order.
pub fn extensions(text: &str) -> Vec<Ext> {
    let mut out: Vec<Ext> = Vec::new();
    let mut lines = text.lines();
    let Some(head) = lines.by_ref().find(|l| l.trim() == "X509v3 extensions:") else {
        return out;
    };
    let base = indent(head);
    for line in lines {
        let ind = indent(line);
        if line.trim().is_empty() {
            continue;
        }
        if ind <= base {
            break; // "Signature Algorithm:" of the outer certificate, or the end
        }
        if ind == base + 4 {
            let h = line.trim_end().trim_start();
            let (h, critical) = match h.strip_suffix("critical") {
                Some(rest) => (rest.trim_end(), true),
                None => (h, false),
            };
            let name = h.strip_suffix(':').unwrap_or(h).trim();
            out.push(Ext::new(name, critical, ""));
        } else if let Some(last) = out.last_mut() {
            if !last.value.is_empty() {
                last.value.push(' ');
            }
            last.value.push_str(line.trim());
        }
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The DER contents of every PEM block of `text`, with its label, in order. Panics on a block
/// that is not valid base64 (tests only read files the tools or OpenSSL wrote).
pub fn pem_blocks(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), String::new()));
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            let (begin, body) = current.take().expect("END without BEGIN");
            assert_eq!(begin, label, "PEM labels do not match");
            out.push((begin, base64_decode(&body)));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    assert!(current.is_none(), "unterminated PEM block");
    out
}

/// The DER of each CERTIFICATE block of `text` (other blocks are skipped).
pub fn cert_ders_of(text: &str) -> Vec<Vec<u8>> {
    pem_blocks(text)
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| der)
        .collect()
}

/// The DER of each CERTIFICATE block of the PEM file `p` (other blocks are skipped).
pub fn cert_ders(p: &Path) -> Vec<Vec<u8>> {
    cert_ders_of(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// A PEM block of `der` with `label`, 64 columns.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).expect("ascii"));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = B64
            .iter()
            .position(|x| *x == c)
            .unwrap_or_else(|| panic!("not base64: {:?}", c as char)) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SSZ`) of a Unix time, the date format of the tools' messages.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian, 400-year eras).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for n in 0..10 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 5) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&data)), data);
        }
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_encode(b"M"), "TQ==");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn parses_extension_section() {
        let text = "        X509v3 extensions:\n            X509v3 Key Usage: critical\n                Digital Signature\n            X509v3 Subject Alternative Name: \n                DNS:a, IP Address:127.0.0.1\n    Signature Algorithm: ecdsa-with-SHA384\n";
        assert_eq!(
            extensions(text),
            vec![
                Ext::new("X509v3 Key Usage", true, "Digital Signature"),
                Ext::new(
                    "X509v3 Subject Alternative Name",
                    false,
                    "DNS:a, IP Address:127.0.0.1"
                ),
            ]
        );
    }
}
