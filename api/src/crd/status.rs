//! Status shared by every kind: `observedGeneration` and standard `metav1.Condition`s.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type present on every object once the operator has looked at it.
pub const CONDITION_READY: &str = "Ready";

/// Observed state of a BedrockAccount, BedrockModel or AccessPolicy, written by the operator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The `metadata.generation` the conditions describe; older than `metadata.generation` means
    /// the operator has not processed the latest change yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Current state of the object. `Ready` is always present, with a reason and a message that
    /// says what to fix when it is `False`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
