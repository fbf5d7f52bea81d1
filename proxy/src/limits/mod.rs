//! Usage limits from `AccessPolicy.spec.limits`: requests per minute, tokens per minute and USD
//! per UTC day, counted per (policy, subject).
//!
//! A request is admitted before it goes upstream when, for every policy that grants it and has
//! limits, the subject is under each limit; admission counts the request. Tokens and cost are
//! added when the response is complete, so a request that starts under the token or budget
//! limit may end above it (as OpenAI's token limits do). Counters live in this process by
//! default ([`local`]) or in Redis with `--redis-url` ([`redis`]), shared by every replica.
//! A batch is admitted like one request when it is created; its tokens and cost are charged
//! ([`Limiter::charge_to`]) when its results are read, to the windows of that moment.
//! Windows are fixed: the current minute and the current UTC day.

pub mod local;
pub mod redis;

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::config::Limits;
use http::StatusCode;
use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use crate::auth::Subject;
use crate::error::ApiError;
use crate::policy::PolicySet;

/// Nano-USD per USD: budgets and spend are counted as integers.
const NANOS_PER_USD: f64 = 1e9;

/// Where the counters live and what happens when that store fails.
pub struct Limiter {
    backend: Backend,
    fail_open: bool,
}

enum Backend {
    Local(local::Counters),
    Redis(Box<redis::RedisCounters>),
}

/// One policy's limits applied to one subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Bucket {
    /// `<policy>|<subject>`: the counters' name.
    pub key: String,
    /// `<namespace>/<name>` of the policy, for messages.
    pub policy: String,
    /// Requests per minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Budget per UTC day, nano-USD.
    pub budget_nanos_per_day: Option<u64>,
}

/// The windows a moment falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// UTC days since the Unix epoch.
    pub day: u64,
    /// Seconds left in the minute (1..=60).
    pub minute_left: u64,
    /// Seconds left in the UTC day (1..=86400).
    pub day_left: u64,
}

impl Window {
    /// The windows of `now`.
    pub fn at(now: SystemTime) -> Window {
        let secs = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        Window {
            minute: secs / 60,
            day: secs / 86_400,
            minute_left: 60 - secs % 60,
            day_left: 86_400 - secs % 86_400,
        }
    }
}

/// A bucket's counters in the current windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests this minute (the admitted one included).
    pub requests: u64,
    /// Tokens this minute.
    pub tokens: u64,
    /// Spend today, nano-USD.
    pub spent_nanos: u64,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// USD per day.
    Budget,
}

/// What a counter store answers to an admission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted and counted; the counts of each bucket, in order.
    Admitted(Vec<Counts>),
    /// Refused by bucket `index` on `limit`, which then stood at `counts`.
    Refused {
        /// Index of the refusing bucket.
        index: usize,
        /// The limit reached.
        limit: Exceeded,
        /// That bucket's counts.
        counts: Counts,
    },
}

/// The limits a request was admitted under: what to add its usage to, and the
/// `x-ratelimit-*` headers to answer with.
#[derive(Debug, Default)]
pub struct Admission {
    buckets: Vec<Bucket>,
    window: Option<Window>,
    headers: HeaderMap,
}

impl Admission {
    /// No limits apply.
    pub fn unlimited() -> Admission {
        Admission::default()
    }

    /// The `x-ratelimit-*` headers of the response (empty when no limit applies).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Whether any limit applies.
    pub fn is_limited(&self) -> bool {
        !self.buckets.is_empty()
    }
}

impl Limiter {
    /// Counters in this process.
    pub fn local() -> Limiter {
        Limiter { backend: Backend::Local(local::Counters::default()), fail_open: true }
    }

    /// Counters in Redis at `url` (`redis://host:port/db`); with `fail_open`, requests are
    /// admitted (without headers) while Redis cannot be reached, else they get a 503.
    pub fn redis(url: &str, fail_open: bool) -> Result<Limiter, String> {
        Ok(Limiter { backend: Backend::Redis(Box::new(redis::RedisCounters::new(url)?)), fail_open })
    }

