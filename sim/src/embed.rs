//! Embedding models over InvokeModel: Titan Text Embeddings v1 / v2 and Cohere Embed v3.
//!
//! Vectors are deterministic: component `i` comes from a SplitMix64 sequence seeded with a
//! SHA-256 of the text (see [`embedding_vector`]), so tests can compute the exact values a
//! text gets. Token counts are whitespace-separated words, at least 1.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::errors::{AwsError, request_id};
use crate::invoke::{Fields, Invocation, InvokeReply, seed, splitmix64};
use crate::request::malformed;

/// Dimensions of Titan Text Embeddings v1.
const TITAN_V1_DIMENSIONS: usize = 1536;
/// Dimensions Titan Text Embeddings v2 offers (first is the default).
const TITAN_V2_DIMENSIONS: [i64; 3] = [1024, 512, 256];
/// Dimensions of Cohere Embed v3 (English and multilingual).
pub(crate) const COHERE_DIMENSIONS: usize = 1024;
/// Most texts Cohere Embed accepts in one call.
const COHERE_MAX_TEXTS: usize = 96;
/// Longest text Cohere Embed accepts, in characters.
const COHERE_MAX_CHARS: usize = 2048;
/// Longest Titan input text, in characters.
const TITAN_MAX_CHARS: usize = 50_000;

/// The vector the simulator returns for `seed_text` (the text itself for Titan,
/// `"<input_type>:<text>"` for Cohere).
///
/// Component `i` is `(splitmix64 step i >> 40) / 2^23 - 1` from the state
/// `u64::from_le_bytes(sha256(len_le64(seed_text) || seed_text)[..8])`, computed in `f64`;
/// with `normalize` every component is divided by the Euclidean norm (summed in order, in
/// `f64`) before rounding to `f32`.
pub fn embedding_vector(seed_text: &str, dimensions: usize, normalize: bool) -> Vec<f32> {
    let mut state = seed(&[seed_text.as_bytes()]);
    let raw: Vec<f64> =
        (0..dimensions).map(|_| (splitmix64(&mut state) >> 40) as f64 / 8_388_608.0 - 1.0).collect();
    if !normalize {
        return raw.into_iter().map(|x| x as f32).collect();
    }
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    raw.into_iter().map(|x| (x / norm) as f32).collect()
}

