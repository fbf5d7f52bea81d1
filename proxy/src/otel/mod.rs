//! OpenTelemetry traces, off by default (`--otel-traces`): one SERVER span per OpenAI request
//! named and attributed by the OTel GenAI semantic conventions (`chat demo/claude-sonnet`), one
//! CLIENT child span per Bedrock call, a caller's W3C `traceparent`/`tracestate` continued, and
//! export over OTLP/HTTP (protobuf) in the background ([`export`]).
//!
//! The request's span travels in the OpenTelemetry [`Context`], attached while the request's
//! future, and for a stream its response body, is polled. So `upstream`, `usage` and the
//! endpoints annotate "the current request" through the free functions here, without a new
//! parameter. With traces off no span or context is made and each hook is one relaxed atomic
//! load: nothing is allocated on the request path.
//!
//! Attributes never carry a prompt, a completion, a caller key or an AWS credential.

pub mod export;
mod spans;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::Request;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

pub use self::export::ExportMetrics;
use self::export::{ExportQueue, QueueSettings};
pub use self::spans::{
    BedrockCall, ServerSpan, chat_parameters, finish_reasons, record_usage, request_model,
};
use crate::metrics::Metrics;

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "bedrock-gateway-proxy";
/// Instrumentation scope of every span.
const SCOPE: &str = "bedrock-gateway";

/// Set once traces start: until then every hook returns after one relaxed load, without even
/// touching OpenTelemetry's thread-local context.
static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether any [`Traces`] was started in this process.
fn started() -> bool {
    STARTED.load(Ordering::Relaxed)
}

/// Where spans go and how many are kept; read from the flags and the standard `OTEL_*` variables.
#[derive(Clone, Debug)]
pub struct TraceSettings {
    /// OTLP/HTTP traces URL (`.../v1/traces`).
    pub endpoint: String,
    /// Fraction of new traces sampled, 0 to 1; a caller's sampled flag is followed.
    pub sample_ratio: f64,
    /// Queue size, batch size and schedule of the background export.
    pub queue: QueueSettings,
}

impl TraceSettings {
    /// Settings from the environment: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, else `http://localhost:4318/v1/traces`; the
    /// queue from `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, `OTEL_BSP_SCHEDULE_DELAY`.
    pub fn from_env(sample_ratio: f64) -> Result<TraceSettings, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let endpoint = traces_endpoint(
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").as_deref(),
            var("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
        );
        if !(0.0..=1.0).contains(&sample_ratio) {
            return Err(format!("the trace sample ratio must be between 0 and 1, not {sample_ratio}"));
        }
        Ok(TraceSettings { endpoint, sample_ratio, queue: QueueSettings::from_env(var)? })
    }
}

/// The OTLP/HTTP traces URL the OpenTelemetry exporter spec derives from the two variables.
fn traces_endpoint(traces: Option<&str>, base: Option<&str>) -> String {
    match (traces, base) {
        (Some(url), _) => url.to_owned(),
        (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
        (None, None) => "http://localhost:4318/v1/traces".to_owned(),
    }
}

/// The tracer of the proxy, with its W3C propagator and export queue.
pub struct Traces {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
    queue: ExportQueue,
    propagator: TraceContextPropagator,
}

impl Traces {
    /// Starts the export task on the current Tokio runtime and registers the export metrics.
    pub fn start(settings: &TraceSettings, metrics: &Metrics) -> Result<Traces, String> {
        let export_metrics = ExportMetrics::new();
        export_metrics.register(metrics)?;
        let resource = resource();
        let queue = ExportQueue::start(&settings.endpoint, &resource, &settings.queue, export_metrics)?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue.processor())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer(SCOPE);
        STARTED.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %settings.endpoint, sample_ratio = settings.sample_ratio, "exporting OpenTelemetry traces");
        Ok(Traces { tracer, provider, queue, propagator: TraceContextPropagator::new() })
    }

    /// The SERVER span of a GenAI request, continuing the caller's `traceparent`; `None` for
    /// routes that are not GenAI operations (probes, metrics, model list, playground).
    pub fn server_span<B>(&self, req: &Request<B>) -> Option<ServerSpan> {
        let operation = spans::operation(req.method(), req.uri().path())?;
        let parent = self.propagator.extract(&HeaderExtractor(req.headers()));
        let span = self
            .tracer
            .span_builder(operation)
            .with_kind(SpanKind::Server)
            .with_attributes(spans::server_attributes(operation, req))
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span).with_value(spans::Scope { tracer: self.tracer.clone(), operation });
        Some(ServerSpan::new(cx))
    }

    /// Exports what is queued, waiting at most `timeout` (on shutdown).
    pub async fn flush(&self, timeout: Duration) {
        self.queue.flush(timeout).await;
        // The provider's own shutdown only marks it shut; the queue above did the export.
        let _ = self.provider.shutdown();
    }
}

/// The resource from `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the SDK's detectors),
/// named `bedrock-gateway-proxy` when they name no service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder =
        if named { Resource::builder() } else { Resource::builder().with_service_name(DEFAULT_SERVICE_NAME) };
    builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build()
}

/// Runs `f` on the current request's span when one is being recorded (traces on, sampled).
fn with_current_span(f: impl FnOnce(&opentelemetry::trace::SpanRef<'_>, &Context)) {
    if !started() {
        return;
    }
    Context::map_current(|cx| {
        if cx.has_active_span() {
            let span = cx.span();
            if span.is_recording() {
                f(&span, cx);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_endpoint_follows_the_exporter_spec() {
        assert_eq!(traces_endpoint(None, None), "http://localhost:4318/v1/traces");
        assert_eq!(traces_endpoint(None, Some("http://collector:4318/")), "http://collector:4318/v1/traces");
        assert_eq!(
            traces_endpoint(Some("http://collector:4318/custom"), Some("http://other:4318")),
            "http://collector:4318/custom"
        );
    }
}
