//! Usage accounting: limits checked before a call, then tokens, cost, metrics and the usage log
//! line once it is complete.
//!
//! Every endpoint does the same two steps through [`Recorder`]:
//!
//! ```ignore
//! let admission = app.usage.admit(subject, &snapshot.policies, served_name).await?; // 429 when over a limit
//! // ... call Bedrock ...
//! let cost = app.usage.record(&Record { endpoint: "embeddings", tokens, admission: &admission, ..Record::new(..) });
//! usage::set_headers(response.headers_mut(), &admission, cost);
//! ```
//!
//! The usage log line (target `bedrock_gateway::usage`, JSON with `--log-format json`) carries
//! who, what model, tokens by type, cost, latency, status and request id; never a prompt, a
//! completion or a credential (prompts and completions go to their own line only with
//! `--log-content`, see [`content`]). Streamed responses cannot carry the cost in a header (it is known
//! only at the end): they carry it in an HTTP trailer of the same name when the client takes
//! trailers (HTTP/2, or HTTP/1.1 with `TE: trailers`; announced by a `Trailer` header), and always
//! in the usage log line and in `bedrock_gateway_cost_usd_total`. Browsers cannot read trailers:
//! `/v1/models` gives each model's effective prices so a page can price the usage chunk itself.

pub mod content;
pub mod pricing;

use std::time::Instant;

use api::config::Model;
use http::header::{HeaderName, HeaderValue, TE, TRAILER};
use http::{HeaderMap, Version};

pub use self::pricing::{PriceTable, Prices, Tokens};
use crate::auth::Subject;
use crate::error::ApiError;
use crate::limits::{Admission, Limiter};
use crate::metrics::Metrics;
use crate::openai::chat::Usage;
use crate::policy::PolicySet;

/// Response header with the cost of a non-streamed request, and trailer with the cost of a
/// streamed one, in USD.
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-bedrock-gateway-cost-usd");

/// Target of the usage log lines, to route or filter them (`RUST_LOG=bedrock_gateway::usage=info`).
pub const LOG_TARGET: &str = "bedrock_gateway::usage";

/// Limits, prices and usage recording, shared by every endpoint.
pub struct Recorder {
    metrics: Metrics,
    prices: &'static PriceTable,
    limiter: Limiter,
    log_content: bool,
}

/// One finished request, as recorded.
pub struct Record<'a> {
    /// Endpoint label (`chat`, `embeddings`, `images`).
    pub endpoint: &'static str,
    /// Id of the response (`chatcmpl-...`), to find the request in logs.
    pub request_id: &'a str,
    /// The caller.
    pub subject: &'a Subject,
    /// The served model.
    pub model: &'a Model,
    /// Tokens used.
    pub tokens: Tokens,
    /// Images generated.
    pub images: u64,
    /// Whether the request ran as batch inference (batch prices).
    pub batch: bool,
    /// The cost when the parts were priced one by one ([`LineTotals`]); `None`: priced from
    /// `tokens` here.
    pub cost_usd: Option<f64>,
    /// HTTP status of the answer (`499`: the caller went away mid-stream).
    pub status: u16,
    /// When the request arrived.
    pub started: Instant,
    /// When the first streamed token went out, for streams.
    pub first_token: Option<Instant>,
    /// The limits the request was admitted under.
    pub admission: &'a Admission,
}

/// A batch's usage summed line by line, each line priced as the request it is: a long-context
/// surcharge depends on one request's input, never on the batch's total.
#[derive(Clone, Copy, Debug, Default)]
pub struct LineTotals {
    /// Tokens of every line.
    pub tokens: Tokens,
    /// Cost of every line at batch prices, USD.
    pub cost_usd: f64,
}

impl LineTotals {
    /// Adds one line's `tokens`, priced at `prices` (unpriced models add no cost).
    pub fn add(&mut self, tokens: &Tokens, prices: Option<&Prices>) {
        let sum = &mut self.tokens;
        sum.input += tokens.input;
        sum.output += tokens.output;
        sum.cache_read += tokens.cache_read;
        sum.cache_write += tokens.cache_write;
        sum.reasoning += tokens.reasoning;
        if let Some(p) = prices {
            self.cost_usd += p.cost(tokens, 0, true);
        }
    }
}

impl<'a> Record<'a> {
    /// A record with no usage yet, status 200, not a batch, not streamed.
    pub fn new(
        endpoint: &'static str,
        request_id: &'a str,
        subject: &'a Subject,
        model: &'a Model,
        started: Instant,
        admission: &'a Admission,
    ) -> Record<'a> {
        Record {
            endpoint,
            request_id,
            subject,
            model,
            tokens: Tokens::default(),
            images: 0,
            batch: false,
            cost_usd: None,
            status: 200,
            started,
            first_token: None,
            admission,
        }
    }
}

