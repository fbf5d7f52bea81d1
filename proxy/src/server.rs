//! The listeners: the API (HTTP/1.1 and HTTP/2, cleartext or TLS) with routing, the concurrency
//! cap and graceful shutdown, and the optional separate ops listener (`--metrics-listen`:
//! `/metrics`, `/healthz`, `/readyz`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::header::{CONNECTION, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulConnection, GracefulShutdown, Watcher};
use opentelemetry::context::FutureExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::auth::Authenticator;
use crate::body::ResponseBody;
use crate::concurrency::{Concurrency, Held};
use crate::config::ConfigStore;
use crate::endpoints;
use crate::endpoints::chat_images::ImageFetcher;
use crate::error::ApiError;
use crate::header_timeout;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::otel::Traces;
use crate::request_body::RequestBody;
use crate::upstream::Upstream;
use crate::usage::Recorder;

/// Shared state of the proxy: config, upstream client, metrics and limits.
pub struct App {
    /// The config being served.
    pub config: Arc<ConfigStore>,
    /// Pooled client to Bedrock.
    pub upstream: Upstream,
    /// Retries, fallbacks and timeouts of Bedrock calls.
    pub resilience: crate::resilience::Policy,
    /// Metric families.
    pub metrics: Metrics,
    /// Caller identity: API keys, and service-account tokens when enabled.
    pub auth: Authenticator,
    /// Usage limits, prices and usage recording.
    pub usage: Recorder,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Set on shutdown: `/readyz` answers 503 so load balancers stop sending traffic.
    pub draining: AtomicBool,
    /// Whether `GET /playground` serves the built-in web page.
    pub playground: bool,
    /// Fetches http(s) images of chat requests.
    pub images: ImageFetcher,
    /// Whether the API listener answers `/metrics` (false when a separate ops listener does).
    pub metrics_on_api: bool,
    /// OpenTelemetry traces, when `--otel-traces` is on.
    pub traces: Option<Traces>,
    /// The cap on API requests in flight (`--max-concurrent-requests`).
    pub concurrency: Concurrency,
    /// `/v1/batches` settings.
    pub batch: endpoints::batches::BatchSettings,
    /// How long a client may take to send a request head, or pause in its body
    /// (`--header-read-timeout-ms`).
    pub header_read_timeout: Duration,
}

impl App {
    /// State with a fresh upstream client, limits counted in this process, and the given config
    /// store and metrics.
    pub fn new(config: Arc<ConfigStore>, metrics: Metrics, max_body_bytes: usize) -> Self {
        let usage = Recorder::new(metrics.clone(), Limiter::local());
        let concurrency = Concurrency::new(0, &metrics);
        App {
            config,
            upstream: Upstream::new(),
            resilience: crate::resilience::Policy::default(),
            metrics,
            auth: Authenticator::default(),
            usage,
            max_body_bytes,
            draining: AtomicBool::new(false),
            playground: true,
            images: ImageFetcher::new(false),
            metrics_on_api: true,
            traces: None,
            concurrency,
            batch: endpoints::batches::BatchSettings::default(),
            header_read_timeout: Duration::from_secs(30),
        }
    }

    /// Answers API requests beyond `max` in flight with 503 (0: no cap).
    pub fn limiting_concurrency(mut self, max: usize) -> Self {
        self.concurrency = Concurrency::new(max, &self.metrics);
        self
    }

    /// Lets chat requests make the gateway fetch images from private addresses.
    pub fn allowing_private_image_urls(mut self, allow: bool) -> Self {
        self.images = ImageFetcher::new(allow);
        self
    }

    /// Serves (or not) the built-in web page at `/playground`.
    pub fn serving_playground(mut self, on: bool) -> Self {
        self.playground = on;
        self
    }

    /// Answers one request; every outcome is a response, never an error. GenAI requests run
    /// inside their trace span when traces are on.
    pub async fn handle(self: Arc<Self>, req: Request<RequestBody>) -> Response<ResponseBody> {
        let started = Instant::now();
        let Some(span) = self.traces.as_ref().and_then(|traces| traces.server_span(&req)) else {
            return self.route(req, started).await.unwrap_or_else(|e| endpoints::error_response(&e));
        };
        let cx = span.context();
        span.finish(self.route(req, started).with_context(cx).await)
    }