/// Token count of a text as the simulator counts it: words, at least 1.
fn tokens(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// The text a Titan call embeds (for directives), or "" when there is none.
pub(crate) fn titan_text(body: &Map<String, Value>) -> String {
    body.get("inputText").and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The texts a Cohere call embeds, joined (for directives).
pub(crate) fn cohere_text(body: &Map<String, Value>) -> String {
    let texts = body.get("texts").and_then(Value::as_array);
    texts.into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TitanResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embeddings_by_type: Option<ByType>,
    input_text_token_count: u64,
}

#[derive(Serialize)]
struct ByType {
    #[serde(skip_serializing_if = "Option::is_none")]
    float: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<Vec<u8>>,
}

/// Titan Text Embeddings: v1 takes only `inputText`; v2 adds `dimensions`, `normalize`,
/// `embeddingTypes`.
pub(crate) fn titan(call: &Invocation<'_>, v2: bool) -> Result<InvokeReply, AwsError> {
    let allowed: &[&str] =
        if v2 { &["inputText", "dimensions", "normalize", "embeddingTypes"] } else { &["inputText"] };
    let f = Fields::new(call.body, "#", allowed)?;
    let text = f.text("inputText", 1, TITAN_MAX_CHARS)?;
    let dimensions = match f.int("dimensions", i64::MIN, i64::MAX)? {
        None if v2 => TITAN_V2_DIMENSIONS[0] as usize,
        None => TITAN_V1_DIMENSIONS,
        Some(d) if TITAN_V2_DIMENSIONS.contains(&d) => d as usize,
        Some(d) => return Err(malformed(format!("{}: {d} is not a valid enum value", f.at("dimensions")))),
    };
    let normalize = f.bool("normalize")?.unwrap_or(v2);
    let (mut float, mut binary) = (true, false);
    if let Some(types) = f.array("embeddingTypes")? {
        if types.is_empty() {
            return Err(malformed(format!("{}: expected minItems: 1, actual: 0", f.at("embeddingTypes"))));
        }
        float = false;
        for t in types {
            match t.as_str() {
                Some("float") => float = true,
                Some("binary") => binary = true,
                _ => {
                    return Err(malformed(format!(
                        "{}: {t} is not a valid enum value",
                        f.at("embeddingTypes")
                    )));
                }
            }
        }
    }
    let vector = embedding_vector(text, dimensions, normalize);
    let bits = binary.then(|| vector.iter().map(|x| u8::from(*x > 0.0)).collect());
    let response = TitanResponse {
        embedding: float.then(|| vector.clone()),
        embeddings_by_type: v2.then(|| ByType { float: float.then_some(vector), binary: bits }),
        input_text_token_count: tokens(text),
    };
    Ok(InvokeReply {
        body: serde_json::to_vec(&response).unwrap_or_default(),
        input_tokens: Some(tokens(text)),
        output_tokens: 0,
    })
}

#[derive(Serialize)]
struct CohereResponse<'a, E> {
    id: String,
    response_type: &'static str,
    embeddings: E,
    texts: Vec<&'a str>,
}

#[derive(Serialize)]
struct CohereByType {
    #[serde(skip_serializing_if = "Option::is_none")]
    float: Option<Vec<Vec<f32>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    int8: Option<Vec<Vec<i8>>>,
}

/// Cohere Embed v3: `texts` (at most 96, each at most 2048 characters) or one image,
/// `input_type` required; `embeddings` are floats unless `embedding_types` asks otherwise.
pub(crate) fn cohere(call: &Invocation<'_>) -> Result<InvokeReply, AwsError> {
    const INPUT_TYPES: &[&str] =
        &["search_document", "search_query", "classification", "clustering", "image"];
    let f = Fields::new(call.body, "#", &["texts", "input_type", "images", "truncate", "embedding_types"])?;
    f.require("input_type")?;
    let input_type = f.one_of("input_type", INPUT_TYPES)?.unwrap_or_default();
    f.one_of("truncate", &["NONE", "START", "END"])?;
    let mut inputs: Vec<&str> = Vec::new();
    match (f.array("texts")?, f.array("images")?) {
        (Some(_), Some(_)) => {
            return Err(AwsError::validation(
                "Malformed input request: only one of texts or images may be provided, please reformat your input and try again.",
            ));
        }
        (None, None) => f.require("texts")?,
        (Some(texts), None) => {
            if texts.len() > COHERE_MAX_TEXTS {
                return Err(malformed(format!(
                    "{}: expected maxItems: {COHERE_MAX_TEXTS}, actual: {}",
                    f.at("texts"),
                    texts.len()
                )));
            }
            for (i, t) in texts.iter().enumerate() {
                let s = t
                    .as_str()
                    .ok_or_else(|| malformed(format!("{}/{i}: expected type: String", f.at("texts"))))?;
                f.length(&format!("texts/{i}"), s, 0, COHERE_MAX_CHARS)?;
                inputs.push(s);
            }
        }
        (None, Some(images)) => {
            if images.len() != 1 {
                return Err(malformed(format!(
                    "{}: expected exactly 1 image, actual: {}",
                    f.at("images"),
                    images.len()
                )));
            }
            let uri = images[0].as_str().filter(|s| s.starts_with("data:image/")).ok_or_else(|| {
                malformed(format!("{}/0: expected a data URI of a JPEG or PNG image", f.at("images")))
            })?;
            inputs.push(uri);
        }
    }
    let vectors: Vec<Vec<f32>> = inputs
        .iter()
        .map(|t| embedding_vector(&format!("{input_type}:{t}"), COHERE_DIMENSIONS, false))
        .collect();
    let input_tokens = inputs.iter().map(|t| tokens(t)).sum();
    let texts = if f.has("texts") { inputs.clone() } else { Vec::new() };
    let body = match f.array("embedding_types")? {
        None => serde_json::to_vec(&CohereResponse {
            id: request_id(),
            response_type: "embeddings_floats",
            embeddings: vectors,
            texts,
        }),
        Some(types) => {
            let (mut float, mut int8) = (false, false);
            for t in types {
                match t.as_str() {
                    Some("float") => float = true,
                    Some("int8") => int8 = true,
                    Some("uint8" | "binary" | "ubinary") => {
                        return Err(AwsError::validation(format!(
                            "bedrock-sim: embedding type {t} is not simulated; use float or int8"
                        )));
                    }
                    _ => {
                        return Err(malformed(format!(
                            "{}: {t} is not a valid enum value",
                            f.at("embedding_types")
                        )));
                    }
                }
            }
            let quantized = int8.then(|| {
                vectors.iter().map(|v| v.iter().map(|x| (x * 127.0).round() as i8).collect()).collect()
            });
            serde_json::to_vec(&CohereResponse {
                id: request_id(),
                response_type: "embeddings_by_type",
                embeddings: CohereByType { float: float.then_some(vectors), int8: quantized },
                texts,
            })
        }
    };
    Ok(InvokeReply { body: body.unwrap_or_default(), input_tokens: Some(input_tokens), output_tokens: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Directives;
    use serde_json::json;

    fn call(body: Value) -> Result<Value, AwsError> {
        let body = body.as_object().unwrap().clone();
        let inv = Invocation { body: &body, directives: Directives::default() };
        let reply = if body.contains_key("texts") || body.contains_key("input_type") {
            cohere(&inv)?
        } else if body.len() > 1 {
            titan(&inv, true)?
        } else {
            titan(&inv, false)?
        };
        Ok(serde_json::from_slice(&reply.body).unwrap())
    }

    #[test]
    fn vectors_are_deterministic_and_normalized_on_request() {
        let a = embedding_vector("hello", 256, true);
        assert_eq!(a, embedding_vector("hello", 256, true));
        assert_ne!(a, embedding_vector("hello!", 256, true));
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let raw = embedding_vector("hello", 4, false);
        assert!(raw.iter().all(|x| (-1.0..1.0).contains(x)));
        // A prefix of a longer vector: the sequence does not depend on the length.
        assert_eq!(raw, embedding_vector("hello", 8, false)[..4]);
    }

    #[test]
    fn titan_v2_shapes() {
        let v = call(json!({"inputText": "two words", "dimensions": 256, "normalize": true})).unwrap();
        assert_eq!(v["inputTextTokenCount"], 2);
        assert_eq!(v["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(v["embeddingsByType"]["float"], v["embedding"]);
        let e = call(json!({"inputText": "x", "dimensions": 300})).unwrap_err();
        assert_eq!(
            e.message,
            "Malformed input request: #/dimensions: 300 is not a valid enum value, please reformat your input and try again."
        );
        let e = call(json!({"inputText": "", "normalize": true})).unwrap_err();
        assert!(e.message.contains("#/inputText: expected minLength: 1, actual: 0"), "{}", e.message);
    }

    #[test]
    fn titan_v1_refuses_v2_fields() {
        let v = call(json!({"inputText": "a b c"})).unwrap();
        assert_eq!(v["embedding"].as_array().unwrap().len(), 1536);
        assert!(v.get("embeddingsByType").is_none());
        let body = json!({"inputText": "a", "dimensions": 256}).as_object().unwrap().clone();
        let inv = Invocation { body: &body, directives: Directives::default() };
        let e = titan(&inv, false).unwrap_err();
        assert!(e.message.contains("extraneous key [dimensions]"), "{}", e.message);
    }

    #[test]
    fn cohere_batches_and_limits() {
        let v = call(json!({"texts": ["a b", "c"], "input_type": "search_query"})).unwrap();
        assert_eq!(v["response_type"], "embeddings_floats");
        assert_eq!(v["texts"], json!(["a b", "c"]));
        let first: Vec<f32> = serde_json::from_value(v["embeddings"][0].clone()).unwrap();
        assert_eq!(first, embedding_vector("search_query:a b", 1024, false));
        let many: Vec<String> = (0..97).map(|i| i.to_string()).collect();
        let e = call(json!({"texts": many, "input_type": "clustering"})).unwrap_err();
        assert!(e.message.contains("#/texts: expected maxItems: 96, actual: 97"), "{}", e.message);
        let e = call(json!({"texts": ["a"]})).unwrap_err();
        assert!(e.message.contains("required key [input_type] not found"), "{}", e.message);
        let e = call(json!({"texts": ["a"], "input_type": "search_query", "inputText": "a"})).unwrap_err();
        assert!(e.message.contains("extraneous key [inputText]"), "{}", e.message);
        let by_type =
            call(json!({"texts": ["a"], "input_type": "search_query", "embedding_types": ["float", "int8"]}))
                .unwrap();
        assert_eq!(by_type["response_type"], "embeddings_by_type");
        assert_eq!(by_type["embeddings"]["int8"][0].as_array().unwrap().len(), 1024);
    }
}
