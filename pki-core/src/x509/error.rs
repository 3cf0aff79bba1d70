//! What can be wrong with certificates, CSRs, CRLs, names, validity and profiles. Each
//! message says what to do next.

use crate::error::{CrlProblem, CsrProblem, NameProblem};

/// X509 errors, wrapped by [`crate::Error`] at the library's edge.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// Text that should hold PEM blocks does not parse as PEM, or holds no block of the
    /// expected tag.
    #[error("{what}: not valid PEM ({detail}); expected a '-----BEGIN {expected}-----' block")]
    MalformedPem {
        /// The file or input read, as named in the message.
        what: String,
        /// The PEM tag looked for, such as `CERTIFICATE` or `PRIVATE KEY`.
        expected: &'static str,
        /// The PEM parser's complaint, or that no such block was found.
        detail: String,
    },

    /// DER that should be an X.509 certificate does not parse (or has trailing bytes or
    /// unreadable extensions), or an issuing CA certificate cannot be used to sign.
    #[error("{what}: not a valid X.509 certificate ({detail})")]
    BadCertificate {
        /// The certificate, as named in the message.
        what: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A CSR is refused: not a single well-formed PKCS#10 request, or its signature does not
    /// verify (see [`CsrProblem`]; CA:TRUE and unapproved names have their own variants).
    #[error("{what}: the CSR is not acceptable: {problem}")]
    CsrRejected {
        /// The CSR, as named in the message.
        what: String,
        /// Why it is refused.
        problem: CsrProblem,
    },

    /// A key or signature algorithm below policy or not supported: RSA under 2048 bits, an
    /// EC curve other than P-256/P-384, SHA-1 or older hashes, RSA-PSS. Holds the details.
    #[error("weak or forbidden algorithm: {0}")]
    WeakAlgorithm(String),

    /// A key algorithm name (`--key`, a batch leaf's `key`) that the toolkit does not know, or
    /// an RSA size it cannot generate. Holds the name as given.
    #[error(
        "unknown key algorithm '{0}'; use one of p256, p384, ed25519, rsa2048, rsa3072, rsa4096"
    )]
    UnknownAlgorithm(String),

    /// A certificate or CRL would end after the certificate of its issuer: the validity is
    /// refused, never clamped.
    #[error(
        "the requested validity ends {requested}, after the issuer's certificate ends {issuer}; \
         a certificate never outlives its issuer: ask for fewer days or renew the issuer first"
    )]
    OutlivesIssuer {
        /// The requested end (a certificate's notAfter or a CRL's nextUpdate), RFC 3339.
        requested: String,
        /// The issuing certificate's notAfter, RFC 3339.
        issuer: String,
    },

    /// A lifetime that cannot be used: zero days, more than the profile's maximum, a duration
    /// that does not parse, or a CRL whose nextUpdate is not after its thisUpdate.
    #[error("invalid validity: {0}")]
    BadValidity(String),

    /// A certificate used as a CA lacks basicConstraints CA:TRUE or keyUsage keyCertSign (or,
    /// for the root of a response, is not self-signed). Holds which certificate.
    #[error("{0}: not a CA certificate (basicConstraints CA:TRUE and keyUsage keyCertSign are required)")]
    NotCa(String),

    /// A CSR asks for CA:TRUE (issuing goes on only when the operator says to ignore it).
    #[error("{what}: the CSR is not acceptable: it asks for CA:TRUE; leaves are never CAs")]
    RequestsCa {
        /// The request, as named in the message.
        what: String,
    },

    /// A lifetime of zero days.
    #[error("invalid validity: a lifetime must be at least 1 day")]
    ZeroDays,

    /// A request that does not fit the certificate profile it asks for.
    #[error("{problem}")]
    ProfileMismatch {
        /// What does not fit.
        problem: String,
    },

    /// A server or peer certificate without any DNS name or IP address.
    #[error("a {role} certificate needs at least one DNS name or IP address: etcd and its clients check the names")]
    NoNames {
        /// The leaf's role: `server` or `peer`.
        role: &'static str,
    },

    /// An IP range whose prefix is longer than the address.
    #[error("{ip}/{prefix}: prefix too long")]
    PrefixTooLong {
        /// The range's address.
        ip: std::net::IpAddr,
        /// Its prefix length.
        prefix: u8,
    },

    /// A subject or DNS name that cannot be certified.
    #[error("{0}")]
    BadName(NameProblem),

    /// A leaf role (profile) name that is not `server`, `peer` or `client`.
    #[error("role: '{given}' is not a role; use server, peer or client")]
    UnknownRole {
        /// The name as given.
        given: String,
    },

    /// A revocation reason name that RFC 5280 does not define.
    #[error("reason: '{given}' is not a revocation reason; use one of {known}")]
    UnknownRevocationReason {
        /// The name as given.
        given: String,
        /// The names RFC 5280 defines, comma-separated.
        known: &'static str,
    },

    /// A CRL that does not parse, or a root CRL that is not the pinned root's.
    #[error("{what}: {problem}")]
    BadCrl {
        /// The CRL, as named in the message.
        what: String,
        /// What is wrong with it.
        problem: CrlProblem,
    },

    /// A SubjectPublicKeyInfo that does not parse.
    #[error("{what}: unreadable ({detail})")]
    BadPublicKey {
        /// The key, as named in the message (`public key`, `CSR public key`).
        what: &'static str,
        /// The parser's complaint.
        detail: String,
    },

    /// A name of a leaf (a SAN, or a CN that looks like a host name) is excluded or not
    /// permitted by the name constraints of the issuing intermediate or the pinned root.
    #[error(
        "{name} is outside the name constraints of the issuing CA '{issuer}' ({rule}): etcd, \
         openssl and every other validator would reject the certificate, so it was not issued. \
         Leave the name out, or have the root sign an intermediate whose constraints cover it \
         (docs/enrolment.md, section on name constraints)"
    )]
    NameNotPermitted {
        /// The name, as `DNS:<name>` or `IP:<address>`.
        name: String,
        /// The subject of the CA certificate that carries the constraint.
        issuer: String,
        /// The subtree that excludes the name, or the subtrees that alone are permitted.
        rule: String,
    },

    /// A CA certificate of the chain carries a name constraint the gate cannot evaluate (a
    /// directoryName, a malformed iPAddress), so nothing is issued.
    #[error(
        "the issuing CA '{issuer}' carries a name constraint this toolkit cannot check \
         ({constraint}); refusing to issue rather than sign a certificate validators may reject. \
         Use an intermediate constrained to DNS names and IP ranges only"
    )]
    UncheckableConstraint {
        /// The subject of the CA certificate that carries the constraint.
        issuer: String,
        /// The constraint, such as `directoryName ...` or `iPAddress of 6 bytes`.
        constraint: String,
    },

    /// A CSR or cfssl request proposes a CN and the operator gave no `--cn`.
    #[error(
        "{what}: the request asks for CN={requested}, and no CN was approved; the CN is the \
         etcd user the certificate logs in as, so the operator must give it"
    )]
    CnRequired {
        /// The request, as named in the message.
        what: String,
        /// The CN the request proposes.
        requested: String,
    },

    /// The CN a CSR or cfssl request proposes differs from the operator's `--cn`.
    #[error(
        "{what}: the request asks for CN={requested}, but the approved CN is {approved}; the CN \
         is the etcd user the certificate logs in as and is never taken from a request. Ask the \
         requester for a request with CN={approved}"
    )]
    CnMismatch {
        /// The request, as named in the message.
        what: String,
        /// The CN the request proposes.
        requested: String,
        /// The CN the operator gave.
        approved: String,
    },

    /// A certificate or CRL just signed does not verify with the issuing certificate's public
    /// key: the signing key is not that certificate's key.
    #[error(
        "the {what} just signed does not verify with the public key of the issuing certificate \
         '{issuer}': the signing key is not that certificate's key (a wrong or substituted token \
         key?). Nothing was recorded or written; check the key with `intermediate-ca status`"
    )]
    SignatureCheckFailed {
        /// What was signed: `CRL`, or the role and CN of a leaf.
        what: String,
        /// The issuing certificate's subject.
        issuer: String,
    },
}
