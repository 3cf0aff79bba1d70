//! Where a CA folder's ledger lives: `ledger.sqlite` in the folder (the default), or a
//! PostgreSQL database named in `ca.toml`:
//!
//! ```toml
//! ledger = "postgres://pki@db.example.net:5432/pki?sslmode=require"
//! ledger_password_file = "/etc/pki/ledger.pass"   # else PGPASSFILE, else ~/.pgpass
//! ledger_tls_ca = "/etc/pki/db-ca.pem"            # the database server's CA (TLS)
//! ```
//!
//! The password never sits in the address (refused there), on a command line or in a log.

use std::path::{Path, PathBuf};

#[cfg(feature = "postgres")]
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A ledger's location, resolved.
#[derive(Clone, Debug)]
pub enum LedgerLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(Box<PgTarget>),
}

/// A PostgreSQL database to connect to, with its password read (never shown by `Debug`).
#[cfg(feature = "postgres")]
#[derive(Clone)]
pub struct PgTarget {
    /// The address as written, without a password.
    pub url: String,
    /// The parsed connection settings, password included.
    pub(crate) config: postgres::Config,
    /// Roots the database's TLS certificate must chain to; None: no TLS.
    pub(crate) tls_roots: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
}

#[cfg(feature = "postgres")]
impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget").field("url", &self.url).finish()
    }
}

impl LedgerLocation {
    /// The location `ca.toml` (at `state_file`) names: `url` absent means `default_sqlite`.
    pub fn resolve(
        state_file: &Path,
        default_sqlite: PathBuf,
        url: Option<&str>,
        password_file: Option<&Path>,
        tls_ca: Option<&Path>,
    ) -> Result<Self> {
        let bad = |reason: String| Error::LedgerConfig {
            path: state_file.to_path_buf(),
            reason,
        };
        let Some(url) = url else {
            if password_file.is_some() || tls_ca.is_some() {
                return Err(bad(
                    "ledger_password_file and ledger_tls_ca need `ledger = \"postgres://…\"`"
                        .into(),
                ));
            }
            return Ok(LedgerLocation::Sqlite(default_sqlite));
        };
        if let Some(path) = url.strip_prefix("sqlite:") {
            return Ok(LedgerLocation::Sqlite(PathBuf::from(path)));
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(format!(
                "`ledger = \"{url}\"`: write a postgres://user@host:port/database address, or \
                 leave `ledger` out for ledger.sqlite in the CA folder"
            )));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(bad(format!(
            "`ledger = \"{url}\"`: this build of the tool has no PostgreSQL support (the \
             air-gapped root-ca never has); use issuer or intermediate-ca"
        )));
        #[cfg(feature = "postgres")]
        Self::postgres(url, password_file, tls_ca).map_err(bad)
    }

    #[cfg(feature = "postgres")]
    fn postgres(
        url: &str,
        password_file: Option<&Path>,
        tls_ca: Option<&Path>,
    ) -> std::result::Result<Self, String> {
        let bad = |s: String| s;
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| bad(format!("`ledger`: not a PostgreSQL address: {e}")))?;
        if config.get_password().is_some() {
            return Err(bad(
                "the `ledger` address holds a password: take it out and put it in a file named \
                 by `ledger_password_file` (mode 0600), or in PGPASSFILE"
                    .into(),
            ));
        }
        if config.get_user().is_none() {
            return Err(bad(
                "the `ledger` address names no user (postgres://USER@host/db)".into(),
            ));
        }
        if let Some(pw) = password(&config, password_file).map_err(bad)? {
            config.password(pw.as_bytes());
        }
        let tls_roots = match tls_ca {
            Some(p) => Some(read_roots(p).map_err(bad)?),
            None if config.get_ssl_mode() == postgres::config::SslMode::Require => {
                return Err(bad(
                    "`sslmode=require` needs `ledger_tls_ca`: the CA file the database's \
                     certificate chains to"
                        .into(),
                ))
            }
            None => {
                refuse_plaintext_remote(&config).map_err(bad)?;
                None
            }
        };
        if tls_roots.is_some() {
            // With roots given, TLS is not optional.
            config.ssl_mode(postgres::config::SslMode::Require);
        }
        Ok(LedgerLocation::Postgres(Box::new(PgTarget {
            url: url.to_string(),
            config,
            tls_roots,
        })))
    }

    /// The address for messages: a path, or the PostgreSQL address (never a password).
    pub fn describe(&self) -> String {
        match self {
            LedgerLocation::Sqlite(p) => p.display().to_string(),
            #[cfg(feature = "postgres")]
            LedgerLocation::Postgres(t) => t.url.clone(),
        }
    }
}

#[cfg(feature = "postgres")]
/// The password: from `password_file` (the whole file, one line), else from the pgpass file
/// (PGPASSFILE, else ~/.pgpass) entry matching host, port, database and user.
fn password(
    config: &postgres::Config,
    password_file: Option<&Path>,
) -> std::result::Result<Option<Zeroizing<String>>, String> {
    if let Some(p) = password_file {
        let text = read_private(p)?;
        let line = text.lines().next().unwrap_or("").trim_end().to_string();
        if line.is_empty() {
            return Err(format!("{}: the password file is empty", p.display()));
        }
        return Ok(Some(Zeroizing::new(line)));
    }
    let pgpass = match std::env::var_os("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".pgpass"),
            None => return Ok(None),
        },
    };
    if !pgpass.exists() {
        return Ok(None);
    }
    let text = read_private(&pgpass)?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    Ok(pgpass_lookup(&text, [&host, &port, db, user]))
}

