//! The connection to Bedrock: pooled HTTP/1 connections (rustls for https, plain http for
//! simulators and VPC test endpoints), each driven by the request using it ([`pool`]), and
//! per-request signing, SigV4 or bearer.

mod pool;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::credentials::{AccountCredentials, Authorization};
use crate::error::ApiError;

pub use pool::PooledBody as UpstreamBody;

/// How requests of one account are authenticated to AWS: its [`AccountCredentials`].
pub type Signer = AccountCredentials;

/// One prepared Bedrock call target: URI (model id already percent-encoded), host and region.
#[derive(Clone, Debug)]
pub struct Target {
    /// Full request URI.
    pub uri: Uri,
    /// `Host` header value (signed).
    pub host: HeaderValue,
    /// Signing region.
    pub region: Arc<str>,
}

impl Target {
    /// Builds `<endpoint>/model/<encoded model id>/<operation>`; `None` when the endpoint is not a URL.
    pub fn model_operation(endpoint: &str, model_id: &str, operation: &str, region: &str) -> Option<Self> {
        Self::at(endpoint, &format!("/model/{}/{operation}", encode_label(model_id)), region)
    }

    /// Builds `<endpoint><path>` (`path` already encoded); `None` when the endpoint is not a URL.
    pub fn at(endpoint: &str, path: &str, region: &str) -> Option<Self> {
        let uri: Uri = format!("{}{path}", endpoint.trim_end_matches('/')).parse().ok()?;
        let host = HeaderValue::from_str(uri.authority()?.as_str()).ok()?;
        Some(Target { uri, host, region: region.into() })
    }
}

/// Percent-encodes a URI label the way botocore does: everything but RFC 3986 unreserved characters.
pub fn encode_label(label: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const LABEL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(label, LABEL).to_string()
}

/// `Accept` of Bedrock's streaming operations; their calls go to the event-stream pool.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// Read buffer of an event-stream connection, held for the whole stream. hyper's adaptive buffer
/// is 8 KiB at least and grows for large bodies (right for JSON answers, which get their own pool);
/// ConverseStream frames are a few hundred bytes. A response head must fit in it: Bedrock's are
/// under 600 bytes.
const STREAM_READ_BUFFER: usize = 2048;

/// Pooled HTTP clients for every Bedrock endpoint.
#[derive(Clone)]
pub struct Upstream {
    /// JSON answers: hyper's adaptive read buffer, which grows for large bodies (embeddings, images).
    pool: Arc<pool::Pool>,
    /// Event streams, open for a whole answer: a fixed [`STREAM_READ_BUFFER`].
    streams: Arc<pool::Pool>,
    connect_timeout: Duration,
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

/// Default of `--connect-timeout-ms`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive connection may wait unused before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most idle connections kept per endpoint.
const MAX_IDLE_PER_HOST: usize = 256;

/// Why a request got no response from Bedrock.
#[derive(Debug)]
pub enum SendError {
    /// No usable credentials: nothing was sent (a 503 naming the account).
    Credentials(ApiError),
    /// Connecting, or the connection broke before the response headers (worth retrying): the
    /// caller's 502 (the cause is logged where it happened).
    Connection(ApiError),
    /// Connecting took longer than the connect timeout (worth retrying): the caller's 504.
    ConnectTimeout(ApiError),
}

impl From<SendError> for ApiError {
    fn from(error: SendError) -> Self {
        error.into_api_error()
    }
}

impl SendError {
    /// The caller's error: the credentials' 503, a 502 for a Bedrock the gateway cannot reach, or
    /// a 504 when connecting took too long.
    pub fn into_api_error(self) -> ApiError {
        match self {
            SendError::Credentials(e) | SendError::Connection(e) | SendError::ConnectTimeout(e) => e,
        }
    }
}

impl Upstream {
    /// A client with keep-alive pooling, TLS through rustls (webpki roots) and the default
    /// connect timeout.
    pub fn new() -> Self {
        Self::with_connect_timeout(DEFAULT_CONNECT_TIMEOUT)
    }

    /// Like [`Upstream::new`], giving up connecting after `connect_timeout`.
    pub fn with_connect_timeout(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = https_connector(http);
        let json = hyper::client::conn::http1::Builder::new();
        let mut event_stream = hyper::client::conn::http1::Builder::new();
        event_stream.read_buf_exact_size(Some(STREAM_READ_BUFFER));
        let pool = pool::Pool::new(connector.clone(), json, IDLE_TIMEOUT, MAX_IDLE_PER_HOST);
        let streams = pool::Pool::new(connector, event_stream, IDLE_TIMEOUT, MAX_IDLE_PER_HOST);
        Upstream { pool: Arc::new(pool), streams: Arc::new(streams), connect_timeout }
    }

    /// Sends a JSON POST to `target`, signed now (a retry gets a fresh signature date); `accept`
    /// is the expected response type. `body` is shared, so a retry sends the same bytes uncopied.
    pub async fn post_json(
        &self,
        target: &Target,
        signer: &Signer,
        body: Bytes,
        accept: &'static str,
    ) -> Result<Response<UpstreamBody>, SendError> {
        self.send(Method::POST, target, signer, body, accept).await
    }

