//! Span export: a bounded queue the request path never waits on (a full queue drops the span
//! and counts it), drained by one task on the proxy's Tokio runtime that sends batches through
//! the OTLP/HTTP protobuf exporter over the proxy's own hyper + rustls (ring) client.
//!
//! Why not the SDK's `BatchSpanProcessor`: it exports from a thread of its own through a
//! blocking executor, where there is no Tokio runtime for a hyper client, and keeps its drop
//! count to itself; this queue runs where the client runs and counts drops in `/metrics`.
//! Why not the exporter's bundled reqwest client: it would bring a second HTTP/TLS stack.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::Context;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use prometheus::{IntCounter, IntCounterVec, Opts};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::upstream::https_connector;

/// Longest one export request may take, connection included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Queue size, batch size and schedule of the export.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// Spans kept waiting for export; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub max_queue: usize,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub max_batch: usize,
    /// Longest a span waits before its batch is sent (`OTEL_BSP_SCHEDULE_DELAY` ms, 5000).
    pub delay: Duration,
}

impl QueueSettings {
    /// Settings from the standard batch-processor variables, read through `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<QueueSettings, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            var(name).map_or(Ok(default), |v| {
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name} must be a positive integer, not `{v}`"))
            })
        };
        let max_queue = number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)? as usize;
        let max_batch = (number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)? as usize).min(max_queue);
        let delay = Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?);
        Ok(QueueSettings { max_queue, max_batch, delay })
    }
}

/// Exported and dropped span counters, in the proxy's `/metrics`.
#[derive(Clone)]
pub struct ExportMetrics {
    exported: IntCounter,
    dropped: IntCounterVec,
}

impl Default for ExportMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ExportMetrics {
    /// Fresh, unregistered counters.
    pub fn new() -> Self {
        let exported = IntCounter::new(
            "bedrock_gateway_trace_spans_exported_total",
            "Spans accepted by the OTLP trace endpoint.",
        )
        .expect("valid metric");
        let dropped = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_trace_spans_dropped_total",
                "Spans not exported, by reason: queue_full (export too slow), export_failed.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        for reason in ["queue_full", "export_failed"] {
            dropped.with_label_values(&[reason]);
        }
        ExportMetrics { exported, dropped }
    }

    /// Adds both families to the proxy's registry.
    pub fn register(&self, metrics: &Metrics) -> Result<(), String> {
        metrics.register(Box::new(self.exported.clone())).map_err(|e| format!("metrics: {e}"))?;
        metrics.register(Box::new(self.dropped.clone())).map_err(|e| format!("metrics: {e}"))
    }
}

/// The sending side of the export task.
pub(super) struct ExportQueue {
    spans: mpsc::Sender<SpanData>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
    dropped_full: IntCounter,
}

impl ExportQueue {
    /// Builds the OTLP/HTTP exporter for `endpoint` and starts the export task.
    pub(super) fn start(
        endpoint: &str,
        resource: &Resource,
        settings: &QueueSettings,
        metrics: ExportMetrics,
    ) -> Result<ExportQueue, String> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpHttpClient::new())
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
        exporter.set_resource(resource);
        let (spans, queued) = mpsc::channel(settings.max_queue);
        let (flushes, flush_requests) = mpsc::unbounded_channel();
        let dropped_full = metrics.dropped.with_label_values(&["queue_full"]);
        tokio::spawn(export_loop(exporter, queued, flush_requests, settings.clone(), metrics));
        Ok(ExportQueue { spans, flushes, dropped_full })
    }

    /// The span processor feeding this queue.
    pub(super) fn processor(&self) -> QueueProcessor {
        QueueProcessor { spans: self.spans.clone(), dropped_full: self.dropped_full.clone() }
    }

    /// Exports everything queued so far, waiting at most `timeout`.
    pub(super) async fn flush(&self, timeout: Duration) {
        let (done, exported) = oneshot::channel();
        if self.flushes.send(done).is_ok() && tokio::time::timeout(timeout, exported).await.is_err() {
            tracing::warn!("trace export did not finish before the shutdown deadline");
        }
    }
}

/// Sends finished spans to the queue without ever waiting: a full queue drops the span.
#[derive(Debug)]
pub(super) struct QueueProcessor {
    spans: mpsc::Sender<SpanData>,
    dropped_full: IntCounter,
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.spans.try_send(span).is_err() {
            self.dropped_full.inc();
        }
    }

    /// Nothing to do here: [`ExportQueue::flush`] exports (asynchronously) on shutdown.
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Collects spans into batches and exports a batch when it is full, when it is `delay` old, and
/// on a flush request.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut queued: mpsc::Receiver<SpanData>,
    mut flush_requests: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    settings: QueueSettings,
    metrics: ExportMetrics,
) {
    let mut batch = Vec::with_capacity(settings.max_batch);
    let mut failing = false;
    let mut ticks = tokio::time::interval(settings.delay);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let room = settings.max_batch - batch.len();
        tokio::select! {
            received = queued.recv_many(&mut batch, room) => {
                if received == 0 {
                    export(&exporter, &mut batch, &metrics, &mut failing).await;
                    return;
                }
                if batch.len() >= settings.max_batch {
                    export(&exporter, &mut batch, &metrics, &mut failing).await;
                }
            }
            _ = ticks.tick() => export(&exporter, &mut batch, &metrics, &mut failing).await,
            Some(done) = flush_requests.recv() => {
                loop {
                    export(&exporter, &mut batch, &metrics, &mut failing).await;
                    if queued.is_empty() {
                        break;
                    }
                    queued.recv_many(&mut batch, settings.max_batch).await;
                }
                let _ = done.send(());
            }
        }
    }
}

/// Sends `batch` (emptying it) and counts the outcome; logs when export starts or stops failing.
async fn export(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
    metrics: &ExportMetrics,
    failing: &mut bool,
) {
    if batch.is_empty() {
        return;
    }
    let count = batch.len() as u64;
    match exporter.export(std::mem::take(batch)).await {
        Ok(()) => {
            metrics.exported.inc_by(count);
            if std::mem::take(failing) {
                tracing::info!("trace export works again");
            }
        }
        Err(e) => {
            metrics.dropped.with_label_values(&["export_failed"]).inc_by(count);
            if !std::mem::replace(failing, true) {
                tracing::warn!(error = %e, "trace export failed; spans are dropped until it works again");
            }
        }
    }
}

/// The exporter's HTTP client: hyper-util with the proxy's rustls (ring, webpki roots) connector.
struct OtlpHttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl OtlpHttpClient {
    fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https_connector(http));
        OtlpHttpClient { client }
    }
}

impl fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OtlpHttpClient")
    }
}

#[async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let exchange = async {
            let response = self.client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        let response = tokio::time::timeout(EXPORT_TIMEOUT, exchange).await??;
        if !response.status().is_success() {
            return Err(format!("the OTLP endpoint answered {}", response.status()).into());
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_settings_read_the_standard_variables() {
        let settings = QueueSettings::from_env(|_| None).unwrap();
        assert_eq!(
            (settings.max_queue, settings.max_batch, settings.delay),
            (2048, 512, Duration::from_secs(5))
        );
        let settings = QueueSettings::from_env(|name| match name {
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("100".into()),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("250".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (settings.max_queue, settings.max_batch, settings.delay),
            (100, 100, Duration::from_millis(250))
        );
        let err = QueueSettings::from_env(|_| Some("lots".into())).unwrap_err();
        assert_eq!(err, "OTEL_BSP_MAX_QUEUE_SIZE must be a positive integer, not `lots`");
    }
}
