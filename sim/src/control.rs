//! The Bedrock control plane as far as the operator needs it: ListFoundationModels,
//! ListInferenceProfiles and GetInferenceProfile (bedrock-2023-04-20), over a deterministic
//! catalogue that holds the quick-start models. Every region lists the same models; system
//! inference profiles carry the region's geography prefix (`us.`, `eu.`, `apac.`).

use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::auth::Keyring;
use crate::errors::AwsError;
use crate::sigv4::SignedRequest;

/// AWS account id in the simulator's ARNs.
pub const ACCOUNT_ID: &str = "123456789012";
/// Id of the one application inference profile (the quick start's `team-profile`).
pub const APPLICATION_PROFILE_ID: &str = "abc123def456";
/// Fixed creation time of every profile, so answers are byte-for-byte stable.
const CREATED_AT: &str = "2025-01-01T00:00:00Z";

/// One foundation model of the catalogue.
struct Entry {
    id: &'static str,
    name: &'static str,
    provider: &'static str,
    input: &'static [&'static str],
    output: &'static str,
    streaming: bool,
    /// Invocable on demand; otherwise only through an inference profile (listed as PROVISIONED).
    on_demand: bool,
    /// Has a system-defined cross-region profile.
    profiled: bool,
}

/// The catalogue, sorted by model id.
const CATALOGUE: &[Entry] = &[
    Entry {
        id: "amazon.nova-canvas-v1:0",
        name: "Nova Canvas",
        provider: "Amazon",
        input: &["TEXT", "IMAGE"],
        output: "IMAGE",
        streaming: false,
        on_demand: true,
        profiled: false,
    },
    Entry {
        id: "amazon.nova-lite-v1:0",
        name: "Nova Lite",
        provider: "Amazon",
        input: &["TEXT", "IMAGE"],
        output: "TEXT",
        streaming: true,
        on_demand: true,
        profiled: true,
    },
    Entry {
        id: "amazon.nova-pro-v1:0",
        name: "Nova Pro",
        provider: "Amazon",
        input: &["TEXT", "IMAGE"],
        output: "TEXT",
        streaming: true,
        on_demand: true,
        profiled: true,
    },
    Entry {
        id: "amazon.titan-embed-text-v2:0",
        name: "Titan Embeddings V2",
        provider: "Amazon",
        input: &["TEXT"],
        output: "EMBEDDING",
        streaming: false,
        on_demand: true,
        profiled: false,
    },
    Entry {
        id: "amazon.titan-image-generator-v2:0",
        name: "Titan Image G1 v2",
        provider: "Amazon",
        input: &["TEXT", "IMAGE"],
        output: "IMAGE",
        streaming: false,
        on_demand: true,
        profiled: false,
    },
    Entry {
        id: "anthropic.claude-3-7-sonnet-20250219-v1:0",
        name: "Claude 3.7 Sonnet",
        provider: "Anthropic",
        input: &["TEXT", "IMAGE"],
        output: "TEXT",
        streaming: true,
        on_demand: false,
        profiled: true,
    },
    Entry {
        id: "anthropic.claude-3-haiku-20240307-v1:0",
        name: "Claude 3 Haiku",
        provider: "Anthropic",
        input: &["TEXT", "IMAGE"],
        output: "TEXT",
        streaming: true,
        on_demand: true,
        profiled: true,
    },
    Entry {
        id: "cohere.embed-english-v3",
        name: "Embed English",
        provider: "Cohere",
        input: &["TEXT"],
        output: "EMBEDDING",
        streaming: false,
        on_demand: true,
        profiled: false,
    },
    Entry {
        id: "meta.llama3-1-70b-instruct-v1:0",
        name: "Llama 3.1 70B",
        provider: "Meta",
        input: &["TEXT"],
        output: "TEXT",
        streaming: true,
        on_demand: false,
        profiled: true,
    },
    Entry {
        id: "stability.sd3-5-large-v1:0",
        name: "SD3.5 Large",
        provider: "Stability AI",
        input: &["TEXT", "IMAGE"],
        output: "IMAGE",
        streaming: false,
        on_demand: true,
        profiled: false,
    },
];

