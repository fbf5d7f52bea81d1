//! Retries, fallbacks and timeouts around one Bedrock call, all before any byte reaches the caller.
//!
//! A call tries the requested model, then each of its fallbacks (`BedrockModel.spec.fallbacks`,
//! already flattened by render). Each model gets up to `max_attempts` attempts: throttling, 5xx
//! (`ServiceUnavailable`, `InternalServer`, `ModelNotReady`) and broken connections are retried
//! after a full-jitter exponential backoff (longer when Bedrock sends `Retry-After`), as long as
//! the next attempt can start before the call's deadline. A model that is still throttled or
//! unavailable hands over to the next fallback; any other error is the caller's answer at once.
//! Every attempt is signed anew and sends the same body bytes. Once the response headers are
//! in, this module is done: a stream that breaks later is never retried (the caller already
//! has part of the answer).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::endpoints::upstream_error;
use crate::error::ApiError;
use crate::server::App;
use crate::snapshot::Route;
use crate::upstream::{SendError, Target};

/// How hard the gateway tries before giving up on Bedrock (the `--retry-*` and timeout flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per model, the first included (1 turns retries off).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles with every further one.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// No attempt (retry or fallback) starts later than this after the call began.
    pub deadline: Duration,
    /// Time Bedrock may take to send the response headers, for models without their own.
    pub first_byte_timeout: Duration,
    /// Longest silence between two stream events (and while reading a whole response body).
    pub idle_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            deadline: Duration::from_secs(20),
            first_byte_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl Policy {
    /// The full-jitter backoff before retry number `retry` (1-based): uniform in
    /// `0..=min(backoff_max, backoff_base * 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling =
            self.backoff_base.saturating_mul(1 << (retry.saturating_sub(1)).min(20)).min(self.backoff_max);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(..=micros))
    }

    /// The first-byte timeout of `route`: the model's own, else the default.
    pub fn first_byte_timeout(&self, route: &Route) -> Duration {
        route.model.first_byte_timeout_ms.map_or(self.first_byte_timeout, Duration::from_millis)
    }
}

/// Which Bedrock operation a call makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Converse (a whole chat answer).
    Converse,
    /// ConverseStream (event frames).
    ConverseStream,
    /// InvokeModel (embedding and image models).
    Invoke,
}

impl Operation {
    fn target(self, route: &Route) -> &Target {
        match self {
            Operation::Converse => &route.converse,
            Operation::ConverseStream => &route.converse_stream,
            Operation::Invoke => &route.invoke,
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Operation::ConverseStream => "application/vnd.amazon.eventstream",
            Operation::Converse | Operation::Invoke => "application/json",
        }
    }
}

/// A request body ready to send, and what reading its answer needs (`T`).
pub struct Prepared<T> {
    /// The body bytes, shared by every attempt.
    pub body: Bytes,
    /// Whatever the endpoint keeps beside the body (the chat reply context, or nothing).
    pub extra: T,
}

/// Builds a fallback's own body, `Ok(None)` when the first body fits it (see [`call`]).
pub type Prepare<'a, T> = &'a (dyn Fn(&Route) -> Result<Option<Prepared<T>>, ApiError> + Sync);

/// Bedrock's successful response and the route that gave it.
pub struct Answer<T> {
    /// The model (and region) that answered: the requested one or a fallback.
    pub route: Arc<Route>,
    /// The response, headers read, body not yet.
    pub response: Response<Incoming>,
    /// What was prepared for the route that answered.
    pub extra: T,
}

