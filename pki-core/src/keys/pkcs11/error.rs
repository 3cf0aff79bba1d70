//! The token's result type. Its errors are [`TokenError`], kept in `crate::error` with the
//! library's other errors so that `error` depends on no other module.

pub use crate::error::TokenError;

pub(crate) type Result<T, E = TokenError> = std::result::Result<T, E>;