    /// Admits or refuses a call of `served` by `subject`; refusals are 429 with `Retry-After`
    /// and the `x-ratelimit-*` headers.
    pub async fn admit(
        &self,
        subject: &Subject,
        policies: &PolicySet,
        served: &str,
    ) -> Result<Admission, ApiError> {
        let buckets = buckets(subject, policies, served);
        if buckets.is_empty() {
            return Ok(Admission::unlimited());
        }
        let window = Window::at(SystemTime::now());
        let verdict = match &self.backend {
            Backend::Local(counters) => Ok(counters.admit(&buckets, window)),
            Backend::Redis(redis) => redis.admit(&buckets, window).await,
        };
        match verdict {
            Ok(Verdict::Admitted(counts)) => {
                let headers = rate_headers(&buckets, &counts, window);
                Ok(Admission { buckets, window: Some(window), headers })
            }
            Ok(Verdict::Refused { index, limit, counts }) => {
                Err(refusal(&buckets, index, limit, counts, window, served))
            }
            Err(e) if self.fail_open => {
                tracing::warn!(error = %e, "limit store unavailable; admitting without limits (fail-open)");
                Ok(Admission::unlimited())
            }
            Err(e) => {
                tracing::error!(error = %e, "limit store unavailable; refusing (fail-closed)");
                Err(ApiError::unavailable(
                    "The gateway cannot check usage limits right now; try again shortly.",
                ))
            }
        }
    }

    /// The limits that usage of `served` by `subject` known only later (a batch's results) is
    /// charged to, in the current windows: the buckets admission would use, without admitting
    /// or counting a request.
    pub fn charge_to(&self, subject: &Subject, policies: &PolicySet, served: &str) -> Admission {
        let buckets = buckets(subject, policies, served);
        if buckets.is_empty() {
            return Admission::unlimited();
        }
        Admission { buckets, window: Some(Window::at(SystemTime::now())), headers: HeaderMap::new() }
    }

    /// Adds a finished request's tokens and cost to the counters it was admitted under. Never
    /// blocks: a Redis update runs in the background.
    pub fn add(&self, admission: &Admission, tokens: u64, cost_usd: f64) {
        let Some(window) = admission.window else { return };
        let nanos = (cost_usd.max(0.0) * NANOS_PER_USD).round() as u64;
        if tokens == 0 && nanos == 0 {
            return;
        }
        match &self.backend {
            Backend::Local(counters) => counters.add(&admission.buckets, window, tokens, nanos),
            Backend::Redis(redis) => redis.add(&admission.buckets, window, tokens, nanos),
        }
    }
}

/// The buckets of every policy that grants `served` to `subject` and has limits.
fn buckets(subject: &Subject, policies: &PolicySet, served: &str) -> Vec<Bucket> {
    policies
        .limits_for(subject, served)
        .map(|(policy, limits)| bucket(policy, subject.key(), limits))
        .collect()
}

fn bucket(policy: &str, subject_key: &str, limits: &Limits) -> Bucket {
    Bucket {
        key: format!("{policy}|{subject_key}"),
        policy: policy.to_owned(),
        requests_per_minute: limits.requests_per_minute,
        tokens_per_minute: limits.tokens_per_minute,
        budget_nanos_per_day: limits
            .budget_usd_per_day
            .map(|usd| (usd.max(0.0) * NANOS_PER_USD).round() as u64),
    }
}

/// Decides over counts read before this request: the logic both stores share (the Redis
/// script mirrors it).
pub fn decide(buckets: &[Bucket], before: &[Counts]) -> Option<(usize, Exceeded)> {
    buckets.iter().zip(before).enumerate().find_map(|(i, (b, c))| {
        if b.requests_per_minute.is_some_and(|l| c.requests >= l) {
            Some((i, Exceeded::Requests))
        } else if b.tokens_per_minute.is_some_and(|l| c.tokens >= l) {
            Some((i, Exceeded::Tokens))
        } else if b.budget_nanos_per_day.is_some_and(|l| c.spent_nanos >= l) {
            Some((i, Exceeded::Budget))
        } else {
            None
        }
    })
}

