//! HTTP server (hyper 1, HTTP/1.1 and h2c on one port), routing and the `/_sim/*` control API.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use percent_encoding::percent_decode_str;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Keyring;
use crate::cancel::Completion;
use crate::converse::LiveCall;
use crate::errors::{AwsError, request_id};
use crate::record::{RecordedRequest, Recorder};
use crate::sigv4::SignedRequest;
use crate::{SimConfig, batch, cache, control, converse, eventstream, invoke, stream};

/// Response body type: a whole buffer or a stream of event frames.
type Body = UnsyncBoxBody<Bytes, io::Error>;

/// Largest accepted request body (Converse accepts large documents/images inline).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Longest model identifier the AWS model allows.
const MAX_MODEL_ID: usize = 2048;

/// State shared by all connections.
struct State {
    config: SimConfig,
    recorder: Recorder,
    prompt_cache: cache::PromptCache,
    keyring: Keyring,
    /// Calls the client gave up on (`GET /_sim/cancelled`).
    cancelled: Arc<AtomicU64>,
    /// TCP connections accepted (`GET /_sim/connections`): shows whether clients keep them alive.
    connections: AtomicU64,
    /// Calls so far by hash of path and body, for `[[sim:times=N]]`.
    attempts: Mutex<HashMap<u64, u32>>,
    batch: Arc<batch::Batch>,
}

impl State {
    /// How many calls with this path and body arrived, this one included.
    fn attempt_number(&self, target: &str, body: &[u8]) -> u32 {
        let mut hasher = std::hash::DefaultHasher::new();
        (target, body).hash(&mut hasher);
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = attempts.entry(hasher.finish()).or_insert(0);
        *n += 1;
        *n
    }
}

/// The region of a SigV4 `Authorization` header's credential scope (`None` for bearer tokens).
fn signed_region(headers: &http::HeaderMap) -> Option<&str> {
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let scope = auth.split_once("Credential=")?.1;
    scope.split('/').nth(2)
}

/// A running simulator; dropping it (or calling [`SimHandle::shutdown`]) stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<State>,
    // Dropping the sender wakes every `changed()` waiter, which ends the accept loop and connections.
    _shutdown: watch::Sender<()>,
}

impl SimHandle {
    /// Address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:9090` (loopback when bound to an unspecified address).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    /// Copies of the Bedrock API requests received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.snapshot()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.recorder.clear();
    }

    /// Accepts these temporary credentials from now on (as `POST /_sim/credentials` does).
    pub fn register_credentials(&self, access_key_id: &str, secret_access_key: &str, session_token: &str) {
        self.state.keyring.register(access_key_id, secret_access_key, session_token);
    }

    /// Converse calls whose client went away before the answer was complete.
    pub fn cancelled(&self) -> u64 {
        self.state.cancelled.load(Ordering::Relaxed)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Stops the server and closes open connections.
    pub fn shutdown(self) {}
}

