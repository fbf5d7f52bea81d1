//! `BedrockAccount`: one AWS account (and identity) that Bedrock calls are made with.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::AccountStatus;

/// A Bedrock account; its name is the first half of every served model name (`<account>/<model>`).
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bedrockgateway.io",
    version = "v1alpha1",
    kind = "BedrockAccount",
    namespaced,
    status = "AccountStatus",
    shortname = "bra",
    category = "bedrock-gateway",
    doc = "A Bedrock account: region, AWS identity and endpoints used to call Bedrock. Its name is the \
           first half of every served model name (<account>/<model>) and must be unique in the cluster.",
    printcolumn = r#"{"name": "Region", "type": "string", "jsonPath": ".spec.defaultRegion", "description": "Default region"}"#,
    printcolumn = r#"{"name": "Auth", "type": "string", "jsonPath": ".spec.auth", "description": "How the gateway authenticates"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Whether the account is usable"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BedrockAccountSpec {
    /// AWS region used for models that name none, e.g. us-east-1.
    pub default_region: String,
    /// How the gateway obtains AWS credentials for this account: exactly one of podIdentity,
    /// assumeRole, accessKey or apiKey.
    pub auth: AccountAuthSpec,
    /// Endpoint overrides (VPC endpoints, simulators); "{region}" is replaced per request. Each
    /// omitted endpoint uses the public AWS endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointsSpec>,
    /// S3 location and service role used by /v1/files and /v1/batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchSpec>,
    /// Serve every model the account can invoke ("Select all"), optionally filtered by globs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoverySpec>,
    /// People and teams with rights on this account: managers may add, edit and remove its models;
    /// users may call them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collaborators: Vec<CollaboratorSpec>,
}

/// How the gateway authenticates to AWS for this account; exactly one field is set.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new(
    "(has(self.podIdentity) ? 1 : 0) + (has(self.assumeRole) ? 1 : 0) + (has(self.accessKey) ? 1 : 0) + (has(self.apiKey) ? 1 : 0) == 1"
).message("auth must set exactly one of podIdentity, assumeRole, accessKey or apiKey"))]
#[serde(rename_all = "camelCase")]
pub struct AccountAuthSpec {
    /// Use the proxy pod's own AWS identity: IRSA web identity, EKS Pod Identity or the instance role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentitySpec>,
    /// Assume an IAM role, chained from the pod identity; the role's trust policy must name the
    /// gateway's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRoleSpec>,
    /// Static AWS access keys read from a Secret (keys accessKeyId, secretAccessKey and optional
    /// sessionToken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<AccessKeySpec>,
    /// A Bedrock long-term API key read from a Secret, sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeySpec>,
}

/// Marker for pod-identity auth; it has no settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PodIdentitySpec {}

/// Role to assume from the pod identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRoleSpec {
    /// ARN of the role, e.g. arn:aws:iam::123456789012:role/bedrock-invoke.
    pub role_arn: String,
    /// External id required by the role's trust policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Role session name shown in CloudTrail; default bedrock-gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// Lifetime of the assumed-role session in seconds (900 to the role's maximum, at most 43200);
    /// default 3600. The gateway refreshes the session before it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 900, max = 43200))]
    pub duration_seconds: Option<u32>,
}

/// Static access keys from a Secret in the account's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeySpec {
    /// Secret holding accessKeyId, secretAccessKey and optionally sessionToken.
    pub secret_ref: SecretRef,
}

/// Bedrock API key from a Secret in the account's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeySpec {
    /// Secret and key holding the Bedrock API key.
    pub secret_ref: SecretKeyRef,
}

/// A Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

/// One key of a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key inside the Secret; default apiKey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Endpoint templates; "{region}" is replaced by the call's region.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EndpointsSpec {
    /// bedrock-runtime endpoint; default https://bedrock-runtime.{region}.amazonaws.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Bedrock control-plane endpoint; default https://bedrock.{region}.amazonaws.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// STS endpoint; default https://sts.{region}.amazonaws.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts: Option<String>,
    /// S3 endpoint; default https://s3.{region}.amazonaws.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<String>,
}

/// Where batch input and output files live and which role Bedrock uses to read them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchSpec {
    /// S3 bucket for uploaded files and batch results.
    pub bucket: String,
    /// Key prefix inside the bucket, e.g. gateway/.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Service role Bedrock assumes to run batch jobs.
    pub role_arn: String,
}

/// Automatic serving of every model the account can invoke.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DiscoverySpec {
    /// Serve every model and inference profile the account can invoke.
    #[serde(default)]
    pub enabled: bool,
    /// Globs over model and inference-profile ids to serve, e.g. anthropic.*; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

/// A user or team with a role on the account; set exactly one of user and team.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("has(self.user) != has(self.team)").message("a collaborator sets exactly one of user or team"))]
#[serde(rename_all = "camelCase")]
pub struct CollaboratorSpec {
    /// User name, e.g. alice@example.com.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Team name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// manager: may add, edit and remove the account's models; user: may call them.
    pub role: CollaboratorRole,
}

/// What a collaborator may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum CollaboratorRole {
    /// May add, edit and remove the account's models.
    Manager,
    /// May call the account's models.
    User,
}
