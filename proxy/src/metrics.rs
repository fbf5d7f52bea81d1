//! Prometheus metrics of the proxy, exposed at `GET /metrics`.
//!
//! Label values are bounded: `model` is a served name or `-` (never what a caller typed),
//! `status` an HTTP status, `error_type` an AWS error code.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The proxy's metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint, served model and HTTP status.
    pub requests: IntCounterVec,
    /// Request latency until the response is complete, by endpoint and model.
    pub duration: HistogramVec,
    /// Errors answered by Bedrock, by model and AWS error type.
    pub upstream_errors: IntCounterVec,
    /// Tokens by model and type (`input`, `output`, `cache_read`, `cache_write`).
    pub tokens: IntCounterVec,
    /// Config loads by result (`success`, `failure`).
    pub config_reloads: IntCounterVec,
    /// Generation of the config being served.
    pub config_generation: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("bedrock_gateway_requests_total", "Requests answered, by endpoint, model and status."),
            &["endpoint", "model", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "bedrock_gateway_request_duration_seconds",
                "Time from request to the end of the response, by endpoint and model.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
            &["endpoint", "model"],
        )
        .expect("valid metric");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_upstream_errors_total",
                "Errors answered by Bedrock, by model and AWS error type.",
            ),
            &["model", "error_type"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new("bedrock_gateway_tokens_total", "Tokens used, by model and type."),
            &["model", "type"],
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new("bedrock_gateway_config_reloads_total", "Config loads, by result."),
            &["result"],
        )
        .expect("valid metric");
        let config_generation =
            IntGauge::new("bedrock_gateway_config_generation", "Generation of the config being served.")
                .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(tokens.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_generation.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics { registry, requests, duration, upstream_errors, tokens, config_reloads, config_generation }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        out
    }
}
