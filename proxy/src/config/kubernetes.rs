//! `--kube-configmap NAME --kube-secret NAME`: the operator's ConfigMap (`binaryData`
//! `config.json.gz`, or `data` `config.json`) and Secret (`credentials.json`) watched through the
//! Kubernetes API.
//!
//! Each object is watched on its own by `fieldSelector=metadata.name=NAME` (list, then watch from
//! the list's resourceVersion; relist after `410 Gone`), so the proxy's RBAC can be limited by
//! `resourceNames` to get/list/watch exactly these two. The operator writes the two objects back
//! to back: changes are collected for a short settle window before the pair is checked, so a
//! config is not rejected for a Secret that is about to arrive. When the API fails or has not
//! delivered a config within two seconds of the start, an optional `--config-dir` fallback (the same
//! objects mounted as files) is served until the API delivers one; it is then silenced for good.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use api::config::{CONFIG_FILE, CONFIG_GZ_FILE, CONFIG_HASH_ANNOTATION, CREDENTIALS_FILE};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use super::document::StoredConfig;
use super::files::ConfigDir;
use super::{Publisher, document, polling};

/// How long changes are collected after the first one before the pair is checked.
const SETTLE: Duration = Duration::from_millis(200);

/// How long the API may take to deliver a first config before the fallback is served.
const FALLBACK_AFTER: Duration = Duration::from_secs(2);

/// The operator's ConfigMap and Secret, watched through the Kubernetes API.
pub struct KubeSource {
    client: Client,
    namespace: String,
    configmap: String,
    secret: String,
    fallback: Option<ConfigDir>,
}

/// The latest state of one watched object: not heard of yet, absent, or present.
type Latest<K> = Option<Option<K>>;

/// One watch update.
enum Change {
    ConfigMap(Result<Option<ConfigMap>, watcher::Error>),
    Secret(Result<Option<Secret>, watcher::Error>),
}

impl KubeSource {
    /// Watches ConfigMap `configmap` and Secret `secret` in `namespace` through `client`.
    pub fn new(
        client: Client,
        namespace: impl Into<String>,
        configmap: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        KubeSource {
            client,
            namespace: namespace.into(),
            configmap: configmap.into(),
            secret: secret.into(),
            fallback: None,
        }
    }

    /// Serves `dir` until the API delivers a valid config.
    pub fn with_fallback(mut self, dir: ConfigDir) -> Self {
        self.fallback = Some(dir);
        self
    }

    /// Follows both objects forever, publishing each valid pair.
    pub async fn run(self, publisher: Publisher) {
        let configmaps = watcher::watch_object(
            Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace),
            &self.configmap,
        )
        .backoff(Retry::default())
        .map(Change::ConfigMap);
        let secrets = watcher::watch_object(
            Api::<Secret>::namespaced(self.client.clone(), &self.namespace),
            &self.secret,
        )
        .backoff(Retry::default())
        .map(Change::Secret);
        let mut changes = pin!(futures_util::stream::select(configmaps, secrets));
        let mut follower = Follower {
            source: &self,
            publisher,
            configmap: None,
            secret: None,
            tried: None,
            delivered: false,
            fallback: None,
        };
        // The client retries a failing apiserver for a while before the watch reports an error.
        let give_up_at = tokio::time::Instant::now() + FALLBACK_AFTER;
        loop {
            let change = tokio::select! {
                change = changes.next() => change,
                () = tokio::time::sleep_until(give_up_at), if follower.may_fall_back() => {
                    follower.start_fallback();
                    continue;
                }
            };
            let Some(change) = change else { break };
            let mut changed = follower.absorb(change);
            let mut settle = pin!(tokio::time::sleep(SETTLE));
            loop {
                tokio::select! {
                    next = changes.next() => match next {
                        Some(change) => changed |= follower.absorb(change),
                        None => break,
                    },
                    () = &mut settle => break,
                }
            }
            if changed {
                follower.publish().await;
            }
        }
    }

    fn describe(&self) -> String {
        format!("ConfigMap {ns}/{} and Secret {ns}/{}", self.configmap, self.secret, ns = self.namespace)
    }
}

/// The state of one [`KubeSource::run`].
struct Follower<'a> {
    source: &'a KubeSource,
    publisher: Publisher,
    configmap: Latest<ConfigMap>,
    secret: Latest<Secret>,
    /// resourceVersions of the last pair checked, so a relist of the same objects is a no-op.
    tried: Option<(String, String)>,
    /// Whether the API has delivered a config that is now served.
    delivered: bool,
    /// The fallback publisher's off switch, once the fallback runs.
    fallback: Option<Arc<AtomicBool>>,
}