impl Recorder {
    /// A recorder over the built-in price table.
    pub fn new(metrics: Metrics, limiter: Limiter) -> Recorder {
        Recorder { metrics, prices: PriceTable::builtin(), limiter, log_content: false }
    }

    /// Logs prompts and completions too (`--log-content`; see [`content`]).
    pub fn logging_content(mut self, on: bool) -> Recorder {
        self.log_content = on;
        self
    }

    /// Whether prompts and completions are logged.
    pub fn logs_content(&self) -> bool {
        self.log_content
    }

    /// The prices `model` is billed at (table, region, tier and `spec.cost`), `None` when unpriced.
    pub fn prices(&self, model: &Model) -> Option<Prices> {
        self.prices.prices(model)
    }

    /// Admits a call of `served` by `subject` under its policies' limits, or the 429 to answer.
    pub async fn admit(
        &self,
        subject: &Subject,
        policies: &PolicySet,
        served: &str,
    ) -> Result<Admission, ApiError> {
        let admitted = self.limiter.admit(subject, policies, served).await;
        if let Err(e) = &admitted {
            let limit = match (e.status.as_u16(), e.kind) {
                (429, "requests") => "requests",
                (429, "tokens") => "tokens",
                (429, _) => "budget",
                _ => "unavailable",
            };
            self.metrics.rate_limited.with_label_values(&[served, limit]).inc();
        }
        admitted
    }

    /// The limits usage of `served` by `subject` learnt after its request is charged to (see
    /// [`Limiter::charge_to`]).
    pub fn charge_to(&self, subject: &Subject, policies: &PolicySet, served: &str) -> Admission {
        self.limiter.charge_to(subject, policies, served)
    }

    /// Prices and records a finished request: metrics, limit counters and the usage log line.
    /// Returns the cost in USD, `None` when the model has no price.
    pub fn record(&self, r: &Record<'_>) -> Option<f64> {
        let served = r.model.served_name.as_str();
        let cost = self
            .prices
            .prices(r.model)
            .map(|p| r.cost_usd.unwrap_or_else(|| p.cost(&r.tokens, r.images, r.batch)));
        let t = &r.tokens;
        for (kind, n) in [
            ("input", t.input),
            ("output", t.output),
            ("cache_read", t.cache_read),
            ("cache_write", t.cache_write),
            ("reasoning", t.reasoning),
        ] {
            if n > 0 {
                self.metrics.tokens.with_label_values(&[served, kind]).inc_by(n);
            }
        }
        match cost {
            Some(usd) => {
                let (account, team) = (r.model.account.as_str(), r.subject.team_label());
                let cost = if self.metrics.user_label {
                    self.metrics.cost_usd.with_label_values(&[account, served, team, r.subject.key()])
                } else {
                    self.metrics.cost_usd.with_label_values(&[account, served, team])
                };
                cost.inc_by(usd);
            }
            None => self.metrics.unpriced_requests.with_label_values(&[served]).inc(),
        }
        let now = Instant::now();
        if let Some(first) = r.first_token {
            self.metrics
                .time_to_first_token
                .with_label_values(&[served])
                .observe(first.duration_since(r.started).as_secs_f64());
            if t.output > 1 {
                let per_token = now.duration_since(first).as_secs_f64() / (t.output - 1) as f64;
                self.metrics.time_per_output_token.with_label_values(&[served]).observe(per_token);
            }
        }
        self.limiter.add(r.admission, t.total(), cost.unwrap_or(0.0));
        tracing::info!(
            target: LOG_TARGET,
            request_id = r.request_id,
            endpoint = r.endpoint,
            user = r.subject.user,
            teams = ?r.subject.teams,
            model = served,
            account = r.model.account,
            model_id = r.model.model_id,
            input_tokens = t.input,
            output_tokens = t.output,
            cache_read_tokens = t.cache_read,
            cache_write_tokens = t.cache_write,
            reasoning_tokens = t.reasoning,
            images = r.images,
            batch = r.batch,
            cost_usd = cost,
            latency_ms = now.duration_since(r.started).as_millis() as u64,
            ttft_ms = r.first_token.map(|f| f.duration_since(r.started).as_millis() as u64),
            status = r.status,
            "usage"
        );
        crate::otel::record_usage(r, cost);
        cost
    }
}

/// The tokens of an OpenAI chat usage object (its `prompt_tokens` include cached ones).
pub fn chat_tokens(usage: &Usage) -> Tokens {
    let (cache_read, cache_write) =
        usage.prompt_tokens_details.map_or((0, 0), |d| (d.cached_tokens, d.cache_write_tokens));
    Tokens {
        input: usage.prompt_tokens.saturating_sub(cache_read).saturating_sub(cache_write),
        output: usage.completion_tokens,
        cache_read,
        cache_write,
        reasoning: 0,
    }
}