    /// Sends a signed request with a JSON body (empty for GET) to `target`.
    pub async fn send(
        &self,
        method: Method,
        target: &Target,
        signer: &Signer,
        body: Bytes,
        accept: &'static str,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut request = Request::builder()
            .method(method)
            .uri(target.uri.clone())
            .header(HOST, target.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static(accept))
            .body(Full::new(Bytes::new()))
            .expect("request parts are valid");
        match signer.authorization().await.map_err(SendError::Credentials)? {
            Authorization::SigV4(identity) => {
                sign_v4(&mut request, &identity, &target.region, &body).map_err(SendError::Credentials)?
            }
            Authorization::Bearer(value) => {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        *request.body_mut() = Full::new(body);
        // Signed with the full URI; sent in origin form (the connection is to its authority).
        if let Some(path) = target.uri.path_and_query() {
            *request.uri_mut() = Uri::from(path.clone());
        }
        let mut timed_out = false;
        let pool = if accept == EVENT_STREAM { &self.streams } else { &self.pool };
        let result = pool.send(&target.uri, request).await.map_err(|e| {
            let e: &(dyn std::error::Error + 'static) = match &e {
                pool::Failure::Connect(e) => {
                    timed_out = connect_timed_out(e.as_ref());
                    e.as_ref()
                }
                pool::Failure::Send(e) => e,
            };
            tracing::warn!(error = %e, uri = %target.uri, "Bedrock request failed before a response");
            if timed_out {
                return ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "server_error",
                    format!(
                        "The gateway could not connect to Bedrock within {} ms; the request was not completed.",
                        self.connect_timeout.as_millis()
                    ),
                )
                .with_code("timeout");
            }
            ApiError::bad_gateway("The gateway could not reach Bedrock; the request was not completed.")
        });
        result.map_err(if timed_out { SendError::ConnectTimeout } else { SendError::Connection })
    }
}

/// Whether a connect `error` is the connector giving up after the connect timeout (an
/// `io::Error` of kind `TimedOut` in its causes) rather than a refused connection.
fn connect_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Adds `x-amz-date`, `x-amz-security-token` (when present) and `authorization` to `request`.
fn sign_v4(
    request: &mut Request<Full<Bytes>>,
    identity: &Identity,
    region: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let mut settings = SigningSettings::default();
    // The path is already percent-encoded; normalizing it would change what AWS verifies.
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("bedrock")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|_| ApiError::unavailable("The gateway could not prepare the Bedrock request signature."))?
        .into();
    let uri = request.uri().to_string();
    let headers = request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(request.method().as_str(), uri, headers, SignableBody::Bytes(body))
        .map_err(|_| ApiError::unavailable("The gateway could not sign the Bedrock request."))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|_| ApiError::unavailable("The gateway could not sign the Bedrock request."))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// `http` wrapped in rustls (ring, webpki roots; HTTP/1.1), plain http kept for simulators.
pub(crate) fn https_connector<R>(http: HttpConnector<R>) -> HttpsConnector<HttpConnector<R>> {
    https_connector_with(http, rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
}

/// Like [`https_connector`], trusting `roots`.
fn https_connector_with<R>(
    http: HttpConnector<R>,
    roots: rustls::RootCertStore,
) -> HttpsConnector<HttpConnector<R>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_encoded_like_botocore() {
        assert_eq!(
            encode_label("us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            "us.anthropic.claude-3-7-sonnet-20250219-v1%3A0"
        );
        assert_eq!(
            encode_label("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123"
        );
    }

    #[test]
    fn target_keeps_the_encoded_path() {
        let t = Target::model_operation(
            "http://127.0.0.1:9090/",
            "amazon.nova-lite-v1:0",
            "converse",
            "us-east-1",
        )
        .unwrap();
        assert_eq!(t.uri.path(), "/model/amazon.nova-lite-v1%3A0/converse");
        assert_eq!(t.host, "127.0.0.1:9090");
    }

    #[test]
    fn signers_do_not_print_secrets() {
        let s = Signer::static_keys("prod", "AKIAEXAMPLE", "very-secret", Some("token"));
        assert_eq!(format!("{s:?}"), "AccountCredentials(prod: static keys <redacted>)");
        let b = Signer::api_key("prod", "ABSKsecret");
        assert_eq!(format!("{b:?}"), "AccountCredentials(prod: Bedrock API key <redacted>)");
    }

    #[tokio::test]
    async fn static_keys_sign_with_the_session_token() {
        let signer = Signer::static_keys("prod", "AKIAEXAMPLE", "very-secret", Some("the-token"));
        let Authorization::SigV4(identity) = signer.authorization().await.unwrap() else {
            panic!("not SigV4")
        };
        let target = Target::model_operation("http://127.0.0.1:9/", "m", "converse", "us-east-1").unwrap();
        let mut request = Request::builder()
            .uri(target.uri.clone())
            .header(HOST, target.host.clone())
            .body(Full::new(Bytes::new()))
            .unwrap();
        sign_v4(&mut request, &identity, &target.region, b"{}").unwrap();
        assert_eq!(request.headers()["x-amz-security-token"], "the-token");
        let auth = request.headers()[AUTHORIZATION].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/"), "{auth}");
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        assert!(!auth.contains("very-secret"));
    }

    #[tokio::test]
    async fn unusable_api_key_is_a_503_naming_the_account() {
        let err = Signer::api_key("prod", "bad\nkey").authorization().await.unwrap_err();
        assert_eq!(err.status.as_u16(), 503);
        assert_eq!(err.code, Some("aws_credentials_unavailable"));
        assert_eq!(
            err.message,
            "The gateway has no AWS credentials for account `prod`: its Bedrock API key contains characters not \
             allowed in an HTTP header"
        );
    }
}
