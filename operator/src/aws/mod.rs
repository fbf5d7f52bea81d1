//! AWS truth about accounts, asked with each account's own credentials: sts:GetCallerIdentity
//! (or, for Bedrock API keys, ListFoundationModels), the model catalogue of every region the
//! account uses, and GetInferenceProfile for the profiles its models name.

pub mod control;
pub mod facts;
mod identity;

use std::collections::BTreeSet;

use api::config::{Account, AccountAuth, AccountSecret, Endpoints};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use http::HeaderValue;

use self::control::{Auth, ControlPlane};
use self::facts::{AccountFacts, AwsFailure, Verification};
use crate::plan::digest;
use crate::status::is_profile;

/// What one account is checked with: its config, its secret and the (region, model id) of its models.
#[derive(Debug)]
pub struct AccountInput<'a> {
    /// The rendered account.
    pub account: &'a Account,
    /// Its static secret, for accessKey and apiKey accounts.
    pub secret: Option<&'a AccountSecret>,
    /// Region and model id of every BedrockModel of the account.
    pub models: BTreeSet<(String, String)>,
}

impl AccountInput<'_> {
    /// Digest of everything the facts depend on; the secret enters only through its hash.
    pub fn fingerprint(&self) -> String {
        digest(&(self.account, self.secret.map(digest), &self.models))
    }

    /// Regions to list: the default region and every model's region.
    fn regions(&self) -> BTreeSet<&str> {
        std::iter::once(self.account.default_region.as_str())
            .chain(self.models.iter().map(|(region, _)| region.as_str()))
            .collect()
    }
}

/// The AWS clients: the SDK's HTTP client for STS and a hyper client for the control plane.
#[derive(Clone)]
pub struct Aws {
    control: ControlPlane,
    sdk_http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    /// The pod's own identity; `None` resolves the SDK's default chain (IRSA, Pod Identity, IMDS).
    pod_identity: Option<SharedCredentialsProvider>,
}

impl Default for Aws {
    fn default() -> Self {
        Self::new()
    }
}

impl Aws {
    /// Clients over rustls (ring) with webpki roots; plain http for simulators and moto.
    pub fn new() -> Self {
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        let sdk_http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        Aws { control: ControlPlane::new(), sdk_http, pod_identity: None }
    }

    /// The same clients with `provider` as the pod's identity (podIdentity accounts and the
    /// base of assumeRole), instead of the default chain.
    pub fn with_pod_identity(mut self, provider: impl ProvideCredentials + 'static) -> Self {
        self.pod_identity = Some(SharedCredentialsProvider::new(provider));
        self
    }

    /// Asks AWS about one account.
    pub async fn gather(&self, input: &AccountInput<'_>) -> AccountFacts {
        let account = input.account;
        let region = account.default_region.as_str();
        let control = |region: &str| Endpoints::for_region(&account.endpoints.control, region);
        let (verification, auth) = match (&account.auth, input.secret) {
            (AccountAuth::ApiKey, Some(AccountSecret::ApiKey { api_key })) => {
                match HeaderValue::from_str(&format!("Bearer {}", api_key.expose())) {
                    Ok(mut value) => {
                        value.set_sensitive(true);
                        let auth = Auth::Bearer(value);
                        let checked =
                            self.control.list_foundation_models(&control(region), region, &auth).await;
                        (checked.map(|()| Verification::ApiKeyAccepted), Some(auth))
                    }
                    Err(_) => (
                        Err(AwsFailure::rejected(
                            "InvalidApiKey",
                            "the API key is not a valid HTTP header value",
                        )),
                        None,
                    ),
                }
            }
            (AccountAuth::ApiKey, _)
            | (AccountAuth::AccessKey, None | Some(AccountSecret::ApiKey { .. })) => {
                (Err(AwsFailure::rejected("NoCredentials", "the account's Secret holds no usable key")), None)
            }
            _ => {
                match identity::credentials(&self.sdk_http, self.pod_identity.as_ref(), account, input.secret)
                    .await
                {
                    Ok(credentials) => {
                        let verified =
                            identity::caller_identity(&self.sdk_http, account, credentials.clone()).await;
                        (verified.map(Verification::Identity), Some(Auth::SigV4(credentials)))
                    }
                    Err(failure) => (Err(failure), None),
                }
            }
        };
        let mut facts = AccountFacts {
            fingerprint: input.fingerprint(),
            verification,
            regions: Default::default(),
            profiles: Default::default(),
        };
        let Some(auth) = auth else { return facts };
        for region in input.regions() {
            let catalogue = self.control.catalogue(&control(region), region, &auth).await;
            facts.regions.insert(region.to_string(), catalogue);
        }
        for (region, model_id) in input.models.iter().filter(|(_, id)| is_profile(id)) {
            let profile = self.control.inference_profile(&control(region), region, &auth, model_id).await;
            facts.profiles.insert((region.clone(), model_id.clone()), profile);
        }
        facts
    }
}
