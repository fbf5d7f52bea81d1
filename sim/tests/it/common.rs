//! Helpers shared by the integration tests: start a simulator, build signed / bearer
//! requests, send them with a real hyper client and decode event-stream bodies.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bedrock_sim::{SimConfig, SimHandle, TEST_ACCESS_KEY_ID, TEST_BEARER_TOKEN, TEST_SECRET_ACCESS_KEY};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Claude 3.7 inference profile id, percent-encoded as botocore sends it.
pub const MODEL_LABEL: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0";

/// HTTP client used by the tests.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Starts a simulator with `config` on a free loopback port.
pub async fn start_with(config: SimConfig) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    bedrock_sim::spawn(config, listener).await
}

/// Starts a simulator with the default configuration.
pub async fn start() -> SimHandle {
    start_with(SimConfig::default()).await
}

/// An HTTP/1.1 client.
pub fn http1() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An h2c (HTTP/2 prior knowledge) client.
pub fn h2c() -> HttpClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// A fully read response.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// Body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    /// Asserts an AWS-shaped error response.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.header("x-amzn-errortype"), code);
        assert_eq!(self.header("content-type"), "application/json");
        assert!(!self.header("x-amzn-requestid").is_empty());
        self.json()["message"].as_str().unwrap().to_owned()
    }
}

/// Sends a request and reads the whole body.
pub async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Resp {
    let resp = client.request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp { status: parts.status, headers: parts.headers, body }
}

/// A Converse request body with one user message.
pub fn user_body(text: &str) -> Vec<u8> {
    json!({"messages": [{"role": "user", "content": [{"text": text}]}]}).to_string().into_bytes()
}

/// How a test request authenticates.
pub enum Auth<'a> {
    /// No Authorization header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// SigV4 with (access key id, secret, session token, signing time).
    SigV4(&'a str, &'a str, Option<&'a str>, SystemTime),
}

/// The default SigV4 credentials, signed now.
pub fn test_sigv4() -> Auth<'static> {
    Auth::SigV4(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, None, SystemTime::now())
}

/// The default bearer token.
pub fn test_bearer() -> Auth<'static> {
    Auth::Bearer(TEST_BEARER_TOKEN)
}

/// Builds a POST to `{base}{path}` with a JSON body, authenticated as requested.
pub fn post(base: &str, path: &str, body: Vec<u8>, auth: Auth<'_>) -> Request<Full<Bytes>> {
    let uri = format!("{base}{path}");
    let mut req = Request::post(&uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    match auth {
        Auth::None => {}
        Auth::Bearer(token) => {
            req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Auth::SigV4(akid, secret, token, time) => {
            let identity = Credentials::new(akid, secret, token.map(str::to_owned), None, "test").into();
            let mut settings = SigningSettings::default();
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("bedrock")
                .time(time)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let headers = [("content-type", "application/json")];
            let signable =
                SignableRequest::new("POST", uri.as_str(), headers.into_iter(), SignableBody::Bytes(&body))
                    .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            instructions.apply_to_request_http1x(&mut req);
        }
    }
    req
}

/// Converse path for the default model.
pub fn converse_path() -> String {
    format!("/model/{MODEL_LABEL}/converse")
}

/// ConverseStream path for the default model.
pub fn stream_path() -> String {
    format!("/model/{MODEL_LABEL}/converse-stream")
}

/// Decodes every complete frame in `bytes`; Err if a frame is invalid or bytes are left over.
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<Message>, String> {
    match decode_until_error(bytes) {
        (frames, None) => Ok(frames),
        (_, Some(err)) => Err(err),
    }
}

/// Decodes frames until the end or the first invalid frame, returning the frames and the error.
pub fn decode_until_error(bytes: &[u8]) -> (Vec<Message>, Option<String>) {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = MessageFrameDecoder::new();
    let mut out = Vec::new();
    loop {
        match decoder.decode_frame(&mut buf) {
            Ok(DecodedFrame::Complete(m)) => out.push(m),
            Ok(DecodedFrame::Incomplete) if buf.is_empty() => return (out, None),
            Ok(DecodedFrame::Incomplete) => return (out, Some(format!("{} trailing bytes", buf.len()))),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

/// The string value of header `name` of a frame.
pub fn frame_header(m: &Message, name: &str) -> Option<String> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .map(|h| h.value().as_string().unwrap().as_str().to_owned())
}

/// A frame's payload as JSON.
pub fn payload(m: &Message) -> Value {
    serde_json::from_slice(m.payload()).unwrap()
}
