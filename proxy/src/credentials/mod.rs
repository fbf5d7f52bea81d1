//! AWS credentials of each Bedrock account, chosen by its `spec.auth`, behind one interface:
//! [`AccountCredentials::authorization`] gives what the upstream client signs a request with.
//!
//! One module per mode: [`static_keys`] (`accessKey`), [`api_key`] (`apiKey`, bearer),
//! [`pod_identity`] (`podIdentity`: IRSA, EKS Pod Identity, ECS, instance role) and
//! [`assume_role`] (`assumeRole`, chained from the pod identity). Temporary credentials live in a
//! [`refresh`] cache refreshed off the request path. The [`Registry`] outlives config reloads so
//! a reload keeps warm caches for unchanged accounts; static keys and API keys are rebuilt from
//! the reloaded Secret, which is how rotation takes effect. Nothing here prints a secret.

pub mod api_key;
pub mod assume_role;
pub mod metrics;
pub mod pod_identity;
pub mod refresh;
pub mod static_keys;
pub mod sts;

pub(crate) use sts::http_client as sdk_http_client;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use api::config::{Account, AccountAuth, AccountSecret};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::identity::Identity;
use http::HeaderValue;

use crate::error::ApiError;
use assume_role::AssumeRole;
pub use metrics::CredentialMetrics;
use pod_identity::PodIdentity;
pub use pod_identity::PodIdentityEnv;
use refresh::Refreshing;
use sts::StsEndpoint;

/// Why credentials cannot be had; the message names what failed and what to fix, never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why {
    /// Human-readable reason.
    pub message: Arc<str>,
}

impl Why {
    /// A reason.
    pub fn unavailable(message: impl Into<Arc<str>>) -> Self {
        Why { message: message.into() }
    }
}

/// Where temporary credentials come from.
pub(crate) enum Source {
    /// The pod's own identity.
    PodIdentity(PodIdentity),
    /// A role assumed from the pod identity.
    AssumeRole(AssumeRole),
}

impl Source {
    async fn fetch(&self) -> Result<Credentials, Why> {
        match self {
            Source::PodIdentity(p) => p.fetch().await,
            Source::AssumeRole(r) => r.fetch().await,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::PodIdentity(p) => p.fmt(f),
            Source::AssumeRole(r) => r.fmt(f),
        }
    }
}

/// What one request is authenticated with.
#[derive(Clone)]
pub enum Authorization {
    /// SigV4 with these credentials (they carry their session token, if any).
    SigV4(Identity),
    /// `Authorization: Bearer` value, marked sensitive.
    Bearer(HeaderValue),
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Authorization::SigV4(_) => "SigV4(<redacted>)",
            Authorization::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

#[derive(Clone)]
enum Kind {
    Static(Identity),
    Bearer(HeaderValue),
    Refreshing(Arc<Refreshing>),
    Unavailable(Why),
}

/// The credentials of one account: cheap to clone, shared by every route of the account.
#[derive(Clone)]
pub struct AccountCredentials {
    account: Arc<str>,
    kind: Kind,
}

impl fmt::Debug for AccountCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Static(_) => "static keys <redacted>".to_owned(),
            Kind::Bearer(_) => "Bedrock API key <redacted>".to_owned(),
            Kind::Refreshing(r) => format!("{} (refreshing)", r.label),
            Kind::Unavailable(why) => format!("unavailable: {}", why.message),
        };
        write!(f, "AccountCredentials({}: {kind})", self.account)
    }
}

impl AccountCredentials {
    /// Static SigV4 keys.
    pub fn static_keys(
        account: &str,
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Self {
        let identity = static_keys::identity(access_key_id, secret_access_key, session_token);
        AccountCredentials { account: account.into(), kind: Kind::Static(identity) }
    }

    /// A Bedrock API key; unavailable (with the reason) when it cannot be sent in a header.
    pub fn api_key(account: &str, key: &str) -> Self {
        let kind = match api_key::bearer(key) {
            Some(value) => Kind::Bearer(value),
            None => Kind::Unavailable(Why::unavailable(
                "its Bedrock API key contains characters not allowed in an HTTP header",
            )),
        };
        AccountCredentials { account: account.into(), kind }
    }

    /// Credentials that cannot be used, with the reason every call of the account reports.
    pub fn unavailable(account: &str, why: impl Into<Arc<str>>) -> Self {
        AccountCredentials { account: account.into(), kind: Kind::Unavailable(Why::unavailable(why)) }
    }

    /// The account these credentials belong to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// What to sign the next request with. Waits only for an account's very first temporary
    /// credentials; otherwise answers at once, with a 503 naming the account and the reason
    /// when there are no valid credentials.
    pub async fn authorization(&self) -> Result<Authorization, ApiError> {
        match &self.kind {
            Kind::Static(identity) => Ok(Authorization::SigV4(identity.clone())),
            Kind::Bearer(value) => Ok(Authorization::Bearer(value.clone())),
            Kind::Refreshing(cache) => {
                cache.identity().await.map(Authorization::SigV4).map_err(|why| self.error(&why))
            }
            Kind::Unavailable(why) => Err(self.error(why)),
        }
    }

    fn error(&self, why: &Why) -> ApiError {
        ApiError::unavailable(format!(
            "The gateway has no AWS credentials for account `{}`: {}",
            self.account, why.message
        ))
        .with_code("aws_credentials_unavailable")
    }
}

/// The SDK's view of the same credentials, for the S3 client of `/v1/files` and `/v1/batches`:
/// every call takes the current keys from the account's cache. A Bedrock API key signs no S3
/// call, so those accounts fail here (callers check [`AccountCredentials::sigv4`] first to
/// answer a clear 400).
impl aws_credential_types::provider::ProvideCredentials for AccountCredentials {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        use aws_credential_types::provider::error::CredentialsError;
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            match self.authorization().await {
                Ok(Authorization::SigV4(identity)) => identity
                    .data::<Credentials>()
                    .cloned()
                    .ok_or_else(|| CredentialsError::not_loaded("the identity carries no AWS keys")),
                Ok(Authorization::Bearer(_)) => {
                    Err(CredentialsError::not_loaded("a Bedrock API key cannot sign S3 requests"))
                }
                Err(e) => Err(CredentialsError::not_loaded(e.message)),
            }
        })
    }
}

