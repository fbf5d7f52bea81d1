//! `assumeRole`: STS AssumeRole chained from the pod identity, with the external id, session
//! name and duration of the account, and session tags naming the account and the gateway so
//! CloudTrail and cost reports can attribute the calls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_sts::types::Tag;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use super::Why;
use super::refresh::Refreshing;
use super::sts::{StsEndpoint, explain, into_credentials};

/// Session tag key carrying the BedrockAccount name.
pub const TAG_ACCOUNT: &str = "bedrock-gateway:account";
/// Session tag key carrying the BedrockAccount namespace.
pub const TAG_NAMESPACE: &str = "bedrock-gateway:namespace";
/// Session tag key naming the caller: always [`GATEWAY`].
pub const TAG_GATEWAY: &str = "bedrock-gateway:gateway";
/// Value of [`TAG_GATEWAY`].
pub const GATEWAY: &str = "bedrock-gateway";

/// One account's role and how to assume it.
pub(crate) struct AssumeRole {
    pub(crate) role_arn: String,
    pub(crate) external_id: Option<String>,
    pub(crate) session_name: String,
    pub(crate) duration: Option<Duration>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) endpoint: StsEndpoint,
    /// The pod identity the role is assumed from.
    pub(crate) base: Arc<Refreshing>,
    pub(crate) http: SharedHttpClient,
}

impl AssumeRole {
    /// The session tags of `namespace/account`.
    pub(crate) fn tags(account: &str, namespace: &str) -> Vec<Tag> {
        [(TAG_ACCOUNT, account), (TAG_NAMESPACE, namespace), (TAG_GATEWAY, GATEWAY)]
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .filter_map(|(key, value)| Tag::builder().key(key).value(value).build().ok())
            .collect()
    }

    /// Assumes the role with the current pod identity credentials.
    pub(crate) async fn fetch(&self) -> Result<Credentials, Why> {
        let base = self.base.identity().await.map_err(|why| {
            Why::unavailable(format!(
                "the pod identity to assume {} from is unavailable: {}",
                self.role_arn, why.message
            ))
        })?;
        let base = base
            .data::<Credentials>()
            .cloned()
            .ok_or_else(|| Why::unavailable("the pod identity is not AWS credentials"))?;
        let client = self.endpoint.client(&self.http, Some(base));
        let output = client
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .set_external_id(self.external_id.clone())
            .set_duration_seconds(self.duration.map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX)))
            .set_tags(Some(self.tags.clone()))
            .send()
            .await
            .map_err(|e| {
                let hint = if self.external_id.is_some() {
                    "check that the gateway's role may call sts:AssumeRole and sts:TagSession on it, and that the \
                     role's trust policy names the gateway's role and this externalId"
                } else {
                    "check that the gateway's role may call sts:AssumeRole and sts:TagSession on it, and that the \
                     role's trust policy names the gateway's role"
                };
                explain("AssumeRole", &self.role_arn, &self.endpoint, &e, hint)
            })?;
        into_credentials(output.credentials, "BedrockGatewayAssumeRole")
    }
}

impl fmt::Display for AssumeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssumeRole {} via {} from {}", self.role_arn, self.endpoint.url, self.base.label)
    }
}
