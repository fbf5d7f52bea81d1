//! The AWS SDK plumbing shared by the STS-backed providers: one HTTPS client (hyper 1 and rustls
//! with ring, the proxy's own stack), STS clients for a region and endpoint, and STS errors
//! turned into messages that say what to fix.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_sdk_sts::config::{Region, SharedCredentialsProvider};
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use super::Why;

/// The SDK's HTTPS client: rustls with ring (the default would add aws-lc-rs as a second provider).
pub(crate) fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// Where and how to reach STS for one region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct StsEndpoint {
    /// Signing region.
    pub region: String,
    /// Endpoint URL with `{region}` already replaced.
    pub url: String,
}

impl StsEndpoint {
    /// The account's STS endpoint template (regional by default) for `region`.
    pub(crate) fn new(template: &str, region: &str) -> Self {
        StsEndpoint { region: region.to_owned(), url: api::config::Endpoints::for_region(template, region) }
    }

    /// An STS client for this endpoint; `credentials` sign its calls (none for web identity).
    pub(crate) fn client(
        &self,
        http: &SharedHttpClient,
        credentials: Option<Credentials>,
    ) -> aws_sdk_sts::Client {
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .endpoint_url(self.url.clone())
            .http_client(http.clone())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            );
        if let Some(credentials) = credentials {
            config = config.credentials_provider(SharedCredentialsProvider::new(credentials));
        }
        aws_sdk_sts::Client::from_conf(config.build())
    }
}

/// Explains a failed STS call: AWS's error code and message when STS answered, the transport
/// error otherwise; `denied_hint` is appended when STS denied the call.
pub(crate) fn explain<E>(
    operation: &str,
    role_arn: &str,
    endpoint: &StsEndpoint,
    err: &SdkError<E>,
    denied_hint: &str,
) -> Why
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let status = service.raw().status().as_u16();
            // AWS's code and message when the error body has them, the HTTP status otherwise.
            let reason = match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_owned(),
                (None, _) => format!("HTTP {status}"),
            };
            if e.code().is_some_and(is_denial) || status == 403 {
                Why::unavailable(format!("{operation} on {role_arn} was denied ({reason}): {denied_hint}"))
            } else {
                Why::unavailable(format!("{operation} on {role_arn} failed ({reason})"))
            }
        }
        other => Why::unavailable(format!(
            "{operation} on {role_arn} failed: STS at {} could not be reached ({})",
            endpoint.url,
            DisplayErrorContext(other)
        )),
    }
}

fn is_denial(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied" | "AccessDeniedException" | "InvalidIdentityToken" | "ExpiredTokenException"
    )
}

/// Turns STS's credentials into the SDK type, keeping the expiry.
pub(crate) fn into_credentials(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    provider: &'static str,
) -> Result<Credentials, Why> {
    let c = credentials.ok_or_else(|| Why::unavailable("STS answered without credentials"))?;
    let expiry = std::time::SystemTime::try_from(c.expiration)
        .map_err(|_| Why::unavailable("STS answered credentials with an invalid expiration"))?;
    Ok(Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), Some(expiry), provider))
}