/// The control-plane operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `GET /foundation-models`.
    ListFoundationModels,
    /// `GET /inference-profiles`.
    ListInferenceProfiles,
    /// `GET /inference-profiles/{inferenceProfileIdentifier}` with the still-encoded label.
    GetInferenceProfile(String),
}

/// Matches a control-plane route.
pub(crate) fn route(method: &http::Method, path: &str) -> Option<Operation> {
    if method != http::Method::GET {
        return None;
    }
    match path {
        "/foundation-models" => Some(Operation::ListFoundationModels),
        "/inference-profiles" => Some(Operation::ListInferenceProfiles),
        _ => {
            let label = path.strip_prefix("/inference-profiles/")?;
            (!label.is_empty() && !label.contains('/'))
                .then(|| Operation::GetInferenceProfile(label.to_string()))
        }
    }
}

/// Authenticates a control-plane request like the runtime does and answers it with JSON bytes.
pub(crate) async fn serve(
    keyring: &Keyring,
    parts: &http::request::Parts,
    target: &str,
    body: &[u8],
    op: &Operation,
) -> Result<Vec<u8>, AwsError> {
    let region = authenticate(keyring, parts, target, body).await?;
    let answer = answer(op, &region, parts.uri.query().unwrap_or_default())?;
    Ok(serde_json::to_vec(&answer).unwrap_or_default())
}

/// Verifies the request's SigV4 signature or bearer token; returns the region it is for.
pub(crate) async fn authenticate(
    keyring: &Keyring,
    parts: &http::request::Parts,
    target: &str,
    body: &[u8],
) -> Result<String, AwsError> {
    let signed = SignedRequest {
        method: parts.method.as_str(),
        target,
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        body,
    };
    keyring.authenticate(&signed, SystemTime::now()).await?;
    let authorization = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    Ok(region(authorization))
}

/// A catalogue model as a batch job names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModelRef {
    /// The foundation model id, e.g. `amazon.titan-embed-text-v2:0`.
    pub id: &'static str,
    /// Whether the model answers in text (so it serves Converse).
    pub text: bool,
}

/// The catalogue model `identifier` names in `region`: a model id or ARN, a system inference
/// profile id or ARN, or the application profile's id or ARN.
pub(crate) fn resolve_model(region: &str, identifier: &str) -> Option<ModelRef> {
    let entry = |id: &str| CATALOGUE.iter().find(|e| e.id == id);
    let found =
        if let Some(id) = identifier.strip_prefix(&format!("arn:aws:bedrock:{region}::foundation-model/")) {
            entry(id)
        } else if identifier.starts_with("arn:") {
            let profile = profiles(region).into_iter().find(|p| p["inferenceProfileArn"] == identifier)?;
            return resolve_model(region, profile["inferenceProfileId"].as_str()?);
        } else if identifier == APPLICATION_PROFILE_ID {
            entry("anthropic.claude-3-7-sonnet-20250219-v1:0")
        } else {
            let (geo, rest) = identifier.split_once('.')?;
            entry(identifier).or_else(|| entry(rest).filter(|e| e.profiled && geo == geography(region)))
        }?;
    Some(ModelRef { id: found.id, text: found.output == "TEXT" })
}

