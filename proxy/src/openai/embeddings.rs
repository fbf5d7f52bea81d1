//! `POST /v1/embeddings`: request parsing and validation, response types.
//!
//! `input` is a string or an array of strings; token-id arrays (which only OpenAI's own
//! tokenizers produce) are refused, since Bedrock embedding models take text. Two extra fields
//! reach the Bedrock models that have them: `input_type` (Cohere) and `normalize` (Titan v2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::parse::{check_rest, from_json, missing, unsupported};
use crate::error::ApiError;

/// Most inputs one request may carry (OpenAI's limit).
pub const MAX_INPUTS: usize = 2048;

/// A validated embeddings request.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingRequest {
    /// Served model name.
    pub model: String,
    /// Texts to embed, in order; never empty, no empty strings.
    pub input: Vec<String>,
    /// How vectors are returned.
    pub encoding_format: EncodingFormat,
    /// Requested vector length.
    pub dimensions: Option<u32>,
    /// Cohere `input_type` (extra field).
    pub input_type: Option<String>,
    /// Titan v2 `normalize` (extra field).
    pub normalize: Option<bool>,
}

/// `encoding_format` of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    /// JSON arrays of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian float32 bytes, as OpenAI encodes them.
    Base64,
}

#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct WireRequest {
    model: Option<String>,
    input: Option<Value>,
    encoding_format: Option<EncodingFormat>,
    dimensions: Option<u32>,
    input_type: Option<String>,
    normalize: Option<bool>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Parses and validates an embeddings request body; errors name the field at fault.
pub fn parse_embedding_request(body: &[u8]) -> Result<EmbeddingRequest, ApiError> {
    let wire: WireRequest = from_json(body)?;
    check_rest(&wire.rest, &["user"], &[], unsupported, str::to_owned)?;
    let model = wire.model.filter(|m| !m.is_empty()).ok_or_else(|| missing("model".to_owned()))?;
    let input = texts(wire.input.ok_or_else(|| missing("input".to_owned()))?)?;
    if wire.dimensions == Some(0) {
        return Err(ApiError::invalid_request("Invalid value for `dimensions`: it must be at least 1.")
            .with_param("dimensions"));
    }
    Ok(EmbeddingRequest {
        model,
        input,
        encoding_format: wire.encoding_format.unwrap_or_default(),
        dimensions: wire.dimensions,
        input_type: wire.input_type,
        normalize: wire.normalize,
    })
}

fn texts(input: Value) -> Result<Vec<String>, ApiError> {
    let token_ids = || {
        ApiError::invalid_request(
            "Token ids as `input` are not supported: Bedrock embedding models take text. Send the text \
             (a string or an array of strings) instead.",
        )
        .with_param("input")
    };
    let empty = |param: String| {
        ApiError::invalid_request(format!("Invalid value for `{param}`: it must not be an empty string."))
            .with_param(param)
    };
    let items = match input {
        Value::String(s) if s.is_empty() => return Err(empty("input".to_owned())),
        Value::String(s) => return Ok(vec![s]),
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid_request(
                "Invalid value for `input`: it must be a string or an array of strings.",
            )
            .with_param("input"));
        }
    };
    if items.is_empty() {
        return Err(
            ApiError::invalid_request("`input` must contain at least one string.").with_param("input")
        );
    }
    if items.len() > MAX_INPUTS {
        return Err(ApiError::invalid_request(format!(
            "`input` has {} items; at most {MAX_INPUTS} are allowed per request.",
            items.len()
        ))
        .with_param("input"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) if s.is_empty() => Err(empty(format!("input[{i}]"))),
            Value::String(s) => Ok(s),
            Value::Number(_) | Value::Array(_) => Err(token_ids()),
            _ => {
                Err(ApiError::invalid_request(format!("Invalid value for `input[{i}]`: expected a string."))
                    .with_param(format!("input[{i}]")))
            }
        })
        .collect()
}

/// The `object` of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListObject {
    /// Always `list`.
    List,
}

/// The `object` of one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingObject {
    /// Always `embedding`.
    Embedding,
}

/// The embeddings response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EmbeddingList {
    /// Always `list`.
    pub object: ListObject,
    /// One item per input, in input order.
    pub data: Vec<Embedding>,
    /// Served model name.
    pub model: String,
    /// Token counts.
    pub usage: EmbeddingUsage,
}

/// One embedding.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: EmbeddingObject,
    /// Position of the input.
    pub index: usize,
    /// The vector, encoded as requested.
    pub embedding: Vector,
}

/// A vector as floats or as base64 text.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Vector {
    /// `encoding_format: float`: a JSON array of numbers, written out as it is.
    Float(Box<RawValue>),
    /// `encoding_format: base64`.
    Base64(String),
}

impl Vector {
    /// `encoding_format: base64`: the little-endian float32 bytes, exactly as OpenAI encodes them.
    pub fn base64(vector: &[f32]) -> Self {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        Vector::Base64(STANDARD.encode(bytes))
    }
}

impl PartialEq for Vector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Vector::Float(a), Vector::Float(b)) => a.get() == b.get(),
            (Vector::Base64(a), Vector::Base64(b)) => a == b,
            _ => false,
        }
    }
}

/// Token counts of an embeddings request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct EmbeddingUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Same as `prompt_tokens`.
    pub total_tokens: u64,
}

impl EmbeddingList {
    /// The response for `vectors`, already encoded, in input order.
    pub fn new(model: &str, vectors: Vec<Vector>, prompt_tokens: u64) -> Self {
        let data = (0..)
            .zip(vectors)
            .map(|(index, embedding)| Embedding { object: EmbeddingObject::Embedding, index, embedding })
            .collect();
        EmbeddingList {
            object: ListObject::List,
            data,
            model: model.to_owned(),
            usage: EmbeddingUsage { prompt_tokens, total_tokens: prompt_tokens },
        }
    }
}
