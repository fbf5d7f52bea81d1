//! Retries, fallbacks and timeouts around one Bedrock call, all before any byte reaches the caller.
//!
//! A call tries the requested model, then each of its fallbacks (`BedrockModel.spec.fallbacks`,
//! already flattened by render). Each model gets up to `max_attempts` attempts: throttling, 5xx
//! (`ServiceUnavailable`, `InternalServer`, `ModelNotReady`), broken connections and connect
//! timeouts are retried after a full-jitter exponential backoff (longer when Bedrock sends
//! `Retry-After`), as long as the next attempt can start before the call's deadline. A model that
//! is still throttled, unavailable or unreachable, or that did not start answering within its
//! first-byte timeout (not retried: it was slow, and another wait would be as slow), hands over
//! to the next fallback while the deadline allows; any other error is the caller's answer at once.
//! Every attempt is signed anew and sends the same body bytes.
//!
//! A ConverseStream answer is held until its first event-stream frame is read: Bedrock can accept
//! the call (HTTP 200) and then refuse it in the first frame (`throttlingException`), and no byte
//! has reached the caller yet, so that is retried like an HTTP 429. The first frame comes at once
//! (`messageStart`), before any token. Once the first frame is an event, this module is done: a
//! stream that breaks later is never retried (the caller already has part of the answer).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::bedrock::errors::stream_exception_error;
use crate::bedrock::eventstream::{EventStreamDecoder, StreamFrame};
use crate::endpoints::upstream_error;
use crate::error::ApiError;
use crate::otel::BedrockCall;
use crate::server::App;
use crate::snapshot::Route;
use crate::upstream::{SendError, Target, UpstreamBody};

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
    /// Time Bedrock may take to start answering (the response headers; for a stream, its first
    /// frame), for models without their own.
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
            Operation::ConverseStream => crate::upstream::EVENT_STREAM,
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
    /// The response, headers read; the body not yet, except a stream's first frame.
    pub response: Response<UpstreamBody>,
    /// For ConverseStream, what was read of the body before answering the caller.
    pub opening: Option<Opening>,
    /// What was prepared for the route that answered.
    pub extra: T,
}

/// The start of a ConverseStream body, read before the caller gets the response headers.
pub struct Opening {
    /// The decoder, holding whatever arrived after the first frame.
    pub decoder: EventStreamDecoder,
    /// The first frame: always an event (an exception there was answered as an HTTP error).
    pub frame: StreamFrame,
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
    // Why the requested model gave up: the fallbacks metric's reason.
    let (reason, mut last) = match attempts(app, route, op, &first.body, deadline).await {
        Ok((response, opening)) => {
            return Ok(Answer { route: route.clone(), response, opening, extra: first.extra });
        }
        Err(Exhausted::Final(error)) => return Err(error),
        Err(Exhausted::Fallback(reason, error)) => (reason, error),
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
        tracing::info!(model = %route.model.served_name, fallback = %fallback.model.served_name, reason, "handing the Bedrock call to a fallback");
        let body = own.as_ref().map_or(&first.body, |p| &p.body);
        match attempts(app, fallback, op, body, deadline).await {
            Ok((response, opening)) => {
                app.metrics
                    .fallbacks
                    .with_label_values(&[&route.model.served_name, &fallback.model.served_name, reason])
                    .inc();
                let extra = own.map_or(first.extra, |p| p.extra);
                return Ok(Answer { route: fallback.clone(), response, opening, extra });
            }
            Err(Exhausted::Final(error)) => return Err(error),
            Err(Exhausted::Fallback(_, error)) => last = error,
        }
    }
    Err(last)
}

