//! Feldman verifiable secret sharing of the custody secret over P-256, with `vsss-rs`.
//!
//! The secret is a P-256 scalar. Splitting it M-of-N gives N shares (identifier, value) and
//! M+1 public points: the generator, then g^a0 (a0 the secret), g^a1 .. g^a(M-1) for the
//! polynomial's other coefficients. A share verifies against the points without revealing
//! anything about the secret beyond g^a0, so a custodian can check their share belongs to
//! this root, and a ceremony names the share that does not.

use p256::elliptic_curve::ff::PrimeField;
use p256::elliptic_curve::group::GroupEncoding;
use p256::{ProjectivePoint, Scalar};
use vsss_rs::{
    feldman, FeldmanVerifierSet, IdentifierPrimeField, PrimeFieldShare, ReadableShareSet, Share,
    ShareVerifierGroup,
};
use zeroize::{Zeroize, Zeroizing};

type CustodyShare = PrimeFieldShare<Scalar>;
type Commitment = ShareVerifierGroup<ProjectivePoint>;

/// One share as bytes: identifier (32 bytes, big-endian scalar) then value (32 bytes).
pub type ShareBytes = Zeroizing<Vec<u8>>;

/// What can be wrong with shares or commitments, before any custodian is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharingError {
    /// The bytes are not a share (length, or a number outside the field).
    Malformed,
    /// The share does not lie on the committed polynomial.
    NotOnPolynomial,
    /// The commitments are not M+1 valid P-256 points starting with the generator.
    BadCommitments,
    /// vsss-rs refused the parameters or the combination.
    Scheme(String),
}

fn scalar(bytes: &[u8]) -> Option<Scalar> {
    let arr: [u8; 32] = bytes.try_into().ok()?;
    Option::from(Scalar::from_repr(arr.into()))
}

fn encode(share: &CustodyShare) -> ShareBytes {
    let mut out = Zeroizing::new(Vec::with_capacity(64));
    out.extend_from_slice(&share.identifier().0.to_repr());
    out.extend_from_slice(&share.value().0.to_repr());
    out
}

/// Overwrites share values and identifiers in memory (p256 scalars are not wiped on drop).
fn wipe(shares: &mut [CustodyShare]) {
    for s in shares {
        s.identifier_mut().0.zeroize();
        s.value_mut().0.zeroize();
    }
}

fn decode(bytes: &[u8]) -> Result<CustodyShare, SharingError> {
    if bytes.len() != 64 {
        return Err(SharingError::Malformed);
    }
    let id = scalar(&bytes[..32]).ok_or(SharingError::Malformed)?;
    let value = scalar(&bytes[32..]).ok_or(SharingError::Malformed)?;
    Ok(CustodyShare::with_identifier_and_value(
        IdentifierPrimeField(id),
        IdentifierPrimeField(value),
    ))
}

/// The share identifier (its x coordinate) as a small number, for display and the state file.
pub fn share_number(bytes: &[u8]) -> Option<u64> {
    let id = bytes.get(..32)?;
    if id[..24].iter().any(|b| *b != 0) {
        return None;
    }
    Some(u64::from_be_bytes(id[24..32].try_into().ok()?))
}

/// A new random custody secret (a non-zero P-256 scalar), as 32 bytes.
pub fn new_secret() -> Zeroizing<[u8; 32]> {
    loop {
        let mut b = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, b.as_mut());
        if let Some(s) = scalar(b.as_ref()) {
            if !bool::from(p256::elliptic_curve::ff::Field::is_zero(&s)) {
                return b;
            }
        }
    }
}

/// Splits `secret` into `n` shares, any `m` of which rebuild it; returns the shares (in
/// identifier order 1..n) and the Feldman commitments, each a compressed SEC1 point.
pub fn split(
    secret: &[u8; 32],
    m: usize,
    n: usize,
) -> Result<(Vec<ShareBytes>, Vec<Vec<u8>>), SharingError> {
    let mut s = IdentifierPrimeField(scalar(secret).ok_or(SharingError::Malformed)?);
    let rng = rand_core::UnwrapErr(getrandom::SysRng);
    let split = feldman::split_secret::<CustodyShare, Commitment>(m, n, &s, None, rng);
    s.0.zeroize();
    let (mut shares, commitments) = split.map_err(|e| SharingError::Scheme(e.to_string()))?;
    let encoded = shares.iter().map(encode).collect();
    wipe(&mut shares);
    let shares = encoded;
    let commitments = commitments
        .iter()
        .map(|c| c.0.to_bytes().to_vec())
        .collect();
    Ok((shares, commitments))
}

