//! Air-gap bundles (docs/bundle-format.md): a small text document — a magic line,
//! `key: value` headers, a blank line, PEM blocks — inside a standard ASCII-armoured age v1 file.
//! age gives confidentiality only; authenticity comes from the CSR key fingerprint read out at
//! the ceremony and from the response chaining to the pinned root fingerprint.

use crate::keys::KeyError;
use std::collections::BTreeMap;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::error::{BundleProblem, Error, Result};
use crate::keys::keyfile::armored_encrypt;

/// The first line of every bundle's plaintext: the format and its version.
pub const MAGIC: &str = "PKI-BUNDLE v1";

/// What a bundle carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleKind {
    /// Online side → root: a CSR for a new intermediate.
    IntermediateRequest,
    /// Root → online side: the signed intermediate, the root, the root CRL.
    IntermediateResponse,
}

impl BundleKind {
    /// The kind as the `kind` header writes it: `intermediate-request` or `intermediate-response`.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleKind::IntermediateRequest => "intermediate-request",
            BundleKind::IntermediateResponse => "intermediate-response",
        }
    }
}

impl FromStr for BundleKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "intermediate-request" => Ok(BundleKind::IntermediateRequest),
            "intermediate-response" => Ok(BundleKind::IntermediateResponse),
            other => Err(Error::BadBundle {
                what: "bundle".into(),
                problem: BundleProblem::UnknownKind {
                    kind: other.to_string(),
                },
            }),
        }
    }
}

/// A decrypted bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// What the bundle carries (the `kind` header).
    pub kind: BundleKind,
    /// The enrolment's request ID (the `request-id` header): 32 hex digits, the same in a request
    /// and its response.
    pub request_id: String,
    /// Other headers, in order of their names (`created`, `reply-to`, `subject`, ...).
    pub headers: BTreeMap<String, String>,
    /// PEM blocks as (tag, DER).
    pub blocks: Vec<(String, Vec<u8>)>,
}

const KNOWN_HEADERS: &[&str] = &[
    "kind",
    "request-id",
    "created",
    "reply-to",
    "subject",
    "permitted-dns",
    "permitted-ips",
];

impl Bundle {
    /// An empty bundle of `kind` for request `request_id`: no other headers, no blocks.
    pub fn new(kind: BundleKind, request_id: &str) -> Self {
        Bundle {
            kind,
            request_id: request_id.to_string(),
            headers: BTreeMap::new(),
            blocks: Vec::new(),
        }
    }

    /// A fresh random request ID (128 bits, hex).
    pub fn new_request_id() -> String {
        hex::encode(rand::random::<[u8; 16]>())
    }

    /// The value of header `name`, if present (`kind` and `request-id` are fields, not headers).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The DER of every block with `tag`.
    pub fn blocks_tagged(&self, tag: &str) -> Vec<&[u8]> {
        self.blocks
            .iter()
            .filter(|(t, _)| t == tag)
            .map(|(_, d)| d.as_slice())
            .collect()
    }

