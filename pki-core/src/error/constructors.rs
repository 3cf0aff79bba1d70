//! Shorthand constructors of [`Error`] for the commonest cases.

use std::path::PathBuf;

use super::Error;

impl Error {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
