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

use crate::apply::StoredConfig;
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
    /// SHA-256 of the config document (its JSON) written to the ConfigMap.
    pub config_hash: String,
    /// The config document as the ConfigMap stores it.
    pub stored_config: StoredConfig,
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
    let config_json = serde_json::to_vec(&out.rendered.config).unwrap_or_default();
    out.config_hash = hex::encode(Sha256::digest(&config_json));
    out.stored_config = StoredConfig::new(&config_json);
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
                        embedding_input_type: None,
                        underlying_model_id: underlying.cloned(),
                        guardrail: None,
                        fallbacks: Vec::new(),
                        first_byte_timeout_ms: None,
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::aws::facts::{AccountFacts, Catalogue, FoundationModel, InferenceProfile, Verification};

    /// The quick-start account, its key Secret and two models, in namespace ai-gateway.
    pub(crate) const BASE: &str = r#"
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: demo, namespace: ai-gateway, generation: 1}
spec:
  defaultRegion: us-east-1
  auth: {accessKey: {secretRef: {name: aws-keys}}}
  collaborators: [{team: ml, role: user}, {user: bob@example.com, role: manager}]
---
apiVersion: v1
kind: Secret
metadata: {name: aws-keys, namespace: ai-gateway}
stringData: {accessKeyId: AKID, secretAccessKey: SECRET}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-lite, namespace: ai-gateway, generation: 1}
spec: {accountRef: demo, modelId: "amazon.nova-lite-v1:0"}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: claude, namespace: ai-gateway, generation: 2}
spec: {accountRef: demo, modelId: "us.anthropic.claude-3-7-sonnet-20250219-v1:0", region: us-west-2}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: team, namespace: ai-gateway, generation: 1}
spec:
  subjects: [{team: ml}, {user: carol@example.com}]
  models: ["demo/*", "other/*"]
