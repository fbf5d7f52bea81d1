//! Caller identity: who is calling, from the `Authorization: Bearer <key>` header.
//!
//! Keys are never stored: the proxy hashes what the caller sends and looks the hash up.

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::error::ApiError;
use crate::snapshot::Snapshot;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// User name.
    pub user: String,
    /// Teams the user belongs to.
    pub teams: Vec<String>,
}

/// Resolves the caller of a request, or the 401 to answer.
pub fn authenticate<'a>(headers: &HeaderMap, snapshot: &'a Snapshot) -> Result<&'a Subject, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthenticated(
            "You didn't provide an API key. Send it in the Authorization header as `Bearer <key>`.",
        ));
    };
    let key = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("The Authorization header must have the form `Bearer <key>`.")
        })?;
    snapshot
        .callers
        .get(&api::config::hash_api_key(key))
        .ok_or_else(|| ApiError::unauthenticated("Incorrect API key provided."))
}