/// Sends `first` to `route` with retries and, when `prepare` is given, fallbacks.
///
/// `prepare` builds the body for a fallback that cannot take `first` as it is (another model
/// family); it returns `Ok(None)` when `first` fits. A fallback it cannot prepare is skipped.
pub async fn call<T>(
    app: &App,
    route: &Arc<Route>,
    op: Operation,
    first: Prepared<T>,
    prepare: Option<Prepare<'_, T>>,
) -> Result<Answer<T>, ApiError> {
    let deadline = Instant::now() + app.resilience.deadline;
    let mut last = match attempts(app, route, op, &first.body, deadline).await {
        Ok(response) => return Ok(Answer { route: route.clone(), response, extra: first.extra }),
        Err(Exhausted::Final(error)) => return Err(error),
        Err(Exhausted::Retryable(error)) => error,
    };
    let Some(prepare) = prepare else { return Err(last) };
    for fallback in &route.fallbacks {
        if Instant::now() >= deadline {
            break;
        }
        let own = match prepare(fallback) {
            Ok(own) => own,
            Err(e) => {
                tracing::warn!(model = %fallback.model.served_name, error = %e, "fallback cannot take this request; skipped");
                continue;
            }
        };
        let body = own.as_ref().map_or(&first.body, |p| &p.body);
        match attempts(app, fallback, op, body, deadline).await {
            Ok(response) => {
                app.metrics
                    .fallbacks
                    .with_label_values(&[&route.model.served_name, &fallback.model.served_name])
                    .inc();
                let extra = own.map_or(first.extra, |p| p.extra);
                return Ok(Answer { route: fallback.clone(), response, extra });
            }
            Err(Exhausted::Final(error)) => return Err(error),
            Err(Exhausted::Retryable(error)) => last = error,
        }
    }
    Err(last)
}

/// How the attempts on one model ended without a response.
enum Exhausted {
    /// Still throttled, unavailable or unreachable: a fallback may help.
    Retryable(ApiError),
    /// Anything else (the caller's request, access, credentials, a timeout): answered as is.
    Final(ApiError),
}

/// One failed attempt.
enum Failure {
    /// Worth another attempt: the metric's reason, the error, Bedrock's `Retry-After`.
    Retry(&'static str, ApiError, Option<Duration>),
    /// Not worth another attempt.
    Final(ApiError),
}

/// Up to `max_attempts` attempts at `route`.
async fn attempts(
    app: &App,
    route: &Route,
    op: Operation,
    body: &Bytes,
    deadline: Instant,
) -> Result<Response<Incoming>, Exhausted> {
    let policy = &app.resilience;
    let first_byte = policy.first_byte_timeout(route);
    let mut attempt = 1;
    loop {
        let once = tokio::time::timeout(first_byte, attempt_once(app, route, op, body.clone()));
        let (reason, error, hint) = match once.await {
            Ok(Ok(response)) => return Ok(response),
            Ok(Err(Failure::Retry(reason, error, hint))) => (reason, error, hint),
            Ok(Err(Failure::Final(error))) => return Err(Exhausted::Final(error)),
            Err(_) => return Err(Exhausted::Final(first_byte_timeout(&route.model.served_name, first_byte))),
        };
        if attempt >= policy.max_attempts {
            return Err(Exhausted::Retryable(error));
        }
        let wait = policy.backoff(attempt).max(hint.unwrap_or_default());
        if Instant::now() + wait >= deadline {
            return Err(Exhausted::Retryable(error));
        }
        app.metrics
            .upstream_retries
            .with_label_values(&[&route.model.account, &route.model.served_name, reason])
            .inc();
        tracing::info!(model = %route.model.served_name, reason, attempt, ?wait, "retrying the Bedrock call");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// One signed request; an error response is read (so the connection is reused) and classified.
async fn attempt_once(
    app: &App,
    route: &Route,
    op: Operation,
    body: Bytes,
) -> Result<Response<Incoming>, Failure> {
    let response = match app.upstream.post_json(op.target(route), &route.signer, body, op.accept()).await {
        Ok(response) => response,
        Err(SendError::Connection(error)) => return Err(Failure::Retry("connection", error, None)),
        Err(e @ SendError::Credentials(_)) => return Err(Failure::Final(e.into_api_error())),
    };
    if response.status().is_success() {
        return Ok(response);
    }
    let error_type = response.headers().get("x-amzn-errortype").and_then(|v| v.to_str().ok());
    let reason = retry_reason(response.status(), error_type);
    let hint = retry_after(response.headers());
    let error = upstream_error(&app.metrics, &route.model.served_name, response).await;
    Err(match reason {
        Some(reason) => Failure::Retry(reason, error, hint),
        None => Failure::Final(error),
    })
}

/// The retries metric's reason for a Bedrock error worth retrying, `None` for the rest.
///
/// By AWS error code first (ModelNotReadyException is a 429 that means "loading", not
/// "throttled"), then by status for errors without a known code.
pub fn retry_reason(status: StatusCode, error_type: Option<&str>) -> Option<&'static str> {
    let code = error_type.map(|t| t.split(':').next().unwrap_or(t).trim());
    match code {
        Some("ThrottlingException") => Some("throttled"),
        Some("ServiceUnavailableException" | "ModelNotReadyException") => Some("unavailable"),
        Some("InternalServerException") => Some("server_error"),
        Some(c) if !c.is_empty() && !status.is_server_error() => None,
        _ => match status.as_u16() {
            429 => Some("throttled"),
            503 => Some("unavailable"),
            500..=599 => Some("server_error"),
            _ => None,
        },
    }
}

/// `Retry-After` in whole seconds, capped at a minute (an HTTP date is not honoured).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(60)))
}

/// 504 for a Bedrock that did not start answering in time.
fn first_byte_timeout(model: &str, after: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "server_error",
        format!("Bedrock did not start answering for model `{model}` within {} ms.", after.as_millis()),
    )
    .with_code("timeout")
}