/// Adds the `x-ratelimit-*` headers and, when known, the cost header to a response.
pub fn set_headers(headers: &mut HeaderMap, admission: &Admission, cost: Option<f64>) {
    headers.extend(admission.headers().iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(cost) = cost
        && let Ok(value) = HeaderValue::try_from(cost_text(cost))
    {
        headers.insert(COST_HEADER, value);
    }
}

/// Whether a client can receive trailers: always over HTTP/2, over HTTP/1.1 only when it says
/// `TE: trailers` (the same test hyper applies before it writes trailers).
pub fn accepts_trailers(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_2
        || headers.get_all(TE).iter().any(|v| {
            v.to_str().is_ok_and(|line| line.split(',').any(|t| t.trim().eq_ignore_ascii_case("trailers")))
        })
}

/// Announces the cost trailer in the response head (HTTP/1.1 sends only announced trailers).
pub fn announce_cost_trailer(headers: &mut HeaderMap) {
    headers.insert(TRAILER, HeaderValue::from_static("x-bedrock-gateway-cost-usd"));
}

/// The trailers closing a priced stream: its cost.
pub fn cost_trailers(cost: f64) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(1);
    if let Ok(value) = HeaderValue::try_from(cost_text(cost)) {
        trailers.insert(COST_HEADER, value);
    }
    trailers
}

/// A cost as decimal USD without exponent or trailing zeros: `0.0000013`, `0.25`, `0`.
pub fn cost_text(usd: f64) -> String {
    let text = format!("{usd:.10}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" { "0".to_owned() } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use crate::openai::chat::PromptTokensDetails;

    use super::*;

    #[test]
    fn costs_print_as_plain_decimals() {
        assert_eq!(cost_text(0.0000013), "0.0000013");
        assert_eq!(cost_text(0.25), "0.25");
        assert_eq!(cost_text(0.0), "0");
        assert_eq!(cost_text(12.0), "12");
    }

    #[test]
    fn trailers_only_for_clients_that_take_them() {
        let mut headers = HeaderMap::new();
        assert!(accepts_trailers(Version::HTTP_2, &headers));
        assert!(!accepts_trailers(Version::HTTP_11, &headers));
        headers.insert(TE, HeaderValue::from_static("gzip"));
        assert!(!accepts_trailers(Version::HTTP_11, &headers));
        headers.append(TE, HeaderValue::from_static("deflate, Trailers"));
        assert!(accepts_trailers(Version::HTTP_11, &headers));
        assert_eq!(cost_trailers(0.00000132)[COST_HEADER], "0.00000132");
    }

    #[test]
    fn chat_usage_splits_cached_tokens_out_of_the_prompt() {
        let usage = Usage {
            prompt_tokens: 100,
            completion_tokens: 7,
            total_tokens: 107,
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 60, cache_write_tokens: 30 }),
        };
        assert_eq!(
            chat_tokens(&usage),
            Tokens { input: 10, output: 7, cache_read: 60, cache_write: 30, reasoning: 0 }
        );
    }

    #[test]
    fn batch_lines_are_priced_one_by_one() {
        let sonnet_4 = Prices {
            input_per_million: 3.0,
            output_per_million: 15.0,
            cache_read_per_million: 0.3,
            cache_write_per_million: 3.75,
            per_image: 0.0,
            batch_discount: 0.5,
            long_context: Some(pricing::LongContext {
                above_input_tokens: 200_000,
                input_factor: 2.0,
                output_factor: 1.5,
            }),
        };
        let line = |input| Tokens { input, output: 1_000, ..Tokens::default() };
        let mut totals = LineTotals::default();
        // Two lines of 150K input: 300K together, but neither is a long-context request.
        totals.add(&line(150_000), Some(&sonnet_4));
        totals.add(&line(150_000), Some(&sonnet_4));
        assert!((totals.cost_usd - 2.0 * (0.45 + 0.015) / 2.0).abs() < 1e-9, "{}", totals.cost_usd);
        // One line of 250K is, at half the surcharged price.
        totals.add(&line(250_000), Some(&sonnet_4));
        assert!((totals.cost_usd - (0.465 + (1.5 + 0.0225) / 2.0)).abs() < 1e-9, "{}", totals.cost_usd);
        assert_eq!(totals.tokens, Tokens { input: 550_000, output: 3_000, ..Tokens::default() });
        // An unpriced model sums tokens and costs nothing.
        let mut unpriced = LineTotals::default();
        unpriced.add(&line(10), None);
        assert_eq!((unpriced.tokens.input, unpriced.cost_usd), (10, 0.0));
    }
}
