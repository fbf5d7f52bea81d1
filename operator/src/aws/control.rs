//! The Bedrock control plane as the operator uses it: ListFoundationModels, ListInferenceProfiles
//! and GetInferenceProfile, over SigV4-signed (or bearer) hyper requests. Shapes follow the AWS
//! model (bedrock-2023-04-20).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HOST};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::facts::{AwsFailure, Catalogue, FoundationModel, InferenceProfile};

/// Largest control-plane answer read (the full model list is a few hundred KB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Most profile pages followed, a guard against a server that never stops paging.
const MAX_PAGES: usize = 50;
/// RFC 3986 unreserved characters stay; everything else in a URI label is `%XX` (like botocore).
const LABEL: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// How control-plane calls are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// SigV4 (signing name `bedrock`).
    SigV4(Credentials),
    /// `Authorization: Bearer <Bedrock API key>`, marked sensitive.
    Bearer(HeaderValue),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::SigV4(_) => "SigV4(<redacted>)",
            Auth::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

/// A pooled HTTP(S) client for the control plane of any account.
#[derive(Clone)]
pub struct ControlPlane {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self::new()
    }
}

/// `ListFoundationModels` output.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListFoundationModelsResponse {
    #[serde(default)]
    model_summaries: Vec<FoundationModelSummary>,
}

/// One `FoundationModelSummary`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FoundationModelSummary {
    model_id: String,
    #[serde(default)]
    inference_types_supported: Vec<String>,
}

/// `ListInferenceProfiles` output.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInferenceProfilesResponse {
    #[serde(default)]
    inference_profile_summaries: Vec<InferenceProfileShape>,
    #[serde(default)]
    next_token: Option<String>,
}

/// `InferenceProfileSummary` and `GetInferenceProfile` output share these members.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceProfileShape {
    inference_profile_id: String,
    inference_profile_arn: String,
    #[serde(default)]
    models: Vec<InferenceProfileModel>,
}

/// One `InferenceProfileModel`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceProfileModel {
    #[serde(default)]
    model_arn: Option<String>,
}

impl From<InferenceProfileShape> for InferenceProfile {
    fn from(shape: InferenceProfileShape) -> Self {
        let model_ids = shape
            .models
            .into_iter()
            .filter_map(|m| m.model_arn)
            .map(|arn| arn.rsplit_once("foundation-model/").map_or(arn.clone(), |(_, id)| id.to_string()))
            .collect();
        InferenceProfile { id: shape.inference_profile_id, arn: shape.inference_profile_arn, model_ids }
    }
}

/// AWS rest-json error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, alias = "Message")]
    message: String,
}

impl ControlPlane {
    /// A client with rustls (ring, webpki roots) for https and plain http for simulators.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() })
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        ControlPlane { client: Client::builder(TokioExecutor::new()).build(connector) }
    }

    /// ListFoundationModels and every page of ListInferenceProfiles at `endpoint` (no `{region}` left).
    pub async fn catalogue(
        &self,
        endpoint: &str,
        region: &str,
        auth: &Auth,
    ) -> Result<Catalogue, AwsFailure> {
        let listed: ListFoundationModelsResponse =
            self.get(endpoint, "/foundation-models", region, auth).await?;
        let models = listed
            .model_summaries
            .into_iter()
            .map(|m| FoundationModel {
                on_demand: m.inference_types_supported.iter().any(|t| t == "ON_DEMAND"),
                model_id: m.model_id,
            })
            .collect();
        let mut profiles = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut target = "/inference-profiles?maxResults=1000".to_string();
            if let Some(token) = &next {
                target.push_str("&nextToken=");
                target.push_str(&utf8_percent_encode(token, LABEL).to_string());
            }
            let page: ListInferenceProfilesResponse = self.get(endpoint, &target, region, auth).await?;
            profiles.extend(page.inference_profile_summaries.into_iter().map(InferenceProfile::from));
            next = page.next_token.filter(|t| !t.is_empty());
            if next.is_none() {
                break;
            }
        }
        Ok(Catalogue { models, profiles })
    }

    /// ListFoundationModels only: the API-key check.
    pub async fn list_foundation_models(
        &self,
        endpoint: &str,
        region: &str,
        auth: &Auth,
    ) -> Result<(), AwsFailure> {
        let _: ListFoundationModelsResponse = self.get(endpoint, "/foundation-models", region, auth).await?;
        Ok(())
    }

    /// GetInferenceProfile for a profile id or ARN.
    pub async fn inference_profile(
        &self,
        endpoint: &str,
        region: &str,
        auth: &Auth,
        id: &str,
    ) -> Result<InferenceProfile, AwsFailure> {
        let target = format!("/inference-profiles/{}", utf8_percent_encode(id, LABEL));
        let shape: InferenceProfileShape = self.get(endpoint, &target, region, auth).await?;
        Ok(shape.into())
    }

    /// One signed GET, its JSON answer decoded as `T` or its AWS error.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        target: &str,
        region: &str,
        auth: &Auth,
    ) -> Result<T, AwsFailure> {
        let uri: Uri = format!("{}{target}", endpoint.trim_end_matches('/'))
            .parse()
            .map_err(|_| AwsFailure::rejected("InvalidEndpoint", format!("{endpoint} is not a valid URL")))?;
        let host = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(ACCEPT, "application/json")
            .header(HOST, host)
            .body(Empty::new())
            .map_err(|e| AwsFailure::rejected("InvalidRequest", e.to_string()))?;
        match auth {
            Auth::SigV4(credentials) => sign_v4(&mut request, credentials, region)?,
            Auth::Bearer(value) => {
                request.headers_mut().insert(AUTHORIZATION, value.clone());
            }
        }
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| {
                AwsFailure::unreachable("Timeout", format!("no answer from {endpoint} in {TIMEOUT:?}"))
            })?
            .map_err(|e| AwsFailure::unreachable("ConnectionError", format!("{endpoint}: {e}")))?;
        let status = response.status();
        let code = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| AwsFailure::unreachable("ConnectionError", format!("{endpoint}: {e}")))?
            .to_bytes();
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| AwsFailure::unreachable("InvalidResponse", format!("{endpoint}{target}: {e}")));
        }
        let message = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.message).unwrap_or_default();
        let code = code.unwrap_or_else(|| format!("HTTP{}", status.as_u16()));
        if status.as_u16() == 429 || status.is_server_error() {
            Err(AwsFailure::unreachable(code, message))
        } else {
            Err(AwsFailure::rejected(code, message))
        }
    }
}

/// Adds `x-amz-date`, `x-amz-security-token` (when present) and `authorization` to a GET.
fn sign_v4(
    request: &mut Request<Empty<Bytes>>,
    credentials: &Credentials,
    region: &str,
) -> Result<(), AwsFailure> {
    let mut settings = SigningSettings::default();
    // The path is already percent-encoded; normalizing it would change what AWS verifies.
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let identity: Identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(signing_failed)?
        .into();
    let uri = request.uri().to_string();
    let headers = request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable =
        SignableRequest::new("GET", uri, headers, SignableBody::Bytes(&[])).map_err(signing_failed)?;
    let (instructions, _signature) = sign(signable, &params).map_err(signing_failed)?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// The failure of a request that could not be signed (the cause may hold key material: dropped).
fn signing_failed<E>(_: E) -> AwsFailure {
    AwsFailure::rejected("SigningError", "the request could not be signed")
}
