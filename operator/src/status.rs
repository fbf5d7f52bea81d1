//! Status of each kind, pure: a [`Plan`] and the object in, the status the object should show out.
//! Conditions keep their `lastTransitionTime` while their status does not change.

use api::Problem;
use api::config::SubjectRef;
use api::crd::policy::Subject;
use api::crd::status::{
    CONDITION_CREDENTIALS_VERIFIED, CONDITION_MODEL_ACCESS, CONDITION_MODELS_MATCHED, CONDITION_REACHABLE,
    CONDITION_READY, CONDITION_SUBJECTS_MATCHED,
};
use api::crd::{AccessPolicy, AccountStatus, BedrockAccount, BedrockModel, ModelStatus, PolicyStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType};
use wildmatch::WildMatch;

use crate::aws::facts::{AccountFacts, AwsFailure, FailureKind, Verification};
use crate::plan::{Plan, describe, subject_label};

/// `True`, `False` or `Unknown`, as conditions spell them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Truth {
    /// The condition holds.
    True,
    /// The condition does not hold; the message says what to fix.
    False,
    /// Not known yet, or AWS could not be asked.
    Unknown,
}

impl Truth {
    fn as_str(self) -> &'static str {
        match self {
            Truth::True => "True",
            Truth::False => "False",
            Truth::Unknown => "Unknown",
        }
    }
}

/// A condition before it gets its generation and transition time.
fn condition(type_: &str, truth: Truth, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: truth.as_str().to_string(),
        reason: reason.to_string(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Sets generation and transition times: unchanged conditions keep the time they had.
pub fn stamp(
    desired: Vec<Condition>,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            c.last_transition_time = match previous.iter().find(|p| p.type_ == c.type_) {
                Some(p) if p.status == c.status => p.last_transition_time.clone(),
                _ => Time(now),
            };
            c
        })
        .collect()
}

/// The `Ready` condition among `conditions`.
pub fn ready(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == CONDITION_READY)
}

