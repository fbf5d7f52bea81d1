//! HTTP endpoints, one file per API surface, and the helpers they share.

pub mod batches;
pub mod chat;
pub mod chat_images;
pub mod embeddings;
pub mod files;
pub mod images;
pub mod models;
pub mod ops;
pub mod playground;

use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use api::config::ModelKind;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::auth::Subject;
use crate::bedrock::errors::api_error;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request_body::{RequestBody, RequestBodyError};
use crate::resilience::{self, Operation, Prepared};
use crate::server::App;
use crate::snapshot::{Route, Snapshot};
use crate::upstream::UpstreamBody;

/// Most Bedrock calls one request keeps in flight (embedding and image fan-out).
pub const FAN_OUT: usize = 8;
/// Largest Bedrock response body read into memory (errors, Converse, InvokeModel).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// The config being served, or 503 before the first load.
pub fn snapshot(app: &App) -> Result<Arc<Snapshot>, ApiError> {
    app.config
        .current()
        .ok_or_else(|| ApiError::unavailable("The gateway has not loaded its configuration yet."))
}

/// Reads a request body up to the configured limit (413 beyond it); one that stalls is a 408
/// (see [`crate::request_body`]).
pub async fn read_body(app: &App, body: RequestBody) -> Result<Bytes, ApiError> {
    // A body that came in one frame (most JSON requests) is returned as it is, without a copy.
    let collected = Limited::new(body, app.max_body_bytes).collect().await.map_err(|e| {
        match e.downcast::<RequestBodyError>() {
            Ok(e) => unreadable_body(&e),
            // Limited's own error: the only other one.
            Err(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "The request body is larger than the gateway's limit of {} bytes.",
                    app.max_body_bytes
                ),
            )
            .with_code("request_too_large"),
        }
    })?;
    Ok(collected.to_bytes())
}

/// The caller's error for a request body that could not be read: a 408 for one that stopped
/// arriving (the server then closes an HTTP/1 connection), a 400 for a broken one.
pub fn unreadable_body(error: &RequestBodyError) -> ApiError {
    match error {
        RequestBodyError::Stalled(waited) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "The request body stopped arriving: nothing came for {} ms, so the gateway closed the connection.",
                waited.as_millis()
            ),
        )
        .with_code("request_timeout"),
        RequestBodyError::Read(_) => ApiError::invalid_request("The request body could not be read completely."),
    }
}

/// The segments of `path` after `prefix`: none (the collection), an id, or an id and one of
/// `actions` (`/v1/files/{id}/content`); any other path is a 404 naming it. Checked before
/// authentication, as for the other endpoints.
pub fn resource_segments<'a>(
    method: &http::Method,
    path: &'a str,
    prefix: &str,
    actions: &[&str],
) -> Result<Vec<&'a str>, ApiError> {
    let rest = path.strip_prefix(prefix).unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').skip(1).collect();
    if segments.len() > 2 || (segments.len() == 2 && !actions.contains(&segments[1])) {
        return Err(ApiError::not_found(format!("Unknown request URL: {method} {path}.")));
    }
    Ok(segments)
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

/// Checks that `subject` may call `route` and that the model serves `kind`'s endpoint: 403
/// without a policy granting it, 400 naming the right endpoint for a model of another kind.
pub fn authorize(
    snapshot: &Snapshot,
    subject: &Subject,
    route: &Route,
    kind: ModelKind,
) -> Result<(), ApiError> {
    let model = &route.model.served_name;
    if !snapshot.policies.allows(subject, model) {
        return Err(ApiError::forbidden(format!("You do not have access to the model `{model}`."))
            .with_param("model")
            .with_code("model_not_allowed"));
    }
    if route.model.kind != kind {
        let (what, path) = kind_endpoint(route.model.kind);
        return Err(ApiError::invalid_request(format!(
            "The model `{model}` is {what} model and cannot be used with {}; use it with {path}.",
            kind_endpoint(kind).1
        ))
        .with_param("model")
        .with_code("model_kind_mismatch"));
    }
    Ok(())
}

/// "a chat" / "an embedding" / "an image" and the endpoint a kind serves.
fn kind_endpoint(kind: ModelKind) -> (&'static str, &'static str) {
    match kind {
        ModelKind::Chat => ("a chat", "/v1/chat/completions"),
        ModelKind::Embedding => ("an embedding", "/v1/embeddings"),
        ModelKind::Image => ("an image", "/v1/images/generations or /v1/images/edits"),
    }
}

