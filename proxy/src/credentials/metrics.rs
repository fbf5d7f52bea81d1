//! Credential metrics: refreshes by credentials and result, and seconds until the cached
//! credentials expire (computed when scraped). The `credentials` label is an account name, or
//! `pod-identity/<region>` for the pod's own identity; values are never secrets.

use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, Opts};

use super::refresh::Refreshing;

/// Handles to the credential metric families.
#[derive(Clone)]
pub struct CredentialMetrics {
    refreshes: IntCounterVec,
    expiry: GaugeVec,
    live: Arc<Mutex<Vec<Weak<Refreshing>>>>,
}

impl Default for CredentialMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialMetrics {
    /// Fresh, unregistered families.
    pub fn new() -> Self {
        let refreshes = IntCounterVec::new(
            Opts::new(
                "bedrock_gateway_credentials_refreshes_total",
                "AWS credential fetches, by credentials and result.",
            ),
            &["credentials", "result"],
        )
        .expect("valid metric");
        let expiry = GaugeVec::new(
            Opts::new(
                "bedrock_gateway_credentials_expiry_seconds",
                "Seconds until the cached AWS credentials expire, by credentials.",
            ),
            &["credentials"],
        )
        .expect("valid metric");
        CredentialMetrics { refreshes, expiry, live: Arc::default() }
    }

    /// Counts one fetch.
    pub(crate) fn refreshed(&self, label: &str, ok: bool) {
        self.refreshes.with_label_values(&[label, if ok { "success" } else { "failure" }]).inc();
    }

    /// Includes `cache` in the expiry gauge while it lives.
    pub(crate) fn track(&self, cache: &Arc<Refreshing>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(cache));
    }
}

impl Collector for CredentialMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.refreshes.desc();
        descs.extend(self.expiry.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let now = SystemTime::now();
        self.expiry.reset();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        for cache in live.iter().filter_map(Weak::upgrade) {
            if let Some(seconds) = cache.seconds_to_expiry(now) {
                self.expiry.with_label_values(&[&*cache.label]).set(seconds);
            }
        }
        drop(live);
        let mut families = self.refreshes.collect();
        families.extend(self.expiry.collect());
        families
    }
}
