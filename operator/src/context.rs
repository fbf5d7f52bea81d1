//! What every reconcile shares: the client, the release settings, the latest plan, AWS facts,
//! metrics and the event recorder.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::{Notify, watch};

use crate::apply::FIELD_MANAGER;
use crate::aws::Aws;
use crate::aws::facts::{AccountFacts, Facts};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::watch::Scope;

/// The release the operator manages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Helm release name: objects are `<release>-config`, `<release>-credentials`, `<release>-operator`.
    pub release: String,
    /// Namespace of the rendered objects and the Lease.
    pub namespace: String,
    /// Namespaces whose BedrockAccounts, BedrockModels, AccessPolicies and Secrets are rendered.
    pub scope: Scope,
    /// How long AWS facts stay fresh before an account is checked again.
    pub aws_refresh: Duration,
}

/// State shared by the controllers and the renderer.
pub struct Context {
    /// Client of the API server.
    pub client: Client,
    /// The release.
    pub settings: Settings,
    /// The latest plan (empty until the first render).
    pub plan: watch::Receiver<Arc<Plan>>,
    /// AWS facts by account name, with when they were gathered.
    pub facts: RwLock<BTreeMap<String, (Arc<AccountFacts>, Instant)>>,
    /// AWS clients.
    pub aws: Aws,
    /// Metrics.
    pub metrics: Metrics,
    /// Publishes Kubernetes events about the objects.
    pub recorder: Recorder,
    /// Wakes the renderer.
    pub changed: Arc<Notify>,
}

impl Context {
    /// A context whose plan comes from `plan`.
    pub fn new(
        client: Client,
        settings: Settings,
        plan: watch::Receiver<Arc<Plan>>,
        metrics: Metrics,
        changed: Arc<Notify>,
        instance: Option<String>,
    ) -> Self {
        let recorder =
            Recorder::new(client.clone(), Reporter { controller: FIELD_MANAGER.to_string(), instance });
        Context {
            client,
            settings,
            plan,
            facts: RwLock::default(),
            aws: Aws::new(),
            metrics,
            recorder,
            changed,
        }
    }

    /// The facts of every account, as plans take them.
    pub fn facts(&self) -> Facts {
        let facts = self.facts.read().unwrap_or_else(|e| e.into_inner());
        facts.iter().map(|(name, (f, _))| (name.clone(), Arc::clone(f))).collect()
    }

    /// The latest plan.
    pub fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.plan.borrow())
    }
}
