//! The rendered `GatewayConfig`: everything a proxy needs to serve, split in two parts.
//!
//! [`GatewayConfig`] holds no secret material and goes into the ConfigMap `<release>-config`;
//! [`Credentials`] holds account keys and caller-key hashes and goes into the Secret
//! `<release>-credentials`. [`Rendered`] is the pair, produced by [`crate::render::render`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Current version of the rendered document; the proxy refuses other versions.
pub const CONFIG_VERSION: u32 = 1;

/// Data key of [`GatewayConfig`] (JSON) in ConfigMap `<release>-config`, and its file name in the
/// proxy's `--config-dir`.
pub const CONFIG_FILE: &str = "config.json";

/// `binaryData` key of [`GatewayConfig`] as gzip-compressed JSON in ConfigMap `<release>-config`
/// (the form the operator writes: see [`crate::gzip`]), and its file name in `--config-dir`.
pub const CONFIG_GZ_FILE: &str = "config.json.gz";

/// Data key of [`Credentials`] (JSON) in Secret `<release>-credentials`, and its file name in the
/// proxy's `--config-dir`.
pub const CREDENTIALS_FILE: &str = "credentials.json";

/// Annotation on both objects carrying the hash of the rendered content.
pub const CONFIG_HASH_ANNOTATION: &str = "bedrockgateway.io/config-hash";

/// The pair `render` produces: the public config and the secrets beside it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// Non-secret configuration (ConfigMap).
    pub config: GatewayConfig,
    /// Secret material (Secret).
    pub credentials: Credentials,
}

/// Non-secret configuration served by every proxy replica.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfig {
    /// Document version, [`CONFIG_VERSION`].
    pub version: u32,
    /// Bedrock accounts by account name (the first half of a served model name).
    pub accounts: BTreeMap<String, Account>,
    /// Served models by served name `<account>/<model>`.
    pub models: BTreeMap<String, Model>,
    /// Access policies, in a stable order (namespace, name).
    pub policies: Vec<Policy>,
}

/// One Bedrock account as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// Account name (BedrockAccount `metadata.name`).
    pub name: String,
    /// Namespace the BedrockAccount lives in.
    pub namespace: String,
    /// Region used when a model names none.
    pub default_region: String,
    /// How the proxy obtains credentials for this account.
    pub auth: AccountAuth,
    /// Endpoint templates; `{region}` is replaced per request.
    pub endpoints: Endpoints,
    /// S3 location and service role for `/v1/files` and `/v1/batches`; absent: those answer 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
    /// Serve every model the account can invoke; present only when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Discovery>,
    /// Users and teams with a role on this account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collaborators: Vec<Collaborator>,
}

/// Where an account keeps batch files and which role Bedrock runs batch jobs with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// S3 bucket.
    pub bucket: String,
    /// Key prefix inside the bucket; may be empty.
    #[serde(default)]
    pub prefix: String,
    /// Service role Bedrock assumes for batch jobs.
    pub role_arn: String,
}

/// Automatic serving of the models an account can invoke.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// Globs over model and inference-profile ids; empty means every model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
}

/// A user or team with a role on an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collaborator {
    /// Who (a user or a team).
    pub subject: SubjectRef,
    /// What they may do.
    pub role: CollaboratorRole,
}

/// What a collaborator may do on an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CollaboratorRole {
    /// May add, edit and remove the account's models.
    Manager,
    /// May call the account's models.
    User,
}

/// How an account authenticates to AWS. Secret material lives in [`Credentials`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "type")]
pub enum AccountAuth {
    /// The proxy pod's own AWS identity (IRSA, EKS Pod Identity, instance role).
    PodIdentity,
    /// A role assumed from the pod identity.
    AssumeRole {
        /// Role to assume.
        role_arn: String,
        /// Optional external id required by the role's trust policy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        external_id: Option<String>,
        /// Role session name.
        session_name: String,
        /// Session lifetime in seconds; STS's default (3600) when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_seconds: Option<u32>,
    },
    /// Static keys; the values are in [`Credentials::accounts`].
    AccessKey,
    /// Bedrock API key (bearer); the value is in [`Credentials::accounts`].
    ApiKey,
}