/// How the attempts on one model ended without a response.
enum Exhausted {
    /// Still throttled, unavailable or unreachable, or too slow to start: a fallback may help.
    /// The metric's reason and the caller's error if none does.
    Fallback(&'static str, ApiError),
    /// Anything else (the caller's request, access, credentials): answered as is.
    Final(ApiError),
}

/// One failed attempt.
enum Failure {
    /// Worth another attempt: the metric's reason, the error, Bedrock's `Retry-After`.
    Retry(&'static str, ApiError, Option<Duration>),
    /// Not worth another attempt.
    Final(ApiError),
}

/// A successful attempt: the response and, for a stream, its opening.
type Opened = (Response<UpstreamBody>, Option<Opening>);

/// Up to `max_attempts` attempts at `route`.
async fn attempts(
    app: &App,
    route: &Route,
    op: Operation,
    body: &Bytes,
    deadline: Instant,
) -> Result<Opened, Exhausted> {
    let policy = &app.resilience;
    let first_byte = policy.first_byte_timeout(route);
    let mut attempt = 1;
    loop {
        let once = tokio::time::timeout(first_byte, attempt_once(app, route, op, body.clone()));
        let (reason, error, hint) = match once.await {
            Ok(Ok(opened)) => return Ok(opened),
            Ok(Err(Failure::Retry(reason, error, hint))) => (reason, error, hint),
            Ok(Err(Failure::Final(error))) => return Err(Exhausted::Final(error)),
            Err(_) => {
                let error = first_byte_timeout(&route.model.served_name, first_byte);
                return Err(Exhausted::Fallback(FIRST_BYTE_TIMEOUT, error));
            }
        };
        if attempt >= policy.max_attempts {
            return Err(Exhausted::Fallback(reason, error));
        }
        let wait = policy.backoff(attempt).max(hint.unwrap_or_default());
        if Instant::now() + wait >= deadline {
            return Err(Exhausted::Fallback(reason, error));
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

/// The fallbacks metric's reason for a model that did not start answering in time.
const FIRST_BYTE_TIMEOUT: &str = "first_byte_timeout";

/// One attempt in its CLIENT span (traces on), which ends with the attempt's outcome: for a
/// stream, once its first frame is read. A failed attempt's span is an error naming why.
async fn attempt_once(app: &App, route: &Route, op: Operation, body: Bytes) -> Result<Opened, Failure> {
    let mut span = BedrockCall::start(op.target(route));
    let result = send_once(app, route, op, body, &mut span).await;
    if let Err(Failure::Retry(_, error, _) | Failure::Final(error)) = &result {
        span.failed(error.code.unwrap_or(error.kind), &error.message);
    }
    span.end();
    result
}

/// One signed request; an error response is read (so the connection is reused) and classified,
/// and a stream's first frame is read (an exception there is an error response too).
async fn send_once(
    app: &App,
    route: &Route,
    op: Operation,
    body: Bytes,
    span: &mut BedrockCall,
) -> Result<Opened, Failure> {
    let mut response = match app.upstream.post_json(op.target(route), &route.signer, body, op.accept()).await
    {
        Ok(response) => response,
        Err(SendError::Connection(error)) => return Err(Failure::Retry("connection", error, None)),
        Err(SendError::ConnectTimeout(error)) => return Err(Failure::Retry("connect_timeout", error, None)),
        Err(e @ SendError::Credentials(_)) => return Err(Failure::Final(e.into_api_error())),
    };
    span.answered(&response);
    if response.status().is_success() {
        if op != Operation::ConverseStream {
            return Ok((response, None));
        }
        let opening = open_stream(app, route, response.body_mut(), span).await?;
        return Ok((response, Some(opening)));
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

/// Reads a ConverseStream body up to its first frame. An exception frame there is classified as
/// its HTTP twin would be (retried or final), and `span` names its type as it would the HTTP
/// twin's; a body that breaks before it is a connection error.
async fn open_stream(
    app: &App,
    route: &Route,
    body: &mut UpstreamBody,
    span: &mut BedrockCall,
) -> Result<Opening, Failure> {
    let model = &route.model.served_name;
    let mut decoder = EventStreamDecoder::new();
    loop {
        match decoder.next_frame() {
            Ok(Some(frame @ StreamFrame::Event { .. })) => return Ok(Opening { decoder, frame }),
            Ok(Some(
                StreamFrame::Exception { exception_type: code, message }
                | StreamFrame::Error { code, message },
            )) => {
                let shape = shape_name(&code);
                app.metrics.upstream_errors.with_label_values(&[model, &shape]).inc();
                let error = stream_exception_error(&code, &message, model);
                span.failed(&shape, &error.message);
                return Err(match retry_reason(StatusCode::OK, Some(&code)) {
                    Some(reason) => Failure::Retry(reason, error, None),
                    None => Failure::Final(error),
                });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, model = %model, "undecodable first frame in the Bedrock stream");
                return Err(Failure::Final(stream_malformed()));
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    decoder.push(&data);
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, model = %model, "Bedrock stream broke off before its first frame");
                return Err(Failure::Retry("connection", stream_broke_off(), None));
            }
            None => return Err(Failure::Final(stream_ended())),
        }
    }
}

/// An in-stream exception's member name as the error shape's name (`throttlingException` ->
/// `ThrottlingException`), so that the errors metric counts both forms of one error together.
fn shape_name(member: &str) -> String {
    let mut chars = member.chars();
    chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect()
}

/// 502 for a Bedrock stream whose connection broke before the answer was complete.
pub fn stream_broke_off() -> ApiError {
    ApiError::bad_gateway("The Bedrock stream broke off before the answer was complete.")
}

/// 502 for a Bedrock stream that ended cleanly before the answer was complete.
pub fn stream_ended() -> ApiError {
    ApiError::bad_gateway("The Bedrock stream ended before the answer was complete.")
}

/// 502 for a Bedrock stream with a frame that cannot be decoded.
pub fn stream_malformed() -> ApiError {
    ApiError::bad_gateway("Bedrock sent a malformed event stream.")
}

/// The retries metric's reason for a Bedrock error worth retrying, `None` for the rest.
///
/// By AWS error code first (ModelNotReadyException is a 429 that means "loading", not
/// "throttled"), then by status for errors without a known code. Codes compare without case:
/// an in-stream exception names its member (`throttlingException`), given with status 200.
pub fn retry_reason(status: StatusCode, error_type: Option<&str>) -> Option<&'static str> {
    let code = error_type.map_or("", |t| t.split(':').next().unwrap_or(t).trim());
    let is = |name: &str| code.eq_ignore_ascii_case(name);
    if is("ThrottlingException") {
        Some("throttled")
    } else if is("ServiceUnavailableException") || is("ModelNotReadyException") {
        Some("unavailable")
    } else if is("InternalServerException") {
        Some("server_error")
    } else if !code.is_empty() && !status.is_server_error() {
        None
    } else {
        match status.as_u16() {
            429 => Some("throttled"),
            503 => Some("unavailable"),
            500..=599 => Some("server_error"),
            _ => None,
        }
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
        // In-stream exceptions: member names, inside a 200.
        assert_eq!(r(200, Some("throttlingException")), Some("throttled"));
        assert_eq!(r(200, Some("serviceUnavailableException")), Some("unavailable"));
        assert_eq!(r(200, Some("internalServerException")), Some("server_error"));
        assert_eq!(r(200, Some("modelStreamErrorException")), None);
        assert_eq!(r(200, Some("validationException")), None);
    }

    #[test]
    fn stream_members_count_as_their_shapes() {
        assert_eq!(shape_name("throttlingException"), "ThrottlingException");
        assert_eq!(shape_name(""), "");
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
