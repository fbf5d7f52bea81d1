//! InvokeModel bodies of the embedding models (bedrock-api.md §9.1): Titan Text Embeddings
//! v1 / v2 (one text per call) and Cohere Embed v3 (up to 96 texts per call).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

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
    pub embedding: FloatVector,
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
    pub embeddings: Vec<FloatVector>,
}

/// A float vector as Bedrock wrote it: a JSON array of numbers, kept as compact JSON text.
///
/// `encoding_format: float` copies the numbers through as they are instead of parsing and
/// re-printing a thousand of them per vector (most of an embeddings request's CPU); only base64
/// needs them as `f32` ([`FloatVector::to_f32`]). Deserializing checks that the value is an
/// array of numbers and nothing else, so the text can go to the caller unchanged.
#[derive(Clone, Debug)]
pub struct FloatVector(Box<RawValue>);

impl FloatVector {
    /// The array as compact JSON text.
    pub fn json(&self) -> &RawValue {
        &self.0
    }

    /// The array as compact JSON text, owned.
    pub fn into_json(self) -> Box<RawValue> {
        self.0
    }

    /// The components rounded to `f32`; `None` when one is beyond `f64` (Bedrock sends `f32`s).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        serde_json::from_str(self.0.get()).ok()
    }
}

impl PartialEq for FloatVector {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl<'de> Deserialize<'de> for FloatVector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        // serde_json has checked the syntax, so an array with nothing but number characters,
        // commas and whitespace between its brackets holds numbers only: no strings (quotes),
        // literals (letters other than the exponent's e) or nested values (brackets, braces).
        let inner = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).ok_or_else(|| {
            D::Error::invalid_type(serde::de::Unexpected::Other(value_kind(text)), &"an array of numbers")
        })?;
        // One table lookup per byte, no branch: a match with an early exit cost as much as
        // serde_json's own scan of the array.
        let seen = inner.bytes().fold(0, |seen, b| seen | BYTE_CLASS[usize::from(b)]);
        if seen & OTHER != 0 {
            return Err(D::Error::custom("expected an array of numbers"));
        }
        let spaced = seen & SPACE != 0;
        if !spaced {
            return Ok(FloatVector(raw));
        }
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        RawValue::from_string(compact).map(FloatVector).map_err(D::Error::custom)
    }
}

/// [`BYTE_CLASS`] of whitespace.
const SPACE: u8 = 1;
/// [`BYTE_CLASS`] of anything but number characters, commas and whitespace.
const OTHER: u8 = 2;
/// The class of every byte: 0 for digits, `-`, `+`, `.`, `e`, `E` and `,`.
const BYTE_CLASS: [u8; 256] = {
    let mut class = [OTHER; 256];
    let mut b = b'0';
    while b <= b'9' {
        class[b as usize] = 0;
        b += 1;
    }
    let mut i = 0;
    let number = *b"-+.eE,";
    while i < number.len() {
        class[number[i] as usize] = 0;
        i += 1;
    }
    let space = *b" \n\r\t";
    i = 0;
    while i < space.len() {
        class[space[i] as usize] = SPACE;
        i += 1;
    }
    class
};

/// What a JSON value that is not an array is, for the error message.
fn value_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b'{') => "a JSON object",
        Some(b'"') => "a string",
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(json: &str) -> Result<FloatVector, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_are_kept_as_written() {
        let v = vector("[0.1,-2.5e-3,1E+2,0,-0.0,3]").unwrap();
        assert_eq!(v.json().get(), "[0.1,-2.5e-3,1E+2,0,-0.0,3]");
        assert_eq!(v.to_f32().unwrap(), vec![0.1, -0.0025, 100.0, 0.0, -0.0, 3.0]);
        assert_eq!(vector("[]").unwrap().json().get(), "[]");
    }

    #[test]
    fn whitespace_is_dropped() {
        let v = vector(" [\n  0.25 ,\t-1\r\n] ").unwrap();
        assert_eq!(v.json().get(), "[0.25,-1]");
        assert_eq!(v.to_f32().unwrap(), vec![0.25, -1.0]);
    }

    #[test]
    fn anything_but_an_array_of_numbers_is_refused() {
        for bad in ["[1,\"2\"]", "[1,null]", "[true]", "[[1]]", "[{}]", "{}", "1", "\"[1]\"", "null"] {
            assert!(vector(bad).is_err(), "{bad} was accepted");
        }
        let err = vector("{\"a\":1}").unwrap_err().to_string();
        assert_eq!(err, "invalid type: a JSON object, expected an array of numbers");
        // Not JSON at all: serde_json's own syntax check.
        assert!(vector("[1,,2]").is_err());
        assert!(vector("[1 2]").is_err());
    }

    #[test]
    fn titan_and_cohere_bodies_read_their_vectors() {
        let titan: TitanEmbedResponse = serde_json::from_str(
            r#"{"embedding":[0.5,-0.25],"embeddingsByType":{"float":[0.5,-0.25]},"inputTextTokenCount":3}"#,
        )
        .unwrap();
        assert_eq!((titan.embedding.json().get(), titan.input_text_token_count), ("[0.5,-0.25]", 3));
        let value =
            serde_json::json!({"embeddings": [[1.5], [2.0, 3.0]], "response_type": "embeddings_floats"});
        let cohere: CohereEmbedResponse = serde_json::from_value(value).unwrap();
        let texts: Vec<&str> = cohere.embeddings.iter().map(|v| v.json().get()).collect();
        assert_eq!(texts, ["[1.5]", "[2.0,3.0]"]);
        assert!(serde_json::from_str::<TitanEmbedResponse>(r#"{"embedding":[0.5,"x"]}"#).is_err());
    }
}