/// 504 for a Bedrock response that stopped arriving: the stream's error event, or the answer
/// of a whole body that stalled.
pub fn idle_timeout(model: &str, after: Duration) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "server_error",
        format!(
            "Bedrock stopped sending the answer for model `{model}`: nothing arrived for {} ms.",
            after.as_millis()
        ),
    )
    .with_code("timeout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_by_code_then_status() {
        let r = |status: u16, code: Option<&str>| retry_reason(StatusCode::from_u16(status).unwrap(), code);
        assert_eq!(r(429, Some("ThrottlingException")), Some("throttled"));
        assert_eq!(r(429, Some("ThrottlingException:http://internal.amazon.com/coral/")), Some("throttled"));
        assert_eq!(r(429, Some("ModelNotReadyException")), Some("unavailable"));
        assert_eq!(r(503, Some("ServiceUnavailableException")), Some("unavailable"));
        assert_eq!(r(500, Some("InternalServerException")), Some("server_error"));
        assert_eq!(r(502, Some("SomethingNew")), Some("server_error"));
        assert_eq!(r(503, None), Some("unavailable"));
        assert_eq!(r(429, None), Some("throttled"));
        for (status, code) in [
            (400, "ValidationException"),
            (403, "AccessDeniedException"),
            (408, "ModelTimeoutException"),
            (424, "ModelErrorException"),
            (400, "ServiceQuotaExceededException"),
        ] {
            assert_eq!(r(status, Some(code)), None, "{code}");
        }
        assert_eq!(r(404, None), None);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let p = Policy {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            ..Policy::default()
        };
        let max = |retry| (0..2000).map(|_| p.backoff(retry)).max().unwrap();
        assert!(max(1) <= Duration::from_millis(100) && max(1) > Duration::from_millis(80));
        assert!(max(2) <= Duration::from_millis(200) && max(2) > Duration::from_millis(180));
        assert!(max(3) <= Duration::from_millis(300) && max(3) > Duration::from_millis(280));
        assert!(max(40) <= Duration::from_millis(300));
        assert!((0..2000).map(|_| p.backoff(1)).min().unwrap() < Duration::from_millis(20));
    }

    #[test]
    fn retry_after_takes_seconds_only() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(http::header::RETRY_AFTER, "999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(60)));
        h.insert(http::header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
