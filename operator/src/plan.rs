//! The reconcile logic, pure: the watched objects and what AWS said about them into the proxy's
//! config and credentials, plus everything the status of each object is computed from.
//!
//! `api::render` is all-or-nothing; a cluster is not. So the plan renders, sets aside every object
//! a problem names (and, in the next round, whatever depended on it), and renders again until the
//! rest is clean: one broken BedrockModel never takes the other models off the air.

use std::collections::{BTreeMap, BTreeSet};

use api::config::{CollaboratorRole, GatewayConfig, Model, Policy, Rendered, SubjectRef};
use api::crd::{AccessPolicy, BedrockAccount, BedrockModel};
use api::render::infer_kind;
use api::{Manifests, Problem};
use k8s_openapi::api::core::v1::Secret;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use wildmatch::WildMatch;

use crate::aws::AccountInput;
use crate::aws::facts::Facts;

/// The desired state of the proxy config and the inputs of every object's status.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// What the proxy serves: the objects without problems, discovered models included.
    pub rendered: Rendered,
    /// Problems by object (`Kind namespace/name`, as [`describe`] writes it).
    pub problems: BTreeMap<String, Vec<Problem>>,
    /// `metadata.generation` of every object the plan was made from, by object.
    pub generations: BTreeMap<String, Option<i64>>,
    /// What AWS said, by account name.
    pub facts: Facts,
    /// Region and model id of the BedrockModels of each account (discovered models excluded).
    pub declared: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Models served through discovery, by account name.
    pub discovered: BTreeMap<String, u32>,
    /// Users and teams the operator knows of (API key Secrets, account collaborators), as
    /// `user NAME` and `team NAME`.
    pub known_subjects: BTreeSet<String>,
    /// SHA-256 of the config document written to the ConfigMap.
    pub config_hash: String,
    /// SHA-256 of the credentials document written to the Secret.
    pub credentials_hash: String,
}

/// `Kind namespace/name`, how problems and the plan name an object.
pub fn describe<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!("{} {}/{}", K::kind(&()), object.namespace().unwrap_or_default(), object.name_any())
}

/// Renders `manifests` with `facts` into a [`Plan`].
pub fn plan(manifests: &Manifests, facts: &Facts) -> Plan {
    let mut out = Plan { facts: facts.clone(), ..Plan::default() };
    record_generations(&manifests.accounts, &mut out.generations);
    record_generations(&manifests.models, &mut out.generations);
    record_generations(&manifests.policies, &mut out.generations);
    let mut current = manifests.clone();
    out.rendered = loop {
        match api::render(&current) {
            Ok(rendered) => break rendered,
            Err(found) => {
                let faulty: BTreeSet<String> = found.0.iter().map(|p| p.object.clone()).collect();
                for problem in found.0 {
                    let problems = out.problems.entry(problem.object.clone()).or_default();
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
                if !remove(&mut current, &faulty) {
                    // A problem no object can be blamed for: serve nothing rather than guess.
                    break Rendered::default();
                }
            }
        }
    };
    explain_missing_accounts(manifests, &mut out.problems);
    annotate_underlying_models(&mut out.rendered, facts);
    for model in out.rendered.config.models.values() {
        let declared = out.declared.entry(model.account.clone()).or_default();
        declared.insert((model.region.clone(), model.model_id.clone()));
    }
    out.discovered = discover(&mut out.rendered, facts);
    let grants = collaborator_policies(&out.rendered.config);
    out.rendered.config.policies.extend(grants);
    out.known_subjects = known_subjects(&out.rendered);
    out.config_hash = digest(&out.rendered.config);
    out.credentials_hash = digest(&out.rendered.credentials);
    out
}

/// Lowercase hex SHA-256 of the JSON form of `value` (maps are sorted, so it is stable).
pub fn digest<T: serde::Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

impl Plan {
    /// The problems of `object`, if any.
    pub fn problems_of(&self, object: &str) -> &[Problem] {
        self.problems.get(object).map_or(&[], Vec::as_slice)
    }

    /// What the rendered account `name` is checked with at AWS; `None` when it is not served.
    pub fn account_input(&self, name: &str) -> Option<AccountInput<'_>> {
        let account = self.rendered.config.accounts.get(name)?;
        Some(AccountInput {
            account,
            secret: self.rendered.credentials.accounts.get(name),
            models: self.declared.get(name).cloned().unwrap_or_default(),
        })
    }

    /// True when the plan was made from this generation of the object (or a later one).
    pub fn covers<K: Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let seen = self.generations.get(&describe(object));
        seen.is_some_and(|g| *g >= object.meta().generation)
    }
}

fn record_generations<K: Resource<DynamicType = ()>>(objects: &[K], out: &mut BTreeMap<String, Option<i64>>) {
    for object in objects {
        out.insert(describe(object), object.meta().generation);
    }
}

/// Drops every object named in `faulty`; false when none was found (nothing left to set aside).
fn remove(m: &mut Manifests, faulty: &BTreeSet<String>) -> bool {
    let before = m.accounts.len() + m.models.len() + m.policies.len() + m.secrets.len();
    m.accounts.retain(|o: &BedrockAccount| !faulty.contains(&describe(o)));
    m.models.retain(|o: &BedrockModel| !faulty.contains(&describe(o)));
    m.policies.retain(|o: &AccessPolicy| !faulty.contains(&describe(o)));
    m.secrets.retain(|o: &Secret| !faulty.contains(&describe(o)));
    before != m.accounts.len() + m.models.len() + m.policies.len() + m.secrets.len()
}

