//! `POST /v1/chat/completions` on Bedrock Converse and ConverseStream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use api::config::ModelKind;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{json_response, read_body, snapshot};
use crate::auth::Subject;
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::errors::api_error;
use crate::bedrock::eventstream::EventStreamDecoder;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::limits::Admission;
use crate::metrics::Metrics;
use crate::openai::chat::parse_chat_request;
use crate::server::App;
use crate::snapshot::Route;
use crate::translate::ResponseMeta;
use crate::translate::chat_converse::{ChatStream, chat_completion, converse_request};
use crate::translate::{StreamStep, StreamTranslator};
use crate::usage::{self, Record, chat_tokens};

const ENDPOINT: &str = "chat";
/// Largest Bedrock error or Converse response body read into memory.
const MAX_UPSTREAM_BODY: usize = 16 * 1024 * 1024;

/// Handles one chat completion, streaming or not, and records its metrics.
pub async fn completions(
    app: &Arc<App>,
    req: Request<Incoming>,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut model_label = String::from("-");
    let result = complete(app, req, started, &mut model_label).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.status,
    };
    app.metrics.requests.with_label_values(&[ENDPOINT, &model_label, status.as_str()]).inc();
    // A stream records its duration when it ends; everything else ends here.
    if !matches!(&result, Ok(r) if matches!(r.body(), ResponseBody::Stream(_))) {
        app.metrics
            .duration
            .with_label_values(&[ENDPOINT, &model_label])
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

async fn complete(
    app: &Arc<App>,
    req: Request<Incoming>,
    started: Instant,
    model_label: &mut String,
) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = snapshot(app)?;
    let (parts, body) = req.into_parts();
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    let subject = &subject;
    let request = parse_chat_request(&read_body(app, body).await?)?;
    let route =
        snapshot.routes.get(&request.model).ok_or_else(|| ApiError::model_not_found(&request.model))?;
    model_label.clone_from(&route.model.served_name);
    if !snapshot.policies.allows(subject, &request.model) {
        return Err(ApiError::forbidden(format!("You do not have access to the model `{}`.", request.model))
            .with_param("model")
            .with_code("model_not_allowed"));
    }
    if route.model.kind != ModelKind::Chat {
        return Err(ApiError::invalid_request(format!(
            "The model `{}` is an {} model and cannot be used with /v1/chat/completions.",
            request.model,
            kind_name(route.model.kind)
        ))
        .with_param("model"));
    }
    let converse = converse_request(&request)?;
    let admission = app.usage.admit(subject, &snapshot.policies, &route.model.served_name).await?;
    let body = serde_json::to_vec(&converse).expect("Converse request serializes");
    let meta = ResponseMeta { id: completion_id(), created: unix_now(), model: request.model.clone() };
    let streaming = request.stream;
    let (target, accept) = if streaming {
        (&route.converse_stream, "application/vnd.amazon.eventstream")
    } else {
        (&route.converse, "application/json")
    };
    let response = app.upstream.post_json(target, &route.signer, body, accept).await?;
    if !response.status().is_success() {
        let error = upstream_error(&app.metrics, &request.model, response).await;
        let record = Record {
            status: error.status.as_u16(),
            ..Record::new(ENDPOINT, &meta.id, subject, &route.model, started, &admission)
        };
        app.usage.record(&record);
        return Err(error);
    }
    if streaming {
        let include_usage = request.stream_options.include_usage;
        let rate_headers = admission.headers().clone();
        let request_id = meta.id.clone();
        let sse = SseBody {
            upstream: response.into_body(),
            decoder: EventStreamDecoder::new(),
            translator: ChatStream::new(meta, include_usage),
            out: BytesMut::with_capacity(1024),
            done: false,
            finish: Some(StreamFinish {
                app: app.clone(),
                route: route.clone(),
                subject: subject.clone(),
                admission,
                request_id,
                started,
                first_token: None,
                status: 200,
            }),
        };
        let mut response = Response::new(ResponseBody::Stream(Box::pin(sse)));
        let headers = response.headers_mut();
        headers.extend(rate_headers);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(response);
    }
    let bytes = collect_limited(response.into_body()).await?;
    let converse: ConverseResponse = serde_json::from_slice(&bytes).map_err(|e| {
        tracing::warn!(error = %e, model = %request.model, "Bedrock answered a Converse body the gateway cannot read");
        ApiError::bad_gateway("Bedrock returned a response the gateway could not read.")
    })?;
    let completion = chat_completion(converse, &meta);
    let record = Record {
        tokens: chat_tokens(&completion.usage),
        ..Record::new(ENDPOINT, &meta.id, subject, &route.model, started, &admission)
    };
    let cost = app.usage.record(&record);
    let mut response =
        json_response(StatusCode::OK, serde_json::to_vec(&completion).expect("completion serializes"));
    usage::set_headers(response.headers_mut(), &admission, cost);
    Ok(response)
}

