//! Where the served config comes from, and how a new one is swapped in.
//!
//! A [`Source`] produces rendered configs; the [`Publisher`] checks each one, compiles it into a
//! [`Snapshot`] and swaps it into the [`ConfigStore`] atomically: a request in flight keeps the
//! snapshot it started with. An invalid config is logged and counted in
//! `bedrock_gateway_config_reloads_total{result="error"}`; the last good one keeps serving.
//!
//! One file per source: [`manifests`] (a folder of CRD YAML rendered in-process), [`files`]
//! (the operator's `config.json` + `credentials.json` in a folder, e.g. a mounted ConfigMap and
//! Secret), [`kubernetes`] (the operator's ConfigMap and Secret watched through the API).

pub mod document;
pub mod files;
pub mod kubernetes;
pub mod manifests;
pub mod polling;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use api::config::Rendered;
use arc_swap::ArcSwapOption;

pub use files::ConfigDir;
pub use kubernetes::KubeSource;
pub use manifests::ManifestDir;

use crate::credentials::Registry;
use crate::metrics::Metrics;
use crate::snapshot::{SimulatorOverride, Snapshot};

/// The snapshot being served; empty until the first successful load.
#[derive(Default)]
pub struct ConfigStore {
    current: ArcSwapOption<Snapshot>,
}

impl ConfigStore {
    /// The snapshot being served, if any.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Swaps in a new snapshot; requests in flight keep the one they started with.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Some(Arc::new(snapshot)));
    }
}

/// The config source the proxy follows, chosen on the command line.
pub enum Source {
    /// `--manifests DIR`: CRD YAML and Secrets, rendered in-process.
    Manifests(ManifestDir),
    /// `--config-dir DIR`: the operator's rendered documents as files.
    Files(ConfigDir),
    /// `--kube-configmap`/`--kube-secret`: the operator's objects through the Kubernetes API.
    Kubernetes(KubeSource),
}

impl Source {
    /// Loads the first config and then follows every change, forever.
    pub async fn run(self, publisher: Publisher) {
        match self {
            Source::Manifests(dir) => polling::follow(dir, publisher).await,
            Source::Files(dir) => polling::follow(dir, publisher).await,
            Source::Kubernetes(kube) => kube.run(publisher).await,
        }
    }
}

/// Checks, compiles and swaps in configs from any source; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    /// Set when a preferred source has taken over: this publisher then publishes nothing more.
    superseded: Option<Arc<AtomicBool>>,
}

struct Shared {
    store: Arc<ConfigStore>,
    metrics: Metrics,
    sim: Option<SimulatorOverride>,
    /// AWS credentials of the accounts, kept warm across reloads.
    credentials: Arc<Registry>,
    /// Generation of the last published snapshot; the lock also orders concurrent publishers.
    generation: Mutex<u64>,
}

impl Publisher {
    /// Publishes into `store`, counting in `metrics`, signing with `credentials`; with `sim`,
    /// every account is served by the embedded simulator.
    pub fn new(
        store: Arc<ConfigStore>,
        metrics: Metrics,
        sim: Option<SimulatorOverride>,
        credentials: Arc<Registry>,
    ) -> Self {
        let generation = Mutex::new(store.current().map_or(0, |s| s.generation));
        Publisher {
            shared: Arc::new(Shared { store, metrics, sim, credentials, generation }),
            superseded: None,
        }
    }

    /// A publisher for a fallback source, silenced for good once the flag is set.
    pub(crate) fn fallback(&self) -> (Publisher, Arc<AtomicBool>) {
        let flag = Arc::new(AtomicBool::new(false));
        (Publisher { shared: self.shared.clone(), superseded: Some(flag.clone()) }, flag)
    }

    /// Checks `loaded` (from `origin`, for logs) and swaps it in; on a problem logs and counts
    /// it and keeps the current snapshot. True when the config is now served. Blocking (it
    /// compiles the snapshot): call it off the async runtime.
    pub fn apply(&self, origin: &str, loaded: Result<Rendered, String>) -> bool {
        self.apply_superseding(origin, loaded, None)
    }

    /// [`Publisher::apply`] that, when the config is valid, first sets `fallback` (from
    /// [`Publisher::fallback`]) under the same lock, so the fallback can never publish after it.
    pub(crate) fn apply_superseding(
        &self,
        origin: &str,
        loaded: Result<Rendered, String>,
        fallback: Option<&AtomicBool>,
    ) -> bool {
        let rendered = match loaded.and_then(|r| document::check(&r).map(|()| r)) {
            Ok(rendered) => rendered,
            Err(problems) => {
                self.reject(origin, &problems);
                return false;
            }
        };
        let mut generation = self.shared.generation.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.superseded.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst)) {
            return false;
        }
        if let Some(fallback) = fallback {
            fallback.store(true, Ordering::SeqCst);
        }
        let next = *generation + 1;
        let snapshot = Snapshot::build(rendered, next, self.shared.sim.as_ref(), &self.shared.credentials);
        let models = snapshot.routes.len();
        self.shared.store.publish(snapshot);
        *generation = next;
        drop(generation);
        tracing::info!(generation = next, models, source = origin, "config loaded");
        self.shared.metrics.config_reloads.with_label_values(&["success"]).inc();
        self.shared.metrics.config_generation.set(next as i64);
        true
    }

    /// Logs and counts a config that cannot be served.
    pub fn reject(&self, origin: &str, problems: &str) {
        if self.shared.store.current().is_some() {
            tracing::error!(source = origin, %problems, "config rejected; still serving the last good config");
        } else {
            tracing::error!(source = origin, %problems, "config rejected; /readyz answers 503 until a valid one loads");
        }
        self.shared.metrics.config_reloads.with_label_values(&["error"]).inc();
    }
}