impl AccountCredentials {
    /// Whether the account signs with SigV4 (AWS keys), which S3 and the Bedrock control plane's
    /// batch calls need; `false` for a Bedrock API key.
    pub fn sigv4(&self) -> bool {
        !matches!(self.kind, Kind::Bearer(_))
    }
}

/// Identifies a temporary-credentials cache: the same key across reloads reuses the cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    PodIdentity(StsEndpoint),
    AssumeRole {
        account: String,
        namespace: String,
        role_arn: String,
        external_id: Option<String>,
        session_name: String,
        duration_seconds: Option<u32>,
        endpoint: StsEndpoint,
    },
}

/// Makes [`AccountCredentials`] for rendered accounts and keeps temporary-credentials caches
/// alive across config reloads (while some served config uses them).
pub struct Registry {
    env: PodIdentityEnv,
    http: SharedHttpClient,
    metrics: CredentialMetrics,
    caches: Mutex<HashMap<Key, Weak<Refreshing>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("env", &self.env).finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry finding the pod identity through `env`; `metrics` receives refresh counts.
    pub fn new(env: PodIdentityEnv, metrics: CredentialMetrics) -> Self {
        Registry { env, http: sts::http_client(), metrics, caches: Mutex::default() }
    }

    /// A registry on the process environment, with metrics nobody scrapes.
    pub fn from_process() -> Self {
        Self::new(PodIdentityEnv::from_process(), CredentialMetrics::new())
    }

    /// The credentials of `account`; `secret` is its rendered Secret (accessKey and apiKey).
    pub fn for_account(&self, account: &Account, secret: Option<&AccountSecret>) -> AccountCredentials {
        let name = account.name.as_str();
        let endpoint = StsEndpoint::new(&account.endpoints.sts, &account.default_region);
        match (&account.auth, secret) {
            (
                AccountAuth::AccessKey,
                Some(AccountSecret::AccessKey { access_key_id, secret_access_key, session_token }),
            ) => AccountCredentials::static_keys(
                name,
                access_key_id.expose(),
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose()),
            ),
            (AccountAuth::ApiKey, Some(AccountSecret::ApiKey { api_key })) => {
                AccountCredentials::api_key(name, api_key.expose())
            }
            (AccountAuth::AccessKey | AccountAuth::ApiKey, _) => {
                AccountCredentials::unavailable(name, "its Secret is missing from the rendered config")
            }
            (AccountAuth::PodIdentity, _) => AccountCredentials {
                account: name.into(),
                kind: Kind::Refreshing(self.pod_identity(endpoint)),
            },
            (AccountAuth::AssumeRole { role_arn, external_id, session_name, duration_seconds }, _) => {
                let key = Key::AssumeRole {
                    account: account.name.clone(),
                    namespace: account.namespace.clone(),
                    role_arn: role_arn.clone(),
                    external_id: external_id.clone(),
                    session_name: session_name.clone(),
                    duration_seconds: *duration_seconds,
                    endpoint: endpoint.clone(),
                };
                // Made before taking the cache lock, which `pod_identity` takes too.
                let base = self.pod_identity(endpoint.clone());
                let cache = self.cache(key, || {
                    let source = Source::AssumeRole(AssumeRole {
                        role_arn: role_arn.clone(),
                        external_id: external_id.clone(),
                        session_name: session_name.clone(),
                        duration: duration_seconds.map(|s| Duration::from_secs(s.into())),
                        tags: AssumeRole::tags(&account.name, &account.namespace),
                        base,
                        endpoint: endpoint.clone(),
                        http: self.http.clone(),
                    });
                    (name.into(), source)
                });
                AccountCredentials { account: name.into(), kind: Kind::Refreshing(cache) }
            }
        }
    }

    /// The pod identity through STS at `endpoint`, shared by every account using it.
    fn pod_identity(&self, endpoint: StsEndpoint) -> Arc<Refreshing> {
        self.cache(Key::PodIdentity(endpoint.clone()), || {
            let label = format!("pod-identity/{}", endpoint.region);
            (label.into(), Source::PodIdentity(PodIdentity::new(&self.env, endpoint, &self.http)))
        })
    }

    fn cache(&self, key: Key, make: impl FnOnce() -> (Arc<str>, Source)) -> Arc<Refreshing> {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        caches.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = caches.get(&key).and_then(Weak::upgrade) {
            return cache;
        }
        let (label, source) = make();
        let cache = Refreshing::new(label, source, self.metrics.clone());
        self.metrics.track(&cache);
        cache.start();
        caches.insert(key, Arc::downgrade(&cache));
        cache
    }
}
