//! BedrockModel objects into served [`config::Model`]s keyed by `<account>/<model>`.

use std::collections::BTreeMap;

use super::model_id::{infer_kind, validate_model_id};
use super::{describe, name, namespace};
use crate::config::{self, ModelKind};
use crate::crd::model::BedrockModelKind;
use crate::crd::{BedrockAccount, BedrockModel};
use crate::problems::{Problem, Problems};

/// Served models by served name; `accountRef` resolves in the model's namespace.
pub(super) fn render(
    models: &[&BedrockModel],
    accounts: &[&BedrockAccount],
    problems: &mut Problems,
) -> BTreeMap<String, config::Model> {
    let by_ref: BTreeMap<(&str, &str), &BedrockAccount> =
        accounts.iter().map(|a| ((namespace(&a.metadata), name(&a.metadata)), *a)).collect();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for model in models {
        let object = describe(*model);
        let ns = namespace(&model.metadata);
        let spec = &model.spec;
        let account = by_ref.get(&(ns, spec.account_ref.as_str()));
        if account.is_none() {
            problems.push(Problem::new(
                &object,
                "spec.accountRef",
                format!("BedrockAccount {} not found in namespace {ns}", spec.account_ref),
                format!(
                    "create BedrockAccount {} in namespace {ns}, or set accountRef to an account there",
                    spec.account_ref
                ),
            ));
        }
        let id_ok = match validate_model_id(&spec.model_id) {
            Ok(()) => true,
            Err(reason) => {
                problems.push(Problem::new(
                    &object,
                    "spec.modelId",
                    format!("modelId {:?} is not valid: {reason}", spec.model_id),
                    "use a model id (anthropic.claude-3-7-sonnet-20250219-v1:0), an inference profile id \
                     (us.anthropic.claude-3-7-sonnet-20250219-v1:0) or a Bedrock ARN",
                ));
                false
            }
        };
        let served_name = format!("{}/{}", spec.account_ref, name(&model.metadata));
        if let Some(owner) = owners.get(&served_name) {
            problems.push(Problem::new(
                &object,
                "metadata.name",
                format!("served name {served_name} is already defined by {owner}"),
                "rename one of the BedrockModels or point it at another account",
            ));
            continue;
        }
        owners.insert(served_name.clone(), object.clone());
        let guardrail_ok = match &spec.guardrail {
            Some(g) => match guardrail_problem(g) {
                Some((field, problem, fix)) => {
                    problems.push(Problem::new(&object, field, problem, fix));
                    false
                }
                None => true,
            },
            None => true,
        };
        let (Some(account), true, true) = (account, id_ok, guardrail_ok) else { continue };
        let region = spec
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| account.spec.default_region.clone());
        let kind = match spec.kind {
            Some(BedrockModelKind::Chat) => ModelKind::Chat,
            Some(BedrockModelKind::Embedding) => ModelKind::Embedding,
            Some(BedrockModelKind::Image) => ModelKind::Image,
            None => infer_kind(&spec.model_id),
        };
        out.insert(
            served_name.clone(),
            config::Model {
                served_name,
                account: spec.account_ref.clone(),
                namespace: ns.to_string(),
                model_id: spec.model_id.clone(),
                region,
                kind,
                cost: spec.cost.clone(),
                embedding_input_type: spec.embedding.as_ref().and_then(|e| e.input_type),
                underlying_model_id: None,
                guardrail: spec.guardrail.clone(),
                // Resolved once every model is known (`fallbacks::resolve`).
                fallbacks: Vec::new(),
                first_byte_timeout_ms: spec.timeouts.as_ref().and_then(|t| t.first_byte_ms),
            },
        );
    }
    out
}

/// What is wrong with a guardrail reference (field, problem, fix), checked as Bedrock's
/// `guardrailIdentifier` and `guardrailVersion` patterns do.
fn guardrail_problem(g: &crate::crd::model::GuardrailSpec) -> Option<(&'static str, String, &'static str)> {
    let lower_alnum =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let id_ok = lower_alnum(&g.id)
        || g.id
            .strip_prefix("arn:aws")
            .and_then(|rest| rest.split_once(":guardrail/"))
            .is_some_and(|(head, id)| lower_alnum(id) && head.split(':').nth(1) == Some("bedrock"));
    if !id_ok {
        return Some((
            "spec.guardrail.id",
            format!("guardrail id {:?} is neither a guardrail id nor a guardrail ARN", g.id),
            "use the guardrail's id (abc123def456) or ARN (arn:aws:bedrock:REGION:ACCOUNT:guardrail/ID)",
        ));
    }
    let digits =
        |s: &str| (1..=8).contains(&s.len()) && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit());
    if g.version != "DRAFT" && !digits(&g.version) {
        return Some((
            "spec.guardrail.version",
            format!("guardrail version {:?} is not a version", g.version),
            "use a published version number (1, 2, ...) or DRAFT",
        ));
    }
    None
}