/// Endpoint templates of an account; `{region}` is replaced per request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// bedrock-runtime (Converse, InvokeModel).
    pub runtime: String,
    /// bedrock control plane (models, batch jobs).
    pub control: String,
    /// STS.
    pub sts: String,
    /// S3.
    pub s3: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            runtime: "https://bedrock-runtime.{region}.amazonaws.com".into(),
            control: "https://bedrock.{region}.amazonaws.com".into(),
            sts: "https://sts.{region}.amazonaws.com".into(),
            s3: "https://s3.{region}.amazonaws.com".into(),
        }
    }
}

impl Endpoints {
    /// Replaces `{region}` in an endpoint template.
    pub fn for_region(template: &str, region: &str) -> String {
        template.replace("{region}", region)
    }
}

/// What kind of API a model serves; gates the endpoints it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModelKind {
    /// `/v1/chat/completions` through Converse.
    Chat,
    /// `/v1/embeddings` through InvokeModel.
    Embedding,
    /// `/v1/images/*` through InvokeModel.
    Image,
}

/// One served model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// Served name `<account>/<model>`.
    pub served_name: String,
    /// Account name.
    pub account: String,
    /// Namespace of the BedrockModel.
    pub namespace: String,
    /// Bedrock model id, inference profile id or ARN, as sent in the URI (before encoding).
    pub model_id: String,
    /// Region the calls go to.
    pub region: String,
    /// API kind.
    pub kind: ModelKind,
    /// Private price overrides (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
    /// Cohere `input_type` for embedding requests that send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_input_type: Option<EmbeddingInputType>,
    /// For inference profiles and ARNs: the foundation model behind them, as GetInferenceProfile
    /// reports it (filled in by the operator); decides capabilities and the built-in price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlying_model_id: Option<String>,
    /// Bedrock guardrail applied to every chat call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<Guardrail>,
    /// Models tried in order when this one stays throttled or unavailable after its retries
    /// (fallbacks of fallbacks already flattened in, each once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<Fallback>,
    /// Milliseconds Bedrock may take to start answering; the proxy's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
}

/// A fallback of a [`Model`]: another served model (or the same), in a region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Served name of the model that answers instead.
    pub served_name: String,
    /// Region it is called in.
    pub region: String,
}

/// Cohere Embed `input_type` values: the CRD's enum as is.
pub type EmbeddingInputType = crate::crd::model::EmbeddingInputType;

/// A Bedrock guardrail (same shape as the CRD's).
pub type Guardrail = crate::crd::model::GuardrailSpec;

/// Private prices of a model, overriding the built-in table (USD): the CRD's shape as is.
pub type Cost = crate::crd::model::CostSpec;

/// Who may call what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `<namespace>/<name>` of the AccessPolicy, for messages and metrics.
    pub name: String,
    /// Callers this policy applies to.
    pub subjects: Vec<SubjectRef>,
    /// Globs over served names (`prod/*`).
    pub models: Vec<String>,
    /// Per-subject limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// A subject named by a policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SubjectRef {
    /// A user name.
    User(String),
    /// A team name.
    Team(String),
    /// A Kubernetes service account.
    ServiceAccount {
        /// Namespace of the service account.
        namespace: String,
        /// Name of the service account.
        name: String,
    },
}

/// Per-subject usage limits: the CRD's shape as is.
pub type Limits = crate::crd::policy::LimitsSpec;

/// Secret material: account keys and caller-key hashes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Static credentials by account name (only `accessKey` and `apiKey` accounts).
    pub accounts: BTreeMap<String, AccountSecret>,
    /// Caller API keys, by lower-case hex SHA-256 of the key.
    pub api_keys: BTreeMap<String, ApiKeyIdentity>,
}

/// Static secret of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase", tag = "type")]
pub enum AccountSecret {
    /// AWS access key pair, optionally with a session token.
    AccessKey {
        /// Access key id.
        access_key_id: SecretString,
        /// Secret access key.
        secret_access_key: SecretString,
        /// Session token of temporary credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<SecretString>,
    },
    /// Bedrock API key sent as `Authorization: Bearer`.
    ApiKey {
        /// The key.
        api_key: SecretString,
    },
}

/// The identity an API key stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyIdentity {
    /// User name.
    pub user: String,
    /// Team names.
    #[serde(default)]
    pub teams: Vec<String>,
    /// `<namespace>/<name>` of the Secret the key came from, for audit.
    pub source: String,
}

/// A string that never prints: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Lower-case hex SHA-256 of a caller API key, the only form a key is stored in.
pub fn hash_api_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(key.as_bytes()))
}
