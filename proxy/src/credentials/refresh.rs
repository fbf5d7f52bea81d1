//! A cache of temporary AWS credentials refreshed ahead of expiry by a background task.
//!
//! Requests read the current credentials without waiting; only the very first use waits for the
//! first fetch, and every concurrent first request waits on that same fetch. The task refreshes
//! at the earlier of five minutes or a quarter of the lifetime before expiry, minus jitter, and
//! retries failures with backoff while the old credentials are still valid. When there are no
//! valid credentials a request fails at once with the last error instead of waiting on STS.
//! The task holds only a weak reference: it ends once no served config uses the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::identity::Identity;
use tokio::sync::watch;

use super::metrics::CredentialMetrics;
use super::{Source, Why};

/// Longest a first request waits for the first credentials.
const FIRST_FETCH_WAIT: Duration = Duration::from_secs(20);
/// Longest one fetch (with the SDK's own retries) may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Credentials this close to expiry are no longer handed out: a signed request must reach AWS in time.
const MIN_REMAINING: Duration = Duration::from_secs(1);
/// Refresh at most this long before expiry...
const MAX_MARGIN: Duration = Duration::from_secs(5 * 60);
/// ...and at most this much random jitter earlier still, so replicas do not refresh in lockstep.
const MAX_JITTER: Duration = Duration::from_secs(60);
/// First and largest delay between retries of a failed fetch.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What the cache holds; published through a watch channel so waiters wake on change.
#[derive(Clone, Default)]
struct State {
    /// The newest credentials and when they expire (`None`: never).
    current: Option<(Identity, Option<SystemTime>)>,
    /// Why the last fetch failed; cleared by the next success.
    error: Option<Why>,
}

/// Refreshing credentials from one [`Source`].
pub(crate) struct Refreshing {
    /// Names the cache in metrics and logs (account name, or `pod-identity/<region>`).
    pub(crate) label: Arc<str>,
    source: Source,
    state: watch::Sender<State>,
    started: AtomicBool,
    metrics: CredentialMetrics,
}

impl Refreshing {
    /// A cache over `source`; nothing is fetched until [`Refreshing::start`] or the first use.
    pub(crate) fn new(label: Arc<str>, source: Source, metrics: CredentialMetrics) -> Arc<Self> {
        let (state, _) = watch::channel(State::default());
        Arc::new(Refreshing { label, source, state, started: AtomicBool::new(false), metrics })
    }

    /// Starts the refresh task once, if a Tokio runtime is at hand (config loads run in one).
    pub(crate) fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if !self.started.swap(true, Ordering::AcqRel) {
            runtime.spawn(refresh_loop(Arc::downgrade(self)));
        }
    }

    /// Valid credentials, waiting only while the very first fetch is in flight.
    pub(crate) async fn identity(self: &Arc<Self>) -> Result<Identity, Why> {
        self.start();
        // Fast path: a read lock, no subscription.
        if let Some((identity, expiry)) = &self.state.borrow().current
            && usable(*expiry, SystemTime::now())
        {
            return Ok(identity.clone());
        }
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                {
                    let state = rx.borrow_and_update();
                    if let Some((identity, expiry)) = &state.current
                        && usable(*expiry, SystemTime::now())
                    {
                        return Ok(identity.clone());
                    }
                    if let Some(why) = &state.error {
                        return Err(why.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(Why::unavailable("the credentials refresh stopped"));
                }
            }
        };
        tokio::time::timeout(FIRST_FETCH_WAIT, wait).await.unwrap_or_else(|_| {
            Err(Why::unavailable(format!(
                "no credentials within {}s (the credentials source did not answer)",
                FIRST_FETCH_WAIT.as_secs()
            )))
        })
    }

    /// Seconds until the current credentials expire, for the expiry gauge.
    pub(crate) fn seconds_to_expiry(&self, now: SystemTime) -> Option<f64> {
        let state = self.state.borrow();
        let expiry = state.current.as_ref()?.1?;
        Some(match expiry.duration_since(now) {
            Ok(left) => left.as_secs_f64(),
            Err(past) => -past.duration().as_secs_f64(),
        })
    }
}

