//! Prometheus metrics of the proxy, exposed at `GET /metrics`.
//!
//! Label values are bounded: `model` is a served name or `-` (never what a caller typed),
//! `status` an HTTP status, `error_type` an AWS error code, `team` a caller's first team. A
//! per-user label exists only with `--metrics-user-label`, as users are unbounded.

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
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
    /// Retries of Bedrock calls, by account, model and reason (`throttled`, `unavailable`,
    /// `server_error`, `connection`).
    pub upstream_retries: IntCounterVec,
    /// Calls answered by a fallback, by requested model, the model that answered and why the
    /// requested model did not.
    pub fallbacks: IntCounterVec,
    /// Tokens by model and type (`input`, `output`, `cache_read`, `cache_write`, `reasoning`).
    /// Bedrock's Converse usage has no reasoning count (thinking is billed inside `outputTokens`),
    /// so `reasoning` appears only for backends that report it.
    pub tokens: IntCounterVec,
    /// Spend in USD by account, model and team (and user, when enabled).
    pub cost_usd: CounterVec,
    /// Whether `cost_usd` has the `user` label.
    pub user_label: bool,
    /// Requests whose model has no price (neither the built-in table nor `spec.cost`).
    pub unpriced_requests: IntCounterVec,
    /// Time from request to the first streamed token, by model.
    pub time_to_first_token: HistogramVec,
    /// Time per output token after the first, by model (streams).
    pub time_per_output_token: HistogramVec,
    /// Requests refused by a usage limit, by model and limit (`requests`, `tokens`, `budget`).
    pub rate_limited: IntCounterVec,
    /// `cache_control` marks left out because the model does not cache there, by model.
    pub cache_points_dropped: IntCounterVec,
    /// Images returned, by model.
    pub images: IntCounterVec,
    /// Config loads by result (`success`, `error`).
    pub config_reloads: IntCounterVec,
    /// Generation of the config being served.
    pub config_generation: IntGauge,
    /// API requests being answered now (streams until their last event).
    pub in_flight: IntGauge,
    /// Requests refused with 503 because `--max-concurrent-requests` were in flight.
    pub overloaded: IntCounter,
    /// Loads of the TLS listener's certificate by result (`success`, `error`).
    pub tls_reloads: IntCounterVec,
    /// notAfter of the certificate the TLS listener serves; exported from its first load on
    /// (see [`Metrics::set_tls_certificate_expiry`]).
    tls_certificate_expiry: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family in a fresh registry.
    pub fn new() -> Self {
        Self::with_user_label(false)
    }

    /// Every family, with a `user` label on the cost family when `user_label`.
    pub fn with_user_label(user_label: bool) -> Self {
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
        let upstream_retries = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_upstream_retries_total",
                "Bedrock calls retried before the caller got a byte, by account, model and reason.",
            ),
            &["account", "model", "reason"],
        )
        .expect("valid metric");
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_fallbacks_total",
                "Calls answered by a fallback model, by requested model, the model that answered and why the \
                 requested model did not.",
            ),
            &["model", "served_by", "reason"],
        )
        .expect("valid metric");
        let tokens = IntCounterVec::new(
            Opts::new("bedrock_gateway_tokens_total", "Tokens used, by model and type."),
            &["model", "type"],
        )
        .expect("valid metric");
        let cost_labels: &[&str] =
            if user_label { &["account", "model", "team", "user"] } else { &["account", "model", "team"] };
        let cost_usd = CounterVec::new(
            Opts::new(
                "bedrock_gateway_cost_usd_total",
                "Spend in USD at Bedrock prices, by account, model and team.",
            ),
            cost_labels,
        )
        .expect("valid metric");
        let unpriced_requests = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_unpriced_requests_total",
                "Requests whose model has no price in the built-in table nor in spec.cost, by model.",
            ),
            &["model"],
        )
        .expect("valid metric");
        let cache_points_dropped = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_cache_points_dropped_total",
                "cache_control marks left out because the model does not cache there, by model.",
            ),
            &["model"],
        )
        .expect("valid metric");
        let time_to_first_token = HistogramVec::new(
            HistogramOpts::new(
                "bedrock_gateway_time_to_first_token_seconds",
                "Time from request to the first streamed token, by model.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0]),
            &["model"],
        )
        .expect("valid metric");
        let time_per_output_token = HistogramVec::new(
            HistogramOpts::new(
                "bedrock_gateway_time_per_output_token_seconds",
                "Time per output token after the first, by model (streams).",
            )
            .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5]),
            &["model"],
        )
        .expect("valid metric");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_rate_limited_requests_total",
                "Requests refused by an AccessPolicy limit, by model and limit.",
            ),
            &["model", "limit"],
        )
        .expect("valid metric");
        let images = IntCounterVec::new(
            Opts::new("bedrock_gateway_images_total", "Images returned, by model."),
            &["model"],
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
        let in_flight = IntGauge::new(
            "bedrock_gateway_in_flight_requests",
            "API requests being answered now (streams until their last event).",
        )
        .expect("valid metric");
        let overloaded = IntCounter::new(
            "bedrock_gateway_overloaded_requests_total",
            "Requests refused with 503 because --max-concurrent-requests were in flight.",
        )
        .expect("valid metric");
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_tls_reloads_total",
                "Loads of the TLS listener's certificate files, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let tls_certificate_expiry = IntGauge::new(
            "bedrock_gateway_tls_certificate_expiry_timestamp_seconds",
            "notAfter of the certificate the TLS listener serves, in seconds since the Unix epoch.",
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(upstream_retries.clone()),
            Box::new(fallbacks.clone()),
            Box::new(tokens.clone()),
            Box::new(cost_usd.clone()),
            Box::new(unpriced_requests.clone()),
            Box::new(time_to_first_token.clone()),
            Box::new(time_per_output_token.clone()),
            Box::new(rate_limited.clone()),
            Box::new(cache_points_dropped.clone()),
            Box::new(images.clone()),
            Box::new(config_reloads.clone()),
            Box::new(config_generation.clone()),
            Box::new(in_flight.clone()),
            Box::new(overloaded.clone()),
            Box::new(tls_reloads.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Metrics {
            registry,
            requests,
            duration,
            upstream_errors,
            upstream_retries,
            fallbacks,
            tokens,
            cost_usd,
            user_label,
            unpriced_requests,
            time_to_first_token,
            time_per_output_token,
            rate_limited,
            cache_points_dropped,
            images,
            config_reloads,
            config_generation,
            in_flight,
            overloaded,
            tls_reloads,
            tls_certificate_expiry,
        }
    }

    /// Sets the notAfter of the served TLS certificate (Unix seconds). The family is registered
    /// on the first call, so a proxy without `--tls-cert` exports no expiry at all rather than a
    /// 0 that an expiry alert would take for a long-expired certificate.
    pub fn set_tls_certificate_expiry(&self, not_after: i64) {
        self.tls_certificate_expiry.set(not_after);
        match self.registry.register(Box::new(self.tls_certificate_expiry.clone())) {
            Ok(()) | Err(prometheus::Error::AlreadyReg) => {}
            Err(e) => tracing::warn!(error = %e, "cannot export the TLS certificate expiry"),
        }
    }

    /// Adds families kept elsewhere (the credential metrics) to the exposition.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        out
    }
}