/// The event to publish when `Ready` changes status or reason; `None` when it did not.
pub fn ready_event(previous: Option<&Condition>, current: Option<&Condition>) -> Option<Event> {
    let current = current?;
    if previous.is_some_and(|p| p.status == current.status && p.reason == current.reason) {
        return None;
    }
    let mut note = current.message.clone();
    if note.len() > 1000 {
        let mut cut = 1000;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    Some(Event {
        type_: if current.status == "True" { EventType::Normal } else { EventType::Warning },
        reason: current.reason.clone(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    })
}

/// One line per problem: what is wrong and how to fix it.
fn explain(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {} (fix: {})", p.field, p.message, p.fix).trim_start_matches(": ").to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The reason of a `Ready=False` caused by render problems, from the first problem's field.
fn problem_reason(problems: &[Problem]) -> &'static str {
    let Some(first) = problems.first() else { return "InvalidSpec" };
    if first.field.contains("secretRef") {
        "SecretInvalid"
    } else if first.field == "spec.accountRef" {
        if first.message.contains("is not ready") { "AccountNotReady" } else { "AccountNotFound" }
    } else if first.field == "metadata.name" {
        "NameConflict"
    } else {
        "InvalidSpec"
    }
}

/// The status a BedrockAccount should show under `plan`; `None` until the plan has seen this
/// generation of it.
pub fn account(plan: &Plan, account: &BedrockAccount) -> Option<AccountStatus> {
    if !plan.covers(account) {
        return None;
    }
    let name = account.name_any();
    let problems = plan.problems_of(&describe(account));
    let facts = plan.facts.get(&name).filter(|_| problems.is_empty());
    let mut conditions = Vec::new();
    let verified = match facts.map(|f| &f.verification) {
        None if !problems.is_empty() => condition(
            CONDITION_CREDENTIALS_VERIFIED,
            Truth::Unknown,
            "NotChecked",
            "fix the spec problems first",
        ),
        None => condition(
            CONDITION_CREDENTIALS_VERIFIED,
            Truth::Unknown,
            "Pending",
            "the credentials have not been checked with AWS yet",
        ),
        Some(Ok(Verification::Identity(identity))) => condition(
            CONDITION_CREDENTIALS_VERIFIED,
            Truth::True,
            "Verified",
            format!("sts:GetCallerIdentity succeeded as {} (account {})", identity.arn, identity.account),
        ),
        Some(Ok(Verification::ApiKeyAccepted)) => condition(
            CONDITION_CREDENTIALS_VERIFIED,
            Truth::True,
            "ApiKeyAccepted",
            format!("bedrock:ListFoundationModels in {} accepted the API key", account.spec.default_region),
        ),
        Some(Err(failure)) => {
            let call = if account.spec.auth.api_key.is_some() {
                "bedrock:ListFoundationModels"
            } else {
                "sts:GetCallerIdentity"
            };
            from_failure(
                CONDITION_CREDENTIALS_VERIFIED,
                failure,
                "CredentialsRejected",
                "StsUnreachable",
                &format!("{call} failed: {failure}"),
                credentials_fix(account),
            )
        }
    };
    let rejected = verified.status == "False";
    let verified_message = verified.message.clone();
    conditions.push(verified);
    if let Some(facts) = facts {
        conditions.push(model_access(facts));
    }
    let ready = if !problems.is_empty() {
        condition(CONDITION_READY, Truth::False, problem_reason(problems), explain(problems))
    } else if rejected {
        condition(CONDITION_READY, Truth::False, "CredentialsRejected", verified_message)
    } else if let Some(too_large) = plan.stored_config.too_large() {
        condition(CONDITION_READY, Truth::False, "ConfigTooLarge", too_large)
    } else {
        let models = plan.rendered.config.models.values().filter(|m| m.account == name).count();
        condition(CONDITION_READY, Truth::True, "Ready", format!("served as {name}/* with {models} model(s)"))
    };
    conditions.insert(0, ready);
    let identity_arn = match facts.map(|f| &f.verification) {
        Some(Ok(Verification::Identity(identity))) => Some(identity.arn.clone()),
        _ => None,
    };
    let discovered_models = facts.map(|f| {
        let mut ids: Vec<&str> = f.regions.values().flatten().flat_map(|c| c.invocable_ids()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len() as u32
    });
    Some(AccountStatus {
        observed_generation: account.metadata.generation,
        conditions,
        identity_arn,
        discovered_models,
        served_discovered_models: plan.discovered.get(&name).copied(),
    })
}

/// What the account's auth needs for the credentials check to pass.
fn credentials_fix(account: &BedrockAccount) -> &'static str {
    let auth = &account.spec.auth;
    if auth.assume_role.is_some() {
        "check that the role exists and that its trust policy allows the gateway's own role (and externalId, if set)"
    } else if auth.access_key.is_some() {
        "put a valid, active access key pair into the Secret named by spec.auth.accessKey.secretRef"
    } else if auth.api_key.is_some() {
        "put a valid Bedrock API key into the Secret named by spec.auth.apiKey.secretRef"
    } else {
        "give the gateway pods an AWS identity (IRSA, EKS Pod Identity or an instance role)"
    }
}

/// A condition from a failed call: `False` when AWS rejected it, `Unknown` when unreachable.
fn from_failure(
    type_: &str,
    failure: &AwsFailure,
    rejected_reason: &str,
    unreachable_reason: &str,
    message: &str,
    fix: &str,
) -> Condition {
    match failure.kind {
        FailureKind::Rejected => {
            condition(type_, Truth::False, rejected_reason, format!("{message} (fix: {fix})"))
        }
        FailureKind::Unreachable => {
            condition(type_, Truth::Unknown, unreachable_reason, format!("{message}; retrying"))
        }
    }
}

/// `ModelAccess`: what ListFoundationModels shows per region.
fn model_access(facts: &AccountFacts) -> Condition {
    let mut lines = Vec::new();
    let mut truth = Truth::True;
    for (region, catalogue) in &facts.regions {
        match catalogue {
            Ok(c) => lines.push(format!(
                "{region}: {} foundation model(s), {} inference profile(s)",
                c.models.len(),
                c.profiles.len()
            )),
            Err(failure) => {
                truth = match (truth, failure.kind) {
                    (_, FailureKind::Rejected) | (Truth::False, _) => Truth::False,
                    _ => Truth::Unknown,
                };
                lines.push(format!("{region}: {failure}"));
            }
        }
    }
    let reason = match truth {
        Truth::True => "Listed",
        Truth::False => "AccessDenied",
        Truth::Unknown => "ControlPlaneUnreachable",
    };
    let mut message = lines.join("; ");
    if truth == Truth::False {
        message.push_str(" (fix: allow bedrock:ListFoundationModels and bedrock:ListInferenceProfiles for the account's identity)");
    }
    condition(CONDITION_MODEL_ACCESS, truth, reason, message)
}

/// The status a BedrockModel should show under `plan`.
pub fn model(plan: &Plan, model: &BedrockModel) -> Option<ModelStatus> {
    if !plan.covers(model) {
        return None;
    }
    let served_name = format!("{}/{}", model.spec.account_ref, model.name_any());
    let problems = plan.problems_of(&describe(model));
    let served = plan.rendered.config.models.get(&served_name).filter(|_| problems.is_empty());
    let facts = plan.facts.get(&model.spec.account_ref).map(|f| f.as_ref());
    let mut conditions = Vec::new();
    let reachable = match (served, facts) {
        (None, _) => condition(CONDITION_REACHABLE, Truth::Unknown, "NotChecked", "the model is not served"),
        (Some(_), None) => condition(
            CONDITION_REACHABLE,
            Truth::Unknown,
            "Pending",
            "the account has not been checked with AWS yet",
        ),
        (Some(_), Some(AccountFacts { verification: Err(failure), .. }))
            if failure.kind == FailureKind::Rejected =>
        {
            condition(
                CONDITION_REACHABLE,
                Truth::False,
                "AccountCredentialsRejected",
                format!(
                    "AWS rejected the credentials of BedrockAccount {}: {failure} (fix: see the account's \
                     CredentialsVerified condition)",
                    model.spec.account_ref
                ),
            )
        }
        (Some(m), Some(facts)) => reachable(facts, &m.region, &m.model_id),
    };
    let unreachable = reachable.status == "False";
    let reachable_message = reachable.message.clone();
    conditions.push(reachable);
    let ready = match served {
        None if problems.is_empty() => condition(
            CONDITION_READY,
            Truth::False,
            "NotServed",
            "the model is not in the rendered config (see the operator's log)",
        ),
        None => condition(CONDITION_READY, Truth::False, problem_reason(problems), explain(problems)),
        Some(_) if unreachable => condition(CONDITION_READY, Truth::False, "Unreachable", reachable_message),
        Some(m) => condition(
            CONDITION_READY,
            Truth::True,
            "Served",
            format!("served as {} in {}", m.served_name, m.region),
        ),
    };
    conditions.insert(0, ready);
    Some(ModelStatus {
        observed_generation: model.metadata.generation,
        conditions,
        served_name: served.map(|m| m.served_name.clone()),
        region: served.map(|m| m.region.clone()),
        underlying_model_id: served.and_then(|m| m.underlying_model_id.clone()),
    })
}

/// True for ids GetInferenceProfile answers: geo profile ids and inference-profile ARNs.
pub fn is_profile(model_id: &str) -> bool {
    if model_id.starts_with("arn:") {
        return model_id.contains(":inference-profile/")
            || model_id.contains(":application-inference-profile/");
    }
    // Cross-region profile ids are a geography prefix before a base id (`us.amazon.nova-lite-v1:0`).
    let geographies = ["us", "eu", "apac", "jp", "au", "ca", "us-gov", "global"];
    model_id.split_once('.').is_some_and(|(first, rest)| geographies.contains(&first) && rest.contains('.'))
}

/// `Reachable` of one model id in one region.
fn reachable(facts: &AccountFacts, region: &str, model_id: &str) -> Condition {
    if is_profile(model_id) {
        return match facts.profiles.get(&(region.to_string(), model_id.to_string())) {
            Some(Ok(profile)) => condition(
                CONDITION_REACHABLE,
                Truth::True,
                "ProfileFound",
                format!(
                    "inference profile {} in {region} routes to {}",
                    profile.id,
                    profile.model_ids.join(", ")
                ),
            ),
            Some(Err(failure)) => from_failure(
                CONDITION_REACHABLE,
                failure,
                "ProfileNotFound",
                "ControlPlaneUnreachable",
                &format!("bedrock:GetInferenceProfile {model_id} in {region} failed: {failure}"),
                "check the profile id and region, and that the account may call bedrock:GetInferenceProfile",
            ),
            None => condition(
                CONDITION_REACHABLE,
                Truth::Unknown,
                "Pending",
                "the profile has not been looked up yet",
            ),
        };
    }
    if model_id.starts_with("arn:") && !model_id.contains(":foundation-model/") {
        return condition(
            CONDITION_REACHABLE,
            Truth::Unknown,
            "NotChecked",
            "provisioned, custom and imported model ARNs are not checked",
        );
    }
    let base = model_id.rsplit_once(":foundation-model/").map_or(model_id, |(_, id)| id);
    match facts.regions.get(region) {
        Some(Ok(catalogue)) if catalogue.lists(base) => condition(
            CONDITION_REACHABLE,
            Truth::True,
            "Listed",
            format!("bedrock:ListFoundationModels in {region} lists {base}"),
        ),
        Some(Ok(_)) => condition(
            CONDITION_REACHABLE,
            Truth::False,
            "ModelNotListed",
            format!(
                "bedrock:ListFoundationModels in {region} does not list {base} (fix: check the model id and region, \
                 or use a cross-region inference profile id such as us.{base})"
            ),
        ),
        Some(Err(failure)) => from_failure(
            CONDITION_REACHABLE,
            failure,
            "AccessDenied",
            "ControlPlaneUnreachable",
            &format!("bedrock:ListFoundationModels in {region} failed: {failure}"),
            "allow bedrock:ListFoundationModels for the account's identity",
        ),
        None => condition(
            CONDITION_REACHABLE,
            Truth::Unknown,
            "Pending",
            format!("{region} has not been listed yet"),
        ),
    }
}

/// The status an AccessPolicy should show under `plan`.
pub fn policy(plan: &Plan, policy: &AccessPolicy) -> Option<PolicyStatus> {
    if !plan.covers(policy) {
        return None;
    }
    let problems = plan.problems_of(&describe(policy));
    let served: Vec<&str> = plan.rendered.config.models.keys().map(String::as_str).collect();
    let unmatched_models: Vec<String> = policy
        .spec
        .models
        .iter()
        .filter(|glob| {
            let glob = WildMatch::new(glob);
            !served.iter().any(|name| glob.matches(name))
        })
        .cloned()
        .collect();
    let unmatched_subjects: Vec<String> =
        policy.spec.subjects.iter().filter_map(|s| unknown_subject(plan, s)).collect();
    let mut conditions = vec![if problems.is_empty() {
        condition(
            CONDITION_READY,
            Truth::True,
            "InForce",
            format!(
                "grants {} subject(s) access to {} glob(s)",
                policy.spec.subjects.len(),
                policy.spec.models.len()
            ),
        )
    } else {
        condition(CONDITION_READY, Truth::False, problem_reason(problems), explain(problems))
    }];
    conditions.push(if unmatched_models.is_empty() {
        condition(CONDITION_MODELS_MATCHED, Truth::True, "AllMatched", "every model glob matches a served model")
    } else {
        condition(
            CONDITION_MODELS_MATCHED,
            Truth::False,
            "UnmatchedModels",
            format!(
                "{} match(es) no served model (fix: create the BedrockModel or correct the glob; served names are <account>/<model>)",
                unmatched_models.join(", ")
            ),
        )
    });
    conditions.push(if unmatched_subjects.is_empty() {
        condition(CONDITION_SUBJECTS_MATCHED, Truth::True, "AllKnown", "every user and team is known")
    } else {
        condition(
            CONDITION_SUBJECTS_MATCHED,
            Truth::False,
            "UnknownSubjects",
            format!(
                "no API key Secret or account collaborator names {} (fix: check the spelling; OIDC users are not known \
                 to the operator and can be ignored here)",
                unmatched_subjects.join(", ")
            ),
        )
    });
    Some(PolicyStatus {
        observed_generation: policy.metadata.generation,
        conditions,
        unmatched_models,
        unmatched_subjects,
    })
}

/// `user X` or `team X` when the operator knows no caller of that name.
fn unknown_subject(plan: &Plan, subject: &Subject) -> Option<String> {
    let subject_ref = match (&subject.user, &subject.team) {
        (Some(user), None) => SubjectRef::User(user.clone()),
        (None, Some(team)) => SubjectRef::Team(team.clone()),
        _ => return None,
    };
    subject_label(&subject_ref).filter(|label| !plan.known_subjects.contains(label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::facts::{Catalogue, Facts};
    use crate::plan::plan;
    use crate::plan::tests::{BASE, facts_of, manifests, verified_facts};

    fn conditions(list: &[Condition]) -> Vec<(&str, &str, &str, &str)> {
        list.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str(), c.message.as_str()))
            .collect()
    }

    #[test]
    fn a_config_too_large_even_compressed_is_reported_on_every_served_account_with_the_numbers() {
        let m = manifests(BASE);
        let mut too_large = plan(&m, &facts_of("demo", verified_facts(&["us-east-1", "us-west-2"])));
        let fits = too_large.clone();
        too_large.stored_config =
            crate::apply::StoredConfig { gz: vec![0; 1_300_000], json_bytes: 21_000_000 };
        let status = account(&too_large, &m.accounts[0]).unwrap();
        let ready = ready(&status.conditions).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str(), ready.message.as_str()),
            (
                "False",
                "ConfigTooLarge",
                "the rendered config is 1300000 bytes gzip-compressed (21000000 bytes of JSON), more than \
                 the 1048576 a ConfigMap holds, so it is not written and the proxies keep serving the last \
                 one written: serve fewer models (narrow spec.discovery.include) or split the release"
            )
        );
        let before = account(&fits, &m.accounts[0]).unwrap();
        let event = ready_event(super::ready(&before.conditions), Some(ready)).unwrap();
        assert_eq!((event.type_, event.reason.as_str()), (EventType::Warning, "ConfigTooLarge"));
        assert!(ready_event(Some(ready), Some(ready)).is_none(), "one event per transition");
    }

    #[test]
    fn account_with_a_missing_key_says_which_key_and_where() {
        let m = manifests(&BASE.replace("secretAccessKey: SECRET", "other: SECRET"));
        let status = account(&plan(&m, &Facts::default()), &m.accounts[0]).unwrap();
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            conditions(&status.conditions),
            [
                (
                    "Ready",
                    "False",
                    "SecretInvalid",
                    "spec.auth.accessKey.secretRef: Secret aws-keys has no key secretAccessKey \
                     (fix: add secretAccessKey to Secret aws-keys (under data or stringData))"
                ),
                ("CredentialsVerified", "Unknown", "NotChecked", "fix the spec problems first"),
            ]
        );
    }

    #[test]
    fn verified_account_shows_identity_regions_and_counts() {
        let m = manifests(BASE);
        let p = plan(&m, &facts_of("demo", verified_facts(&["us-east-1", "us-west-2"])));
        let status = account(&p, &m.accounts[0]).unwrap();
        assert_eq!(
            conditions(&status.conditions),
            [
                ("Ready", "True", "Ready", "served as demo/* with 2 model(s)"),
                (
                    "CredentialsVerified",
                    "True",
                    "Verified",
                    "sts:GetCallerIdentity succeeded as arn:aws:iam::123456789012:user/gateway (account 123456789012)"
                ),
                (
                    "ModelAccess",
                    "True",
                    "Listed",
                    "us-east-1: 3 foundation model(s), 1 inference profile(s); \
                     us-west-2: 3 foundation model(s), 1 inference profile(s)"
                ),
            ]
        );
        assert_eq!(status.identity_arn.as_deref(), Some("arn:aws:iam::123456789012:user/gateway"));
        // nova-lite, titan-embed (on demand) and the us. profile.
        assert_eq!(status.discovered_models, Some(3));
        assert_eq!(status.served_discovered_models, None);
    }

    #[test]
    fn a_role_that_cannot_be_assumed_shows_awss_reason() {
        let yaml = BASE.replace(
            "auth: {accessKey: {secretRef: {name: aws-keys}}}",
            "auth: {assumeRole: {roleArn: \"arn:aws:iam::123456789012:role/bedrock\"}}",
        );
        let m = manifests(&yaml);
        let mut facts = verified_facts(&[]);
        facts.verification = Err(AwsFailure::rejected(
            "AccessDenied",
            "sts:AssumeRole: User: arn:aws:sts::123456789012:assumed-role/gw/x is not authorized to perform: sts:AssumeRole",
        ));
        let status = account(&plan(&m, &facts_of("demo", facts)), &m.accounts[0]).unwrap();
        let ready = ready(&status.conditions).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "CredentialsRejected"));
        assert_eq!(
            ready.message,
            "sts:GetCallerIdentity failed: AccessDenied: sts:AssumeRole: User: arn:aws:sts::123456789012:assumed-role/gw/x \
             is not authorized to perform: sts:AssumeRole (fix: check that the role exists and that its trust policy \
             allows the gateway's own role (and externalId, if set))"
        );
        // An unreachable STS is no verdict: Unknown, and the account stays Ready.
        let mut facts = verified_facts(&[]);
        facts.verification =
            Err(AwsFailure::unreachable("ConnectionError", "sts.example: connection refused"));
        let status = account(&plan(&m, &facts_of("demo", facts)), &m.accounts[0]).unwrap();
        assert_eq!(
            conditions(&status.conditions)[..2],
            [
                ("Ready", "True", "Ready", "served as demo/* with 2 model(s)"),
                (
                    "CredentialsVerified",
                    "Unknown",
                    "StsUnreachable",
                    "sts:GetCallerIdentity failed: ConnectionError: sts.example: connection refused; retrying"
                ),
            ]
        );
    }

    #[test]
    fn models_show_served_name_region_underlying_model_and_reachability() {
        let m = manifests(BASE);
        let p = plan(&m, &facts_of("demo", verified_facts(&["us-east-1", "us-west-2"])));
        let claude = model(&p, &m.models[1]).unwrap();
        assert_eq!(claude.observed_generation, Some(2));
        assert_eq!(
            (claude.served_name.as_deref(), claude.region.as_deref(), claude.underlying_model_id.as_deref()),
            (Some("demo/claude"), Some("us-west-2"), Some("anthropic.claude-3-7-sonnet-20250219-v1:0"))
        );
        assert_eq!(
            conditions(&claude.conditions),
            [
                ("Ready", "True", "Served", "served as demo/claude in us-west-2"),
                (
                    "Reachable",
                    "True",
                    "ProfileFound",
                    "inference profile us.anthropic.claude-3-7-sonnet-20250219-v1:0 in us-west-2 routes to \
                     anthropic.claude-3-7-sonnet-20250219-v1:0"
                ),
            ]
        );
        // A model the region does not list is not Ready, and says what to try.
        let mut facts = verified_facts(&["us-east-1", "us-west-2"]);
        if let Some(Ok(catalogue)) = facts.regions.get_mut("us-east-1") {
            *catalogue = Catalogue::default();
        }
        let p = plan(&m, &facts_of("demo", facts));
        let nova = model(&p, &m.models[0]).unwrap();
        assert_eq!(
            conditions(&nova.conditions),
            [
                (
                    "Ready",
                    "False",
                    "Unreachable",
                    "bedrock:ListFoundationModels in us-east-1 does not list amazon.nova-lite-v1:0 (fix: check the model \
                     id and region, or use a cross-region inference profile id such as us.amazon.nova-lite-v1:0)"
                ),
                (
                    "Reachable",
                    "False",
                    "ModelNotListed",
                    "bedrock:ListFoundationModels in us-east-1 does not list amazon.nova-lite-v1:0 (fix: check the model \
                     id and region, or use a cross-region inference profile id such as us.amazon.nova-lite-v1:0)"
                ),
            ]
        );
    }

    #[test]
    fn policies_list_globs_and_subjects_that_match_nothing() {
        let m = manifests(BASE);
        let status = policy(&plan(&m, &Facts::default()), &m.policies[0]).unwrap();
        assert_eq!(status.unmatched_models, ["other/*"]);
        assert_eq!(status.unmatched_subjects, ["user carol@example.com"]);
        assert_eq!(
            conditions(&status.conditions)[1..],
            [
                (
                    "ModelsMatched",
                    "False",
                    "UnmatchedModels",
                    "other/* match(es) no served model (fix: create the BedrockModel or correct the glob; served names \
                     are <account>/<model>)"
                ),
                (
                    "SubjectsMatched",
                    "False",
                    "UnknownSubjects",
                    "no API key Secret or account collaborator names user carol@example.com (fix: check the spelling; \
                     OIDC users are not known to the operator and can be ignored here)"
                ),
            ]
        );
        assert_eq!(ready(&status.conditions).unwrap().status, "True");
    }

    #[test]
    fn models_of_an_account_aws_rejects_are_not_ready() {
        let m = manifests(BASE);
        let mut facts = verified_facts(&[]);
        facts.verification = Err(AwsFailure::rejected(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ));
        let status = model(&plan(&m, &facts_of("demo", facts)), &m.models[0]).unwrap();
        let message = "AWS rejected the credentials of BedrockAccount demo: InvalidClientTokenId: The security token \
                       included in the request is invalid. (fix: see the account's CredentialsVerified condition)";
        assert_eq!(
            conditions(&status.conditions),
            [
                ("Ready", "False", "Unreachable", message),
                ("Reachable", "False", "AccountCredentialsRejected", message),
            ]
        );
    }

    #[test]
    fn profiles_are_geo_ids_and_profile_arns() {
        assert!(is_profile("us.anthropic.claude-3-7-sonnet-20250219-v1:0"));
        assert!(is_profile("global.anthropic.claude-sonnet-4-20250514-v1:0"));
        assert!(is_profile("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"));
        assert!(!is_profile("amazon.nova-lite-v1:0"));
        assert!(!is_profile("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"));
        assert!(!is_profile("arn:aws:bedrock:us-east-1:123456789012:provisioned-model/xyz"));
    }

    #[test]
    fn a_plan_older_than_the_object_writes_nothing() {
        let m = manifests(BASE);
        let p = plan(&m, &Facts::default());
        let mut newer = m.models[0].clone();
        newer.metadata.generation = Some(2);
        assert!(model(&p, &newer).is_none());
        assert!(model(&p, &m.models[0]).is_some());
    }

    #[test]
    fn transition_times_and_events_follow_status_changes() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first =
            stamp(vec![condition(CONDITION_READY, Truth::False, "SecretInvalid", "a")], &[], Some(1), t0);
        let same =
            stamp(vec![condition(CONDITION_READY, Truth::False, "SecretInvalid", "b")], &first, Some(2), t1);
        assert_eq!((same[0].last_transition_time.0, same[0].observed_generation), (t0, Some(2)));
        let fixed = stamp(vec![condition(CONDITION_READY, Truth::True, "Ready", "ok")], &same, Some(3), t1);
        assert_eq!(fixed[0].last_transition_time.0, t1);

        assert!(ready_event(ready(&first), ready(&same)).is_none(), "same status and reason: no event");
        let event = ready_event(ready(&same), ready(&fixed)).unwrap();
        assert_eq!(
            (event.type_, event.reason.as_str(), event.note.as_deref()),
            (EventType::Normal, "Ready", Some("ok"))
        );
        let event = ready_event(None, ready(&first)).unwrap();
        assert_eq!((event.type_, event.reason.as_str()), (EventType::Warning, "SecretInvalid"));
    }
}
