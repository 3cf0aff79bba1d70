//! What a cluster-file value may hold. Every value ends up in a file that is executed
//! (`rbac.sh`) or loaded as the environment (`etcd.env`, `etcdctl.env`, often with
//! `set -a; . FILE`), so a quote, a newline or a `$` in a value would be code, or a second
//! variable. Each rule accepts what etcd itself accepts for that kind of value, minus anything a
//! shell or systemd's `EnvironmentFile=` would read as syntax.

use std::net::IpAddr;

/// Why a value is refused; the caller names the field.
pub(crate) type Problem = String;

/// A value shown in an error: quoted, with control characters escaped, so that a newline in
/// the cluster file is visible as `\n` instead of breaking the message.
pub(crate) fn shown(v: &str) -> String {
    format!("{v:?}")
}

fn first_bad(v: &str, ok: impl Fn(char) -> bool) -> Option<char> {
    v.chars().find(|c| !ok(*c))
}

fn describe(c: char) -> String {
    match c {
        '\n' => "a newline".into(),
        '\r' => "a carriage return".into(),
        '\t' => "a tab".into(),
        ' ' => "a space".into(),
        '\'' | '"' | '`' => format!("a quote ({c})"),
        c if c.is_control() => format!("a control character (U+{:04X})", c as u32),
        c if !c.is_ascii() => format!("a non-ASCII character ({c})"),
        c => format!("'{c}'"),
    }
}

/// Member, client, proxy, role and cluster names: they become directory names, certificate
/// CNs, etcd member and RBAC user names, and words in `rbac.sh`.
pub(crate) fn name(v: &str) -> Result<(), Problem> {
    if v.is_empty() || v.len() > 63 {
        return Err("must be 1 to 63 characters".into());
    }
    if let Some(c) = first_bad(v, |c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(format!(
            "contains {}; use letters, digits, '-', '_' or '.'",
            describe(c)
        ));
    }
    if v.starts_with('.') || v.starts_with('-') {
        return Err("must not start with '.' or '-'".into());
    }
    Ok(())
}

/// A DNS name for a certificate SAN and a URL host: LDH labels (RFC 1123), 1-63 characters
/// each, at most 253 in all.
pub(crate) fn hostname(v: &str) -> Result<(), Problem> {
    if v.is_empty() || v.len() > 253 {
        return Err("must be a host name of 1 to 253 characters".into());
    }
    if let Some(c) = first_bad(v, |c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(format!(
            "contains {}; a host name has letters, digits, '-' and dots only",
            describe(c)
        ));
    }
    for label in v.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("has an empty or over-long label (1 to 63 characters between dots)".into());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "has label '{label}', which starts or ends with '-'"
            ));
        }
    }
    Ok(())
}

/// An absolute path written into `etcd.env`/`etcdctl.env`; `{name}` is allowed as the member
/// or client placeholder. No character a shell or systemd would treat specially (`~` expands in
/// a shell assignment, `$` and quotes are syntax, whitespace splits).
pub(crate) fn path(v: &str) -> Result<(), Problem> {
    if !v.starts_with('/') {
        return Err("must be an absolute path (the files are read on another host)".into());
    }
    let bare = v.replace("{name}", "");
    if let Some(c) = first_bad(&bare, |c| {
        c.is_ascii_alphanumeric() || "/._-+@,:".contains(c)
    }) {
        return Err(format!(
            "contains {}; use letters, digits and / . _ - + @ , : (and {{name}})",
            describe(c)
        ));
    }
    if v.split('/').any(|s| s == "..") {
        return Err("must not contain '..'".into());
    }
    Ok(())
}

/// A key prefix of an RBAC role. etcd keys are any bytes, but the prefix is a word of
/// `rbac.sh`: printable ASCII only, and none of the characters a shell treats specially inside
/// or around a quoted word.
pub(crate) fn key_prefix(v: &str) -> Result<(), Problem> {
    if v.is_empty() {
        return Err(
            "is empty, which would grant every key; name the prefix, or give the client the root role"
                .into(),
        );
    }
    if let Some(c) = first_bad(v, |c| c.is_ascii_graphic() && !"'\"`\\$".contains(c)) {
        return Err(format!(
            "contains {}; a key prefix here is printable ASCII without spaces, quotes, '\\' or '$'",
            describe(c)
        ));
    }
    Ok(())
}

/// A member URL as etcd parses it (`types.NewURLs`): `https://HOST:PORT`, HOST an IP
/// (IPv6 in brackets) or a host name, no path, query or user part.
pub(crate) fn url(v: &str) -> Result<(), Problem> {
    if let Some(c) = first_bad(v, |c| c.is_ascii_graphic()) {
        return Err(format!("contains {}; a URL is one word", describe(c)));
    }
    let Some(rest) = v.strip_prefix("https://") else {
        return Err("must start with https:// (TLS is not optional)".into());
    };
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6
                .split_once("]:")
                .ok_or("must be https://[IPv6]:PORT, port included")?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("has '[{h}]', which is not an IPv6 address"));
            }
            (h, p)
        }
        None => rest
            .rsplit_once(':')
            .ok_or("must name its port: https://HOST:PORT")?,
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "has port '{port}', which must be a number with nothing after it (etcd refuses a path)"
        ));
    }
    match port.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => {}
        _ => return Err(format!("has port {port}, outside 1 to 65535")),
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    hostname(host).map_err(|p| format!("has host {}, which {p}", shown(host)))
}

/// A word of generated shell, single-quoted: inside single quotes nothing is special except
/// the quote itself, written as `'\''`. Values are validated first; this is the second wall.
pub(crate) fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_shell_and_control_characters() {
        assert!(name("app-rw").is_ok() && name("etcd_1.b").is_ok());
        for bad in [
            "x'; touch PWNED; echo '",
            "a b",
            "a\nb",
            "",
            "-x",
            "$(id)",
            "é",
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        assert!(name("x'y").unwrap_err().contains("a quote (')"));
        assert!(name("x\ny").unwrap_err().contains("a newline"));
    }

    #[test]
    fn hostnames_are_ldh_labels() {
        assert!(hostname("etcd-1.example.internal").is_ok() && hostname("localhost").is_ok());
        for bad in [
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a_b",
            "a\n",
            "",
            &"a".repeat(64),
        ] {
            assert!(hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_are_absolute_and_plain() {
        assert!(path("/var/lib/etcd/{name}").is_ok() && path("/etc/etcd/pki").is_ok());
        assert!(path("/var/lib/etcd\nETCD_CLIENT_CERT_AUTH=false")
            .unwrap_err()
            .contains("a newline"));
        for bad in [
            "rel/dir", "/a b", "/a/$HOME", "/a/`id`", "/a/../b", "/~x", "/a\"b",
        ] {
            assert!(path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_what_etcd_parses() {
        for good in [
            "https://10.0.0.1:2379",
            "https://[fd00::1]:2380",
            "https://etcd-1.example:2379",
        ] {
            assert!(url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://10.0.0.1:2379",
            "https://10.0.0.1",
            "https://10.0.0.1:2379/",
            "https://10.0.0.1:2379,https://x:1",
            "https://a b:2379",
            "https://[zz]:2379",
            "https://h:0",
            "https://h:99999",
            "https://h:2379\nETCD_X=1",
        ] {
            assert!(url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_and_quoting() {
        assert!(key_prefix("/app/").is_ok());
        for bad in ["", "/a b", "/a'", "/a\\", "/$x", "/a\n"] {
            assert!(key_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote("x'; echo PWNED; echo '")))
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "x'; echo PWNED; echo '"
        );
    }

    #[test]
    fn shown_escapes_newlines() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
    }
}
