//! Request-parsing helpers shared by the OpenAI surfaces: JSON errors that name the field at
//! fault, and the check that refuses fields the gateway does not translate.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// 400 for a body that is not JSON at all.
pub(crate) fn unparsable(err: &serde_json::Error) -> ApiError {
    ApiError::invalid_request(format!(
        "We could not parse the JSON body of your request. The API expects a JSON payload, \
         but what was sent was not valid JSON: {err}."
    ))
}

/// 400 for a JSON body with a field of the wrong shape, naming its path.
pub(crate) fn parse_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return unparsable(&inner);
    }
    // serde_json appends the position; the path already says where the problem is.
    let detail = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let detail = detail.strip_suffix(&suffix).unwrap_or(&detail);
    if path == "." {
        // Not an object at all, or a duplicated top-level key.
        return ApiError::invalid_request(format!(
            "We could not parse the JSON body of your request: {detail}."
        ));
    }
    ApiError::invalid_request(format!("Invalid value for `{path}`: {detail}.")).with_param(path)
}

/// 400 for a missing required field.
pub(crate) fn missing(path: String) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: `{path}`.")).with_param(path)
}

/// 400 for a field with a value the gateway cannot take, naming it.
pub(crate) fn invalid(path: String, detail: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(format!("Invalid value for `{path}`: {detail}.")).with_param(path)
}

/// 400 for an OpenAI field Bedrock has no equivalent for.
pub(crate) fn unsupported(path: String) -> ApiError {
    ApiError::invalid_request(format!(
        "`{path}` is not supported by this gateway: Bedrock has no equivalent."
    ))
    .with_param(path)
}

/// 400 for a field the gateway does not translate yet.
pub(crate) fn not_yet(path: String) -> ApiError {
    ApiError::invalid_request(format!("`{path}` is not supported yet by this gateway.")).with_param(path)
}

/// Refuses every non-null key of `rest` that is not harmless (`null` reads as absent): the
/// `refused` OpenAI fields with `refuse`, anything else as unrecognized.
pub(crate) fn check_rest(
    rest: &Map<String, Value>,
    harmless: &[&str],
    refused: &[&str],
    refuse: fn(String) -> ApiError,
    path: impl Fn(&str) -> String,
) -> Result<(), ApiError> {
    for (key, value) in rest {
        if value.is_null() || harmless.contains(&key.as_str()) {
            continue;
        }
        let path = path(key);
        return Err(if refused.contains(&key.as_str()) {
            refuse(path)
        } else {
            ApiError::invalid_request(format!("Unrecognized request argument supplied: `{path}`."))
                .with_param(path)
        });
    }
    Ok(())
}

/// Reads a whole JSON body into `T`; errors name the field at fault.
///
/// Tracking the path costs a good part of the parse, and only an error needs it: a body that
/// fails is parsed again with tracking, which fails at the same place, to name the field.
pub(crate) fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|plain| {
        let mut de = serde_json::Deserializer::from_slice(body);
        match serde_path_to_error::deserialize::<_, T>(&mut de) {
            Err(tracked) => parse_error(tracked),
            Ok(_) => unparsable(&de.end().err().unwrap_or(plain)),
        }
    })
}
