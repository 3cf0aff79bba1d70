//! Every object identifier the toolkit writes or compares, in one form: dotted text. [`arcs`],
//! [`der`] and [`signature_algorithm_der`] give the encodings an encoder or a token needs.

use yasna::models::ObjectIdentifier;

/// EC curve P-256 (secp256r1), in SPKI algorithm parameters and `CKA_EC_PARAMS`.
pub const P256: &str = "1.2.840.10045.3.1.7";
/// EC curve P-384 (secp384r1).
pub const P384: &str = "1.3.132.0.34";
/// Ed25519: the key algorithm and its signature algorithm (RFC 8410).
pub const ED25519: &str = "1.3.101.112";

/// ecdsa-with-SHA256.
pub const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// ecdsa-with-SHA384.
pub const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
/// ecdsa-with-SHA512.
pub const ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
/// sha256WithRSAEncryption (PKCS#1 v1.5).
pub const RSA_SHA256: &str = "1.2.840.113549.1.1.11";
/// sha384WithRSAEncryption.
pub const RSA_SHA384: &str = "1.2.840.113549.1.1.12";
/// sha512WithRSAEncryption.
pub const RSA_SHA512: &str = "1.2.840.113549.1.1.13";
/// RSASSA-PSS (refused: etcd cannot load PSS keys).
pub const RSA_PSS: &str = "1.2.840.113549.1.1.10";

/// Signature algorithms refused everywhere (SHA-1 and older), with their names.
pub const WEAK_SIGNATURES: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10040.4.3", "dsa-with-SHA1"),
    ("1.3.14.3.2.29", "sha1WithRSASignature"),
];

/// id-kp-serverAuth.
pub const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// id-kp-clientAuth.
pub const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// authorityKeyIdentifier.
pub const AUTHORITY_KEY_ID: &str = "2.5.29.35";
/// cRLNumber.
pub const CRL_NUMBER: &str = "2.5.29.20";
/// issuingDistributionPoint.
pub const ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
/// reasonCode (a CRL entry extension).
pub const CRL_REASON: &str = "2.5.29.21";
/// certificateIssuer (a CRL entry extension of an indirect CRL).
pub const CERTIFICATE_ISSUER: &str = "2.5.29.29";

/// The arcs of a dotted OID. The constants above are well formed; a bad one is a bug.
pub fn arcs(dotted: &str) -> Vec<u64> {
    dotted
        .split('.')
        .map(|a| a.parse().expect("a constant OID is dotted decimal"))
        .collect()
}

/// The OID as yasna writes it.
pub fn object_identifier(dotted: &str) -> ObjectIdentifier {
    ObjectIdentifier::from_slice(&arcs(dotted))
}

/// The DER encoding of the OID, tag and length included (what `CKA_EC_PARAMS` holds).
pub fn der(dotted: &str) -> Vec<u8> {
    yasna::construct_der(|w| w.write_oid(&object_identifier(dotted)))
}

/// The DER `AlgorithmIdentifier` of a signature algorithm: RSA PKCS#1 algorithms carry NULL
/// parameters, ECDSA and Ed25519 none (RFC 5758, RFC 8410).
pub fn signature_algorithm_der(dotted: &str) -> Vec<u8> {
    let null_params = [RSA_SHA256, RSA_SHA384, RSA_SHA512].contains(&dotted);
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_oid(&object_identifier(dotted));
            if null_params {
                w.next().write_null();
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_bytes_standards_give() {
        // CKA_EC_PARAMS values as tokens return them.
        assert_eq!(
            der(P256),
            [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
        );
        assert_eq!(der(P384), [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22]);
        assert_eq!(der(ED25519), [0x06, 0x03, 0x2b, 0x65, 0x70]);
        // AlgorithmIdentifiers: no parameters for ECDSA and Ed25519, NULL for RSA.
        assert_eq!(
            signature_algorithm_der(ECDSA_SHA256),
            [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]
        );
        assert_eq!(
            signature_algorithm_der(ECDSA_SHA384),
            [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]
        );
        assert_eq!(
            signature_algorithm_der(ED25519),
            [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70]
        );
        assert_eq!(
            signature_algorithm_der(RSA_SHA256),
            [
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
                0x00
            ]
        );
        assert_eq!(arcs(CRL_NUMBER), [2, 5, 29, 20]);
    }
}
