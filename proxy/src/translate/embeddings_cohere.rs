//! OpenAI embeddings <-> Cohere Embed v3 English / multilingual (InvokeModel, batches of 96).
//!
//! Inputs are sent in batches of up to 96 texts (Cohere's limit per call), in order;
//! `input_type` (extra field) defaults to the model's `spec.embedding.inputType`, else
//! `search_document`. Cohere v3 vectors have 1024
//! dimensions, so `dimensions` may only be 1024. Usage comes from Bedrock's
//! `X-Amzn-Bedrock-Input-Token-Count` header, as the body carries no counts.

use crate::bedrock::embeddings::{CohereEmbedRequest, CohereEmbedResponse};
use crate::error::ApiError;
use crate::openai::embeddings::{EmbeddingList, EmbeddingRequest};

/// Most texts Cohere Embed takes in one call.
pub const MAX_TEXTS_PER_CALL: usize = 96;
/// `input_type` when neither the request nor the model names one.
pub const DEFAULT_INPUT_TYPE: &str = "search_document";
/// `input_type` values for text.
const INPUT_TYPES: [&str; 4] = ["search_document", "search_query", "classification", "clustering"];
/// Longest text Cohere Embed accepts, in characters.
const MAX_CHARS: usize = 2048;
/// Vector length of Cohere Embed v3.
const DIMENSIONS: u32 = 1024;

/// The Cohere requests for `req`: its inputs in order, in batches of [`MAX_TEXTS_PER_CALL`];
/// `default_input_type` applies when the request names none.
pub fn cohere_requests<'a>(
    req: &'a EmbeddingRequest,
    default_input_type: &'a str,
) -> Result<Vec<CohereEmbedRequest<'a>>, ApiError> {
    let input_type = req.input_type.as_deref().unwrap_or(default_input_type);
    if !INPUT_TYPES.contains(&input_type) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `input_type`: `{input_type}`. Use one of {}.",
            INPUT_TYPES.join(", ")
        ))
        .with_param("input_type"));
    }
    if let Some(d) = req.dimensions.filter(|d| *d != DIMENSIONS) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `dimensions`: {d}. Model `{}` (Cohere Embed v3) returns 1024 dimensions only.",
            req.model
        ))
        .with_param("dimensions"));
    }
    if req.normalize.is_some() {
        return Err(ApiError::invalid_request(format!(
            "`normalize` applies to Titan Text Embeddings v2 only; model `{}` is Cohere Embed v3.",
            req.model
        ))
        .with_param("normalize"));
    }
    if let Some(i) = req.input.iter().position(|t| t.chars().count() > MAX_CHARS) {
        return Err(ApiError::invalid_request(format!(
            "`input[{i}]` is longer than the {MAX_CHARS} characters Cohere Embed v3 accepts per text."
        ))
        .with_param(format!("input[{i}]")));
    }
    Ok(req.input.chunks(MAX_TEXTS_PER_CALL).map(|texts| CohereEmbedRequest { texts, input_type }).collect())
}

/// The OpenAI response for the batch responses (each with its input token count), in order.
///
/// A batch that returned a different number of vectors than it was sent texts is a 502: the
/// vectors could no longer be matched to their inputs.
pub fn embedding_list(
    batches: Vec<(CohereEmbedResponse, u64)>,
    req: &EmbeddingRequest,
) -> Result<EmbeddingList, ApiError> {
    let mut vectors = Vec::with_capacity(req.input.len());
    let mut tokens = 0u64;
    for ((response, batch_tokens), texts) in batches.into_iter().zip(req.input.chunks(MAX_TEXTS_PER_CALL)) {
        if response.embeddings.len() != texts.len() {
            return Err(ApiError::bad_gateway(format!(
                "Bedrock returned {} embeddings for a batch of {} texts.",
                response.embeddings.len(),
                texts.len()
            )));
        }
        for vector in response.embeddings {
            vectors.push(super::embedding_vector(vector, req.encoding_format)?);
        }
        tokens = tokens.saturating_add(batch_tokens);
    }
    if vectors.len() != req.input.len() {
        return Err(ApiError::bad_gateway("Bedrock did not answer every batch of the request."));
    }
    Ok(EmbeddingList::new(&req.model, vectors, tokens))
}