    /// The plaintext document.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{MAGIC}\nkind: {}\nrequest-id: {}\n",
            self.kind.as_str(),
            self.request_id
        );
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s.push('\n');
        for (tag, der) in &self.blocks {
            s.push_str(&crate::x509::certs::to_pem(tag, der));
        }
        s
    }

    /// Parses the plaintext strictly: magic, known headers only, then PEM blocks only.
    pub fn from_text(text: &str) -> Result<Self> {
        let bad = |problem| Error::BadBundle {
            what: "bundle".into(),
            problem,
        };
        let (head, body) = text
            .split_once("\n\n")
            .ok_or_else(|| bad(BundleProblem::NoHeaderEnd))?;
        let mut lines = head.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad(BundleProblem::BadMagic { magic: MAGIC }));
        }
        let mut headers = BTreeMap::new();
        for l in lines {
            let (k, v) = l.split_once(": ").ok_or_else(|| {
                bad(BundleProblem::MalformedHeader {
                    line: l.to_string(),
                })
            })?;
            if !KNOWN_HEADERS.contains(&k) {
                return Err(bad(BundleProblem::UnknownHeader {
                    name: k.to_string(),
                }));
            }
            if headers.insert(k.to_string(), v.to_string()).is_some() {
                return Err(bad(BundleProblem::RepeatedHeader {
                    name: k.to_string(),
                }));
            }
        }
        let missing = |name| bad(BundleProblem::MissingHeader { name });
        let kind: BundleKind = headers
            .remove("kind")
            .ok_or_else(|| missing("kind"))?
            .parse()?;
        let request_id = headers
            .remove("request-id")
            .ok_or_else(|| missing("request-id"))?;
        if request_id.len() != 32 || !request_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad(BundleProblem::BadRequestId));
        }
        let blocks = if body.trim().is_empty() {
            Vec::new()
        } else {
            pem::parse_many(body.as_bytes())
                .map_err(|e| {
                    bad(BundleProblem::DamagedPem {
                        detail: e.to_string(),
                    })
                })?
                .into_iter()
                .map(|p| (p.tag().to_string(), p.into_contents()))
                .collect()
        };
        Ok(Bundle {
            kind,
            request_id,
            headers,
            blocks,
        })
    }

    /// Encrypts to one X25519 recipient, ASCII-armoured: `age -d -i identity` reads it.
    pub fn seal(&self, recipient: &str) -> Result<Vec<u8>> {
        let r = age::x25519::Recipient::from_str(recipient.trim()).map_err(|e| {
            KeyError::BadRecipient {
                recipient: recipient.trim().to_string(),
                detail: e.to_string(),
            }
        })?;
        let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
            .map_err(|e| KeyError::Age {
                op: "encryption",
                reason: e.to_string(),
            })?;
        armored_encrypt(enc, self.to_text().as_bytes())
    }

    /// Decrypts and parses a bundle, checking it is of the expected kind.
    pub fn open(
        what: &str,
        data: &[u8],
        identity: &age::x25519::Identity,
        expect: BundleKind,
    ) -> Result<Self> {
        let bad = |problem| Error::BadBundle {
            what: what.into(),
            problem,
        };
        let trimmed = String::from_utf8_lossy(data);
        if !trimmed
            .trim_start()
            .starts_with("-----BEGIN AGE ENCRYPTED FILE-----")
            && !data.starts_with(b"age-encryption.org/v1")
        {
            return Err(bad(BundleProblem::NotAge));
        }
        let plain = age::decrypt(identity, data)
            .map(Zeroizing::new)
            .map_err(|e| match e {
                age::DecryptError::NoMatchingKeys => bad(BundleProblem::OtherRecipient {
                    recipient: identity.to_public().to_string(),
                }),
                age::DecryptError::DecryptionFailed
                | age::DecryptError::InvalidMac
                | age::DecryptError::KeyDecryptionFailed => bad(BundleProblem::Tampered),
                age::DecryptError::Io(io) => {
                    let detail = io.to_string();
                    // Armour that ends early (no end marker, a short or unpadded last line) is a
                    // cut file; data appended after the end marker or a bad begin marker is not.
                    let cut_armour = detail.contains("armor")
                        && !detail.contains("after end marker")
                        && !detail.contains("begin marker");
                    if io.kind() == std::io::ErrorKind::UnexpectedEof || cut_armour {
                        bad(BundleProblem::Truncated { detail })
                    } else if detail.contains("decryption error") {
                        bad(BundleProblem::Tampered)
                    } else {
                        bad(BundleProblem::Damaged { detail })
                    }
                }
                other => bad(BundleProblem::Damaged {
                    detail: other.to_string(),
                }),
            })?;
        let text = std::str::from_utf8(&plain).map_err(|_| bad(BundleProblem::NotText))?;
        // The plaintext's own problem, named after the file it came from.
        let b = Bundle::from_text(text).map_err(|e| match e {
            Error::BadBundle { problem, .. } => bad(problem),
            other => other,
        })?;
        if b.kind != expect {
            return Err(bad(BundleProblem::WrongKind {
                got: b.kind,
                expected: expect,
            }));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn sample() -> Bundle {
        let mut b = Bundle::new(BundleKind::IntermediateRequest, &Bundle::new_request_id());
        b.headers.insert("subject".into(), "CN=x".into());
        b.blocks.push(("CERTIFICATE REQUEST".into(), vec![1, 2, 3]));
        b
    }

    #[test]
    fn round_trip_and_kind_check() {
        let id = age::x25519::Identity::generate();
        let b = sample();
        let sealed = b.seal(&id.to_public().to_string()).unwrap();
        assert_eq!(
            Bundle::open("b", &sealed, &id, BundleKind::IntermediateRequest).unwrap(),
            b
        );
        let err = Bundle::open("b", &sealed, &id, BundleKind::IntermediateResponse).unwrap_err();
        assert!(
            err.to_string()
                .contains("intermediate-request bundle, but an intermediate-response"),
            "{err}"
        );
        let other = age::x25519::Identity::generate();
        let err = Bundle::open("b", &sealed, &other, BundleKind::IntermediateRequest).unwrap_err();
        assert!(err.to_string().contains("another recipient"), "{err}");
        let _ = id.to_string().expose_secret().len();
    }

    #[test]
    fn strict_parsing() {
        let t = sample().to_text();
        assert!(Bundle::from_text(&t.replace("subject:", "colour:")).is_err());
        assert!(Bundle::from_text(&t.replace(MAGIC, "PKI-BUNDLE v2")).is_err());
    }
}
