//! Config sources: a folder of manifests rendered locally, reloaded when it changes.
//!
//! A change is detected by hashing the folder's files (names and contents), which also catches
//! the atomic symlink swaps Kubernetes uses for mounted ConfigMaps and Secrets. An invalid change
//! is logged and counted; the last good snapshot keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use api::manifests::Manifests;
use arc_swap::ArcSwapOption;
use sha2::{Digest, Sha256};

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

/// A folder of BedrockAccount, BedrockModel, AccessPolicy and Secret manifests.
#[derive(Clone, Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    sim: Option<SimulatorOverride>,
    credentials: Arc<Registry>,
}

impl ManifestDir {
    /// A source reading `dir`; with `sim`, every account is served by the embedded simulator.
    pub fn new(dir: impl Into<PathBuf>, sim: Option<SimulatorOverride>) -> Self {
        ManifestDir { dir: dir.into(), sim, credentials: Arc::new(Registry::from_process()) }
    }

    /// Uses `credentials` for the accounts' AWS credentials (kept across reloads).
    pub fn with_credentials(mut self, credentials: Arc<Registry>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Loads and renders the folder; the error lists every problem found.
    pub fn load(&self, generation: u64) -> Result<Snapshot, String> {
        let manifests = Manifests::load_dir(&self.dir).map_err(|p| p.to_string())?;
        let rendered = api::render::render(&manifests).map_err(|p| p.to_string())?;
        Ok(Snapshot::build(rendered, generation, self.sim.as_ref(), &self.credentials))
    }

    /// Polls the folder every `interval` and publishes each valid change into `store`.
    pub async fn watch(self, store: Arc<ConfigStore>, metrics: Metrics, interval: Duration) {
        let mut seen = fingerprint(&self.dir).ok();
        let mut generation = store.current().map_or(0, |s| s.generation);
        loop {
            tokio::time::sleep(interval).await;
            let dir = self.dir.clone();
            let Ok(Ok(now)) = tokio::task::spawn_blocking(move || fingerprint(&dir)).await else {
                continue;
            };
            if seen.as_ref() == Some(&now) {
                continue;
            }
            seen = Some(now);
            let source = self.clone();
            let next = generation + 1;
            match tokio::task::spawn_blocking(move || source.load(next)).await {
                Ok(Ok(snapshot)) => {
                    generation = next;
                    tracing::info!(generation, models = snapshot.routes.len(), "config reloaded");
                    store.publish(snapshot);
                    metrics.config_reloads.with_label_values(&["success"]).inc();
                    metrics.config_generation.set(generation as i64);
                }
                Ok(Err(problems)) => {
                    tracing::error!(%problems, "config change rejected; still serving the last good config");
                    metrics.config_reloads.with_label_values(&["failure"]).inc();
                }
                Err(e) => tracing::error!(error = %e, "config load task failed"),
            }
        }
    }
}

/// SHA-256 over the sorted (name, content) pairs of the folder's regular files.
fn fingerprint(dir: &Path) -> std::io::Result<[u8; 32]> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let mut hash = Sha256::new();
    for path in entries {
        // Follows symlinks, as mounted ConfigMaps are symlinks into a timestamped folder.
        let Ok(content) = std::fs::read(&path) else { continue };
        hash.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        hash.update((content.len() as u64).to_le_bytes());
        hash.update(&content);
    }
    Ok(hash.finalize().into())
}
