//! Why a response bundle from the root is not installed.

/// Why a response bundle is not installed (`CaDir::install`).
#[derive(Debug, thiserror::Error)]
pub enum ResponseProblem {
    /// No generation of the folder waits for a response.
    #[error(
        "no request is waiting for a response in this folder; run `intermediate-ca request` first"
    )]
    NothingWaiting,
    /// The response answers another request than the staged one.
    #[error("the response answers request {answered}, but the staged request is {staged}: it belongs to another request")]
    OtherRequest {
        /// The request ID the response answers.
        answered: String,
        /// The staged request's ID.
        staged: String,
    },
    /// The response's root is not the root whose fingerprint was given.
    #[error("the response's root has fingerprint {got}, not the pinned {pinned}: it chains to another root; do not install it")]
    OtherRoot {
        /// The response root's SHA-256 fingerprint.
        got: String,
        /// The fingerprint given at install.
        pinned: String,
    },
    /// The response's root certificate does not verify with its own key.
    #[error("the root certificate's self-signature does not verify")]
    RootSelfSignature,
    /// The response's intermediate is not signed by the response's root.
    #[error("the intermediate certificate is not signed by the pinned root")]
    NotSignedByRoot,
    /// The certified key is not the key staged for the generation.
    #[error("the certificate in the response is for another key than the one staged in generation {generation}: the root signed a different request; do not install it")]
    OtherKey {
        /// The staged generation.
        generation: u32,
    },
    /// The response does not carry exactly two certificates (the intermediate, then the root).
    #[error("the response must carry the intermediate and the root certificate; it carries {found} certificate(s)")]
    CertificateCount {
        /// How many certificates it carries.
        found: usize,
    },
    /// The root CRL in the response does not parse or is not the response root's.
    #[error("root CRL in the response: {0}; do not install this response: it was altered or forged, escalate")]
    RootCrl(super::CrlProblem),
    /// The folder already pins another root than the response's.
    #[error("this folder is pinned to root {pinned}; the response is from root {got}")]
    FolderPinnedElsewhere {
        /// The pinned root's fingerprint.
        pinned: String,
        /// The response root's fingerprint.
        got: String,
    },
}
