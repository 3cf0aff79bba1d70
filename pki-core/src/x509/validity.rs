//! Validity windows. A certificate never outlives its issuer: we refuse rather than clamp,
//! so the operator learns the issuer is close to its end instead of getting a short leaf.

use crate::x509::X509Error;
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};

/// Clock skew tolerated between the issuing machine and the relying parties.
const BACKDATE: Duration = Duration::minutes(5);

/// A not-before / not-after pair, whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// `days` from now (backdated a few minutes for clock skew), inside the issuer's window.
    pub fn within_issuer(
        days: u32,
        max_days: u32,
        issuer: Option<(OffsetDateTime, OffsetDateTime)>,
        now: OffsetDateTime,
    ) -> Result<Self> {
        if days == 0 {
            return Err(X509Error::ZeroDays.into());
        }
        if days > max_days {
            return Err(X509Error::BadValidity(format!(
                "{days} days is longer than this profile allows ({max_days} days)"
            ))
            .into());
        }
        Self::lasting(Duration::days(days as i64), issuer, now)
    }

    /// `lifetime` from now, inside the issuer's window. The backdating for clock skew is at
    /// most a tenth of the lifetime, so a short-lived leaf (a drill's minutes) still spends
    /// most of its life ahead of it.
    pub fn lasting(
        lifetime: Duration,
        issuer: Option<(OffsetDateTime, OffsetDateTime)>,
        now: OffsetDateTime,
    ) -> Result<Self> {
        if lifetime < Duration::seconds(10) {
            return Err(X509Error::ZeroDays.into());
        }
        let now = now.replace_nanosecond(0).expect("zero nanoseconds");
        let mut not_before = now - BACKDATE.min(lifetime / 10);
        let not_after = now + lifetime;
        if let Some((inb, ina)) = issuer {
            if now < inb || now > ina {
                return Err(Error::IssuerNotCurrent {
                    not_before: fmt_time(inb),
                    not_after: fmt_time(ina),
                });
            }
            if not_after > ina {
                return Err(X509Error::OutlivesIssuer {
                    requested: fmt_time(not_after),
                    issuer: fmt_time(ina),
                }
                .into());
            }
            if not_before < inb {
                not_before = inb;
            }
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }
}

/// RFC 3339 in UTC, the one date format of our messages and records.
pub fn fmt_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Parses durations such as `30d`, `12h`, `2w`, `15m`, `30s`, `90` (days).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "d"),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| X509Error::BadValidity(format!("'{s}' is not a duration like 30d or 12h")))?;
    let unit_secs: i64 = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "w" => 604_800,
        "m" => 60,
        "s" => 1,
        _ => {
            return Err(X509Error::BadValidity(format!(
                "'{s}': unknown unit '{unit}'; use w, d, h, m or s"
            ))
            .into())
        }
    };
    // Checked: `Duration::days` panics past i64 seconds (`999999999999999d`).
    n.checked_mul(unit_secs)
        .map(Duration::seconds)
        .ok_or_else(|| {
            X509Error::BadValidity(format!(
                "'{s}' is too long to be a duration; give a shorter one such as 30d"
            ))
        })
        .map_err(crate::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_past_issuer_is_refused_naming_both_dates() {
        let now = OffsetDateTime::now_utc();
        let issuer = (now - Duration::days(1), now + Duration::days(30));
        let err = Validity::within_issuer(90, 825, Some(issuer), now).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&fmt_time(issuer.1)), "{msg}");
        assert!(matches!(
            err,
            crate::Error::X509(X509Error::OutlivesIssuer { .. })
        ));
        let ok = Validity::within_issuer(29, 825, Some(issuer), now).unwrap();
        assert!(ok.not_after <= issuer.1 && ok.not_before >= issuer.0);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_duration("12h").unwrap(), Duration::hours(12));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("999999999999999d").is_err());
        assert_eq!(parse_duration("2w").unwrap(), Duration::weeks(2));
    }
}
