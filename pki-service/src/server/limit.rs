//! Per-identity rate limits: a token bucket per identity (a leaf's serial, a token's hash, or
//! the peer address for anonymous requests).

use std::collections::HashMap;
use std::time::Instant;

/// How many requests an identity may make: `burst` at once, then `per_minute`.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Sustained requests per minute.
    pub per_minute: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 10,
            per_minute: 30,
        }
    }
}

/// The buckets of every identity seen recently.
pub struct Limiter {
    limit: RateLimit,
    buckets: HashMap<String, (f64, Instant)>,
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 100_000;

impl Limiter {
    /// A limiter applying `limit` to each identity.
    pub fn new(limit: RateLimit) -> Self {
        Limiter {
            limit,
            buckets: HashMap::new(),
        }
    }

    /// Takes one request from `identity`'s bucket at `now`; Err(seconds to wait) when empty.
    pub fn take(&mut self, identity: &str, now: Instant) -> Result<(), u64> {
        let rate = self.limit.per_minute as f64 / 60.0;
        let burst = self.limit.burst.max(1) as f64;
        if self.buckets.len() >= MAX_BUCKETS {
            // Full buckets are the same as no bucket: forget them.
            self.buckets.retain(|_, (level, at)| {
                (*level + now.duration_since(*at).as_secs_f64() * rate) < burst
            });
        }
        let (level, at) = self
            .buckets
            .entry(identity.to_string())
            .or_insert((burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else if rate > 0.0 {
            Err(((1.0 - *level) / rate).ceil() as u64)
        } else {
            Err(60)
        }
    }
}

/// The bucket of a request without a client certificate: its source network, not the exact
/// address, so that one host cannot draw fresh buckets from the addresses it holds: an IPv6
/// /64 (what one host is usually given), all of 127/8 (one machine), an IPv4 address.
pub fn address_bucket(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) if v4.is_loopback() => "anonymous:127.0.0.0/8".into(),
        std::net::IpAddr::V4(v4) => format!("anonymous:{v4}/32"),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => address_bucket(std::net::IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("anonymous:{net}/64")
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn anonymous_buckets_are_networks_not_addresses() {
        let b = |s: &str| address_bucket(s.parse().unwrap());
        assert_eq!(b("127.0.0.1"), b("127.9.8.7"), "one machine");
        assert_eq!(b("2001:db8:1:2::1"), b("2001:db8:1:2:ffff::9"), "one /64");
        assert_ne!(b("2001:db8:1:2::1"), b("2001:db8:1:3::1"));
        assert_ne!(b("10.0.0.1"), b("10.0.0.2"));
        assert_eq!(
            b("::ffff:10.0.0.1"),
            b("10.0.0.1"),
            "a mapped IPv4 address is that address"
        );
    }

    #[test]
    fn a_burst_passes_then_the_identity_waits_and_others_do_not() {
        let mut l = Limiter::new(RateLimit {
            burst: 3,
            per_minute: 60,
        });
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.take("a", t).is_ok());
        }
        assert_eq!(l.take("a", t), Err(1));
        assert!(
            l.take("b", t).is_ok(),
            "another identity has its own bucket"
        );
        assert!(l.take("a", t + Duration::from_millis(1100)).is_ok());
        assert!(l.take("a", t + Duration::from_millis(1200)).is_err());
    }
}
