//! OpenAI embeddings <-> Titan Text Embeddings v1 / v2 (InvokeModel, one text per call).
//!
//! Every input becomes its own Bedrock call (the endpoint runs them concurrently and keeps
//! their order). `dimensions` maps to v2's `dimensions` (256, 512 or 1024; v1 is fixed at
//! 1536); the extra field `normalize` maps to v2's `normalize`. Usage is the sum of
//! `inputTextTokenCount`.

use crate::bedrock::embeddings::{TitanEmbedRequest, TitanEmbedResponse};
use crate::error::ApiError;
use crate::openai::embeddings::{EmbeddingList, EmbeddingRequest};

/// Vector length of Titan Text Embeddings v1.
const V1_DIMENSIONS: u32 = 1536;
/// Vector lengths Titan Text Embeddings v2 offers.
const V2_DIMENSIONS: [u32; 3] = [256, 512, 1024];

/// One Titan request per input, in input order; `v2` selects Titan Text Embeddings v2.
pub fn titan_requests(req: &EmbeddingRequest, v2: bool) -> Result<Vec<TitanEmbedRequest<'_>>, ApiError> {
    let name = if v2 { "Titan Text Embeddings v2" } else { "Titan Text Embeddings v1" };
    if req.input_type.is_some() {
        return Err(ApiError::invalid_request(format!(
            "`input_type` applies to Cohere Embed models only; model `{}` is {name}.",
            req.model
        ))
        .with_param("input_type"));
    }
    let dimensions = match (v2, req.dimensions) {
        (_, None) => None,
        (true, Some(d)) if V2_DIMENSIONS.contains(&d) => Some(d),
        (false, Some(V1_DIMENSIONS)) => None,
        (_, Some(d)) => {
            let offered = if v2 { "256, 512 or 1024" } else { "only 1536" };
            return Err(ApiError::invalid_request(format!(
                "Invalid value for `dimensions`: {d}. Model `{}` ({name}) offers {offered} dimensions.",
                req.model
            ))
            .with_param("dimensions"));
        }
    };
    if req.normalize.is_some() && !v2 {
        return Err(ApiError::invalid_request(format!(
            "`normalize` applies to Titan Text Embeddings v2 only; model `{}` is {name}.",
            req.model
        ))
        .with_param("normalize"));
    }
    Ok(req
        .input
        .iter()
        .map(|text| TitanEmbedRequest { input_text: text, dimensions, normalize: req.normalize })
        .collect())
}

/// The OpenAI response for the Titan responses, given in input order (a 502 only for a
/// component no `f32` can hold, see [`super::embedding_vector`]).
pub fn embedding_list(
    responses: Vec<TitanEmbedResponse>,
    req: &EmbeddingRequest,
) -> Result<EmbeddingList, ApiError> {
    let tokens = responses.iter().map(|r| r.input_text_token_count).sum();
    let vectors = responses
        .into_iter()
        .map(|r| super::embedding_vector(r.embedding, req.encoding_format))
        .collect::<Result<_, _>>()?;
    Ok(EmbeddingList::new(&req.model, vectors, tokens))
}