    async fn route(
        self: Arc<Self>,
        req: Request<RequestBody>,
        started: Instant,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let path = req.uri().path();
        match (req.method(), path) {
            (&Method::GET, "/healthz") => Ok(endpoints::ops::healthz()),
            (&Method::GET, "/readyz") => Ok(endpoints::ops::readyz(&self)),
            (_, "/metrics") if !self.metrics_on_api => {
                Err(ApiError::not_found(format!("Unknown request URL: {} {path}.", req.method())))
            }
            (&Method::GET, "/metrics") => Ok(endpoints::ops::metrics(&self)),
            (&Method::GET, "/v1/models") => endpoints::models::list(&self, &req).await,
            (&Method::GET, p) if self.playground && p.starts_with("/playground") => {
                endpoints::playground::asset(p)
            }
            (&Method::POST, "/v1/chat/completions") => {
                endpoints::chat::completions(&self, req, started).await
            }
            (&Method::POST, "/v1/embeddings") => endpoints::embeddings::create(&self, req, started).await,
            (&Method::POST, "/v1/images/generations") => {
                endpoints::images::generations(&self, req, started).await
            }
            (&Method::POST, "/v1/images/edits") => endpoints::images::edits(&self, req, started).await,
            // Boxed: their S3 calls make these futures 16 KB, a chat's 3.5 KB; inline they would
            // size the state of every request.
            (_, p) if p == "/v1/files" || p.starts_with("/v1/files/") => {
                Box::pin(endpoints::recorded(&self, "files", started, endpoints::files::handle(&self, req)))
                    .await
            }
            (_, p) if p == "/v1/batches" || p.starts_with("/v1/batches/") => {
                Box::pin(endpoints::recorded(
                    &self,
                    "batches",
                    started,
                    endpoints::batches::handle(&self, req),
                ))
                .await
            }
            (
                _,
                "/healthz"
                | "/readyz"
                | "/metrics"
                | "/v1/models"
                | "/v1/chat/completions"
                | "/v1/embeddings"
                | "/v1/images/generations"
                | "/v1/images/edits",
            ) => Err(ApiError::method_not_allowed(format!("{} is not allowed on {path}.", req.method()))),
            _ => Err(ApiError::not_found(format!("Unknown request URL: {} {path}.", req.method()))),
        }
    }

    /// Answers one request on the ops listener: `/metrics`, `/healthz`, `/readyz` only.
    pub async fn handle_ops(self: Arc<Self>, req: Request<RequestBody>) -> Response<ResponseBody> {
        let path = req.uri().path();
        let result = match (req.method(), path) {
            (&Method::GET, "/healthz") => Ok(endpoints::ops::healthz()),
            (&Method::GET, "/readyz") => Ok(endpoints::ops::readyz(&self)),
            (&Method::GET, "/metrics") => Ok(endpoints::ops::metrics(&self)),
            (_, "/healthz" | "/readyz" | "/metrics") => {
                Err(ApiError::method_not_allowed(format!("{} is not allowed on {path}.", req.method())))
            }
            _ => Err(ApiError::not_found(format!("Unknown request URL: {} {path}.", req.method()))),
        };
        result.unwrap_or_else(|e| endpoints::error_response(&e))
    }
}

/// Serves `listener` until `shutdown` resolves, then lets open requests finish within `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    serve_with(listener, app, App::handle, Mode { tls: None, capped: true }, shutdown, grace).await;
}

/// [`serve`] over TLS: every connection is handshaken with `tls` first.
pub async fn serve_tls(
    listener: TcpListener,
    app: Arc<App>,
    tls: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    serve_with(listener, app, App::handle, Mode { tls: Some(tls), capped: true }, shutdown, grace).await;
}

/// Serves the ops routes on `listener` for the life of the process, so probes keep getting an
/// answer (`/readyz`: 503 draining) while the API listener drains.
pub async fn serve_ops(listener: TcpListener, app: Arc<App>) {
    serve_with(
        listener,
        app,
        App::handle_ops,
        Mode { tls: None, capped: false },
        std::future::pending(),
        Duration::ZERO,
    )
    .await;
}

/// How long a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What sets the listeners apart.
struct Mode {
    /// The TLS acceptor, for a TLS listener.
    tls: Option<TlsAcceptor>,
    /// Whether requests take a concurrency slot (the API's) or not (the ops listener's).
    capped: bool,
}

