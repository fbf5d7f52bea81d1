//! `AccessPolicy`: which callers may use which served models, with optional limits.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::PolicyStatus;

/// Grants subjects access to served models; without a policy, nobody reaches a model.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bedrockgateway.io",
    version = "v1alpha1",
    kind = "AccessPolicy",
    namespaced,
    status = "PolicyStatus",
    shortname = "bgap",
    category = "bedrock-gateway",
    doc = "Grants users, teams and service accounts access to served models (globs over <account>/<model>), \
           with optional per-subject limits. No policy, no access.",
    printcolumn = r#"{"name": "Subjects", "type": "string", "jsonPath": ".spec.subjects", "description": "Who the policy applies to"}"#,
    printcolumn = r#"{"name": "Models", "type": "string", "jsonPath": ".spec.models", "description": "Globs over served model names"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Whether the policy is in force"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    /// Callers the policy applies to; each item names one user, team or service account.
    pub subjects: Vec<Subject>,
    /// Globs over served model names, e.g. prod/* or dev/claude-sonnet.
    pub models: Vec<String>,
    /// Limits applied to each subject separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsSpec>,
}

/// One caller identity; set exactly one of user, team or serviceAccount.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new(
    "(has(self.user) ? 1 : 0) + (has(self.team) ? 1 : 0) + (has(self.serviceAccount) ? 1 : 0) == 1"
).message("a subject sets exactly one of user, team or serviceAccount"))]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// A user name, as carried by an API key Secret or an OIDC claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A team name, as carried by an API key Secret or an OIDC claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// A Kubernetes service account calling with a projected token (audience bedrock-gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<ServiceAccountRef>,
}

/// A Kubernetes service account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ServiceAccountRef {
    /// Namespace of the service account.
    pub namespace: String,
    /// Name of the service account.
    pub name: String,
}

/// Per-subject usage limits; omitted limits are unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Tokens (input + output) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Spend in USD per day (UTC), priced with the model's cost or the built-in table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_per_day: Option<f64>,
}