/// The JSON answer of `op` in `region`; `query` is the raw query string.
pub(crate) fn answer(op: &Operation, region: &str, query: &str) -> Result<Value, AwsError> {
    let params = parse_query(query)?;
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match op {
        Operation::ListFoundationModels => {
            let summaries: Vec<Value> = CATALOGUE
                .iter()
                .filter(|e| param("byProvider").is_none_or(|p| p.eq_ignore_ascii_case(e.provider)))
                .filter(|e| param("byOutputModality").is_none_or(|m| m == e.output))
                .filter(|e| param("byInferenceType").is_none_or(|t| t == inference_type(e)))
                .filter(|_| param("byCustomizationType").is_none())
                .map(|e| summary(e, region))
                .collect();
            Ok(json!({ "modelSummaries": summaries }))
        }
        Operation::ListInferenceProfiles => {
            let max = match param("maxResults") {
                None => 1000,
                Some(v) => match v.parse::<usize>() {
                    Ok(n @ 1..=1000) => n,
                    _ => {
                        return Err(AwsError::validation(format!(
                            "1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: \
                             Member must have value less than or equal to 1000"
                        )));
                    }
                },
            };
            let start = match param("nextToken") {
                None => 0,
                Some(token) => token
                    .parse::<usize>()
                    .map_err(|_| AwsError::validation("The nextToken provided is not valid."))?,
            };
            let all: Vec<Value> = profiles(region)
                .into_iter()
                .filter(|p| param("type").is_none_or(|t| p["type"] == t))
                .collect();
            let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
            let mut body = json!({ "inferenceProfileSummaries": page });
            if start + max < all.len() {
                body["nextToken"] = Value::from((start + max).to_string());
            }
            Ok(body)
        }
        Operation::GetInferenceProfile(label) => {
            let id = percent_decode_str(label)
                .decode_utf8()
                .map_err(|_| AwsError::validation("The provided inference profile identifier is invalid."))?;
            profiles(region)
                .into_iter()
                .find(|p| p["inferenceProfileId"] == *id || p["inferenceProfileArn"] == *id)
                .ok_or_else(|| {
                    AwsError::new(
                        404,
                        "ResourceNotFoundException",
                        "The specified inference profile was not found.",
                    )
                })
        }
    }
}

/// `ON_DEMAND` or `PROVISIONED`, as the model lists it.
fn inference_type(e: &Entry) -> &'static str {
    if e.on_demand { "ON_DEMAND" } else { "PROVISIONED" }
}

/// Foundation model ARN in `region`.
fn model_arn(region: &str, id: &str) -> String {
    format!("arn:aws:bedrock:{region}::foundation-model/{id}")
}

/// One `FoundationModelSummary`.
fn summary(e: &Entry, region: &str) -> Value {
    json!({
        "modelArn": model_arn(region, e.id),
        "modelId": e.id,
        "modelName": e.name,
        "providerName": e.provider,
        "inputModalities": e.input,
        "outputModalities": [e.output],
        "responseStreamingSupported": e.streaming,
        "customizationsSupported": [],
        "inferenceTypesSupported": [inference_type(e)],
        "modelLifecycle": { "status": "ACTIVE" },
    })
}

/// The geography prefix of system profiles in `region`.
fn geography(region: &str) -> &'static str {
    if region.starts_with("eu-") {
        "eu"
    } else if region.starts_with("ap-") {
        "apac"
    } else {
        "us"
    }
}

/// Regions a system profile of `geo` routes to.
fn routed_regions(geo: &str) -> &'static [&'static str] {
    match geo {
        "eu" => &["eu-central-1", "eu-west-1", "eu-west-3"],
        "apac" => &["ap-northeast-1", "ap-southeast-1", "ap-southeast-2"],
        _ => &["us-east-1", "us-east-2", "us-west-2"],
    }
}

/// Every inference profile of `region`: the system profiles, then the application profile.
fn profiles(region: &str) -> Vec<Value> {
    let geo = geography(region);
    let mut out: Vec<Value> = CATALOGUE
        .iter()
        .filter(|e| e.profiled)
        .map(|e| {
            let id = format!("{geo}.{}", e.id);
            let models: Vec<Value> =
                routed_regions(geo).iter().map(|r| json!({ "modelArn": model_arn(r, e.id) })).collect();
            json!({
                // InferenceProfileName allows letters, digits, space, `_` and `-` only.
                "inferenceProfileName": id.replace(['.', ':'], "-"),
                "description": format!("Routes requests to {} in {} regions.", e.name, geo.to_uppercase()),
                "createdAt": CREATED_AT,
                "updatedAt": CREATED_AT,
                "inferenceProfileArn": format!("arn:aws:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{id}"),
                "models": models,
                "inferenceProfileId": id,
                "status": "ACTIVE",
                "type": "SYSTEM_DEFINED",
            })
        })
        .collect();
    out.push(json!({
        "inferenceProfileName": "team-profile",
        "description": "Application profile of the quick start.",
        "createdAt": CREATED_AT,
        "updatedAt": CREATED_AT,
        "inferenceProfileArn": format!("arn:aws:bedrock:{region}:{ACCOUNT_ID}:application-inference-profile/{APPLICATION_PROFILE_ID}"),
        "models": [{ "modelArn": model_arn(region, "anthropic.claude-3-7-sonnet-20250219-v1:0") }],
        "inferenceProfileId": APPLICATION_PROFILE_ID,
        "status": "ACTIVE",
        "type": "APPLICATION",
    }));
    out
}