fn commitment_set(commitments: &[Vec<u8>], m: usize) -> Result<Vec<Commitment>, SharingError> {
    if commitments.len() != m + 1 {
        return Err(SharingError::BadCommitments);
    }
    let points = commitments
        .iter()
        .map(|c| {
            let enc = p256::CompressedPoint::try_from(c.as_slice())
                .map_err(|_| SharingError::BadCommitments)?;
            Option::<ProjectivePoint>::from(ProjectivePoint::from_bytes(&enc))
                .map(vsss_rs::ValueGroup)
                .ok_or(SharingError::BadCommitments)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if points[0].0 != ProjectivePoint::GENERATOR {
        return Err(SharingError::BadCommitments);
    }
    Ok(points)
}

/// Checks one share against the commitments of an M-of-N split.
pub fn verify(share: &[u8], commitments: &[Vec<u8>], m: usize) -> Result<(), SharingError> {
    let share = decode(share)?;
    let set = commitment_set(commitments, m)?;
    set.verify_share(&share)
        .map_err(|_| SharingError::NotOnPolynomial)
}

/// Rebuilds the secret from at least `m` verified shares, and checks it against g^secret.
pub fn combine(
    shares: &[ShareBytes],
    commitments: &[Vec<u8>],
    m: usize,
) -> Result<Zeroizing<[u8; 32]>, SharingError> {
    let set = commitment_set(commitments, m)?;
    let mut parsed = shares
        .iter()
        .map(|s| decode(s))
        .collect::<Result<Vec<_>, _>>()?;
    let combined = parsed.combine();
    wipe(&mut parsed);
    let mut secret = combined.map_err(|e| SharingError::Scheme(e.to_string()))?;
    let matches = ProjectivePoint::GENERATOR * secret.0 == set[1].0;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&secret.0.to_repr());
    secret.0.zeroize();
    if !matches {
        return Err(SharingError::NotOnPolynomial);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_m_of_n_rebuild_the_secret_and_fewer_do_not() {
        let secret = new_secret();
        let (shares, commitments) = split(&secret, 3, 5).unwrap();
        assert_eq!(shares.len(), 5);
        assert_eq!(commitments.len(), 4);
        for (i, s) in shares.iter().enumerate() {
            verify(s, &commitments, 3).unwrap();
            assert_eq!(share_number(s), Some(i as u64 + 1));
        }
        for pick in [[0, 1, 2], [0, 2, 4], [4, 3, 1]] {
            let chosen: Vec<_> = pick.iter().map(|i| shares[*i].clone()).collect();
            assert_eq!(*combine(&chosen, &commitments, 3).unwrap(), *secret);
        }
        // Two shares interpolate some other value: the check against g^secret refuses it.
        let two = vec![shares[0].clone(), shares[1].clone()];
        assert!(combine(&two, &commitments, 3).is_err());
    }

    #[test]
    fn an_altered_share_or_foreign_commitments_fail_verification() {
        let secret = new_secret();
        let (shares, commitments) = split(&secret, 2, 3).unwrap();
        let mut bad = shares[1].clone();
        bad[63] ^= 1;
        assert_eq!(
            verify(&bad, &commitments, 2),
            Err(SharingError::NotOnPolynomial)
        );
        let (_, other) = split(&new_secret(), 2, 3).unwrap();
        assert_eq!(
            verify(&shares[0], &other, 2),
            Err(SharingError::NotOnPolynomial)
        );
        assert_eq!(
            verify(&shares[0][..63], &commitments, 2),
            Err(SharingError::Malformed)
        );
        assert_eq!(
            verify(&shares[0], &commitments[..2], 2),
            Err(SharingError::BadCommitments)
        );
        let mut not_g = commitments.clone();
        not_g.swap(0, 1);
        assert_eq!(
            verify(&shares[0], &not_g, 2),
            Err(SharingError::BadCommitments)
        );
    }
}