/// Serves the simulator on `listener` in a background task until the handle is dropped.
pub async fn spawn(config: SimConfig, listener: TcpListener) -> SimHandle {
    let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    let (tx, rx) = watch::channel(());
    let (key_id, secret) = config.credentials.first().map_or(("", ""), |(k, s)| (k.as_str(), s.as_str()));
    let batch = Arc::new(batch::Batch::new(config.batch.clone(), (key_id, secret), rx.clone()));
    let state = Arc::new(State {
        keyring: Keyring::new(&config),
        config,
        recorder: Recorder::default(),
        prompt_cache: cache::PromptCache::default(),
        cancelled: Arc::default(),
        connections: AtomicU64::new(0),
        attempts: Mutex::default(),
        batch,
    });
    tokio::spawn(accept_loop(listener, Arc::clone(&state), rx));
    SimHandle { addr, state, _shutdown: tx }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _)) => {
                state.connections.fetch_add(1, Ordering::Relaxed);
                // Small event frames must leave immediately, not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve_connection(tcp, Arc::clone(&state), shutdown.clone()));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_connection(tcp: tokio::net::TcpStream, state: Arc<State>, mut shutdown: watch::Receiver<()>) {
    let service = service_fn(move |req| handle(Arc::clone(&state), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {}
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
}

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn error_response(err: &AwsError) -> Response<Body> {
    let mut resp = response(err.status, "application/json", err.body());
    resp.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static(err.code));
    resp
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let mut resp = if parts.method == Method::POST && parts.uri.path() == "/_sim/credentials" {
        register_credentials(&state, body).await
    } else if parts.method == Method::POST && parts.uri.path() == "/_sim/batch-faults" {
        arm_batch_fault(&state, body).await
    } else if parts.uri.path().starts_with("/_sim/") {
        control(&state, &parts.method, parts.uri.path())
    } else {
        bedrock_request(&state, parts, body).await
    };
    if let Ok(value) = HeaderValue::from_str(&request_id()) {
        resp.headers_mut().insert("x-amzn-RequestId", value);
    }
    Ok(resp)
}

/// Reads and records a Bedrock API request, then answers it.
async fn bedrock_request(state: &State, parts: http::request::Parts, body: Incoming) -> Response<Body> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned();
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => {
            let body = collected.to_bytes();
            if state.config.record_requests {
                state.recorder.push(RecordedRequest {
                    method: parts.method.to_string(),
                    path: target.clone(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                        })
                        .collect(),
                    body: body.to_vec(),
                });
            }
            let answer = match control::route(&parts.method, parts.uri.path()) {
                Some(op) => control::serve(&state.keyring, &parts, &target, &body, &op)
                    .await
                    .map(|json| response(StatusCode::OK, "application/json", json)),
                None => match batch::route(&parts.method, parts.uri.path()) {
                    Some(op) => batch::serve(&state.batch, &state.keyring, &parts, &target, &body, &op)
                        .await
                        .map(|json| response(StatusCode::OK, "application/json", json)),
                    None => bedrock(state, &parts, &target, &body).await,
                },
            };
            answer.unwrap_or_else(|e| error_response(&e))
        }
        Err(e) => error_response(&AwsError::validation(format!("Unable to read the request body: {e}"))),
    }
}

/// `POST /_sim/credentials`: accept the temporary credentials in the JSON body.
async fn register_credentials(state: &State, body: Incoming) -> Response<Body> {
    let registered = match Limited::new(body, 64 * 1024).collect().await {
        Ok(body) => state.keyring.register_json(&body.to_bytes()),
        Err(e) => Err(AwsError::validation(format!("Unable to read the request body: {e}"))),
    };
    match registered {
        Ok(()) => response(StatusCode::NO_CONTENT, "text/plain", Bytes::new()),
        Err(e) => error_response(&e),
    }
}

/// `POST /_sim/batch-faults`: fail the next calls of a batch operation (see `batch::faults`).
async fn arm_batch_fault(state: &State, body: Incoming) -> Response<Body> {
    let armed = match Limited::new(body, 64 * 1024).collect().await {
        Ok(body) => state.batch.arm_fault(&body.to_bytes()),
        Err(e) => Err(AwsError::validation(format!("Unable to read the request body: {e}"))),
    };
    match armed {
        Ok(()) => response(StatusCode::NO_CONTENT, "text/plain", Bytes::new()),
        Err(e) => error_response(&e),
    }
}

fn control(state: &State, method: &Method, path: &str) -> Response<Body> {
    match (method, path) {
        (&Method::GET, "/_sim/health") => response(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, "/_sim/requests") => {
            let json = serde_json::to_vec(&state.recorder.snapshot()).unwrap_or_default();
            response(StatusCode::OK, "application/json", json)
        }
        (&Method::GET, "/_sim/cancelled") => {
            let json = format!(r#"{{"cancelled":{}}}"#, state.cancelled.load(Ordering::Relaxed));
            response(StatusCode::OK, "application/json", json)
        }
        (&Method::GET, "/_sim/connections") => {
            let json = format!(r#"{{"connections":{}}}"#, state.connections.load(Ordering::Relaxed));
            response(StatusCode::OK, "application/json", json)
        }
        (&Method::DELETE, "/_sim/requests") => {
            state.recorder.clear();
            response(StatusCode::NO_CONTENT, "text/plain", Bytes::new())
        }
        (&Method::DELETE, "/_sim/batch-faults") => {
            state.batch.clear_faults();
            response(StatusCode::NO_CONTENT, "text/plain", Bytes::new())
        }
        _ => error_response(&AwsError::unknown_operation()),
    }
}

/// The runtime operations the simulator serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
}

/// Matches `POST /model/{modelId}/{converse,converse-stream,invoke}`, returning the still-encoded label.
fn route<'a>(method: &Method, path: &'a str) -> Option<(&'a str, Operation)> {
    if method != Method::POST {
        return None;
    }
    let (label, op) = path.strip_prefix("/model/")?.split_once('/')?;
    match op {
        "converse" => Some((label, Operation::Converse)),
        "converse-stream" => Some((label, Operation::ConverseStream)),
        "invoke" => Some((label, Operation::Invoke)),
        _ => None,
    }
}

