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
//! completion or a credential. Streamed responses cannot carry the cost in a header (it is known
//! only at the end): for them it is in the usage log line and in `bedrock_gateway_cost_usd_total`.

pub mod pricing;

use std::time::Instant;

use api::config::Model;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

pub use self::pricing::{PriceTable, Prices, Tokens};
use crate::auth::Subject;
use crate::error::ApiError;
use crate::limits::{Admission, Limiter};
use crate::metrics::Metrics;
use crate::openai::chat::Usage;
use crate::policy::PolicySet;

/// Response header with the cost of a non-streamed request, in USD.
pub const COST_HEADER: HeaderName = HeaderName::from_static("x-bedrock-gateway-cost-usd");

/// Target of the usage log lines, to route or filter them (`RUST_LOG=bedrock_gateway::usage=info`).
pub const LOG_TARGET: &str = "bedrock_gateway::usage";

/// Limits, prices and usage recording, shared by every endpoint.
pub struct Recorder {
    metrics: Metrics,
    prices: &'static PriceTable,
    limiter: Limiter,
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
    /// HTTP status of the answer (`499`: the caller went away mid-stream).
    pub status: u16,
    /// When the request arrived.
    pub started: Instant,
    /// When the first streamed token went out, for streams.
    pub first_token: Option<Instant>,
    /// The limits the request was admitted under.
    pub admission: &'a Admission,
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
        Recorder { metrics, prices: PriceTable::builtin(), limiter }
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

    /// Prices and records a finished request: metrics, limit counters and the usage log line.
    /// Returns the cost in USD, `None` when the model has no price.
    pub fn record(&self, r: &Record<'_>) -> Option<f64> {
        let served = r.model.served_name.as_str();
        let cost = self.prices.prices(r.model).map(|p| p.cost(&r.tokens, r.images, r.batch));
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
}
