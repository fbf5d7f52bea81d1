//! The listener: HTTP/1.1 and h2c on one port, routing, and graceful shutdown.

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
        }
    }

    /// Answers one request; every outcome is a response, never an error.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ResponseBody> {
        let started = Instant::now();
        let path = req.uri().path();
        let result = match (req.method(), path) {
            (&Method::GET, "/healthz") => Ok(endpoints::ops::healthz()),
            (&Method::GET, "/readyz") => Ok(endpoints::ops::readyz(&self)),
            (&Method::GET, "/metrics") => Ok(endpoints::ops::metrics(&self)),
            (&Method::GET, "/v1/models") => endpoints::models::list(&self, &req).await,
            (&Method::POST, "/v1/chat/completions") => {
                endpoints::chat::completions(&self, req, started).await
            }
            (_, "/healthz" | "/readyz" | "/metrics" | "/v1/models" | "/v1/chat/completions") => {
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
            async move { Ok::<_, Infallible>(app.handle(req).await) }
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