/// A model whose account exists but was set aside reads "account not found" after the second
/// round; say instead that the account is not ready, and why.
fn explain_missing_accounts(m: &Manifests, problems: &mut BTreeMap<String, Vec<Problem>>) {
    for model in &m.models {
        let ns = model.namespace().unwrap_or_default();
        let account = format!("BedrockAccount {ns}/{}", model.spec.account_ref);
        let exists = m.accounts.iter().any(|a| describe(a) == account);
        let Some(why) = problems.get(&account).and_then(|p| p.first()).map(|p| p.message.clone()) else {
            continue;
        };
        if !exists {
            continue;
        }
        if let Some(list) = problems.get_mut(&describe(model)) {
            for problem in list.iter_mut().filter(|p| p.field == "spec.accountRef") {
                problem.message = format!("BedrockAccount {} is not ready: {why}", model.spec.account_ref);
                problem.fix = format!(
                    "fix BedrockAccount {} (see `kubectl describe bedrockaccount {} -n {ns}`)",
                    model.spec.account_ref, model.spec.account_ref
                );
            }
        }
    }
}

/// Sets `underlying_model_id` of profile models from GetInferenceProfile answers.
fn annotate_underlying_models(rendered: &mut Rendered, facts: &Facts) {
    for model in rendered.config.models.values_mut() {
        if let Some(account) = facts.get(&model.account) {
            model.underlying_model_id =
                account.underlying_model(&model.region, &model.model_id).map(str::to_string);
        }
    }
}

/// Adds `<account>/<model id>` for every invocable model of discovery-enabled accounts that no
/// BedrockModel already serves; returns how many each account got.
fn discover(rendered: &mut Rendered, facts: &Facts) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    let config = &mut rendered.config;
    for account in config.accounts.values() {
        let (Some(discovery), Some(account_facts)) = (&account.discovery, facts.get(&account.name)) else {
            continue;
        };
        let globs: Vec<WildMatch> = discovery.include.iter().map(|g| WildMatch::new(g)).collect();
        let named: BTreeSet<&str> = config
            .models
            .values()
            .filter(|m| m.account == account.name)
            .map(|m| m.model_id.as_str())
            .collect();
        // The default region first, so its entry wins when two regions list the same id.
        let mut regions: Vec<&String> = account_facts.regions.keys().collect();
        regions.sort_by_key(|r| (**r != account.default_region, (*r).clone()));
        let mut added: BTreeMap<String, Model> = BTreeMap::new();
        for region in regions {
            let Some(Ok(catalogue)) = account_facts.regions.get(region) else { continue };
            for id in catalogue.invocable_ids() {
                if named.contains(id) || !(globs.is_empty() || globs.iter().any(|g| g.matches(id))) {
                    continue;
                }
                let served_name = format!("{}/{id}", account.name);
                if config.models.contains_key(&served_name) || added.contains_key(&served_name) {
                    continue;
                }
                let underlying =
                    catalogue.profiles.iter().find(|p| p.id == id).and_then(|p| p.model_ids.first());
                added.insert(
                    served_name.clone(),
                    Model {
                        served_name,
                        account: account.name.clone(),
                        namespace: account.namespace.clone(),
                        model_id: id.to_string(),
                        region: region.clone(),
                        kind: infer_kind(underlying.map_or(id, String::as_str)),
                        cost: None,
                        underlying_model_id: underlying.cloned(),
                    },
                );
            }
        }
        counts.insert(account.name.clone(), added.len() as u32);
        config.models.extend(added);
    }
    counts
}

/// One policy per account with `user` collaborators: they may call every model of the account.
fn collaborator_policies(config: &GatewayConfig) -> Vec<Policy> {
    config
        .accounts
        .values()
        .filter_map(|account| {
            let subjects: Vec<SubjectRef> = account
                .collaborators
                .iter()
                .filter(|c| c.role == CollaboratorRole::User)
                .map(|c| c.subject.clone())
                .collect();
            (!subjects.is_empty()).then(|| Policy {
                name: format!("{}/{} (collaborators)", account.namespace, account.name),
                subjects,
                models: vec![format!("{}/*", account.name)],
                limits: None,
            })
        })
        .collect()
}

/// `user NAME` or `team NAME`, how status messages name a subject; `None` for service accounts.
pub fn subject_label(subject: &SubjectRef) -> Option<String> {
    match subject {
        SubjectRef::User(user) => Some(format!("user {user}")),
        SubjectRef::Team(team) => Some(format!("team {team}")),
        SubjectRef::ServiceAccount { .. } => None,
    }
}

/// Users and teams named by API key Secrets and account collaborators.
fn known_subjects(rendered: &Rendered) -> BTreeSet<String> {
    let keys = rendered.credentials.api_keys.values().flat_map(|identity| {
        std::iter::once(SubjectRef::User(identity.user.clone()))
            .chain(identity.teams.iter().cloned().map(SubjectRef::Team))
    });
    let collaborators =
        rendered.config.accounts.values().flat_map(|a| a.collaborators.iter().map(|c| c.subject.clone()));
    keys.chain(collaborators).filter_map(|s| subject_label(&s)).collect()
}
