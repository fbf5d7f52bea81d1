//! `POST /v1/chat/completions` on Bedrock Converse and ConverseStream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use api::config::ModelKind;
use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use tokio::time::Sleep;

use super::{authorize, json_response, read_body, read_whole, record_request, snapshot, unix_now};
use crate::auth::Subject;
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::eventstream::{EventStreamDecoder, StreamFrame};
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::limits::Admission;
use crate::openai::chat::{ChatCompletion, ChatCompletionRequest, Choice, Usage, parse_chat_request};
use crate::otel;
use crate::request_body::RequestBody;
use crate::resilience::{self, Operation, Prepare, Prepared};
use crate::server::App;
use crate::snapshot::Route;
use crate::translate::ResponseMeta;
use crate::translate::chat_converse::{
    ChatStream, ReplyContext, chat_completion, converse_request, guardrail_config,
};
use crate::translate::{StreamStep, StreamTranslator};
use crate::upstream::UpstreamBody;
use crate::usage::{self, Record, chat_tokens, content};

const ENDPOINT: &str = "chat";
/// Names the model (and region) that answered: the requested one, or a fallback.
pub const SERVED_BY: &str = "x-bedrock-gateway-served-by";

/// Handles one chat completion, streaming or not, and records its metrics.
pub async fn completions(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut model_label = String::from("-");
    let result = complete(app, req, started, &mut model_label).await;
    record_request(app, ENDPOINT, &model_label, &result, started);
    result
}

async fn complete(
    app: &Arc<App>,
    req: Request<RequestBody>,
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
    let (body, reply) = translate(app, &request, route)?;
    // A fallback of another model family or guardrail gets its own translation; the rest reuse
    // these bytes.
    let request_ref = &request;
    let prepare = move |fallback: &Route| -> Result<Option<Prepared<Option<ReplyContext>>>, ApiError> {
        if same_translation(route, fallback) {
            return Ok(None);
        }
        let (body, reply) = translate(app, request_ref, fallback)?;
        Ok(Some(Prepared { body, extra: Some(reply) }))
    };
    let admission = app.usage.admit(subject, &snapshot.policies, &route.model.served_name).await?;
    let meta = ResponseMeta {
        id: super::response_id("chatcmpl-"),
        created: unix_now(),
        model: request.model.clone(),
    };
    let failed = |error: &ApiError| {
        let record = Record {
            status: error.status.as_u16(),
            ..Record::new(ENDPOINT, &meta.id, subject, &route.model, started, &admission)
        };
        app.usage.record(&record);
    };
    if !request.stream {
        // `n` choices are `n` Converse calls, made concurrently; they share the body bytes.
        let calls = (0..request.n).map(|_| converse_once(app, route, body.clone(), &prepare));
        let answers = futures_util::future::try_join_all(calls).await.inspect_err(failed)?;
        let mut completion: Option<ChatCompletion> = None;
        // Usage is recorded against the model that answered (a fallback's own price).
        let mut used: Vec<(Arc<Route>, Usage)> = Vec::with_capacity(1);
        for (index, (served, converse, own_reply)) in (0..).zip(answers) {
            let one = chat_completion(converse, &meta, own_reply.as_ref().unwrap_or(&reply));
            match used.iter_mut().find(|(r, _)| Arc::ptr_eq(r, &served)) {
                Some((_, usage)) => *usage = usage.plus(&one.usage),
                None => used.push((served, one.usage)),
            }
            match &mut completion {
                None => completion = Some(one),
                Some(all) => {
                    all.usage = all.usage.plus(&one.usage);
                    all.choices.extend(one.choices.into_iter().map(|c| Choice { index, ..c }));
                }
            }
        }
        let completion = completion.expect("n is at least 1");
        otel::finish_reasons(completion.choices.iter().map(|c| c.finish_reason));
        let mut cost = None;
        for (served, usage) in &used {
            let record = Record {
                tokens: chat_tokens(usage),
                ..Record::new(ENDPOINT, &meta.id, subject, &served.model, started, &admission)
            };
            if let Some(usd) = app.usage.record(&record) {
                cost = Some(cost.unwrap_or(0.0) + usd);
            }
        }
        let body = serde_json::to_vec(&completion).expect("completion serializes");
        if app.usage.logs_content() {
            let text = content::completion_text(&body);
            content::log(&meta.id, ENDPOINT, &route.model.served_name, &raw, &text);
        }
        let mut response = json_response(StatusCode::OK, body);
        usage::set_headers(response.headers_mut(), &admission, cost);
        response.headers_mut().insert(SERVED_BY, served_by(&used));
        return Ok(response);
    }
    let first = Prepared { body, extra: None };
    let answer = resilience::call(app, route, Operation::ConverseStream, first, Some(&prepare))
        .await
        .inspect_err(failed)?;
    let include_usage = request.stream_options.include_usage;
    // The cost trailer is announced only when it will come: a priced model and a client that reads it.
    let cost_trailer = takes_trailers && app.usage.prices(&answer.route.model).is_some();
    let rate_headers = admission.headers().clone();
    let request_id = meta.id.clone();
    let reply = answer.extra.unwrap_or(reply);
    let idle_after = app.resilience.idle_timeout;
    let served_by = answer.route.served_by.clone();
    let opening = answer.opening.expect("a ConverseStream answer comes with its first frame");
    let mut sse = SseBody {
        upstream: answer.response.into_body(),
        decoder: opening.decoder,
        translator: ChatStream::new(meta, include_usage, reply),
        out: BytesMut::with_capacity(1024),
        done: false,
        idle: Box::pin(tokio::time::sleep(idle_after)),
        idle_after,
        cost_trailer,
        trailers: None,
        transcript: app.usage.logs_content().then(|| (raw, BytesMut::new())),
        finish: Some(StreamFinish {
            app: app.clone(),
            route: route.clone(),
            served: answer.route,
            subject: subject.clone(),
            admission,
            request_id,
            started,
            first_token: None,
            status: 200,
        }),
    };
    // The first frame was read before answering (an exception there was retried): its chunk goes
    // out with the headers, then whatever the decoder holds after it.
    if sse.on_frame(opening.frame) {
        sse.drain();
    }
    let mut response = Response::new(ResponseBody::Stream(Box::pin(sse)));
    let headers = response.headers_mut();
    headers.extend(rate_headers);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(SERVED_BY, served_by);
    if cost_trailer {
        usage::announce_cost_trailer(headers);
    }
    Ok(response)
}