/// Sends one InvokeModel call for `route`, with retries (no fallbacks: another model's vectors or
/// image parameters would not match); a Bedrock error becomes the caller's error. Returns the
/// response headers (token counts) and body.
pub async fn invoke_model(
    app: &App,
    route: &Arc<Route>,
    body: Vec<u8>,
) -> Result<(HeaderMap, Bytes), ApiError> {
    let first = Prepared { body: Bytes::from(body), extra: () };
    let answer = resilience::call(app, route, Operation::Invoke, first, None).await?;
    let (parts, body) = answer.response.into_parts();
    Ok((parts.headers, read_whole(app, &route.model.served_name, body).await?))
}

/// Sends `bodies` as InvokeModel calls for `route`, at most [`FAN_OUT`] at a time, and reads
/// each answer with `read`. Results come back in the order of `bodies`; the first failure ends
/// the request and drops the calls still in flight.
pub async fn invoke_all<T>(
    app: &App,
    route: &Arc<Route>,
    bodies: Vec<Vec<u8>>,
    read: impl Fn(&HeaderMap, &[u8]) -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    stream::iter(bodies)
        .map(|body| invoke_model(app, route, body))
        .buffered(FAN_OUT)
        .map(|answer| answer.and_then(|(headers, body)| read(&headers, &body)))
        .try_collect()
        .await
}

/// Parses a Bedrock JSON response body; one the gateway cannot read is a 502.
pub fn read_json<T: serde::de::DeserializeOwned>(model: &str, body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        tracing::warn!(error = %e, model, "Bedrock answered a body the gateway cannot read");
        ApiError::bad_gateway("Bedrock returned a response the gateway could not read.")
    })
}

/// Reads a Bedrock error response and maps it to the caller's error.
pub async fn upstream_error(metrics: &Metrics, model: &str, response: Response<UpstreamBody>) -> ApiError {
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or(v).to_owned());
    let body = collect_limited(response.into_body()).await.unwrap_or_default();
    let label = error_type.as_deref().unwrap_or("Unknown");
    metrics.upstream_errors.with_label_values(&[model, label]).inc();
    api_error(status, error_type.as_deref(), &body, model)
}

/// Reads a whole Bedrock response body like [`collect_limited`], giving up (504) when it stalls
/// for longer than the idle timeout.
pub async fn read_whole(app: &App, model: &str, body: UpstreamBody) -> Result<Bytes, ApiError> {
    let idle = app.resilience.idle_timeout;
    tokio::time::timeout(idle, collect_limited(body))
        .await
        .unwrap_or_else(|_| Err(resilience::idle_timeout(model, idle)))
}

/// Reads a whole Bedrock response body, up to [`MAX_UPSTREAM_BODY`].
pub async fn collect_limited(body: UpstreamBody) -> Result<Bytes, ApiError> {
    Limited::new(body, MAX_UPSTREAM_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ApiError::bad_gateway("The Bedrock response ended before it was complete."))
}

/// Records the request count, and the duration unless the response is a stream (a stream
/// records its duration when it ends).
pub fn record_request(
    app: &App,
    endpoint: &str,
    model: &str,
    result: &Result<Response<ResponseBody>, ApiError>,
    started: Instant,
) {
    let status = match result {
        Ok(response) => response.status(),
        Err(e) => e.status,
    };
    app.metrics.requests.with_label_values(&[endpoint, model, status.as_str()]).inc();
    if !matches!(result, Ok(r) if matches!(r.body(), ResponseBody::Stream(_))) {
        app.metrics.duration.with_label_values(&[endpoint, model]).observe(started.elapsed().as_secs_f64());
    }
}

/// Awaits the answer of an endpoint that names no model (files, batches) and records its metrics.
pub async fn recorded(
    app: &App,
    endpoint: &str,
    started: Instant,
    answer: impl Future<Output = Result<Response<ResponseBody>, ApiError>>,
) -> Result<Response<ResponseBody>, ApiError> {
    let result = answer.await;
    record_request(app, endpoint, "-", &result, started);
    result
}

/// `prefix` and 24 random letters and digits: a response id (`chatcmpl-...`, `embd-...`, `img-...`).
pub fn response_id(prefix: &str) -> String {
    // One generator forked from the thread's: a thread-local access per id, not per character.
    let mut rng = fastrand::Rng::new();
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    id.extend(std::iter::repeat_with(|| rng.alphanumeric()).take(24));
    id
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
