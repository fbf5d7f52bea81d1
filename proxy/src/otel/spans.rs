//! The spans of one request and their attributes (OTel GenAI, HTTP and AWS SDK conventions):
//! the SERVER span of the OpenAI call, which for a stream ends with the stream, and a CLIENT
//! span per Bedrock call.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, Span};

use super::with_current_span;
use crate::body::{ResponseBody, StreamBody};
use crate::endpoints::error_response;
use crate::error::ApiError;
use crate::openai::chat::{ChatCompletionRequest, FinishReason};
use crate::upstream::Target;
use crate::usage::Record;

/// `gen_ai.provider.name` (and the deprecated `gen_ai.system`) of every span.
const PROVIDER: &str = "aws.bedrock";

/// What a request's [`Context`] carries besides its span: the tracer for child spans and the
/// GenAI operation they repeat.
pub(super) struct Scope {
    pub(super) tracer: SdkTracer,
    pub(super) operation: &'static str,
}

/// The `gen_ai.operation.name` of a route, `None` for routes that are not GenAI operations.
pub(super) fn operation(method: &Method, path: &str) -> Option<&'static str> {
    if method != Method::POST {
        return None;
    }
    match path {
        "/v1/chat/completions" => Some("chat"),
        "/v1/embeddings" => Some("embeddings"),
        // The conventions' value for multimodal generation; there is none for images alone.
        "/v1/images/generations" | "/v1/images/edits" => Some("generate_content"),
        _ => None,
    }
}

/// The attributes a server span starts with.
pub(super) fn server_attributes<B>(operation: &'static str, req: &Request<B>) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("gen_ai.operation.name", operation),
        KeyValue::new("gen_ai.provider.name", PROVIDER),
        // Deprecated by `gen_ai.provider.name` (semconv 1.37) but still what many backends key on.
        KeyValue::new("gen_ai.system", PROVIDER),
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new("url.path", req.uri().path().to_owned()),
    ];
    if let Some(agent) = req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()) {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    attributes
}

/// The SERVER span of one request, to attach while it runs and to end with its response.
pub struct ServerSpan {
    cx: Context,
}

impl ServerSpan {
    pub(super) fn new(cx: Context) -> Self {
        ServerSpan { cx }
    }

    /// The context to run the request in (`FutureExt::with_context`).
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// Records the outcome and ends the span, or, for a streamed response, hands the span to
    /// the body, which ends it when the stream ends or the caller goes away.
    pub fn finish(self, result: Result<Response<ResponseBody>, ApiError>) -> Response<ResponseBody> {
        let span = self.cx.span();
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                span.set_attribute(KeyValue::new("error.type", error.code.unwrap_or(error.kind)));
                error_response(&error)
            }
        };
        let status = response.status();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        if status.is_server_error() {
            span.set_status(Status::error(status.canonical_reason().unwrap_or("server error")));
        }
        let (parts, body) = response.into_parts();
        let body = match body {
            ResponseBody::Stream(stream) => {
                ResponseBody::Stream(Box::pin(TracedStream { inner: Some(stream), cx: self.cx.clone() }))
            }
            full => {
                span.end();
                full
            }
        };
        Response::from_parts(parts, body)
    }
}

/// A streamed body that keeps its request's context attached while it is polled (so usage
/// recorded at the end of the stream lands on the span) and ends the span with the stream.
struct TracedStream {
    inner: Option<StreamBody>,
    cx: Context,
}

impl Body for TracedStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let polled = {
            let _attached = this.cx.clone().attach();
            inner.as_mut().poll_frame(task)
        };
        if let Poll::Ready(None) = polled {
            this.inner = None;
            this.cx.span().end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|inner| inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), |inner| inner.size_hint())
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        // The caller went away mid-stream: the inner body records its usage on drop, in context.
        if let Some(inner) = self.inner.take() {
            let _attached = self.cx.clone().attach();
            drop(inner);
            self.cx.span().end();
        }
    }
}

/// Names the current request's span after the model asked for (`chat demo/claude-sonnet`) and
/// sets `gen_ai.request.model`.
pub fn request_model(model: &str) {
    with_current_span(|span, cx| {
        if let Some(scope) = cx.get::<Scope>() {
            span.update_name(format!("{} {model}", scope.operation));
        }
        span.set_attribute(KeyValue::new("gen_ai.request.model", model.to_owned()));
    });
}

