//! Which connections are taken: at most so many from one source (an IPv4 address, an IPv6
//! /64), and a client that sends nothing is dropped quickly, so that idle sockets from one
//! host cannot take the slots every other client needs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a new connection may stay silent before its first byte (the TLS ClientHello).
pub const FIRST_BYTE: Duration = Duration::from_secs(2);

/// Connections open per source.
#[derive(Default)]
pub struct Sources {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection counted against its source until dropped.
pub struct Admitted {
    sources: Arc<Sources>,
    key: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.sources.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The source a connection counts against: the address, an IPv6 address's /64 (one host
/// usually holds a whole /64), a mapped IPv4 address as itself.
pub fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Sources {
    /// Counts a connection from `ip`, unless its source has `cap` open already.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Admitted> {
        let key = source(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Admitted {
            sources: self.clone(),
            key,
        })
    }
}

/// Waits for the first byte of `tcp` (without reading it); false when none came in time.
pub async fn first_byte(tcp: &tokio::net::TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(FIRST_BYTE, tcp.peek(&mut b)).await,
        Ok(Ok(1..))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_is_capped_and_its_slots_come_back() {
        let s = Arc::new(Sources::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| s.admit(a, 3).unwrap()).collect();
        assert!(s.admit(a, 3).is_none(), "the fourth from one address");
        assert!(s.admit("10.0.0.2".parse().unwrap(), 3).is_some());
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let _h: Vec<_> = (0..3).map(|_| s.admit(v6, 3).unwrap()).collect();
        assert!(
            s.admit("2001:db8::ffff:2".parse().unwrap(), 3).is_none(),
            "another address of the same /64"
        );
        drop(held);
        let again = s.admit(a, 3);
        assert!(again.is_some(), "slots are given back");
        assert_eq!(s.open.lock().unwrap().get(&a), Some(&1));
        drop(again);
        assert_eq!(
            s.open.lock().unwrap().get(&a),
            None,
            "an idle source is forgotten"
        );
    }
}
