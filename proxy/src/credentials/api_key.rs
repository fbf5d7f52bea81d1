//! `apiKey`: a Bedrock API key sent as `Authorization: Bearer`. A changed Secret is picked up by
//! the config reload like static keys.

use http::HeaderValue;

/// The `Authorization` value for `api_key`, marked sensitive so hyper never logs it; `None`
/// when the key has characters a header cannot carry.
pub(crate) fn bearer(api_key: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", api_key.trim())).ok()?;
    value.set_sensitive(true);
    Some(value)
}
