//! `POST /v1/chat/completions` on Bedrock Converse and ConverseStream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use api::config::ModelKind;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use hyper::body::Incoming;

use super::{authorize, collect_limited, json_response, read_body, snapshot, unix_now, upstream_error};
use crate::auth::authenticate;
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::eventstream::EventStreamDecoder;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::openai::chat::{Choice, Usage, parse_chat_request};
use crate::server::App;
use crate::snapshot::Route;
use crate::translate::ResponseMeta;
use crate::translate::chat_converse::{ChatStream, chat_completion, converse_request, guardrail_config};
use crate::translate::{StreamStep, StreamTranslator};

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
    let subject = authenticate(&parts.headers, &snapshot)?;
    let mut request = parse_chat_request(&read_body(app, body).await?)?;
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
    let meta = ResponseMeta { id: completion_id(), created: unix_now(), model: request.model.clone() };
    let streaming = request.stream;
    if !streaming {
        // `n` choices are `n` Converse calls, made concurrently.
        // `repeat_n` moves the body into the last call: one request, no copy.
        let bodies = std::iter::repeat_n(body, request.n as usize);
        let calls = bodies.map(|body| converse_once(app, route, &request.model, body));
        let mut answers = futures_util::future::try_join_all(calls).await?.into_iter();
        let first = answers.next().expect("n is at least 1");
        let mut completion = chat_completion(first, &meta, &reply);
        for (index, converse) in (1..).zip(answers) {
            let more = chat_completion(converse, &meta, &reply);
            completion.usage = completion.usage.plus(&more.usage);
            completion.choices.extend(more.choices.into_iter().map(|c| Choice { index, ..c }));
        }
        record_tokens(&app.metrics, &route.model.served_name, &completion.usage);
        return Ok(json_response(
            StatusCode::OK,
            serde_json::to_vec(&completion).expect("completion serializes"),
        ));
    }
    let response = app.upstream.post_json(&route.converse_stream, &route.signer, body, EVENT_STREAM).await?;
    if !response.status().is_success() {
        return Err(upstream_error(&app.metrics, &request.model, response).await);
    }
    let include_usage = request.stream_options.include_usage;
    let sse = SseBody {
        upstream: response.into_body(),
        decoder: EventStreamDecoder::new(),
        translator: ChatStream::new(meta, include_usage, reply),
        out: BytesMut::with_capacity(1024),
        done: false,
        finish: Some(StreamFinish {
            metrics: app.metrics.clone(),
            model: route.model.served_name.clone(),
            started,
        }),
    };
    let mut response = Response::new(ResponseBody::Stream(Box::pin(sse)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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

fn record_tokens(metrics: &Metrics, model: &str, usage: &Usage) {
    metrics.tokens.with_label_values(&[model, "input"]).inc_by(usage.prompt_tokens);
    metrics.tokens.with_label_values(&[model, "output"]).inc_by(usage.completion_tokens);
    if let Some(details) = &usage.prompt_tokens_details {
        metrics.tokens.with_label_values(&[model, "cache_read"]).inc_by(details.cached_tokens);
        metrics.tokens.with_label_values(&[model, "cache_write"]).inc_by(details.cache_write_tokens);
    }
}

fn completion_id() -> String {
    let mut id = String::with_capacity(33);
    id.push_str("chatcmpl-");
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(24));
    id
}

/// What a stream records when it ends, however it ends.
struct StreamFinish {
    metrics: Metrics,
    model: String,
    started: Instant,
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
            f.metrics
                .duration
                .with_label_values(&[ENDPOINT, &f.model])
                .observe(f.started.elapsed().as_secs_f64());
            if let Some(usage) = self.translator.usage() {
                record_tokens(&f.metrics, &f.model, &usage);
            }
        }
    }

    fn fail(&mut self, error: ApiError) {
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
        if self.finish.is_some() {
            self.end();
        }
    }
}
