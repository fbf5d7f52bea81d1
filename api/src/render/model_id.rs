//! Bedrock model identifiers: checking their shape and inferring the API kind from them.

use crate::config::ModelKind;

/// Prefixes of cross-region (system-defined) inference profile ids.
const GEO_PREFIXES: [&str; 8] = ["us", "eu", "apac", "jp", "au", "ca", "us-gov", "global"];

/// Resource types a Bedrock ARN may name as a model.
const ARN_RESOURCE_TYPES: [&str; 9] = [
    "foundation-model",
    "inference-profile",
    "application-inference-profile",
    "provisioned-model",
    "custom-model",
    "imported-model",
    "custom-model-deployment",
    "prompt",
    "prompt-router",
];

/// Checks that `id` is a base model id (`anthropic.claude-3-7-sonnet-20250219-v1:0`), a
/// cross-region inference profile id (`us.` + base id) or a Bedrock ARN; the error says why not.
pub fn validate_model_id(id: &str) -> Result<(), String> {
    if id.starts_with("arn:") {
        return validate_arn(id);
    }
    let Some((first, rest)) = id.split_once('.') else {
        return Err("expected provider.model (e.g. amazon.nova-lite-v1:0)".to_string());
    };
    if GEO_PREFIXES.contains(&first) {
        return validate_base_id(rest).map_err(|e| format!("after the {first}. profile prefix, {e}"));
    }
    validate_base_id(id)
}

/// `provider.model...`: lower-case letters, digits, `-` in the provider; the model part may also
/// hold `.`, `_` and `:` (version suffixes like `-v1:0` or `:0:200k`).
fn validate_base_id(id: &str) -> Result<(), String> {
    let Some((provider, model)) = id.split_once('.') else {
        return Err("expected provider.model (e.g. amazon.nova-lite-v1:0)".to_string());
    };
    let provider_ok = provider.starts_with(|c: char| c.is_ascii_lowercase())
        && provider.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !provider_ok {
        return Err(format!("provider {provider:?} must be lower-case letters, digits or -"));
    }
    let model_ok = model.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && model.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._:".contains(c));
    if !model_ok {
        return Err(format!("model {model:?} must be lower-case letters, digits, -, ., _ or :"));
    }
    Ok(())
}

/// `arn:aws[-cn|-us-gov]:bedrock:<region>:<account?>:<resource-type>/<id>`.
fn validate_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = parts.as_slice() else {
        return Err("expected arn:aws:bedrock:<region>:<account>:<resource-type>/<id>".to_string());
    };
    if !matches!(*partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(format!("partition {partition:?} must be aws, aws-cn or aws-us-gov"));
    }
    if *service != "bedrock" {
        return Err(format!("service {service:?} must be bedrock"));
    }
    if region.is_empty() || !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("region {region:?} is not an AWS region"));
    }
    if !(account.is_empty() || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))) {
        return Err(format!("account {account:?} must be empty or 12 digits"));
    }
    let Some((kind, resource_id)) = resource.split_once('/') else {
        return Err("expected <resource-type>/<id> after the account".to_string());
    };
    if !ARN_RESOURCE_TYPES.contains(&kind) {
        return Err(format!("resource type {kind:?} must be one of {}", ARN_RESOURCE_TYPES.join(", ")));
    }
    if resource_id.is_empty() || resource_id.chars().any(|c| c.is_whitespace()) {
        return Err("the resource id after / is empty or has spaces".to_string());
    }
    Ok(())
}

/// The kind a model id implies: embedding for `embed`, image for image generators, else chat.
pub fn infer_kind(id: &str) -> ModelKind {
    let id = id.to_ascii_lowercase();
    if id.contains("embed") {
        ModelKind::Embedding
    } else if ["image", "canvas", "stability.", "titan-image"].iter().any(|m| id.contains(m)) {
        ModelKind::Image
    } else {
        ModelKind::Chat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_base_ids_profiles_and_arns() {
        for id in [
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "amazon.nova-lite-v1:0",
            "meta.llama3-1-70b-instruct-v1:0",
            "amazon.titan-embed-text-v1:2:8k",
            "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "apac.amazon.nova-pro-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456",
            "arn:aws-cn:bedrock:cn-north-1:123456789012:provisioned-model/xyz",
            "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:inference-profile/us-gov.meta.llama3-8b-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/amazon.titan-text-express-v1:0:8k/abc",
        ] {
            assert_eq!(validate_model_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn rejects_other_shapes_with_a_reason() {
        let cases = [
            ("claude-3-sonnet", "expected provider.model (e.g. amazon.nova-lite-v1:0)"),
            (
                "us.claude",
                "after the us. profile prefix, expected provider.model (e.g. amazon.nova-lite-v1:0)",
            ),
            ("Anthropic.claude", "provider \"Anthropic\" must be lower-case letters, digits or -"),
            ("amazon.nova lite", "model \"nova lite\" must be lower-case letters, digits, -, ., _ or :"),
            ("arn:aws:s3:us-east-1:123456789012:bucket/x", "service \"s3\" must be bedrock"),
            (
                "arn:aws:bedrock:us-east-1:12345:inference-profile/x",
                "account \"12345\" must be empty or 12 digits",
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:agent/x",
                "resource type \"agent\" must be one of foundation-model, inference-profile, application-inference-profile, provisioned-model, custom-model, imported-model, custom-model-deployment, prompt, prompt-router",
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:prompt/",
                "the resource id after / is empty or has spaces",
            ),
            ("arn:aws:bedrock", "expected arn:aws:bedrock:<region>:<account>:<resource-type>/<id>"),
        ];
        for (id, reason) in cases {
            assert_eq!(validate_model_id(id), Err(reason.to_string()), "{id}");
        }
    }

    #[test]
    fn infers_kind_from_id() {
        assert_eq!(infer_kind("amazon.titan-embed-text-v2:0"), ModelKind::Embedding);
        assert_eq!(infer_kind("cohere.embed-english-v3"), ModelKind::Embedding);
        assert_eq!(infer_kind("amazon.titan-image-generator-v2:0"), ModelKind::Image);
        assert_eq!(infer_kind("amazon.nova-canvas-v1:0"), ModelKind::Image);
        assert_eq!(infer_kind("stability.sd3-large-v1:0"), ModelKind::Image);
        assert_eq!(infer_kind("us.anthropic.claude-3-7-sonnet-20250219-v1:0"), ModelKind::Chat);
    }
}
