//! What AWS said about an account: verified identity, the model catalogue per region and the
//! foundation model behind each inference profile. Plain data, produced by [`super::gather`].

use std::collections::BTreeMap;
use std::fmt;

/// One failed AWS call, with AWS's own error code and message (never a credential).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// AWS error code (`AccessDenied`, `UnrecognizedClientException`) or a transport error class.
    pub code: String,
    /// AWS's message, or the transport error.
    pub message: String,
}

/// Whether AWS answered "no" or could not be asked at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// AWS rejected the call (4xx): credentials, permissions or the identifier are wrong.
    Rejected,
    /// No answer (connection error, timeout, 5xx, throttling): retried later, not a verdict.
    Unreachable,
}

impl AwsFailure {
    /// A rejection by AWS.
    pub fn rejected(code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsFailure { kind: FailureKind::Rejected, code: code.into(), message: message.into() }
    }

    /// A call that got no usable answer.
    pub fn unreachable(code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsFailure { kind: FailureKind::Unreachable, code: code.into(), message: message.into() }
    }
}

impl fmt::Display for AwsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

/// The identity sts:GetCallerIdentity returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// ARN of the caller, e.g. `arn:aws:sts::123456789012:assumed-role/bedrock-invoke/bedrock-gateway`.
    pub arn: String,
    /// 12-digit AWS account id.
    pub account: String,
}

/// How an account's credentials were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// sts:GetCallerIdentity succeeded.
    Identity(Identity),
    /// API-key accounts have no STS identity; a ListFoundationModels call with the key succeeded.
    ApiKeyAccepted,
}

/// One entry of ListFoundationModels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundationModel {
    /// Model id, e.g. `amazon.nova-lite-v1:0`.
    pub model_id: String,
    /// Invocable on demand (not only with provisioned throughput).
    pub on_demand: bool,
}

/// One entry of ListInferenceProfiles or the answer of GetInferenceProfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferenceProfile {
    /// Profile id (`us.anthropic...`) or, for application profiles, the id at the end of the ARN.
    pub id: String,
    /// ARN of the profile.
    pub arn: String,
    /// Foundation model ids the profile routes to (from the model ARNs), first one first.
    pub model_ids: Vec<String>,
}

/// What one region lists for the account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalogue {
    /// ListFoundationModels.
    pub models: Vec<FoundationModel>,
    /// ListInferenceProfiles (all pages).
    pub profiles: Vec<InferenceProfile>,
}

impl Catalogue {
    /// True when `model_id` is a listed foundation model or inference profile id or ARN.
    pub fn lists(&self, model_id: &str) -> bool {
        self.models.iter().any(|m| m.model_id == model_id)
            || self.profiles.iter().any(|p| p.id == model_id || p.arn == model_id)
    }

    /// Foundation model ids and inference profile ids an account can invoke here, sorted.
    pub fn invocable_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .models
            .iter()
            .filter(|m| m.on_demand)
            .map(|m| m.model_id.as_str())
            .chain(self.profiles.iter().map(|p| p.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// Everything learnt about one account in one round of calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountFacts {
    /// Digest of what the facts were gathered with (auth, secret, endpoints, regions, profiles);
    /// a different digest means they are stale.
    pub fingerprint: String,
    /// The credentials check.
    pub verification: Result<Verification, AwsFailure>,
    /// The catalogue of each region the account uses (its default region and its models' regions).
    pub regions: BTreeMap<String, Result<Catalogue, AwsFailure>>,
    /// GetInferenceProfile per (region, profile id or ARN) used by the account's models.
    pub profiles: BTreeMap<(String, String), Result<InferenceProfile, AwsFailure>>,
}

impl AccountFacts {
    /// The foundation model behind `model_id` in `region`, when it is an inference profile.
    pub fn underlying_model(&self, region: &str, model_id: &str) -> Option<&str> {
        let key = (region.to_string(), model_id.to_string());
        match self.profiles.get(&key) {
            Some(Ok(profile)) => profile.model_ids.first().map(String::as_str),
            _ => None,
        }
    }
}

/// Facts of every account, by account name.
pub type Facts = BTreeMap<String, std::sync::Arc<AccountFacts>>;