/// `key=value` pairs of a query string, percent-decoded.
pub(crate) fn parse_query(query: &str) -> Result<Vec<(String, String)>, AwsError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|d| d.into_owned())
                    .map_err(|_| AwsError::validation("The query string is not valid UTF-8."))
            };
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

/// The region a request is for: the SigV4 credential scope, else us-east-1 (bearer requests).
pub(crate) fn region(authorization: Option<&str>) -> String {
    authorization
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split(['/', ',']).nth(2))
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_three_operations() {
        let get = http::Method::GET;
        assert_eq!(route(&get, "/foundation-models"), Some(Operation::ListFoundationModels));
        assert_eq!(route(&get, "/inference-profiles"), Some(Operation::ListInferenceProfiles));
        assert_eq!(
            route(&get, "/inference-profiles/us.x%3A0"),
            Some(Operation::GetInferenceProfile("us.x%3A0".into()))
        );
        assert_eq!(route(&http::Method::POST, "/foundation-models"), None);
        assert_eq!(route(&get, "/inference-profiles/"), None);
    }

    #[test]
    fn profiles_page_and_resolve_by_id_or_arn() {
        let first = answer(&Operation::ListInferenceProfiles, "us-west-2", "maxResults=2").unwrap();
        assert_eq!(first["inferenceProfileSummaries"].as_array().unwrap().len(), 2);
        assert_eq!(first["nextToken"], "2");
        let rest =
            answer(&Operation::ListInferenceProfiles, "us-west-2", "maxResults=1000&nextToken=2").unwrap();
        assert!(rest.get("nextToken").is_none());
        assert_eq!(rest["inferenceProfileSummaries"].as_array().unwrap().len(), 5 - 2 + 1);
        let by_id = answer(
            &Operation::GetInferenceProfile("us.anthropic.claude-3-7-sonnet-20250219-v1%3A0".into()),
            "us-west-2",
            "",
        )
        .unwrap();
        assert_eq!(
            by_id["models"][0]["modelArn"],
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
        let arn =
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456";
        let by_arn = answer(&Operation::GetInferenceProfile(arn.into()), "us-east-1", "").unwrap();
        assert_eq!(by_arn["type"], "APPLICATION");
        let missing = answer(&Operation::GetInferenceProfile("us.nope".into()), "us-east-1", "").unwrap_err();
        assert_eq!((missing.status.as_u16(), missing.code), (404, "ResourceNotFoundException"));
        let bad = answer(&Operation::ListInferenceProfiles, "us-east-1", "maxResults=0").unwrap_err();
        assert_eq!(bad.code, "ValidationException");
    }

    #[test]
    fn batch_models_resolve_from_ids_profiles_and_arns() {
        let claude = ModelRef { id: "anthropic.claude-3-7-sonnet-20250219-v1:0", text: true };
        for id in [
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0",
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
            "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123def456",
            "abc123def456",
        ] {
            assert_eq!(resolve_model("eu-west-1", id), Some(claude), "{id}");
        }
        assert_eq!(
            resolve_model("eu-west-1", "amazon.titan-embed-text-v2:0"),
            Some(ModelRef { id: "amazon.titan-embed-text-v2:0", text: false })
        );
        for id in
            ["us.anthropic.claude-3-7-sonnet-20250219-v1:0", "eu.amazon.titan-embed-text-v2:0", "x.y", "nope"]
        {
            assert_eq!(resolve_model("eu-west-1", id), None, "{id}");
        }
    }

    #[test]
    fn region_comes_from_the_credential_scope() {
        let auth =
            "AWS4-HMAC-SHA256 Credential=AKID/20250101/eu-west-1/bedrock/aws4_request, SignedHeaders=host";
        assert_eq!(region(Some(auth)), "eu-west-1");
        assert_eq!(region(Some("Bearer x")), "us-east-1");
        assert_eq!(region(None), "us-east-1");
    }
}
