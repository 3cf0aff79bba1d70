//! Why a bundle (the age-encrypted request or response carried between CA and root) is refused.

use crate::bundle::BundleKind;

/// Why a bundle cannot be read ([`Error::BadBundle`](super::Error::BadBundle)).
#[derive(Debug, thiserror::Error)]
pub enum BundleProblem {
    /// The file has neither age's binary header nor its armour.
    #[error("not an age-encrypted bundle (no age header or armour)")]
    NotAge,
    /// The bundle is encrypted to another recipient than the identity given.
    #[error("this bundle is addressed to another recipient, not to {recipient}; check you were given the right file")]
    OtherRecipient {
        /// The recipient of the identity that was tried.
        recipient: String,
    },
    /// age's authentication failed.
    #[error(
        "the bundle has been tampered with or damaged (authentication failed); ask for it again"
    )]
    Tampered,
    /// The file ends early.
    #[error("the bundle is truncated ({detail}); ask for it again")]
    Truncated {
        /// age's complaint.
        detail: String,
    },
    /// age could not read the file for another reason.
    #[error("the bundle is damaged ({detail}); ask for it again")]
    Damaged {
        /// age's complaint.
        detail: String,
    },
    /// The decrypted plaintext is not UTF-8.
    #[error("the plaintext is not text")]
    NotText,
    /// A bundle of another kind than the command needs.
    #[error("this is an {} bundle, but an {} bundle is needed here", .got.as_str(), .expected.as_str())]
    WrongKind {
        /// The bundle's kind.
        got: BundleKind,
        /// The kind needed.
        expected: BundleKind,
    },
    /// The headers are not followed by a blank line.
    #[error("no blank line after the headers: not a bundle of this toolkit")]
    NoHeaderEnd,
    /// The first line is not this toolkit's magic line.
    #[error("does not start with '{magic}': not a bundle of this toolkit, or a newer version")]
    BadMagic {
        /// The magic line expected.
        magic: &'static str,
    },
    /// A header line without `": "`.
    #[error("malformed header line '{line}'")]
    MalformedHeader {
        /// The line.
        line: String,
    },
    /// A header this version does not know.
    #[error("unknown header '{name}'")]
    UnknownHeader {
        /// The header's name.
        name: String,
    },
    /// A header given twice.
    #[error("header '{name}' appears twice")]
    RepeatedHeader {
        /// The header's name.
        name: String,
    },
    /// A required header is absent.
    #[error("no {name} header")]
    MissingHeader {
        /// The header's name (`kind`, `request-id`).
        name: &'static str,
    },
    /// The `kind` header names no kind this version knows.
    #[error("unknown kind '{kind}'")]
    UnknownKind {
        /// The kind as written.
        kind: String,
    },
    /// The request ID is not 32 hex digits.
    #[error("the request-id is not 32 hex digits")]
    BadRequestId,
    /// The body does not parse as PEM blocks.
    #[error("damaged PEM block ({detail})")]
    DamagedPem {
        /// The PEM parser's complaint.
        detail: String,
    },
}