/// The sampling parameters of a chat request that the caller gave.
pub fn chat_parameters(request: &ChatCompletionRequest) {
    with_current_span(|span, _| {
        if let Some(max) = request.max_tokens {
            span.set_attribute(KeyValue::new("gen_ai.request.max_tokens", i64::from(max)));
        }
        if let Some(t) = request.temperature {
            span.set_attribute(KeyValue::new("gen_ai.request.temperature", f64::from(t)));
        }
        if let Some(p) = request.top_p {
            span.set_attribute(KeyValue::new("gen_ai.request.top_p", f64::from(p)));
        }
        if let Some(k) = request.top_k {
            span.set_attribute(KeyValue::new("gen_ai.request.top_k", f64::from(k)));
        }
        if request.n != 1 {
            span.set_attribute(KeyValue::new("gen_ai.request.choice.count", i64::from(request.n)));
        }
    });
}

/// `gen_ai.response.finish_reasons`, one per choice.
pub fn finish_reasons(reasons: impl IntoIterator<Item = FinishReason>) {
    with_current_span(|span, _| {
        let reasons: Vec<StringValue> = reasons.into_iter().map(|r| r.as_str().into()).collect();
        span.set_attribute(KeyValue::new(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(reasons)),
        ));
    });
}

/// What the request used and cost, from its usage record: tokens, response id and model,
/// account, team, cost, time to first chunk.
pub fn record_usage(r: &Record<'_>, cost: Option<f64>) {
    with_current_span(|span, _| {
        let t = &r.tokens;
        // The conventions count cached input in `input_tokens`, as OpenAI's `prompt_tokens` does.
        let input = t.input + t.cache_read + t.cache_write;
        let mut attributes = vec![
            KeyValue::new("gen_ai.response.id", r.request_id.to_owned()),
            KeyValue::new("gen_ai.response.model", r.model.model_id.clone()),
            KeyValue::new("gen_ai.usage.input_tokens", input as i64),
            KeyValue::new("gen_ai.usage.output_tokens", t.output as i64),
            KeyValue::new("bedrock_gateway.account", r.model.account.clone()),
            KeyValue::new("bedrock_gateway.served_model", r.model.served_name.clone()),
            KeyValue::new("bedrock_gateway.team", r.subject.team_label().to_owned()),
        ];
        if t.cache_read > 0 {
            attributes.push(KeyValue::new("gen_ai.usage.cache_read.input_tokens", t.cache_read as i64));
        }
        if t.cache_write > 0 {
            attributes.push(KeyValue::new("gen_ai.usage.cache_creation.input_tokens", t.cache_write as i64));
        }
        if r.images > 0 {
            attributes.push(KeyValue::new("bedrock_gateway.images", r.images as i64));
        }
        if let Some(usd) = cost {
            attributes.push(KeyValue::new("bedrock_gateway.cost_usd", usd));
        }
        if let Some(first) = r.first_token {
            let seconds = first.duration_since(r.started).as_secs_f64();
            attributes.push(KeyValue::new("gen_ai.response.time_to_first_chunk", seconds));
            span.add_event_with_timestamp("gen_ai.first_chunk", system_time(first), Vec::new());
        }
        span.set_attributes(attributes);
    });
}

/// The wall-clock time of `instant`.
fn system_time(instant: Instant) -> SystemTime {
    SystemTime::now() - instant.elapsed()
}

/// The CLIENT span of one Bedrock attempt, a child of the request's span: signing, the call
/// and, for a stream, its first frame (which can still refuse the call). Does nothing when no
/// request span is being recorded.
pub struct BedrockCall {
    span: Option<Span>,
    /// Whether a failure is recorded: the first one names the attempt's `error.type`.
    failed: bool,
}

impl BedrockCall {
    /// Starts the span of a call to `target`.
    pub fn start(target: &Target) -> BedrockCall {
        let span = super::started().then(|| Self::child_span(target)).flatten();
        BedrockCall { span, failed: false }
    }

