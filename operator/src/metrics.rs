//! Prometheus metrics of the operator and the HTTP endpoint serving them with `/healthz` and
//! `/readyz`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use tokio::net::TcpListener;

/// Every metric the operator exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind and result (`ok`, `error`).
    pub reconciles: IntCounterVec,
    /// Failed reconciles by kind.
    pub reconcile_errors: IntCounterVec,
    /// Reconcile duration by kind.
    pub reconcile_duration: HistogramVec,
    /// Time to render the watched objects into a plan.
    pub render_duration: Histogram,
    /// Objects with problems in the latest plan.
    pub problem_objects: IntGauge,
    /// Writes of the ConfigMap and Secret, by object (`config`, `credentials`).
    pub applies: IntCounterVec,
    /// Size of the latest rendered config, by encoding (`json`, `gzip`: what the ConfigMap holds).
    pub config_bytes: IntGaugeVec,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
    /// Readiness: set once the first config was applied (or while standing by).
    ready: Arc<AtomicBool>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("bedrock_gateway_operator_reconciles_total", "Reconciles by kind and result"),
            &["kind", "result"],
        )
        .expect("valid metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new("bedrock_gateway_operator_reconcile_errors_total", "Failed reconciles by kind"),
            &["kind"],
        )
        .expect("valid metric");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "bedrock_gateway_operator_reconcile_duration_seconds",
                "Reconcile duration by kind",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0]),
            &["kind"],
        )
        .expect("valid metric");
        let render_duration = Histogram::with_opts(
            HistogramOpts::new(
                "bedrock_gateway_operator_render_duration_seconds",
                "Time to render the watched objects into the proxy config",
            )
            .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
        )
        .expect("valid metric");
        let problem_objects = IntGauge::new(
            "bedrock_gateway_operator_problem_objects",
            "Objects left out of the config because of problems",
        )
        .expect("valid metric");
        let applies = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_operator_applies_total",
                "Writes of the rendered ConfigMap and Secret",
            ),
            &["object"],
        )
        .expect("valid metric");
        let config_bytes = IntGaugeVec::new(
            Opts::new(
                "bedrock_gateway_operator_config_bytes",
                "Size of the latest rendered config by encoding; the ConfigMap holds gzip up to 1 MiB",
            ),
            &["encoding"],
        )
        .expect("valid metric");
        let leader = IntGauge::new("bedrock_gateway_operator_leader", "1 while this replica is the leader")
            .expect("valid metric");
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(render_duration.clone()),
            Box::new(problem_objects.clone()),
            Box::new(applies.clone()),
            Box::new(config_bytes.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            render_duration,
            problem_objects,
            applies,
            config_bytes,
            leader,
            ready: Arc::default(),
        }
    }

    /// Marks the operator ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Answers one request to the metrics listener.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let (status, body) = match (method, path) {
            (&Method::GET, "/metrics") => (StatusCode::OK, self.render()),
            (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n".to_string()),
            (&Method::GET, "/readyz") if self.ready.load(Ordering::SeqCst) => {
                (StatusCode::OK, "ok\n".to_string())
            }
            (&Method::GET, "/readyz") => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_string()),
            _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let content_type =
            if path == "/metrics" { prometheus::TEXT_FORMAT } else { "text/plain; charset=utf-8" };
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(http::header::CONTENT_TYPE, value);
        }
        response
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let metrics = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let response = metrics.respond(req.method(), req.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn get(metrics: &Metrics, path: &str) -> (u16, String, String) {
        let response = metrics.respond(&Method::GET, path);
        let content_type = response.headers()[http::header::CONTENT_TYPE].to_str().unwrap().to_string();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let metrics = Metrics::new();
        assert_eq!(get(&metrics, "/healthz").await.0, 200);
        assert_eq!(get(&metrics, "/readyz").await.0, 503);
        metrics.set_ready(true);
        assert_eq!(get(&metrics, "/readyz").await.0, 200);
        assert_eq!(get(&metrics, "/nope").await.0, 404);

        metrics.reconciles.with_label_values(&["BedrockModel", "ok"]).inc();
        metrics.render_duration.observe(0.02);
        let (status, content_type, text) = get(&metrics, "/metrics").await;
        assert_eq!((status, content_type.as_str()), (200, prometheus::TEXT_FORMAT));
        assert!(
            text.contains("bedrock_gateway_operator_reconciles_total{kind=\"BedrockModel\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("bedrock_gateway_operator_render_duration_seconds_count 1"), "{text}");
    }
}