fn usable(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_none_or(|e| e > now + MIN_REMAINING)
}

/// Fetches, publishes, sleeps until the next refresh; ends when the cache is dropped or the
/// credentials never expire.
async fn refresh_loop(cache: Weak<Refreshing>) {
    let mut failures = 0u32;
    loop {
        let Some(this) = cache.upgrade() else { return };
        let result = match tokio::time::timeout(FETCH_TIMEOUT, this.source.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(Why::unavailable(format!(
                "{} did not answer within {}s",
                this.source,
                FETCH_TIMEOUT.as_secs()
            ))),
        };
        let now = SystemTime::now();
        let next = match result {
            Ok(credentials) => {
                failures = 0;
                let expiry = credentials.expiry();
                tracing::info!(
                    credentials = %this.label,
                    source = %this.source,
                    expires_in_s = expiry.and_then(|e| e.duration_since(now).ok()).map(|d| d.as_secs()),
                    "AWS credentials refreshed"
                );
                this.metrics.refreshed(&this.label, true);
                this.state
                    .send_replace(State { current: Some((identity_of(credentials), expiry)), error: None });
                expiry.map(|e| refresh_delay(e.duration_since(now).unwrap_or_default(), fastrand::f64()))
            }
            Err(why) => {
                failures += 1;
                tracing::warn!(credentials = %this.label, source = %this.source, error = %why.message, failures, "AWS credentials refresh failed");
                this.metrics.refreshed(&this.label, false);
                this.state.send_modify(|s| s.error = Some(why));
                Some(retry_delay(failures))
            }
        };
        drop(this);
        match next {
            Some(delay) => tokio::time::sleep(delay).await,
            None => return,
        }
    }
}

fn identity_of(credentials: Credentials) -> Identity {
    let expiry = credentials.expiry();
    Identity::new(credentials, expiry)
}

/// When to refresh credentials with `lifetime` left: before expiry by the smaller of
/// [`MAX_MARGIN`] and a quarter of the lifetime, and earlier by up to a tenth of the lifetime
/// (at most [`MAX_JITTER`]) times `jitter` in `[0, 1)`; never sooner than a second.
pub(crate) fn refresh_delay(lifetime: Duration, jitter: f64) -> Duration {
    let margin = MAX_MARGIN.min(lifetime / 4);
    let spread = MAX_JITTER.min(lifetime / 10).mul_f64(jitter.clamp(0.0, 1.0));
    lifetime.saturating_sub(margin + spread).max(Duration::from_secs(1))
}

/// Exponential backoff from [`RETRY_MIN`] to [`RETRY_MAX`].
pub(crate) fn retry_delay(failures: u32) -> Duration {
    RETRY_MIN.saturating_mul(1 << failures.saturating_sub(1).min(10)).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_five_minutes_early_for_long_lived_credentials() {
        let hour = Duration::from_secs(3600);
        assert_eq!(refresh_delay(hour, 0.0), Duration::from_secs(55 * 60));
        assert_eq!(refresh_delay(hour, 0.999_999).as_secs(), 54 * 60);
    }

    #[test]
    fn short_lived_credentials_refresh_at_three_quarters_minus_jitter() {
        assert_eq!(refresh_delay(Duration::from_secs(8), 0.0), Duration::from_secs(6));
        assert_eq!(refresh_delay(Duration::from_secs(8), 0.5), Duration::from_millis(5600));
        assert_eq!(refresh_delay(Duration::ZERO, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn retries_back_off_up_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(retry_delay(u32::MAX), RETRY_MAX);
    }

    #[test]
    fn credentials_close_to_expiry_are_not_used() {
        let now = SystemTime::now();
        assert!(usable(None, now));
        assert!(usable(Some(now + Duration::from_secs(60)), now));
        assert!(!usable(Some(now + Duration::from_millis(500)), now));
        assert!(!usable(Some(now - Duration::from_secs(1)), now));
    }
}
