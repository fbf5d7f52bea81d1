//! `BedrockModel`: one model served as `<account>/<name>`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::ModelStatus;

/// A Bedrock model served under the name `<accountRef>/<metadata.name>`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bedrockgateway.io",
    version = "v1alpha1",
    kind = "BedrockModel",
    namespaced,
    status = "ModelStatus",
    shortname = "brm",
    category = "bedrock-gateway",
    doc = "A Bedrock model served to OpenAI clients as <accountRef>/<metadata.name>.",
    printcolumn = r#"{"name": "Account", "type": "string", "jsonPath": ".spec.accountRef", "description": "BedrockAccount the model is called through"}"#,
    printcolumn = r#"{"name": "Model ID", "type": "string", "jsonPath": ".spec.modelId", "description": "Bedrock model id, inference profile id or ARN"}"#,
    printcolumn = r#"{"name": "Region", "type": "string", "jsonPath": ".spec.region", "description": "Region override; empty means the account's default region"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Whether the model is served"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BedrockModelSpec {
    /// Name of the BedrockAccount (same namespace) the model is called through; the served name
    /// starts with it.
    pub account_ref: String,
    /// Bedrock model id (anthropic.claude-3-7-sonnet-20250219-v1:0), cross-region inference
    /// profile id (us., eu., apac., global. ...) or ARN (foundation model, inference profile,
    /// provisioned or custom model).
    pub model_id: String,
    /// Region the calls go to; default the account's defaultRegion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// API the model serves: chat, embedding or image; inferred from modelId when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<BedrockModelKind>,
    /// Private prices in USD, overriding the built-in price table for usage and budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostSpec>,
    /// Defaults for /v1/embeddings requests to this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingSpec>,
    /// Bedrock guardrail applied to every chat call of this model (Converse guardrailConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<GuardrailSpec>,
    /// Models tried, in order, when this one is still throttled or unavailable after the proxy's
    /// retries: another BedrockModel of this namespace, this model in another region, or both.
    /// A fallback's own fallbacks follow it; cycles are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<FallbackSpec>,
    /// Timeouts of calls to this model, overriding the proxy's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsSpec>,
}

/// One fallback: `model`, `region`, or both (at least one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FallbackSpec {
    /// Name of another BedrockModel in this namespace; default this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Region to call it in; default that model's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Per-model timeouts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeoutsSpec {
    /// Milliseconds Bedrock may take to start answering (response headers, and a stream's first
    /// event; a non-streaming answer arrives whole, so allow for the whole generation); default
    /// the proxy's --first-byte-timeout-ms. When it passes, the next fallback is tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub first_byte_ms: Option<u64>,
}

/// A Bedrock guardrail, as Converse's `guardrailConfig` names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuardrailSpec {
    /// Guardrail id (abc123def456) or ARN (arn:aws:bedrock:REGION:ACCOUNT:guardrail/ID).
    #[schemars(regex(
        pattern = r"^(([a-z0-9]+)|(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:guardrail/[a-z0-9]+))$"
    ))]
    pub id: String,
    /// Guardrail version: a version number (1, 2, ...) or DRAFT.
    #[schemars(regex(pattern = r"^(([1-9][0-9]{0,7})|(DRAFT))$"))]
    pub version: String,
    /// Guardrail trace in Bedrock's responses: disabled (default), enabled or enabled_full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<GuardrailTrace>,
}

/// Converse `guardrailConfig.trace` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailTrace {
    /// No trace.
    Disabled,
    /// The guardrail's assessment.
    Enabled,
    /// The assessment including content that passed.
    EnabledFull,
}

/// Defaults for embedding requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddingSpec {
    /// Cohere Embed input_type used when a request sends none (default search_document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_type: Option<EmbeddingInputType>,
}

/// Cohere Embed `input_type` values for text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingInputType {
    /// Texts stored for search.
    SearchDocument,
    /// Search queries.
    SearchQuery,
    /// Inputs of a text classifier.
    Classification,
    /// Texts to cluster.
    Clustering,
}

impl EmbeddingInputType {
    /// The wire value (`search_document`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EmbeddingInputType::SearchDocument => "search_document",
            EmbeddingInputType::SearchQuery => "search_query",
            EmbeddingInputType::Classification => "classification",
            EmbeddingInputType::Clustering => "clustering",
        }
    }
}

/// Which OpenAI endpoints a model answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BedrockModelKind {
    /// /v1/chat/completions.
    Chat,
    /// /v1/embeddings.
    Embedding,
    /// /v1/images/generations and /v1/images/edits.
    Image,
}

/// Private model prices in USD.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostSpec {
    /// USD per million input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_million_tokens: Option<f64>,
    /// USD per million output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_million_tokens: Option<f64>,
    /// USD per million tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_per_million_tokens: Option<f64>,
    /// USD per million tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_per_million_tokens: Option<f64>,
    /// USD per generated image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_image: Option<f64>,
}
