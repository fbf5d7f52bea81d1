//! `POST /v1/embeddings` on Bedrock InvokeModel: Titan Text Embeddings (one call per input,
//! run concurrently with a bound) and Cohere Embed v3 (batches of 96).

use std::sync::Arc;
use std::time::Instant;

use api::config::ModelKind;
use http::{HeaderMap, Request, Response, StatusCode};

use super::{authorize, invoke_all, json_response, read_body, read_json, record_request, snapshot};
use crate::bedrock::embeddings::{CohereEmbedResponse, TitanEmbedResponse};
use crate::bedrock::models::{EmbeddingFamily, embedding_family};
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::openai::embeddings::parse_embedding_request;
use crate::request_body::RequestBody;
use crate::server::App;
use crate::translate::{embeddings_cohere, embeddings_titan};
use crate::usage::{self, Record, Tokens};

const ENDPOINT: &str = "embeddings";
/// Bedrock's header with the input token count of an InvokeModel call.
const INPUT_TOKENS_HEADER: &str = "x-amzn-bedrock-input-token-count";

/// Handles one embeddings request and records its metrics.
pub async fn create(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut model_label = String::from("-");
    let result = embed(app, req, started, &mut model_label).await;
    record_request(app, ENDPOINT, &model_label, &result, started);
    result
}

async fn embed(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
    model_label: &mut String,
) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = snapshot(app)?;
    let (parts, body) = req.into_parts();
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    let subject = &subject;
    let request = parse_embedding_request(&read_body(app, body).await?)?;
    crate::otel::request_model(&request.model);
    let route =
        snapshot.routes.get(&request.model).ok_or_else(|| ApiError::model_not_found(&request.model))?;
    model_label.clone_from(&route.model.served_name);
    authorize(&snapshot, subject, route, ModelKind::Embedding)?;
    let model = route.model.served_name.as_str();
    let admission = app.usage.admit(subject, &snapshot.policies, model).await?;
    let family = embedding_family(&route.model.model_id).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "The model `{model}` (`{}`) is not an embedding model this gateway can call; it serves Titan \
             Text Embeddings v1/v2 and Cohere Embed v3.",
            route.model.model_id
        ))
        .with_param("model")
    })?;
    let list = match family {
        EmbeddingFamily::TitanV1 | EmbeddingFamily::TitanV2 => {
            let calls = embeddings_titan::titan_requests(&request, family == EmbeddingFamily::TitanV2)?;
            let bodies =
                calls.iter().map(|c| serde_json::to_vec(c).expect("Titan request serializes")).collect();
            let responses =
                invoke_all(app, route, bodies, |_, body| read_json::<TitanEmbedResponse>(model, body))
                    .await?;
            embeddings_titan::embedding_list(responses, &request)?
        }
        EmbeddingFamily::Cohere => {
            let default_input_type = route
                .model
                .embedding_input_type
                .map_or(embeddings_cohere::DEFAULT_INPUT_TYPE, |t| t.as_str());
            let calls = embeddings_cohere::cohere_requests(&request, default_input_type)?;
            let bodies =
                calls.iter().map(|c| serde_json::to_vec(c).expect("Cohere request serializes")).collect();
            let batches = invoke_all(app, route, bodies, |headers, body| {
                Ok((read_json::<CohereEmbedResponse>(model, body)?, input_tokens(headers)))
            })
            .await?;
            embeddings_cohere::embedding_list(batches, &request)?
        }
    };
    let request_id = super::response_id("embd-");
    let tokens = Tokens { input: list.usage.prompt_tokens, ..Tokens::default() };
    let record =
        Record { tokens, ..Record::new(ENDPOINT, &request_id, subject, &route.model, started, &admission) };
    let cost = app.usage.record(&record);
    let mut response =
        json_response(StatusCode::OK, serde_json::to_vec(&list).expect("embedding list serializes"));
    usage::set_headers(response.headers_mut(), &admission, cost);
    Ok(response)
}

/// The input token count Bedrock reported in a header (0 when absent).
fn input_tokens(headers: &HeaderMap) -> u64 {
    headers.get(INPUT_TOKENS_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}
