//! The DER the token does not give us: public keys and ECDSA signatures from raw values,
//! written with yasna.

use super::error::{Result, TokenError};

/// `CKA_EC_POINT` is a DER OCTET STRING around the point, but some tokens return it bare.
pub(super) fn unwrap_point(v: &[u8], len: usize) -> Option<Vec<u8>> {
    if v.len() == len {
        return Some(v.to_vec());
    }
    match v {
        // Some tokens use the long length form even below 128 bytes, which strict DER
        // refuses: accept it here, as the point's length is checked anyway.
        [0x04, 0x81, l, rest @ ..] if *l as usize == len && rest.len() == len => {
            Some(rest.to_vec())
        }
        _ => yasna::parse_der(v, |r| r.read_bytes())
            .ok()
            .filter(|p| p.len() == len),
    }
}

/// The magnitude without leading zero octets (a token may pad `CKA_MODULUS`).
pub(super) fn strip_zeros(b: &[u8]) -> &[u8] {
    let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[i..]
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
pub(super) fn der_rsa_public_key(n: &[u8], e: &[u8]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(strip_zeros(n), true);
            w.next().write_bigint_bytes(strip_zeros(e), true);
        })
    })
}

/// `SubjectPublicKeyInfo` of an RSA key (rsaEncryption, NULL parameters).
pub(super) fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let key = der_rsa_public_key(n, e);
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                        1, 2, 840, 113549, 1, 1, 1,
                    ]));
                w.next().write_null();
            });
            w.next().write_bitvec_bytes(&key, key.len() * 8);
        })
    })
}

/// `CKM_ECDSA` gives fixed-width r‖s; X.509 wants `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn ecdsa_raw_to_der(raw: &[u8], field_len: usize) -> Result<Vec<u8>> {
    if raw.len() != 2 * field_len {
        return Err(TokenError::BadSignature(format!(
            "ECDSA signature of {} bytes, expected {}",
            raw.len(),
            2 * field_len
        )));
    }
    let (r, s) = raw.split_at(field_len);
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(strip_zeros(r), true);
            w.next().write_bigint_bytes(strip_zeros(s), true);
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_becomes_minimal_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // high bit set: needs a 0x00 pad
        raw[32] = 0x00;
        raw[33] = 0x01; // leading zero stripped
        let der = ecdsa_raw_to_der(&raw, 32).unwrap();
        assert_eq!(&der[..5], &[0x30, der.len() as u8 - 2, 0x02, 33, 0x00]);
        let s_at = 2 + 2 + 33;
        assert_eq!(&der[s_at..s_at + 2], &[0x02, 31]);
        assert!(ecdsa_raw_to_der(&raw[..63], 32).is_err());
        // An all-zero half is the INTEGER 0, one octet.
        let zero = ecdsa_raw_to_der(&[0u8; 64], 32).unwrap();
        assert_eq!(zero, [0x30, 6, 0x02, 1, 0, 0x02, 1, 0]);
    }

    #[test]
    fn rsa_public_key_and_ec_points() {
        let n = [0x00, 0xc1, 0x02];
        assert_eq!(
            der_rsa_public_key(&n, &[0x01, 0x00, 0x01]),
            [0x30, 0x0a, 0x02, 0x03, 0x00, 0xc1, 0x02, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        let point = [7u8; 65];
        assert_eq!(unwrap_point(&point, 65).as_deref(), Some(&point[..]));
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&point);
        assert_eq!(unwrap_point(&wrapped, 65).as_deref(), Some(&point[..]));
        assert_eq!(unwrap_point(&wrapped[..60], 65), None);
        let mut long_form = vec![0x04, 0x81, 65];
        long_form.extend_from_slice(&point);
        assert_eq!(unwrap_point(&long_form, 65).as_deref(), Some(&point[..]));
        assert_eq!(unwrap_point(&long_form, 97), None);
    }
}
