//! Why an input the library reads is refused: a name, a CSR, a CRL, a private key file, a
//! leaf of a batch file. Each enum is the `problem` of one [`Error`](super::Error) variant,
//! which names the input.

/// Why a subject or DNS name cannot be certified ([`X509Error::BadName`](super::X509Error::BadName)).
#[derive(Debug, thiserror::Error)]
pub enum NameProblem {
    /// The common name is empty or only spaces.
    #[error("subject: the common name is empty; a certificate needs one")]
    EmptyCommonName,
    /// The common name is longer than 64 characters or holds a control character.
    #[error("subject: the common name must be at most 64 printable characters")]
    CommonNameTooLong,
    /// A DNS name with characters or labels a DNS name cannot have.
    #[error("DNS name: '{name}' is not a valid DNS name (letters, digits, '-', dots; an IP address is not a DNS name)")]
    InvalidDns {
        /// The name as given.
        name: String,
    },
    /// A DNS name that is not ASCII (an IDN must be given in its `xn--` form).
    #[error("DNS name: '{name}' is not ASCII")]
    NonAsciiDns {
        /// The name as given.
        name: String,
    },
}

/// Why a CSR is refused ([`X509Error::CsrRejected`](super::X509Error::CsrRejected)).
#[derive(Debug, thiserror::Error)]
pub enum CsrProblem {
    /// The PEM file holds more than one request block.
    #[error("the file holds more than one CSR")]
    MoreThanOne,
    /// The DER does not parse as a PKCS#10 request.
    #[error("not a PKCS#10 request ({detail})")]
    NotPkcs10 {
        /// The parser's complaint.
        detail: String,
    },
    /// Bytes follow the request.
    #[error("trailing bytes after the request")]
    TrailingBytes,
    /// The request's self-signature does not verify with the key it carries.
    #[error("its signature does not verify: the file was altered or the key does not match")]
    BadSignature,
}

/// Why a CRL is refused ([`X509Error::BadCrl`](super::X509Error::BadCrl)).
#[derive(Debug, thiserror::Error)]
pub enum CrlProblem {
    /// The DER does not parse as a CRL.
    #[error("not a CRL ({detail})")]
    NotCrl {
        /// The parser's complaint.
        detail: String,
    },
    /// Bytes follow the CRL.
    #[error("trailing bytes after the CRL")]
    TrailingBytes,
    /// The CRL's issuer is not the pinned root.
    #[error("it is issued by '{issuer}', not by the pinned root '{root}'")]
    OtherIssuer {
        /// The CRL's issuer name.
        issuer: String,
        /// The pinned root's subject.
        root: String,
    },
    /// The CRL's signature does not verify with the pinned root's key.
    #[error("its signature does not verify with the pinned root's key ('{root}')")]
    NotSignedByRoot {
        /// The pinned root's subject.
        root: String,
    },
}

/// Why a PEM private key cannot be used ([`KeyError::BadKeyFile`](super::KeyError::BadKeyFile)).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileProblem {
    /// A SEC1 (`BEGIN EC PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) key.
    #[error("this is a legacy SEC1/PKCS#1 key; convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8` and pass the PKCS#8 file")]
    Legacy,
    /// An encrypted PKCS#8 key.
    #[error("this key is password-protected; decrypt it with `openssl pkcs8 -in KEY -out KEY.p8` on an offline machine first")]
    PasswordProtected,
    /// A PKCS#8 block that does not hold a key this toolkit can sign with.
    #[error("not a usable private key ({detail})")]
    Unusable {
        /// The key parser's complaint.
        detail: String,
    },
}

/// Why a leaf of a batch file is refused ([`Error::BatchLeaf`](super::Error::BatchLeaf)).
#[derive(Debug, thiserror::Error)]
pub enum BatchLeafProblem {
    /// The CN, which names the leaf's output folder, is empty, starts with '.' or holds a '/'
    /// or a control character.
    #[error("the cn names the output folder: no '/', no leading '.', not empty")]
    CnNotFolderName,
    /// Two leaves of the file have the same CN and profile.
    #[error("appears twice with the same profile")]
    Twice,
    /// The leaf's profile, names or key algorithm are refused.
    #[error("{0}")]
    Invalid(Box<super::Error>),
}
