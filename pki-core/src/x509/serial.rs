//! Certificate serial numbers: 128 random bits from the OS RNG, encoded positive and
//! without a leading zero octet, so at most 17 octets on the wire (RFC 5280 allows 20).
//! Uniqueness across the whole PKI matters because etcd matches CRL serials without
//! looking at the issuer (etcd facts C3).

use rand::RngCore;

/// A certificate serial number, as the big-endian magnitude bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh random serial: a first octet in 0x01..=0x7f (so the DER INTEGER is positive and
    /// minimal) followed by 16 fully random octets: 17 octets, at least 128 random bits
    /// (docs/profiles.md), well under RFC 5280's 20-octet limit.
    pub fn random() -> Self {
        let mut bytes = [0u8; 17];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes[0] = 1 + bytes[0] % 0x7f;
        Serial(bytes.to_vec())
    }

    /// A serial from big-endian bytes, leading zero octets dropped (such as the sign octet of a
    /// DER INTEGER).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        Serial(trimmed)
    }

    /// Parses hex as printed by `openssl x509 -serial` or by us (colons allowed).
    pub fn from_hex(s: &str) -> Option<Self> {
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        let clean = if clean.len() % 2 == 1 {
            format!("0{clean}")
        } else {
            clean
        };
        hex::decode(clean).ok().map(|b| Serial::from_bytes(&b))
    }

    /// The big-endian magnitude, without leading zero octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex without separators: the ledger's key.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The serial as rcgen writes it into a certificate.
    pub fn to_rcgen(&self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&self.0)
    }
}

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_minimal_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let s = Serial::random();
            assert_eq!(s.as_bytes().len(), 17);
            assert!(s.as_bytes()[0] & 0x80 == 0 && s.as_bytes()[0] != 0);
            assert!(seen.insert(s));
        }
    }

    #[test]
    fn hex_round_trip_accepts_openssl_form() {
        let s = Serial::from_hex("0A:1b:00").unwrap();
        assert_eq!(s.to_hex(), "0a1b00");
        assert_eq!(Serial::from_hex("00ff").unwrap().to_hex(), "ff");
    }
}
