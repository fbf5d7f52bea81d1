//! AWS credentials of an account (static keys, the pod's default chain, an assumed role) and
//! sts:GetCallerIdentity with them, against the account's STS endpoint.

use std::error::Error as _;

use api::config::{Account, AccountAuth, AccountSecret, Endpoints};
use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_types::SdkConfig;
use aws_types::region::Region;

use super::facts::{AwsFailure, Identity};

/// The account's credentials: static keys, or resolved through STS for podIdentity and assumeRole.
pub(super) async fn credentials(
    http: &SharedHttpClient,
    pod_identity: Option<&SharedCredentialsProvider>,
    account: &Account,
    secret: Option<&AccountSecret>,
) -> Result<Credentials, AwsFailure> {
    match (&account.auth, secret) {
        (
            AccountAuth::AccessKey,
            Some(AccountSecret::AccessKey { access_key_id, secret_access_key, session_token }),
        ) => Ok(Credentials::new(
            access_key_id.expose(),
            secret_access_key.expose(),
            session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "bedrock-gateway-account",
        )),
        (AccountAuth::PodIdentity, _) => {
            let config = sdk_config(http, pod_identity, account).await;
            let provider = config.credentials_provider().ok_or_else(|| {
                AwsFailure::rejected("NoCredentials", "the operator pod has no AWS identity")
            })?;
            provider.provide_credentials().await.map_err(|e| credentials_failure(&e))
        }
        (AccountAuth::AssumeRole { role_arn, external_id, session_name, duration_seconds }, _) => {
            let config = sdk_config(http, pod_identity, account).await;
            let mut builder =
                AssumeRoleProvider::builder(role_arn).session_name(session_name).configure(&config);
            if let Some(external_id) = external_id {
                builder = builder.external_id(external_id);
            }
            if let Some(seconds) = duration_seconds {
                builder = builder.session_length(std::time::Duration::from_secs(u64::from(*seconds)));
            }
            let provider = builder.build().await;
            provider.provide_credentials().await.map_err(|e| credentials_failure(&e))
        }
        _ => Err(AwsFailure::rejected("NoCredentials", "the account's Secret holds no access key")),
    }
}

/// sts:GetCallerIdentity with `credentials` at the account's STS endpoint.
pub(super) async fn caller_identity(
    http: &SharedHttpClient,
    account: &Account,
    credentials: Credentials,
) -> Result<Identity, AwsFailure> {
    let region = account.default_region.clone();
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.clone()))
        .endpoint_url(Endpoints::for_region(&account.endpoints.sts, &region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(http.clone())
        .build();
    let output = aws_sdk_sts::Client::from_conf(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| sdk_failure(&e))?;
    Ok(Identity {
        arn: output.arn().unwrap_or_default().to_string(),
        account: output.account().unwrap_or_default().to_string(),
    })
}

/// SDK config for the account's region and STS endpoint; its credentials are `pod_identity` or
/// else the pod's default chain.
async fn sdk_config(
    http: &SharedHttpClient,
    pod_identity: Option<&SharedCredentialsProvider>,
    account: &Account,
) -> SdkConfig {
    let region = account.default_region.clone();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.clone()))
        .endpoint_url(Endpoints::for_region(&account.endpoints.sts, &region))
        .http_client(http.clone());
    if let Some(provider) = pod_identity {
        loader = loader.credentials_provider(provider.clone());
    }
    loader.load().await
}

/// AWS's code and message from an SDK error; no answer at all is `Unreachable`.
fn sdk_failure<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> AwsFailure {
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("Unknown").to_string();
            let message = err.message().unwrap_or_default().to_string();
            if code.contains("Throttl")
                || code.contains("ServiceUnavailable")
                || code.contains("InternalFailure")
            {
                AwsFailure::unreachable(code, message)
            } else {
                AwsFailure::rejected(code, message)
            }
        }
        other => AwsFailure::unreachable("ConnectionError", DisplayErrorContext(other).to_string()),
    }
}

/// The reason a credentials provider failed: AWS's answer to AssumeRole when there was one.
fn credentials_failure(error: &CredentialsError) -> AwsFailure {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(sdk) = cause.downcast_ref::<SdkError<AssumeRoleError>>() {
            let failure = sdk_failure(sdk);
            return AwsFailure { message: format!("sts:AssumeRole: {}", failure.message), ..failure };
        }
        source = cause.source();
    }
    match error {
        CredentialsError::CredentialsNotLoaded(_) => AwsFailure::rejected(
            "NoCredentials",
            "no AWS identity found for the operator pod (IRSA, EKS Pod Identity or instance role)",
        ),
        CredentialsError::InvalidConfiguration(_) => {
            AwsFailure::rejected("InvalidConfiguration", DisplayErrorContext(error).to_string())
        }
        _ => AwsFailure::unreachable("ConnectionError", DisplayErrorContext(error).to_string()),
    }
}
