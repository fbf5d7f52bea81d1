//! Status of every kind, written by the operator: `observedGeneration`, standard `metav1.Condition`s
//! and what the operator learnt from AWS (verified identity, regions, underlying models).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type present on every object once the operator has looked at it.
pub const CONDITION_READY: &str = "Ready";
/// BedrockAccount condition: sts:GetCallerIdentity (or, for API keys, a Bedrock call) succeeded
/// with the account's own credentials.
pub const CONDITION_CREDENTIALS_VERIFIED: &str = "CredentialsVerified";
/// BedrockAccount condition: what ListFoundationModels shows in each region the account uses.
pub const CONDITION_MODEL_ACCESS: &str = "ModelAccess";
/// BedrockModel condition: the account can see the model (or inference profile) in its region.
pub const CONDITION_REACHABLE: &str = "Reachable";
/// AccessPolicy condition: every model glob matches at least one served model.
pub const CONDITION_MODELS_MATCHED: &str = "ModelsMatched";
/// AccessPolicy condition: every user and team subject is known from an API key Secret or an
/// account collaborator.
pub const CONDITION_SUBJECTS_MATCHED: &str = "SubjectsMatched";

/// Access to `metadata.generation`-tracking status fields shared by every kind.
pub trait ObjectStatus {
    /// The generation the status describes.
    fn observed_generation(&self) -> Option<i64>;
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// The conditions, to replace them.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

/// Implements [`ObjectStatus`] for a status struct with `observed_generation` and `conditions`.
macro_rules! object_status {
    ($($status:ty),*) => {$(
        impl ObjectStatus for $status {
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
        }
    )*};
}
object_status!(AccountStatus, ModelStatus, PolicyStatus);

/// Observed state of a BedrockAccount.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The `metadata.generation` the conditions describe; older than `metadata.generation` means
    /// the operator has not processed the latest change yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (usable by the proxy), CredentialsVerified (sts:GetCallerIdentity with the account's
    /// own credentials) and ModelAccess (ListFoundationModels per region); a False condition's
    /// message says what to fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// ARN of the identity AWS saw when the credentials were verified (no secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_arn: Option<String>,
    /// Foundation models and inference profiles the account can list in the regions it uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovered_models: Option<u32>,
    /// Models served through spec.discovery (after the include globs), as <account>/<model id>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_discovered_models: Option<u32>,
}

/// Observed state of a BedrockModel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (served by the proxy) and Reachable (the account can see the model in its region).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Name OpenAI clients use, <accountRef>/<metadata.name>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_name: Option<String>,
    /// Region the calls go to (spec.region or the account's defaultRegion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// For inference profiles and ARNs: the foundation model behind them (GetInferenceProfile),
    /// which decides capabilities and the built-in price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlying_model_id: Option<String>,
}

/// Observed state of an AccessPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (in force), ModelsMatched and SubjectsMatched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Model globs of spec.models that match no served model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched_models: Vec<String>,
    /// User and team subjects that no API key Secret or account collaborator names
    /// (OIDC callers are not known to the operator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmatched_subjects: Vec<String>,
}
