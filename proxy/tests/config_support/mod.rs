//! Shared by the config-source tests: the quick-start config as the operator renders it, variants
//! of it, and waiting for the proxy to serve a given model list.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::config::Rendered;
use http::Method;
use proxy::config::polling::LocalSource;
use proxy::config::{ConfigStore, ManifestDir, Publisher};
use proxy::metrics::Metrics;
use proxy::server::App;
use tokio::net::TcpListener;

use crate::fixtures::{Harness, KEY, quickstart_copy};

/// The quick-start models.
pub const DEMO: [&str; 3] = ["demo/claude-sonnet", "demo/nova-lite", "demo/team-profile"];

/// What the proxy under test needs besides its source.
pub struct Parts {
    /// The simulator every account points at.
    pub sim: bedrock_sim::SimHandle,
    /// The quick-start config rendered by `api::render`, endpoints pointed at the simulator.
    pub rendered: Rendered,
    /// A scratch folder, removed with the harness.
    pub dir: PathBuf,
    /// The store the proxy serves.
    pub store: Arc<ConfigStore>,
    /// The proxy's metrics.
    pub metrics: Metrics,
    /// Publishes into `store`.
    pub publisher: Publisher,
}

impl Parts {
    /// A simulator, the rendered quick-start config and an empty store.
    pub async fn new() -> Parts {
        let sim = bedrock_sim::spawn(
            bedrock_sim::SimConfig::default(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        )
        .await;
        let dir = quickstart_copy(&sim.url());
        let mut rendered =
            ManifestDir::new(&dir, Duration::from_secs(1)).load().expect("quick-start renders");
        // The quick start's chat models only: the swaps below add and remove models by name.
        rendered.config.models.retain(|name, _| DEMO.contains(&name.as_str()));
        let store = Arc::new(ConfigStore::default());
        let metrics = Metrics::new();
        let publisher = Publisher::new(
            store.clone(),
            metrics.clone(),
            None,
            Arc::new(proxy::credentials::Registry::from_process()),
        );
        Parts { sim, rendered, dir, store, metrics, publisher }
    }

    /// Starts the proxy on the store; the source must already be running.
    pub async fn serve(self) -> Harness {
        let app = Arc::new(App::new(self.store, self.metrics, 1024 * 1024));
        Harness::serve(self.sim, self.dir, app).await
    }
}

/// `config.json` and `credentials.json` of a rendered config, as the operator writes them.
pub fn documents(rendered: &Rendered) -> (String, String) {
    (serde_json::to_string(&rendered.config).unwrap(), serde_json::to_string(&rendered.credentials).unwrap())
}

/// `rendered` with one of its models also served as `name` (Bedrock model `model_id`).
pub fn with_model(rendered: &Rendered, name: &str, model_id: &str) -> Rendered {
    let mut next = rendered.clone();
    let mut model = next.config.models.values().next().expect("a model to copy").clone();
    model.served_name = name.to_owned();
    model.model_id = model_id.to_owned();
    next.config.models.insert(name.to_owned(), model);
    next
}

/// `rendered` without the model `name`.
pub fn without_model(rendered: &Rendered, name: &str) -> Rendered {
    let mut next = rendered.clone();
    assert!(next.config.models.remove(name).is_some(), "{name} is not in the config");
    next
}

/// The model ids `GET /v1/models` lists for the quick-start key.
pub async fn models(h: &Harness) -> Vec<String> {
    let r = h.call(Method::GET, "/v1/models", Some(KEY), None).await;
    if r.status != http::StatusCode::OK {
        return Vec::new();
    }
    r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

/// Waits until the proxy lists exactly `expected` (sorted); panics after `within`.
pub async fn wait_for_models(h: &Harness, expected: &[&str], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = models(h).await;
        if now == expected {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "after {within:?} the proxy lists {now:?}, not {expected:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `bedrock_gateway_config_reloads_total{result}`.
pub async fn reloads(h: &Harness, result: &str) -> u64 {
    let text = h.call(Method::GET, "/metrics", None, None).await.text();
    let prefix = format!("bedrock_gateway_config_reloads_total{{result=\"{result}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.parse().unwrap())
}

/// A minimal chat request to `model` saying `text`.
pub fn say(model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": text}]})
}