"#;

    /// Manifests parsed from YAML documents.
    pub(crate) fn manifests(yaml: &str) -> Manifests {
        Manifests::parse(yaml, "test").unwrap()
    }

    /// Facts of a verified account whose regions list the simulator-like catalogue.
    pub(crate) fn verified_facts(regions: &[&str]) -> AccountFacts {
        let catalogue = Catalogue {
            models: vec![
                FoundationModel { model_id: "amazon.nova-lite-v1:0".into(), on_demand: true },
                FoundationModel { model_id: "amazon.titan-embed-text-v2:0".into(), on_demand: true },
                FoundationModel { model_id: "anthropic.claude-3-7-sonnet-20250219-v1:0".into(), on_demand: false },
            ],
            profiles: vec![InferenceProfile {
                id: "us.anthropic.claude-3-7-sonnet-20250219-v1:0".into(),
                arn: "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0"
                    .into(),
                model_ids: vec!["anthropic.claude-3-7-sonnet-20250219-v1:0".into()],
            }],
        };
        let profile = catalogue.profiles[0].clone();
        AccountFacts {
            fingerprint: String::new(),
            verification: Ok(Verification::Identity(crate::aws::facts::Identity {
                arn: "arn:aws:iam::123456789012:user/gateway".into(),
                account: "123456789012".into(),
            })),
            regions: regions.iter().map(|r| (r.to_string(), Ok(catalogue.clone()))).collect(),
            profiles: BTreeMap::from([(("us-west-2".to_string(), profile.id.clone()), Ok(profile))]),
        }
    }

    /// Facts by account for one account.
    pub(crate) fn facts_of(name: &str, facts: AccountFacts) -> Facts {
        BTreeMap::from([(name.to_string(), Arc::new(facts))])
    }

    #[test]
    fn one_broken_model_does_not_take_the_others_off_the_air() {
        let yaml = format!(
            "{BASE}---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n\
             metadata: {{name: typo, namespace: ai-gateway}}\nspec: {{accountRef: dmeo, modelId: \"amazon.nova-pro-v1:0\"}}\n"
        );
        let plan = plan(&manifests(&yaml), &Facts::default());
        let served: Vec<&str> = plan.rendered.config.models.keys().map(String::as_str).collect();
        assert_eq!(served, ["demo/claude", "demo/nova-lite"]);
        assert_eq!(plan.problems.keys().collect::<Vec<_>>(), ["BedrockModel ai-gateway/typo"]);
        assert_eq!(
            plan.problems["BedrockModel ai-gateway/typo"][0].message,
            "BedrockAccount dmeo not found in namespace ai-gateway"
        );
        assert!(plan.rendered.credentials.accounts.contains_key("demo"));
    }

    #[test]
    fn models_of_a_broken_account_say_the_account_is_not_ready() {
        let yaml = BASE.replace("secretAccessKey: SECRET", "secretAccesKey: SECRET");
        let plan = plan(&manifests(&yaml), &Facts::default());
        assert!(plan.rendered.config.accounts.is_empty() && plan.rendered.config.models.is_empty());
        let account = &plan.problems["BedrockAccount ai-gateway/demo"][0];
        assert_eq!(account.message, "Secret aws-keys has no key secretAccessKey");
        let model = &plan.problems["BedrockModel ai-gateway/nova-lite"][0];
        assert_eq!(model.field, "spec.accountRef");
        assert_eq!(
            model.message,
            "BedrockAccount demo is not ready: Secret aws-keys has no key secretAccessKey"
        );
        assert_eq!(
            model.fix,
            "fix BedrockAccount demo (see `kubectl describe bedrockaccount demo -n ai-gateway`)"
        );
        // The policy itself is fine and stays in force.
        assert_eq!(plan.rendered.config.policies.len(), 1);
    }

    #[test]
    fn discovery_serves_included_models_that_no_bedrock_model_names() {
        let yaml = BASE.replace(
            "  defaultRegion: us-east-1\n",
            "  defaultRegion: us-east-1\n  discovery: {enabled: true, include: [\"amazon.*\", \"us.*\"]}\n",
        );
        let plan = plan(&manifests(&yaml), &facts_of("demo", verified_facts(&["us-east-1", "us-west-2"])));
        let served: Vec<(&str, &str)> = plan
            .rendered
            .config
            .models
            .values()
            .map(|m| (m.served_name.as_str(), m.region.as_str()))
            .collect();
        assert_eq!(
            served,
            [
                ("demo/amazon.titan-embed-text-v2:0", "us-east-1"),
                ("demo/claude", "us-west-2"),
                ("demo/nova-lite", "us-east-1"),
            ]
        );
        // amazon.nova-lite and the us. profile are served by BedrockModels already; claude-3-7 is
        // not invocable on demand; nothing outside the globs is served.
        let embed = &plan.rendered.config.models["demo/amazon.titan-embed-text-v2:0"];
        assert_eq!(embed.kind, api::config::ModelKind::Embedding);
        assert_eq!(plan.discovered["demo"], 1);
        // The declared profile model carries what GetInferenceProfile said is behind it.
        assert_eq!(
            plan.rendered.config.models["demo/claude"].underlying_model_id.as_deref(),
            Some("anthropic.claude-3-7-sonnet-20250219-v1:0")
        );
        assert_eq!(
            plan.declared["demo"],
            BTreeSet::from([
                ("us-east-1".to_string(), "amazon.nova-lite-v1:0".to_string()),
                ("us-west-2".to_string(), "us.anthropic.claude-3-7-sonnet-20250219-v1:0".to_string()),
            ])
        );
    }

    #[test]
    fn user_collaborators_may_call_the_accounts_models() {
        let plan = plan(&manifests(BASE), &Facts::default());
        let grant =
            plan.rendered.config.policies.iter().find(|p| p.name.ends_with("(collaborators)")).unwrap();
        assert_eq!(grant.name, "ai-gateway/demo (collaborators)");
        assert_eq!(grant.subjects, [SubjectRef::Team("ml".into())]);
        assert_eq!(grant.models, ["demo/*"]);
        assert!(
            plan.known_subjects.contains("team ml") && plan.known_subjects.contains("user bob@example.com")
        );
    }

    #[test]
    fn hashes_follow_the_content_only() {
        let a = plan(&manifests(BASE), &Facts::default());
        let b = plan(&manifests(BASE), &Facts::default());
        assert_eq!(
            (a.config_hash.len(), &a.config_hash, &a.credentials_hash),
            (64, &b.config_hash, &b.credentials_hash)
        );
        let rotated = plan(&manifests(&BASE.replace("SECRET", "ROTATED")), &Facts::default());
        assert_eq!(rotated.config_hash, a.config_hash, "a key rotation does not touch the ConfigMap");
        assert_ne!(rotated.credentials_hash, a.credentials_hash);
    }
}