impl Follower<'_> {
    /// Records a watch update; true if an object changed.
    fn absorb(&mut self, change: Change) -> bool {
        match change {
            Change::ConfigMap(Ok(object)) => self.configmap = Some(object),
            Change::Secret(Ok(object)) => self.secret = Some(object),
            Change::ConfigMap(Err(e)) | Change::Secret(Err(e)) => {
                tracing::warn!(error = %e, source = %self.source.describe(), "Kubernetes API watch failed; retrying");
                self.start_fallback();
                return false;
            }
        }
        true
    }

    /// Whether a fallback is configured, not running yet, and still needed.
    fn may_fall_back(&self) -> bool {
        self.source.fallback.is_some() && self.fallback.is_none() && !self.delivered
    }

    /// Serves the `--config-dir` fallback, once, if the API has not delivered a config yet.
    fn start_fallback(&mut self) {
        let Some(dir) = &self.source.fallback else { return };
        if !self.may_fall_back() {
            return;
        }
        tracing::warn!(dir = %polling::LocalSource::origin(dir), "serving the fallback until the Kubernetes API answers");
        let (publisher, off) = self.publisher.fallback();
        self.fallback = Some(off);
        tokio::spawn(polling::follow(dir.clone(), publisher));
    }

    /// Checks and publishes the pair once both objects have been heard of.
    async fn publish(&mut self) {
        let (Some(configmap), Some(secret)) = (&self.configmap, &self.secret) else { return };
        let versions = (version(configmap.as_ref()), version(secret.as_ref()));
        if self.tried.as_ref() == Some(&versions) {
            return;
        }
        self.tried = Some(versions);
        let origin = format!(
            "{} (resourceVersion {}/{}, {CONFIG_HASH_ANNOTATION} {}/{})",
            self.source.describe(),
            version(configmap.as_ref()),
            version(secret.as_ref()),
            hash(configmap.as_ref()),
            hash(secret.as_ref()),
        );
        let loaded = self.documents(configmap.as_ref(), secret.as_ref());
        let publisher = self.publisher.clone();
        let fallback = self.fallback.clone();
        let served = tokio::task::spawn_blocking(move || {
            let rendered =
                loaded.and_then(|(config, credentials)| document::parse_stored(config, &credentials));
            publisher.apply_superseding(&origin, rendered, fallback.as_deref())
        })
        .await;
        match served {
            Ok(served) => self.delivered |= served,
            Err(_) => tracing::error!("config load task failed"),
        }
    }

    /// The two documents out of the objects, or what is missing.
    fn documents(
        &self,
        configmap: Option<&ConfigMap>,
        secret: Option<&Secret>,
    ) -> Result<(StoredConfig, Vec<u8>), String> {
        let (ns, source) = (&self.source.namespace, self.source);
        let configmap =
            configmap.ok_or_else(|| format!("ConfigMap {ns}/{} does not exist", source.configmap))?;
        let secret = secret.ok_or_else(|| format!("Secret {ns}/{} does not exist", source.secret))?;
        let gz = configmap.binary_data.as_ref().and_then(|d| d.get(CONFIG_GZ_FILE));
        let json = configmap.data.as_ref().and_then(|d| d.get(CONFIG_FILE));
        let config = match (gz, json) {
            (Some(gz), None) => StoredConfig::Gzip(gz.0.clone()),
            (None, Some(json)) => StoredConfig::Json(json.as_bytes().to_vec()),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "ConfigMap {ns}/{} has both binaryData {CONFIG_GZ_FILE} and data {CONFIG_FILE}; \
                     remove the one that is not meant",
                    source.configmap
                ));
            }
            (None, None) => {
                return Err(format!(
                    "ConfigMap {ns}/{} has neither binaryData {CONFIG_GZ_FILE} nor data {CONFIG_FILE}",
                    source.configmap
                ));
            }
        };
        let credentials = secret
            .data
            .as_ref()
            .and_then(|d| d.get(CREDENTIALS_FILE))
            .ok_or_else(|| format!("Secret {ns}/{} has no key {CREDENTIALS_FILE}", source.secret))?;
        Ok((config, credentials.0.clone()))
    }
}

/// `metadata.resourceVersion`, or `-` for an absent object.
fn version<K: Resource>(object: Option<&K>) -> String {
    object.and_then(|o| o.meta().resource_version.clone()).unwrap_or_else(|| "-".to_owned())
}

/// The operator's content hash annotation, or `-`.
fn hash<K: Resource>(object: Option<&K>) -> &str {
    object
        .and_then(|o| o.meta().annotations.as_ref())
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        .map_or("-", String::as_str)
}

/// Delays between watch retries: 250 ms doubling to 30 s with up to 25% jitter, reset by the
/// next success. Shorter at first than kube's default so a relist after `410 Gone` is served
/// well within two seconds.
struct Retry {
    next: Duration,
}

impl Retry {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(30);
}

impl Default for Retry {
    fn default() -> Self {
        Retry { next: Self::FIRST }
    }
}

impl Iterator for Retry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(delay + delay.mul_f64(fastrand::f64() / 4.0))
    }
}

impl Backoff for Retry {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}