/// OpenAI's headers: the tightest requests and tokens limits across the buckets.
fn rate_headers(buckets: &[Bucket], counts: &[Counts], window: Window) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let tightest = |limit: fn(&Bucket) -> Option<u64>, used: fn(&Counts) -> u64| {
        buckets
            .iter()
            .zip(counts)
            .filter_map(|(b, c)| limit(b).map(|l| (l, l.saturating_sub(used(c)))))
            .min_by_key(|&(_, remaining)| remaining)
    };
    let reset = duration_text(window.minute_left);
    if let Some((limit, remaining)) = tightest(|b| b.requests_per_minute, |c| c.requests) {
        insert(&mut headers, "x-ratelimit-limit-requests", limit.to_string());
        insert(&mut headers, "x-ratelimit-remaining-requests", remaining.to_string());
        insert(&mut headers, "x-ratelimit-reset-requests", reset.clone());
    }
    if let Some((limit, remaining)) = tightest(|b| b.tokens_per_minute, |c| c.tokens) {
        insert(&mut headers, "x-ratelimit-limit-tokens", limit.to_string());
        insert(&mut headers, "x-ratelimit-remaining-tokens", remaining.to_string());
        insert(&mut headers, "x-ratelimit-reset-tokens", reset);
    }
    headers
}

fn refusal(
    buckets: &[Bucket],
    index: usize,
    limit: Exceeded,
    counts: Counts,
    window: Window,
    served: &str,
) -> ApiError {
    let bucket = &buckets[index];
    let (retry, what, kind, code, figures) = match limit {
        Exceeded::Requests => (
            window.minute_left,
            "requests per minute (RPM)",
            "requests",
            "rate_limit_exceeded",
            format!("Limit {}, Used {}", bucket.requests_per_minute.unwrap_or(0), counts.requests),
        ),
        Exceeded::Tokens => (
            window.minute_left,
            "tokens per minute (TPM)",
            "tokens",
            "rate_limit_exceeded",
            format!("Limit {}, Used {}", bucket.tokens_per_minute.unwrap_or(0), counts.tokens),
        ),
        Exceeded::Budget => (
            window.day_left,
            "spend per day (USD)",
            "insufficient_quota",
            "insufficient_quota",
            format!(
                "Limit {}, Used {}",
                usd_text(bucket.budget_nanos_per_day.unwrap_or(0)),
                usd_text(counts.spent_nanos)
            ),
        ),
    };
    let message = format!(
        "Rate limit reached for {served} on {what} under the access policy {}: {figures}. Please try again in {}.",
        bucket.policy,
        duration_text(retry)
    );
    // Report the state the caller hit: the refused request was not counted.
    let mut shown = counts;
    if limit == Exceeded::Requests {
        shown.requests = bucket.requests_per_minute.unwrap_or(shown.requests);
    }
    let mut headers = rate_headers(std::slice::from_ref(bucket), std::slice::from_ref(&shown), window);
    insert(&mut headers, RETRY_AFTER.as_str(), retry.to_string());
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, kind, message).with_code(code).with_headers(headers)
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// OpenAI's duration format: `20s`, `6m0s`, `1h2m3s`.
pub fn duration_text(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::with_capacity(9);
    if h > 0 {
        let _ = write!(out, "{h}h{m}m");
    } else if m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}s");
    out
}