#[cfg(feature = "postgres")]
/// The password of the first `host:port:database:user:password` line matching `want`
/// (`*` matches anything; `\:` and `\\` are escapes, as libpq reads the file).
fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<Zeroizing<String>> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = Zeroizing::new(String::new());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.push(chars.next().unwrap_or('\\')),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut *cur)),
                c => cur.push(c),
            }
        }
        if fields.len() != 4 {
            continue;
        }
        if fields.iter().zip(want).all(|(f, w)| f == "*" || f == w) {
            return Some(cur);
        }
    }
    None
}

#[cfg(feature = "postgres")]
/// A file that holds a secret: refused when others may read it, as libpq does.
fn read_private(p: &Path) -> std::result::Result<Zeroizing<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{}: others may read this password file; `chmod 600` it",
            p.display()
        ));
    }
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    String::from_utf8(bytes)
        .map(Zeroizing::new)
        .map_err(|_| format!("{}: not UTF-8 text", p.display()))
}

#[cfg(feature = "postgres")]
fn read_roots(
    p: &Path,
) -> std::result::Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("ledger_tls_ca {}: {e}", p.display()))?;
    let certs: Vec<_> = pem::parse_many(&bytes)
        .map_err(|e| format!("ledger_tls_ca {}: {e}", p.display()))?
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| rustls_pki_types::CertificateDer::from(b.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err(format!(
            "ledger_tls_ca {}: no PEM certificate in it",
            p.display()
        ));
    }
    Ok(certs)
}

/// Without `ledger_tls_ca`, the password and every revocation would cross the network in
/// clear: refused for a database that is not on this machine (loopback or a Unix socket),
/// unless the address says `sslmode=disable`, the explicit opt-out.
#[cfg(feature = "postgres")]
fn refuse_plaintext_remote(config: &postgres::Config) -> std::result::Result<(), String> {
    use postgres::config::{Host, SslMode};
    if config.get_ssl_mode() == SslMode::Disable {
        return Ok(());
    }
    let remote: Vec<String> = config
        .get_hosts()
        .iter()
        .filter_map(|h| match h {
            Host::Tcp(name) => {
                let local = name == "localhost"
                    || name
                        .trim_matches(|c| c == '[' || c == ']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                (!local).then(|| name.clone())
            }
            Host::Unix(_) => None,
        })
        .collect();
    if remote.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the ledger database at {} is not on this machine and `ledger_tls_ca` is unset: the password and every revocation would cross the network in clear. Set `ledger_tls_ca` to the CA file the database's certificate chains to (TLS, the server verified by name), or, on a network you trust, say so with `?sslmode=disable` in the `ledger` address",
        remote.join(", ")
    ))
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn a_remote_database_without_tls_is_refused_unless_the_address_opts_out() {
        let f = Path::new("/x/ca.toml");
        let r = |url: &str| LedgerLocation::resolve(f, "/x/l".into(), Some(url), None, None);
        let e = r("postgres://u@db.example.net:5432/pki")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("db.example.net")
                && e.contains("ledger_tls_ca")
                && e.contains("sslmode=disable"),
            "{e}"
        );
        assert!(r("postgres://u@10.0.0.7/pki").is_err());
        for local in [
            "postgres://u@127.0.0.1:5432/pki",
            "postgres://u@127.0.0.2/pki",
            "postgres://u@localhost/pki",
            "postgres://u@[::1]:5432/pki",
            "postgres://u@%2Frun%2Fpostgresql/pki",
            "postgres://u@db.example.net/pki?sslmode=disable",
        ] {
            assert!(r(local).is_ok(), "{local}: {:?}", r(local).err());
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn pgpass_lines_match_field_by_field_with_wildcards_and_escapes() {
        let text = "# comment\ndb1:5432:pki:alice:one\n*:*:pki:bob:tw\\:o\nh:1:d:u\n";
        let get = |w: [&str; 4]| pgpass_lookup(text, w).map(|p| p.to_string());
        assert_eq!(get(["db1", "5432", "pki", "alice"]).as_deref(), Some("one"));
        assert_eq!(get(["db2", "5432", "pki", "alice"]), None);
        assert_eq!(get(["any", "1", "pki", "bob"]).as_deref(), Some("tw:o"));
        assert_eq!(
            get(["h", "1", "d", "u"]),
            None,
            "a line of four fields has no password"
        );
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_password_in_the_address_or_tls_without_roots_is_refused() {
        let f = Path::new("/x/ca.toml");
        let r = |url: &str| LedgerLocation::resolve(f, "/x/l".into(), Some(url), None, None);
        let e = r("postgres://u:secret@h/db").unwrap_err().to_string();
        assert!(e.contains("holds a password"), "{e}");
        assert!(!e.contains("secret"), "the password is never echoed: {e}");
        let e = r("postgres://u@h/db?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ledger_tls_ca"), "{e}");
        let e = r("mysql://u@h/db").unwrap_err().to_string();
        assert!(e.contains("postgres://"), "{e}");
        assert!(matches!(
            LedgerLocation::resolve(f, "/x/l".into(), None, None, None).unwrap(),
            LedgerLocation::Sqlite(p) if p == Path::new("/x/l")
        ));
    }
}
