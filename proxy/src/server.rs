//! The listeners: the API (HTTP/1.1 and h2c) with routing and graceful shutdown, and the optional
//! separate ops listener (`--metrics-listen`: `/metrics`, `/healthz`, `/readyz`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::body::ResponseBody;
use crate::config::ConfigStore;
use crate::endpoints;
use crate::endpoints::chat_images::ImageFetcher;
use crate::error::ApiError;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::upstream::Upstream;
use crate::usage::Recorder;

/// Shared state of the proxy: config, upstream client, metrics and limits.
pub struct App {
    /// The config being served.
    pub config: Arc<ConfigStore>,
    /// Pooled client to Bedrock.
    pub upstream: Upstream,
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
    /// `/v1/batches` settings.
    pub batch: endpoints::batches::BatchSettings,
}

impl App {
    /// State with a fresh upstream client, limits counted in this process, and the given config
    /// store and metrics.
    pub fn new(config: Arc<ConfigStore>, metrics: Metrics, max_body_bytes: usize) -> Self {
        let usage = Recorder::new(metrics.clone(), Limiter::local());
        App {
            config,
            upstream: Upstream::new(),
            metrics,
            auth: Authenticator::default(),
            usage,
            max_body_bytes,
            draining: AtomicBool::new(false),
            playground: true,
            images: ImageFetcher::new(false),
            metrics_on_api: true,
            batch: endpoints::batches::BatchSettings::default(),
        }
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

    /// Answers one request; every outcome is a response, never an error.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
        let started = Instant::now();
        let path = req.uri().path();
        let result = match (req.method(), path) {
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
            (_, p) if p == "/v1/files" || p.starts_with("/v1/files/") => {
                endpoints::files::handle(&self, req, started).await
            }
            (_, p) if p == "/v1/batches" || p.starts_with("/v1/batches/") => {
                endpoints::batches::handle(&self, req, started).await
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
        };
        result.unwrap_or_else(|e| endpoints::error_response(&e))
    }

    /// Answers one request on the ops listener: `/metrics`, `/healthz`, `/readyz` only.
    pub async fn handle_ops(self: Arc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
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
    serve_with(listener, app, App::handle, shutdown, grace).await;
}

/// Serves the ops routes on `listener` for the life of the process, so probes keep getting an
/// answer (`/readyz`: 503 draining) while the API listener drains.
pub async fn serve_ops(listener: TcpListener, app: Arc<App>) {
    serve_with(listener, app, App::handle_ops, std::future::pending(), Duration::ZERO).await;
}

/// The accept loop shared by both listeners; `route` answers each request.
async fn serve_with<F, Fut>(
    listener: TcpListener,
    app: Arc<App>,
    route: F,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) where
    F: Fn(Arc<App>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
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
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(route(app, req).await) }
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    app.draining.store(true, Ordering::SeqCst);
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}
