//! `GET /playground`: the built-in web page for trying models, shipped inside the binary.
//!
//! The page, its script and stylesheet are separate files so the Content-Security-Policy can
//! forbid inline code; the page talks only to this gateway's own `/v1` API.

use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::text_response;
use crate::body::ResponseBody;
use crate::error::ApiError;

/// Scripts, styles and calls from this origin only; images also as `data:` URLs (generated images).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const INDEX: &str = include_str!("../../playground/index.html");
const SCRIPT: &str = include_str!("../../playground/app.js");
const STYLE: &str = include_str!("../../playground/app.css");

/// The playground asset at `path`, with the security headers every asset carries.
pub fn asset(path: &str) -> Result<Response<ResponseBody>, ApiError> {
    let (content_type, body) = match path {
        "/playground" | "/playground/" => ("text/html; charset=utf-8", INDEX),
        "/playground/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/playground/app.css" => ("text/css; charset=utf-8", STYLE),
        _ => return Err(ApiError::not_found(format!("Unknown request URL: GET {path}."))),
    };
    let mut response = text_response(StatusCode::OK, content_type, body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    headers.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    headers.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    // Revalidated on every load so an upgraded gateway never runs an old script.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
