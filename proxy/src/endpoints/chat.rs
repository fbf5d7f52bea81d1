//! `POST /v1/chat/completions` on Bedrock Converse and ConverseStream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use api::config::ModelKind;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use hyper::body::Incoming;

use super::{
    authorize, collect_limited, json_response, read_body, record_request, snapshot, unix_now, upstream_error,
};
use crate::auth::Subject;
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::eventstream::EventStreamDecoder;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::limits::Admission;
use crate::openai::chat::{Choice, parse_chat_request};
use crate::otel;
use crate::server::App;
use crate::snapshot::Route;
use crate::translate::ResponseMeta;
use crate::translate::chat_converse::{ChatStream, chat_completion, converse_request, guardrail_config};
use crate::translate::{StreamStep, StreamTranslator};
use crate::usage::{self, Record, chat_tokens, content};

const ENDPOINT: &str = "chat";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// Handles one chat completion, streaming or not, and records its metrics.
pub async fn completions(
    app: &Arc<App>,
    req: Request<Incoming>,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut model_label = String::from("-");
    let result = complete(app, req, started, &mut model_label).await;
    record_request(app, ENDPOINT, &model_label, &result, started);
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
    let takes_trailers = usage::accepts_trailers(parts.version, &parts.headers);
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    let subject = &subject;
    let raw = read_body(app, body).await?;
    let mut request = parse_chat_request(&raw)?;
    otel::request_model(&request.model);
    otel::chat_parameters(&request);
    let route =
        snapshot.routes.get(&request.model).ok_or_else(|| ApiError::model_not_found(&request.model))?;
    model_label.clone_from(&route.model.served_name);
    authorize(&snapshot, subject, route, ModelKind::Chat)?;
    app.images.inline_remote_images(&mut request).await?;
    // An application inference profile ARN hides its model; the operator resolved it.
    let family_model = route.model.underlying_model_id.as_deref().unwrap_or(&route.model.model_id);
    let mut translation = converse_request(&request, family_model)?;
    translation.body.guardrail_config = route.model.guardrail.as_ref().map(guardrail_config);
    if translation.dropped_cache_points > 0 {
        app.metrics
            .cache_points_dropped
            .with_label_values(&[&route.model.served_name])
            .inc_by(u64::from(translation.dropped_cache_points));
    }
    let body = serde_json::to_vec(&translation.body).expect("Converse request serializes");
    let reply = translation.reply;
    let admission = app.usage.admit(subject, &snapshot.policies, &route.model.served_name).await?;
    let meta = ResponseMeta { id: completion_id(), created: unix_now(), model: request.model.clone() };
    let streaming = request.stream;
    if !streaming {
        // `n` choices are `n` Converse calls, made concurrently.
        // `repeat_n` moves the body into the last call: one request, no copy.
        let bodies = std::iter::repeat_n(body, request.n as usize);
        let calls = bodies.map(|body| converse_once(app, route, &request.model, body));
        let answers = futures_util::future::try_join_all(calls).await.inspect_err(|error| {
            let record = Record {
                status: error.status.as_u16(),
                ..Record::new(ENDPOINT, &meta.id, subject, &route.model, started, &admission)
            };
            app.usage.record(&record);
        });
        let mut answers = answers?.into_iter();
        let first = answers.next().expect("n is at least 1");
        let mut completion = chat_completion(first, &meta, &reply);
        for (index, converse) in (1..).zip(answers) {
            let more = chat_completion(converse, &meta, &reply);
            completion.usage = completion.usage.plus(&more.usage);
            completion.choices.extend(more.choices.into_iter().map(|c| Choice { index, ..c }));
        }
        otel::finish_reasons(completion.choices.iter().map(|c| c.finish_reason));
        let record = Record {
            tokens: chat_tokens(&completion.usage),
            ..Record::new(ENDPOINT, &meta.id, subject, &route.model, started, &admission)
        };
        let cost = app.usage.record(&record);
        let body = serde_json::to_vec(&completion).expect("completion serializes");
        if app.usage.logs_content() {
            let text = content::completion_text(&body);
            content::log(&meta.id, ENDPOINT, &route.model.served_name, &raw, &text);
        }
        let mut response = json_response(StatusCode::OK, body);
        usage::set_headers(response.headers_mut(), &admission, cost);
        return Ok(response);
    }
    let response = app.upstream.post_json(&route.converse_stream, &route.signer, body, EVENT_STREAM).await?;
    if !response.status().is_success() {
        let error = upstream_error(&app.metrics, &request.model, response).await;
        let record = Record {
            status: error.status.as_u16(),
            ..Record::new(ENDPOINT, &meta.id, subject, &route.model, started, &admission)
        };
        app.usage.record(&record);
        return Err(error);
    }
    let include_usage = request.stream_options.include_usage;
    // The cost trailer is announced only when it will come: a priced model and a client that reads it.
    let cost_trailer = takes_trailers && app.usage.prices(&route.model).is_some();
    let rate_headers = admission.headers().clone();
    let request_id = meta.id.clone();
    let sse = SseBody {
        upstream: response.into_body(),
        decoder: EventStreamDecoder::new(),
        translator: ChatStream::new(meta, include_usage, reply),
        out: BytesMut::with_capacity(1024),
        done: false,
        cost_trailer,
        trailers: None,
        transcript: app.usage.logs_content().then(|| (raw, BytesMut::new())),
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
    if cost_trailer {
        usage::announce_cost_trailer(headers);
    }
    Ok(response)
}

/// One Converse call, read and parsed.
async fn converse_once(
    app: &App,
    route: &Route,
    model: &str,
    body: Vec<u8>,
) -> Result<ConverseResponse, ApiError> {
    let response = app.upstream.post_json(&route.converse, &route.signer, body, "application/json").await?;
    if !response.status().is_success() {
        return Err(upstream_error(&app.metrics, model, response).await);
    }
    let bytes = collect_limited(response.into_body()).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        tracing::warn!(error = %e, model = %model, "Bedrock answered a Converse body the gateway cannot read");
        ApiError::bad_gateway("Bedrock returned a response the gateway could not read.")
    })
}

fn completion_id() -> String {
    let mut id = String::with_capacity(33);
    id.push_str("chatcmpl-");
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(24));
    id
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
    /// Whether the stream ends with the cost trailer (announced in the response head).
    cost_trailer: bool,
    /// The trailers frame still to send after the last data.
    trailers: Option<HeaderMap>,
    /// With `--log-content`: the request body and the SSE written so far, logged at the end.
    transcript: Option<(Bytes, BytesMut)>,
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
            otel::finish_reasons(self.translator.finish_reason());
            let record = Record {
                tokens: self.translator.usage().as_ref().map(chat_tokens).unwrap_or_default(),
                status: f.status,
                first_token: f.first_token,
                ..Record::new(ENDPOINT, &f.request_id, &f.subject, &f.route.model, f.started, &f.admission)
            };
            let cost = f.app.usage.record(&record);
            if let Some((prompt, mut sse)) = self.transcript.take() {
                // The last chunks may still wait in `out`.
                sse.extend_from_slice(&self.out);
                content::log(&f.request_id, ENDPOINT, served, &prompt, &content::stream_text(&sse));
            }
            if self.cost_trailer {
                self.trailers = cost.map(usage::cost_trailers);
            }
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
                let data = this.out.split().freeze();
                if let Some((_, sse)) = &mut this.transcript {
                    sse.extend_from_slice(&data);
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
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
