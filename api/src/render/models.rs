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
        let (Some(account), true) = (account, id_ok) else { continue };
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
            },
        );
    }
    out
}
