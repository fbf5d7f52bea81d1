//! InvokeModel bodies of the embedding models (bedrock-api.md §9.1): Titan Text Embeddings
//! v1 / v2 (one text per call) and Cohere Embed v3 (up to 96 texts per call).

use serde::{Deserialize, Serialize};

/// Titan Text Embeddings request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbedRequest<'a> {
    /// The one text to embed.
    pub input_text: &'a str,
    /// v2 only: 256, 512 or 1024.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// v2 only: unit-length vectors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// Titan Text Embeddings response (`embeddingsByType` is not read).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanEmbedResponse {
    /// The float vector.
    pub embedding: Vec<f32>,
    /// Tokens of the input text.
    #[serde(default)]
    pub input_text_token_count: u64,
}

/// Cohere Embed v3 request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CohereEmbedRequest<'a> {
    /// Up to 96 texts.
    pub texts: &'a [String],
    /// `search_document`, `search_query`, `classification` or `clustering`.
    pub input_type: &'a str,
}

/// Cohere Embed v3 response without `embedding_types` (`response_type: embeddings_floats`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CohereEmbedResponse {
    /// One vector per text, in order.
    pub embeddings: Vec<Vec<f32>>,
}