fn decode_model_id(label: &str) -> Result<String, AwsError> {
    let id = percent_decode_str(label)
        .decode_utf8()
        .map_err(|_| AwsError::validation("The provided model identifier is invalid."))?;
    let rule = match id.len() {
        0 => "have length greater than or equal to 1",
        n if n > MAX_MODEL_ID => "have length less than or equal to 2048",
        _ => return Ok(id.into_owned()),
    };
    Err(AwsError::validation(format!(
        "1 validation error detected: Value '{id}' at 'modelId' failed to satisfy constraint: Member must {rule}"
    )))
}

async fn bedrock(
    state: &State,
    parts: &http::request::Parts,
    target: &str,
    body: &[u8],
) -> Result<Response<Body>, AwsError> {
    let (label, op) = route(&parts.method, parts.uri.path()).ok_or_else(AwsError::unknown_operation)?;
    let signed = SignedRequest {
        method: parts.method.as_str(),
        target,
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        body,
    };
    state.keyring.authenticate(&signed, SystemTime::now()).await?;
    let model_id = decode_model_id(label)?;
    if op == Operation::Invoke {
        let reply = invoke::answer(&model_id, &parts.headers, body).await?;
        let mut resp = response(StatusCode::OK, "application/json", reply.body);
        if let Some(tokens) = reply.input_tokens {
            resp.headers_mut().insert("x-amzn-bedrock-input-token-count", HeaderValue::from(tokens));
        }
        return Ok(resp);
    }
    let attempt = || state.attempt_number(target, body);
    let live =
        LiveCall { region: signed_region(&parts.headers), cancelled: &state.cancelled, attempt: &attempt };
    let (reply, directives) =
        converse::answer(&model_id, body, Some(&state.prompt_cache), Some(live)).await?;
    Ok(match op {
        Operation::Converse => {
            let latency_ms = directives.latency.as_millis() as u64;
            response(StatusCode::OK, "application/json", converse::response_body(&reply, latency_ms))
        }
        Operation::Invoke => unreachable!("answered above"),
        Operation::ConverseStream => {
            let mut resp = Response::new(
                StreamBody::new(stream::body(&reply, &directives, Completion::new(&state.cancelled)))
                    .boxed_unsync(),
            );
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(eventstream::CONTENT_TYPE));
            resp
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_converse_operations() {
        let label = "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fx";
        let path = format!("/model/{label}/converse-stream");
        assert!(route(&Method::POST, &path) == Some((label, Operation::ConverseStream)));
        assert!(route(&Method::POST, "/model/m/converse") == Some(("m", Operation::Converse)));
        assert!(route(&Method::GET, "/model/m/converse").is_none());
        assert!(route(&Method::POST, "/model/m/invoke") == Some(("m", Operation::Invoke)));
        assert!(route(&Method::POST, "/model/m/invoke-with-response-stream").is_none());
        assert!(route(&Method::POST, "/model/a/b/converse").is_none());
        assert!(route(&Method::POST, "/v1/chat/completions").is_none());
    }

    #[test]
    fn region_comes_from_the_credential_scope() {
        let mut h = http::HeaderMap::new();
        assert_eq!(signed_region(&h), None);
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIA/20250101/eu-west-1/bedrock/aws4_request, SignedHeaders=host, Signature=0",
            ),
        );
        assert_eq!(signed_region(&h), Some("eu-west-1"));
    }

    #[test]
    fn model_ids_are_percent_decoded() {
        assert_eq!(
            decode_model_id("arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Aapplication-inference-profile%2Fabc")
                .unwrap(),
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"
        );
        assert_eq!(decode_model_id("").unwrap_err().code, "ValidationException");
        assert_eq!(decode_model_id("%FF").unwrap_err().code, "ValidationException");
    }
}