fn usd_text(nanos: u64) -> String {
    format!("${:.6}", nanos as f64 / NANOS_PER_USD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(rpm: Option<u64>, tpm: Option<u64>, usd: Option<u64>) -> Bucket {
        Bucket {
            key: "p|u".into(),
            policy: "ns/p".into(),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            budget_nanos_per_day: usd,
        }
    }

    #[tokio::test]
    async fn a_charge_adds_usage_without_counting_a_request() {
        let policies = PolicySet::new(&[api::config::Policy {
            name: "ns/p".into(),
            subjects: vec![api::config::SubjectRef::User("u".into())],
            models: vec!["m".into()],
            limits: Some(Limits {
                requests_per_minute: Some(1),
                tokens_per_minute: Some(10),
                budget_usd_per_day: None,
            }),
        }]);
        let limiter = Limiter::local();
        let subject = Subject::user("u", vec![]);
        assert!(!limiter.charge_to(&subject, &policies, "other").is_limited(), "no policy grants it");
        let charge = limiter.charge_to(&subject, &policies, "m");
        assert!(charge.is_limited() && charge.headers().is_empty());
        limiter.add(&charge, 10, 0.0);
        // Had the charge counted a request, the one request a minute would refuse first.
        let refused = limiter.admit(&subject, &policies, "m").await.unwrap_err();
        assert_eq!(refused.kind, "tokens", "{}", refused.message);
    }

    #[test]
    fn windows() {
        let w = Window::at(UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 125));
        assert_eq!(
            w,
            Window { minute: (86_400 * 3 + 125) / 60, day: 3, minute_left: 55, day_left: 86_400 - 125 }
        );
    }

    #[test]
    fn durations_read_like_openai() {
        assert_eq!(duration_text(20), "20s");
        assert_eq!(duration_text(360), "6m0s");
        assert_eq!(duration_text(3723), "1h2m3s");
    }

    #[test]
    fn decide_checks_every_limit_in_order() {
        let buckets = [b(Some(2), None, None), b(None, Some(100), Some(5))];
        let c = |requests, tokens, spent_nanos| Counts { requests, tokens, spent_nanos };
        assert_eq!(decide(&buckets, &[c(1, 0, 0), c(0, 99, 4)]), None);
        assert_eq!(decide(&buckets, &[c(2, 0, 0), c(0, 0, 0)]), Some((0, Exceeded::Requests)));
        assert_eq!(decide(&buckets, &[c(0, 0, 0), c(0, 100, 0)]), Some((1, Exceeded::Tokens)));
        assert_eq!(decide(&buckets, &[c(0, 0, 0), c(0, 0, 5)]), Some((1, Exceeded::Budget)));
    }

    #[test]
    fn headers_show_the_tightest_limit() {
        let buckets = [b(Some(10), Some(1000), None), b(Some(5), None, None)];
        let counts = [
            Counts { requests: 3, tokens: 10, spent_nanos: 0 },
            Counts { requests: 4, ..Default::default() },
        ];
        let w = Window::at(UNIX_EPOCH + Duration::from_secs(30));
        let h = rate_headers(&buckets, &counts, w);
        let get = |n: &str| h.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("x-ratelimit-limit-requests"), "5");
        assert_eq!(get("x-ratelimit-remaining-requests"), "1");
        assert_eq!(get("x-ratelimit-reset-requests"), "30s");
        assert_eq!(get("x-ratelimit-limit-tokens"), "1000");
        assert_eq!(get("x-ratelimit-remaining-tokens"), "990");
        assert_eq!(get("x-ratelimit-reset-tokens"), "30s");
    }

    #[test]
    fn refusal_is_an_openai_429() {
        let buckets = [b(Some(2), None, None)];
        let w = Window::at(UNIX_EPOCH + Duration::from_secs(45));
        let e = refusal(
            &buckets,
            0,
            Exceeded::Requests,
            Counts { requests: 2, ..Default::default() },
            w,
            "demo/x",
        );
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.kind, "requests");
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        assert_eq!(
            e.message,
            "Rate limit reached for demo/x on requests per minute (RPM) under the access policy ns/p: Limit 2, Used 2. Please try again in 15s."
        );
        let h = e.headers.as_deref().unwrap();
        assert_eq!(h.get("retry-after").unwrap(), "15");
        assert_eq!(h.get("x-ratelimit-remaining-requests").unwrap(), "0");
        let e = refusal(
            &[b(None, None, Some(1_000))],
            0,
            Exceeded::Budget,
            Counts { spent_nanos: 2_000, ..Default::default() },
            w,
            "demo/x",
        );
        assert_eq!((e.kind, e.code), ("insufficient_quota", Some("insufficient_quota")));
        assert!(e.message.contains("Limit $0.000001, Used $0.000002"), "{}", e.message);
        assert_eq!(e.headers.as_deref().unwrap().get("retry-after").unwrap(), &(86_400 - 45).to_string());
    }
}
