//! `podIdentity`: the proxy pod's own AWS identity, found the way the AWS SDKs find it.
//!
//! In order: IRSA web identity (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`; the token file is
//! read again on every refresh because kubelet rotates it; AssumeRoleWithWebIdentity goes to the
//! account's regional STS endpoint or `spec.endpoints.sts`), then EKS Pod Identity and ECS task
//! roles (`AWS_CONTAINER_CREDENTIALS_FULL_URI` / `_RELATIVE_URI`, token from
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, through aws-config's container provider), then the
//! EC2 instance metadata service (aws-config's IMDS provider) unless `AWS_EC2_METADATA_DISABLED`.

use std::fmt;
use std::path::PathBuf;

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::Why;
use super::sts::{StsEndpoint, explain, into_credentials};

/// Role session name of IRSA sessions when `AWS_ROLE_SESSION_NAME` is not set.
pub const DEFAULT_SESSION_NAME: &str = "bedrock-gateway";

/// The environment variables that say where the pod's identity comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodIdentityEnv {
    /// `AWS_ROLE_ARN`: the IRSA role.
    pub role_arn: Option<String>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`: the projected service account token.
    pub web_identity_token_file: Option<PathBuf>,
    /// `AWS_ROLE_SESSION_NAME`.
    pub role_session_name: Option<String>,
    /// `BGW_WEB_IDENTITY_DURATION_SECONDS`: lifetime asked for IRSA sessions (STS's default, one
    /// hour, when unset; AWS accepts 900 up to the role's maximum).
    pub web_identity_duration_seconds: Option<u32>,
    /// `AWS_CONTAINER_CREDENTIALS_FULL_URI` or `_RELATIVE_URI` is set (EKS Pod Identity, ECS).
    pub container: bool,
    /// `AWS_EC2_METADATA_DISABLED=true`.
    pub imds_disabled: bool,
}

impl PodIdentityEnv {
    /// Reads the variables from the process environment.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        PodIdentityEnv {
            role_arn: var("AWS_ROLE_ARN"),
            web_identity_token_file: var("AWS_WEB_IDENTITY_TOKEN_FILE").map(PathBuf::from),
            role_session_name: var("AWS_ROLE_SESSION_NAME"),
            web_identity_duration_seconds: var("BGW_WEB_IDENTITY_DURATION_SECONDS")
                .and_then(|v| v.parse().ok()),
            container: var("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
                || var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some(),
            imds_disabled: var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

/// The pod identity source chosen from the environment.
pub(crate) enum PodIdentity {
    /// IRSA: AssumeRoleWithWebIdentity with the projected token.
    WebIdentity {
        /// Role in `AWS_ROLE_ARN`.
        role_arn: String,
        /// Token file, read on every fetch.
        token_file: PathBuf,
        /// Role session name.
        session_name: String,
        /// Requested session lifetime.
        duration_seconds: Option<u32>,
        /// Where STS is.
        endpoint: StsEndpoint,
        /// Unsigned STS client.
        client: aws_sdk_sts::Client,
    },
    /// EKS Pod Identity agent or ECS task role endpoint.
    Container(Box<EcsCredentialsProvider>),
    /// EC2 instance role.
    InstanceMetadata(Box<ImdsCredentialsProvider>),
    /// Nothing configured.
    None,
}

impl PodIdentity {
    /// Picks the first source the environment configures.
    pub(crate) fn new(env: &PodIdentityEnv, endpoint: StsEndpoint, http: &SharedHttpClient) -> Self {
        if let (Some(role_arn), Some(token_file)) = (&env.role_arn, &env.web_identity_token_file) {
            return PodIdentity::WebIdentity {
                role_arn: role_arn.clone(),
                token_file: token_file.clone(),
                session_name: env
                    .role_session_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
                duration_seconds: env.web_identity_duration_seconds,
                client: endpoint.client(http, None),
                endpoint,
            };
        }
        let config = ProviderConfig::without_region().with_http_client(http.clone());
        if env.container {
            return PodIdentity::Container(Box::new(
                EcsCredentialsProvider::builder().configure(&config).build(),
            ));
        }
        if env.imds_disabled {
            return PodIdentity::None;
        }
        PodIdentity::InstanceMetadata(Box::new(ImdsCredentialsProvider::builder().configure(&config).build()))
    }

    /// Fresh credentials from the source.
    pub(crate) async fn fetch(&self) -> Result<Credentials, Why> {
        match self {
            PodIdentity::WebIdentity {
                role_arn,
                token_file,
                session_name,
                duration_seconds,
                endpoint,
                client,
            } => {
                let token = tokio::fs::read_to_string(token_file).await.map_err(|e| {
                    Why::unavailable(format!(
                        "the web identity token file {} (AWS_WEB_IDENTITY_TOKEN_FILE) cannot be read: {e}",
                        token_file.display()
                    ))
                })?;
                let output = client
                    .assume_role_with_web_identity()
                    .role_arn(role_arn)
                    .role_session_name(session_name)
                    .web_identity_token(token.trim())
                    .set_duration_seconds(duration_seconds.map(|s| i32::try_from(s).unwrap_or(i32::MAX)))
                    .send()
                    .await
                    .map_err(|e| {
                        explain(
                            "AssumeRoleWithWebIdentity",
                            role_arn,
                            endpoint,
                            &e,
                            "check the role's trust policy names the cluster's OIDC provider and this service account",
                        )
                    })?;
                into_credentials(output.credentials, "IrsaWebIdentity")
            }
            PodIdentity::Container(provider) => provider.provide_credentials().await.map_err(|e| {
                Why::unavailable(format!(
                    "the container credentials endpoint (EKS Pod Identity agent or ECS) failed: {}",
                    DisplayErrorContext(&e)
                ))
            }),
            PodIdentity::InstanceMetadata(provider) => provider.provide_credentials().await.map_err(|e| {
                Why::unavailable(format!(
                    "no pod identity is configured (no IRSA or EKS Pod Identity variables) and the \
                     instance metadata service gave no credentials: {}",
                    DisplayErrorContext(&e)
                ))
            }),
            PodIdentity::None => Err(Why::unavailable(
                "no pod identity is configured: set up IRSA (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE) or \
                 EKS Pod Identity for the proxy's service account",
            )),
        }
    }
}

impl fmt::Display for PodIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PodIdentity::WebIdentity { role_arn, endpoint, .. } => {
                write!(f, "IRSA web identity ({role_arn} via {})", endpoint.url)
            }
            PodIdentity::Container(_) => f.write_str("container credentials (EKS Pod Identity / ECS)"),
            PodIdentity::InstanceMetadata(_) => f.write_str("instance metadata"),
            PodIdentity::None => f.write_str("no pod identity"),
        }
    }
}
