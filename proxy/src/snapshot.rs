//! The served state: a rendered config compiled into lookup tables for the hot path.
//!
//! A [`Snapshot`] is immutable; reloads build a new one and swap it in atomically, so a
//! request sees one consistent config from start to end.

use std::collections::HashMap;
use std::sync::Arc;

use api::config::{AccountAuth, AccountSecret, ApiKeyIdentity, Endpoints, GatewayConfig, Model, Rendered};
use http::HeaderValue;

use crate::auth::Subject;
use crate::credentials::{AccountCredentials, Registry};
use crate::policy::PolicySet;
use crate::upstream::{Signer, Target};

/// One served model, ready to call.
#[derive(Debug)]
pub struct Route {
    /// The rendered model.
    pub model: Model,
    /// Converse target.
    pub converse: Target,
    /// ConverseStream target.
    pub converse_stream: Target,
    /// InvokeModel target (embedding and image models).
    pub invoke: Target,
    /// How the account signs.
    pub signer: Signer,
    /// Tried in order when this route stays throttled or unavailable (empty on fallbacks).
    pub fallbacks: Vec<Arc<Route>>,
    /// `x-bedrock-gateway-served-by` of answers from this route: `<served name>; region=<region>`.
    pub served_by: HeaderValue,
}

/// One account, ready for the control plane and S3 (files and batches).
#[derive(Debug)]
pub struct AccountRoute {
    /// The rendered account.
    pub account: api::config::Account,
    /// Bedrock control-plane base URL for the account's default region.
    pub control: String,
    /// How the account signs.
    pub signer: Signer,
}

/// Everything one config generation serves.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every successful load.
    pub generation: u64,
    /// The rendered non-secret config.
    pub config: GatewayConfig,
    /// Routes by served name.
    pub routes: HashMap<String, Arc<Route>>,
    /// Callers by SHA-256 hex of their API key.
    pub callers: HashMap<String, Arc<Subject>>,
    /// Access policies.
    pub policies: PolicySet,
    /// Accounts by name.
    pub accounts: HashMap<String, Arc<AccountRoute>>,
}

/// Replaces every account's endpoints and credentials with the embedded simulator's.
#[derive(Clone, Debug)]
pub struct SimulatorOverride {
    /// Base URL of the simulator, `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Snapshot {
    /// Compiles a rendered config, taking each account's credentials from `registry`. Accounts
    /// whose credentials cannot be used still load; their calls fail with a 503 that says why.
    pub fn build(
        rendered: Rendered,
        generation: u64,
        sim: Option<&SimulatorOverride>,
        registry: &Registry,
    ) -> Snapshot {
        let Rendered { config, credentials } = rendered;
        let signers: HashMap<&str, Signer> = config
            .accounts
            .values()
            .map(|account| {
                let secret = credentials.accounts.get(&account.name);
                (account.name.as_str(), signer_for(account, secret, sim, registry))
            })
            .collect();
        let route = |model: &Model| {
            let account = config.accounts.get(&model.account)?;
            let runtime = match sim {
                Some(sim) => sim.url.clone(),
                None => Endpoints::for_region(&account.endpoints.runtime, &model.region),
            };
            let signer = signers.get(model.account.as_str()).cloned().unwrap_or_else(|| {
                AccountCredentials::unavailable(&model.account, "the account is not in the rendered config")
            });
            let targets = (
                Target::model_operation(&runtime, &model.model_id, "converse", &model.region),
                Target::model_operation(&runtime, &model.model_id, "converse-stream", &model.region),
                Target::model_operation(&runtime, &model.model_id, "invoke", &model.region),
            );
            let (Some(converse), Some(converse_stream), Some(invoke)) = targets else {
                tracing::error!(model = %model.served_name, endpoint = %runtime, "runtime endpoint is not a valid URL; model not served");
                return None;
            };
            let served_by = HeaderValue::from_str(&format!("{}; region={}", model.served_name, model.region))
                .unwrap_or_else(|_| HeaderValue::from_static("-"));
            Some(Route {
                model: model.clone(),
                converse,
                converse_stream,
                invoke,
                signer,
                fallbacks: Vec::new(),
                served_by,
            })
        };
        let mut routes = HashMap::with_capacity(config.models.len());
        for (name, model) in &config.models {
            let Some(mut served) = route(model) else { continue };
            served.fallbacks = model
                .fallbacks
                .iter()
                .filter_map(|f| {
                    let target = config.models.get(&f.served_name)?;
                    let model = Model { region: f.region.clone(), ..target.clone() };
                    route(&model)
                        .map(|r| Arc::new(Route { model: Model { fallbacks: Vec::new(), ..r.model }, ..r }))
                })
                .collect();
            routes.insert(name.clone(), Arc::new(served));
        }
        let accounts = config
            .accounts
            .values()
            .filter_map(|account| {
                let control = match sim {
                    Some(sim) => sim.url.clone(),
                    None => Endpoints::for_region(&account.endpoints.control, &account.default_region),
                };
                let signer = signers.get(account.name.as_str())?.clone();
                let route = AccountRoute { account: account.clone(), control, signer };
                Some((account.name.clone(), Arc::new(route)))
            })
            .collect();
        let callers = credentials.api_keys.into_iter().map(|(hash, id)| (hash, subject_of(id))).collect();
        let policies = PolicySet::new(&config.policies);
        Snapshot { generation, config, routes, callers, policies, accounts }
    }

    /// Served names the subject may call, sorted.
    pub fn visible_models(&self, subject: &Subject) -> Vec<&Route> {
        let mut visible: Vec<&Route> = self
            .routes
            .values()
            .filter(|r| self.policies.allows(subject, &r.model.served_name))
            .map(Arc::as_ref)
            .collect();
        visible.sort_unstable_by(|a, b| a.model.served_name.cmp(&b.model.served_name));
        visible
    }
}

fn subject_of(id: ApiKeyIdentity) -> Arc<Subject> {
    Arc::new(Subject::user(id.user, id.teams))
}

/// The account's credentials; with the simulator override, the simulator's test keys.
fn signer_for(
    account: &api::config::Account,
    secret: Option<&AccountSecret>,
    sim: Option<&SimulatorOverride>,
    registry: &Registry,
) -> Signer {
    match (sim, &account.auth) {
        (Some(_), AccountAuth::ApiKey) => {
            AccountCredentials::api_key(&account.name, bedrock_sim::TEST_BEARER_TOKEN)
        }
        (Some(_), _) => AccountCredentials::static_keys(
            &account.name,
            bedrock_sim::TEST_ACCESS_KEY_ID,
            bedrock_sim::TEST_SECRET_ACCESS_KEY,
            None,
        ),
        (None, _) => registry.for_account(account, secret),
    }
}