/// The accept loop shared by both listeners; `route` answers each request.
async fn serve_with<F, Fut>(
    listener: TcpListener,
    app: Arc<App>,
    route: F,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    F: Fn(Arc<App>, Request<RequestBody>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    // HTTP/1.1 and HTTP/2 on one port: h2c with prior knowledge, or h2 chosen by ALPN over TLS.
    let mut builder = auto::Builder::new(TokioExecutor::new());
    header_timeout::configure(&mut builder, app.header_read_timeout);
    // A cleartext connection whose preface showed HTTP/2.
    let h2 = auto::Builder::clone(&builder).http2_only();
    let mut http1 = http1::Builder::new();
    header_timeout::configure_http1(&mut http1, app.header_read_timeout);
    // Shared: each connection's task holds a pointer to them, not its own copy.
    let (builder, h2, http1) = (Arc::new(builder), Arc::new(h2), Arc::new(http1));
    let graceful = GracefulShutdown::new();
    // Dropped at shutdown: wakes the connections still waiting for their first bytes.
    let (closing_tx, closing) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (service_app, capped) = (app.clone(), mode.capped);
        let service = service_fn(move |req: Request<Incoming>| {
            let app = service_app.clone();
            async move {
                let has_body = req.version() < Version::HTTP_2 && !req.body().is_end_stream();
                // Probes and metrics stay outside the cap: a saturated pod is alive, not dead.
                let slot = if capped && !is_ops_path(req.uri().path()) {
                    match app.concurrency.try_enter() {
                        Some(slot) => Some(slot),
                        None => {
                            let refusal = closing_if(has_body, app.concurrency.refusal());
                            return Ok(refusal.map(|b| Held::new(b, None)));
                        }
                    }
                } else {
                    None
                };
                // Every endpoint reads the body through the idle timeout (408 when it stalls).
                let req = req.map(|body| RequestBody::new(body, app.header_read_timeout));
                // Boxed: hyper keeps an allocation of this future's size for the connection's life;
                // inline, the handler's state (4.5 KB) would stay with every open stream after
                // its response started. Boxed, it is freed when the response is ready.
                let response = closing_if(has_body, Box::pin(route(app, req)).await);
                Ok::<_, Infallible>(response.map(|body| Held::new(body, slot)))
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let timeout = app.header_read_timeout;
        let Some(tls) = mode.tls.clone() else {
            let mut closing = closing.clone();
            let (h2, http1) = (h2.clone(), http1.clone());
            tokio::spawn(async move {
                // One header-read deadline from accept: the protocol sniff and the first request.
                let deadline = tokio::time::Instant::now() + timeout;
                let protocol = tokio::select! {
                    protocol = tokio::time::timeout_at(deadline, protocol(&stream)) => match protocol {
                        Ok(protocol) => protocol,
                        Err(_) => return,
                    },
                    // At shutdown a connection that has sent nothing is closed, as hyper closes one
                    // it has not read a request from.
                    _ = closing.changed() => return,
                };
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let (io, service) = header_timeout::guard(TokioIo::new(stream), service, left);
                // HTTP/1 is served by hyper's own HTTP/1 connection, which this task holds inline;
                // the others are boxed, so their larger state does not size every connection's task.
                match protocol {
                    Some(Version::HTTP_11) => watch(http1.serve_connection(io, service), watcher, peer).await,
                    sniffed => {
                        let auto = if sniffed.is_some() { &h2 } else { &builder };
                        Box::pin(watch(auto.serve_connection(io, service).into_owned(), watcher, peer)).await
                    }
                }
            });
            continue;
        };
        let app = app.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                // A handshake that ends after SIGTERM gets no connection.
                Ok(Ok(_)) if app.draining.load(Ordering::SeqCst) => {}
                Ok(Ok(stream)) => {
                    let (io, service) = header_timeout::guard(TokioIo::new(stream), service, timeout);
                    watch(builder.serve_connection(io, service).into_owned(), watcher, peer).await
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
    app.draining.store(true, Ordering::SeqCst);
    drop(listener);
    drop(closing_tx);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// Adds `Connection: close` to the HTTP/1 answers that may come before the request body was read
/// (401, 408, 413, 503 over the cap): hyper then closes the connection, and a client told so does not
/// reuse it and race the close with its next request.
fn closing_if(has_body: bool, mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    let early = matches!(
        response.status(),
        StatusCode::UNAUTHORIZED
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::SERVICE_UNAVAILABLE
    );
    if has_body && early {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The first bytes of an HTTP/2 connection (RFC 9113 section 3.4): h2c with prior knowledge.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol the client's first bytes announce (`None`: not yet known), told from a `peek` that
/// leaves them in the socket. hyper_util's auto builder would read them (at most 24 bytes) and hand
/// them back to hyper first: hyper's HTTP/1 read buffer then holds 24 bytes when it asks for 8 KB
/// free and doubles to 16 KB for the connection's life. The decision is the auto builder's: HTTP/1
/// as soon as a byte differs from the preface, HTTP/2 on the whole preface; a partial preface, end
/// of stream or error leaves the connection to the auto builder as before.
async fn protocol(stream: &TcpStream) -> Option<Version> {
    let mut first = [0u8; H2_PREFACE.len()];
    match stream.peek(&mut first).await {
        Ok(n) if n > 0 && first[..n] != H2_PREFACE[..n] => Some(Version::HTTP_11),
        Ok(n) if n == H2_PREFACE.len() => Some(Version::HTTP_2),
        _ => None,
    }
}

/// Serves one accepted connection until it closes or, after shutdown, drains.
async fn watch<C>(conn: C, watcher: Watcher, peer: SocketAddr)
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// The paths every listener answers without a concurrency slot.
fn is_ops_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}
