//! HTTP endpoints, one file per API surface, and the helpers they share.

pub mod chat;
pub mod models;
pub mod ops;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::server::App;
use crate::snapshot::Snapshot;

/// The config being served, or 503 before the first load.
pub fn snapshot(app: &App) -> Result<Arc<Snapshot>, ApiError> {
    app.config
        .current()
        .ok_or_else(|| ApiError::unavailable("The gateway has not loaded its configuration yet."))
}

/// Reads a request body up to the configured limit (413 beyond it).
pub async fn read_body(app: &App, body: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(body, app.max_body_bytes).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("The request body is larger than the gateway's limit of {} bytes.", app.max_body_bytes),
        )
        .with_code("request_too_large")),
        Err(_) => Err(ApiError::invalid_request("The request body could not be read completely.")),
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A response with a fixed content type.
pub fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The OpenAI-shaped error response.
pub fn error_response(error: &ApiError) -> Response<ResponseBody> {
    let mut response = json_response(error.status, error.to_json());
    if let Some(headers) = &error.headers {
        response.headers_mut().extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    response
}