/// Reads a Bedrock error response and maps it to the caller's error.
async fn upstream_error(metrics: &Metrics, model: &str, response: Response<Incoming>) -> ApiError {
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

async fn collect_limited(body: Incoming) -> Result<Bytes, ApiError> {
    http_body_util::Limited::new(body, MAX_UPSTREAM_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ApiError::bad_gateway("The Bedrock response ended before it was complete."))
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Chat => "chat",
        ModelKind::Embedding => "embedding",
        ModelKind::Image => "image",
    }
}

fn completion_id() -> String {
    let mut id = String::with_capacity(33);
    id.push_str("chatcmpl-");
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(24));
    id
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What a stream records when it ends, however it ends.
struct StreamFinish {
    app: Arc<App>,
    route: Arc<Route>,
    subject: Arc<Subject>,
    admission: Admission,
    request_id: String,
    started: Instant,
    first_token: Option<Instant>,
    status: u16,
}

/// ConverseStream event frames in, OpenAI SSE out, as the upstream body arrives.
///
/// No task and no channel: the client's connection polls this body, which polls Bedrock's. A client
/// that goes away drops it, and with it the upstream call.
struct SseBody {
    upstream: Incoming,
    decoder: EventStreamDecoder,
    translator: ChatStream,
    out: BytesMut,
    done: bool,
    finish: Option<StreamFinish>,
}

impl SseBody {
    fn end(&mut self) {
        self.done = true;
        if let Some(f) = self.finish.take() {
            let served = &f.route.model.served_name;
            f.app
                .metrics
                .duration
                .with_label_values(&[ENDPOINT, served])
                .observe(f.started.elapsed().as_secs_f64());
            let record = Record {
                tokens: self.translator.usage().as_ref().map(chat_tokens).unwrap_or_default(),
                status: f.status,
                first_token: f.first_token,
                ..Record::new(ENDPOINT, &f.request_id, &f.subject, &f.route.model, f.started, &f.admission)
            };
            f.app.usage.record(&record);
        }
    }

    fn fail(&mut self, error: ApiError) {
        if let Some(f) = &mut self.finish {
            f.status = error.status.as_u16();
        }
        self.translator.abort(&error, &mut self.out);
        self.end();
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                if let Some(f) = this.finish.as_mut().filter(|f| f.first_token.is_none()) {
                    f.first_token = Some(Instant::now());
                }
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    this.decoder.push(&data);
                    loop {
                        match this.decoder.next_frame() {
                            Ok(Some(frame)) => match this.translator.on_frame(frame, &mut this.out) {
                                StreamStep::Continue => {}
                                StreamStep::Done | StreamStep::Failed(_) => {
                                    this.end();
                                    break;
                                }
                            },
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "undecodable frame in the Bedrock stream");
                                this.fail(ApiError::bad_gateway("Bedrock sent a malformed event stream."));
                                break;
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Bedrock stream broke off");
                    this.fail(ApiError::bad_gateway(
                        "The Bedrock stream broke off before the answer was complete.",
                    ));
                }
                None => this
                    .fail(ApiError::bad_gateway("The Bedrock stream ended before the answer was complete.")),
            }
        }
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        // The client went away mid-stream: still record the duration and what was used.
        if let Some(f) = &mut self.finish {
            f.status = 499;
            self.end();
        }
    }
}