/// The Converse body for `route` and how to read its reply.
fn translate(
    app: &App,
    request: &ChatCompletionRequest,
    route: &Route,
) -> Result<(Bytes, ReplyContext), ApiError> {
    let mut translation = converse_request(request, family_model(route))?;
    translation.body.guardrail_config = route.model.guardrail.as_ref().map(guardrail_config);
    if translation.dropped_cache_points > 0 {
        app.metrics
            .cache_points_dropped
            .with_label_values(&[&route.model.served_name])
            .inc_by(u64::from(translation.dropped_cache_points));
    }
    let body = serde_json::to_vec(&translation.body).expect("Converse request serializes");
    Ok((Bytes::from(body), translation.reply))
}

/// The model whose family decides the translation: an application inference profile ARN hides
/// its model; the operator resolved it.
fn family_model(route: &Route) -> &str {
    route.model.underlying_model_id.as_deref().unwrap_or(&route.model.model_id)
}

/// Whether the body translated for `a` is the one `b` needs: same model and guardrail.
fn same_translation(a: &Route, b: &Route) -> bool {
    family_model(a) == family_model(b) && a.model.guardrail == b.model.guardrail
}

/// `x-bedrock-gateway-served-by` for answers from `used`: one route's value, or the distinct
/// values as an HTTP list when `n` choices came from different models.
fn served_by(used: &[(Arc<Route>, Usage)]) -> HeaderValue {
    match used {
        [(only, _)] => only.served_by.clone(),
        _ => {
            let all: Vec<&str> = used.iter().filter_map(|(r, _)| r.served_by.to_str().ok()).collect();
            HeaderValue::from_str(&all.join(", ")).unwrap_or_else(|_| HeaderValue::from_static("-"))
        }
    }
}

/// One Converse call with retries and fallbacks, read and parsed: the route that answered, the
/// answer, and the reply context of a fallback that needed its own translation.
async fn converse_once(
    app: &App,
    route: &Arc<Route>,
    body: Bytes,
    prepare: Prepare<'_, Option<ReplyContext>>,
) -> Result<(Arc<Route>, ConverseResponse, Option<ReplyContext>), ApiError> {
    let first = Prepared { body, extra: None };
    let answer = resilience::call(app, route, Operation::Converse, first, Some(prepare)).await?;
    let model = &answer.route.model.served_name;
    let bytes = read_whole(app, model, answer.response.into_body()).await?;
    let converse = serde_json::from_slice(&bytes).map_err(|e| {
        tracing::warn!(error = %e, model = %model, "Bedrock answered a Converse body the gateway cannot read");
        ApiError::bad_gateway("Bedrock returned a response the gateway could not read.")
    })?;
    Ok((answer.route, converse, answer.extra))
}

/// What a stream records when it ends, however it ends.
struct StreamFinish {
    app: Arc<App>,
    /// The requested model (metric labels).
    route: Arc<Route>,
    /// The model that answered (usage and cost).
    served: Arc<Route>,
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
/// that goes away drops it, and with it the upstream call. A Bedrock stream silent for longer than
/// the idle timeout ends with an error event.
struct SseBody {
    upstream: UpstreamBody,
    decoder: EventStreamDecoder,
    translator: ChatStream,
    out: BytesMut,
    done: bool,
    /// Fires when Bedrock has sent nothing for `idle_after`; pushed back by every frame.
    idle: Pin<Box<Sleep>>,
    idle_after: Duration,
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
                ..Record::new(ENDPOINT, &f.request_id, &f.subject, &f.served.model, f.started, &f.admission)
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

    /// Translates one frame; false once the stream is over.
    fn on_frame(&mut self, frame: StreamFrame) -> bool {
        match self.translator.on_frame(frame, &mut self.out) {
            StreamStep::Continue => true,
            StreamStep::Done | StreamStep::Failed(_) => {
                self.end();
                false
            }
        }
    }

    /// Translates every whole frame the decoder holds.
    fn drain(&mut self) {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    if !self.on_frame(frame) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable frame in the Bedrock stream");
                    self.fail(resilience::stream_malformed());
                    break;
                }
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
            let Poll::Ready(frame) = Pin::new(&mut this.upstream).poll_frame(cx) else {
                if this.idle.as_mut().poll(cx).is_ready() {
                    let model = this.finish.as_ref().map_or("-", |f| f.served.model.served_name.as_str());
                    tracing::warn!(model, "Bedrock stream stalled");
                    let error = resilience::idle_timeout(model, this.idle_after);
                    this.fail(error);
                    continue;
                }
                return Poll::Pending;
            };
            this.idle.as_mut().reset(tokio::time::Instant::now() + this.idle_after);
            match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    this.decoder.push(&data);
                    this.drain();
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Bedrock stream broke off");
                    this.fail(resilience::stream_broke_off());
                }
                None => this.fail(resilience::stream_ended()),
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