    fn child_span(target: &Target) -> Option<Span> {
        Context::map_current(|cx| {
            let scope = cx.get::<Scope>()?;
            if !cx.span().is_recording() {
                return None;
            }
            let (model, action) = model_action(target.uri.path());
            let mut attributes = vec![
                KeyValue::new("gen_ai.operation.name", scope.operation),
                KeyValue::new("gen_ai.provider.name", PROVIDER),
                KeyValue::new("gen_ai.system", PROVIDER),
                KeyValue::new("gen_ai.request.model", model.clone()),
                KeyValue::new("rpc.system", "aws-api"),
                KeyValue::new("rpc.service", "BedrockRuntime"),
                KeyValue::new("rpc.method", action),
                KeyValue::new("cloud.region", target.region.to_string()),
                KeyValue::new("http.request.method", "POST"),
            ];
            if let Some(host) = target.uri.host() {
                attributes.push(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = target.uri.port_u16().or_else(|| default_port(&target.uri)) {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
            Some(
                scope
                    .tracer
                    .span_builder(format!("{} {model}", scope.operation))
                    .with_kind(SpanKind::Client)
                    .with_attributes(attributes)
                    .start_with_context(&scope.tracer, cx),
            )
        })
    }

    /// Records Bedrock's response head: the status, `x-amzn-requestid` and, for an HTTP error,
    /// `x-amzn-errortype` as the failure.
    pub fn answered<B>(&mut self, response: &Response<B>) {
        let Some(span) = &mut self.span else { return };
        let status = response.status();
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        if let Some(id) = header("x-amzn-requestid") {
            span.set_attribute(KeyValue::new("aws.request_id", id.to_owned()));
        }
        if !status.is_success() {
            let error =
                header("x-amzn-errortype").map_or(status.as_str(), |v| v.split(':').next().unwrap_or(v));
            self.failed(error, &format!("Bedrock answered {status}"));
        }
    }

    /// Marks the attempt failed: `error.type` and an error status with `message`. The first
    /// failure recorded is the one kept.
    pub fn failed(&mut self, error_type: &str, message: &str) {
        let Some(span) = &mut self.span else { return };
        if std::mem::replace(&mut self.failed, true) {
            return;
        }
        span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
        span.set_status(Status::error(message.to_owned()));
    }

    /// Ends the span.
    pub fn end(self) {
        if let Some(mut span) = self.span {
            span.end();
        }
    }
}

/// The model id and AWS action of a Bedrock runtime path `/model/{percent-encoded id}/{operation}`.
fn model_action(path: &str) -> (String, String) {
    let mut segments = path.trim_start_matches('/').split('/');
    let model = match (segments.next(), segments.next()) {
        (Some("model"), Some(id)) => {
            percent_encoding::percent_decode_str(id).decode_utf8_lossy().into_owned()
        }
        _ => String::new(),
    };
    let action = match segments.next().unwrap_or_default() {
        "converse" => "Converse".to_owned(),
        "converse-stream" => "ConverseStream".to_owned(),
        "invoke" => "InvokeModel".to_owned(),
        "invoke-with-response-stream" => "InvokeModelWithResponseStream".to_owned(),
        other => other.to_owned(),
    };
    (model, action)
}

/// 443 for https, 80 for http.
fn default_port(uri: &http::Uri) -> Option<u16> {
    match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bedrock_paths_name_the_model_and_action() {
        assert_eq!(
            model_action("/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse-stream"),
            ("us.anthropic.claude-3-7-sonnet-20250219-v1:0".to_owned(), "ConverseStream".to_owned())
        );
        assert_eq!(
            model_action("/model/amazon.titan-embed-text-v2%3A0/invoke"),
            ("amazon.titan-embed-text-v2:0".to_owned(), "InvokeModel".to_owned())
        );
    }

    #[test]
    fn only_genai_routes_are_operations() {
        assert_eq!(operation(&Method::POST, "/v1/chat/completions"), Some("chat"));
        assert_eq!(operation(&Method::POST, "/v1/embeddings"), Some("embeddings"));
        assert_eq!(operation(&Method::POST, "/v1/images/edits"), Some("generate_content"));
        assert_eq!(operation(&Method::GET, "/v1/chat/completions"), None);
        assert_eq!(operation(&Method::GET, "/v1/models"), None);
    }

    #[test]
    fn hooks_without_a_request_span_do_nothing() {
        // No context attached: these must neither panic nor allocate a span.
        request_model("demo/claude-sonnet");
        finish_reasons([FinishReason::Stop]);
        let target = Target::model_operation("http://127.0.0.1:9/", "m", "converse", "us-east-1").unwrap();
        assert!(BedrockCall::start(&target).span.is_none());
    }
}
