//! InvokeModel (`POST /model/{modelId}/invoke`) for the embedding, image and text (Anthropic
//! Messages, Nova) families: the model family comes from the model id, the body is validated as strictly as
//! Bedrock validates it (a field of another family is a ValidationException), and the answer is
//! a deterministic model-native JSON body.
//!
//! Directives (`[[sim:error=...]]`, `[[sim:latency=MS]]`, `[[sim:filter]]`) go in the text to
//! embed or in the prompt, like in a Converse message.

use http::HeaderMap;
use serde_json::{Map, Value};

use crate::errors::AwsError;
use crate::faults::{self, Directives};
use crate::request::malformed;
use crate::{embed, image, text};

/// A model family with its own InvokeModel body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// `amazon.titan-embed-text-v1`.
    TitanEmbedV1,
    /// `amazon.titan-embed-text-v2:0`.
    TitanEmbedV2,
    /// `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`.
    CohereEmbed,
    /// `amazon.titan-image-generator-v1` / `-v2:0`.
    TitanImage {
        /// v2 has the conditioning, colour-guided and background-removal tasks.
        v2: bool,
    },
    /// `amazon.nova-canvas-v1:0`.
    NovaCanvas,
    /// `stability.sd3-5-large-v1:0`, `stability.stable-image-ultra-*`, `stability.stable-image-core-*`.
    Stability {
        /// SD3.5 Large also does image-to-image.
        image_to_image: bool,
    },
    /// `anthropic.claude-*`: Anthropic Messages bodies.
    AnthropicMessages,
    /// `amazon.nova-micro`, `-lite`, `-pro`, `-premier`: Nova `messages-v1` bodies.
    NovaText,
}

impl Family {
    /// The family of a model id, inference profile id or ARN that names the model.
    pub(crate) fn of(model_id: &str) -> Option<Family> {
        let id = model_id.rsplit('/').next().unwrap_or(model_id);
        let has = |needle: &str| id.contains(needle);
        Some(if has("amazon.titan-embed-text-v1") {
            Family::TitanEmbedV1
        } else if has("amazon.titan-embed-text-v2") {
            Family::TitanEmbedV2
        } else if has("cohere.embed-english-v3") || has("cohere.embed-multilingual-v3") {
            Family::CohereEmbed
        } else if has("amazon.titan-image-generator-v1") {
            Family::TitanImage { v2: false }
        } else if has("amazon.titan-image-generator-v2") {
            Family::TitanImage { v2: true }
        } else if has("amazon.nova-canvas") {
            Family::NovaCanvas
        } else if has("stability.sd3-5-large") {
            Family::Stability { image_to_image: true }
        } else if has("stability.stable-image-ultra") || has("stability.stable-image-core") {
            Family::Stability { image_to_image: false }
        } else if has("anthropic.claude") {
            Family::AnthropicMessages
        } else if ["amazon.nova-micro", "amazon.nova-lite", "amazon.nova-pro", "amazon.nova-premier"]
            .iter()
            .any(|n| has(n))
        {
            Family::NovaText
        } else {
            return None;
        })
    }
}

/// A successful InvokeModel answer.
#[derive(Debug, PartialEq)]
pub(crate) struct InvokeReply {
    /// The model-native JSON body.
    pub body: Vec<u8>,
    /// Value of `X-Amzn-Bedrock-Input-Token-Count`, for models that count input tokens.
    pub input_tokens: Option<u64>,
    /// Output tokens (text models; 0 for embeddings and images).
    pub output_tokens: u64,
}

/// What a family handler needs: the parsed body and the directives found in its text.
pub(crate) struct Invocation<'a> {
    /// The request body's top-level object.
    pub body: &'a Map<String, Value>,
    /// Directives of the text or prompt.
    pub directives: Directives,
}

/// Answers one InvokeModel call after authentication.
pub(crate) async fn answer(
    model_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<InvokeReply, AwsError> {
    let family = family(model_id)?;
    let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return Err(AwsError::validation(format!(
            "The provided Content-Type '{content_type}' is not supported for this model; use application/json."
        )));
    }
    answer_json(model_id, family, body).await
}

/// The family of `model_id`, or the ValidationException InvokeModel answers for other models.
pub(crate) fn family(model_id: &str) -> Result<Family, AwsError> {
    Family::of(model_id).ok_or_else(|| {
        AwsError::validation(format!("bedrock-sim: InvokeModel is not simulated for model '{model_id}'"))
    })
}

/// Answers the JSON `body` of an InvokeModel call (or a batch record's `modelInput`) for `family`.
pub(crate) async fn answer_json(
    model_id: &str,
    family: Family,
    body: &[u8],
) -> Result<InvokeReply, AwsError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON ({e})")))?;
    let body = value.as_object().ok_or_else(|| malformed("#: expected type: JSONObject"))?;
    let text = match family {
        // Text bodies go through the Converse logic, directives included.
        Family::AnthropicMessages => return text::anthropic(model_id, body).await,
        Family::NovaText => return text::nova(model_id, body).await,
        Family::TitanEmbedV1 | Family::TitanEmbedV2 => embed::titan_text(body),
        Family::CohereEmbed => embed::cohere_text(body),
        Family::TitanImage { .. } | Family::NovaCanvas | Family::Stability { .. } => image::prompt_text(body),
    };
    let directives = faults::parse(&text)?;
    if !directives.latency.is_zero() {
        tokio::time::sleep(directives.latency).await;
    }
    if let Some(name) = &directives.error {
        return Err(AwsError::modeled(name, model_id).unwrap_or_else(|| AwsError::validation(name.clone())));
    }
    let call = Invocation { body, directives };
    match family {
        Family::TitanEmbedV1 => embed::titan(&call, false),
        Family::TitanEmbedV2 => embed::titan(&call, true),
        Family::CohereEmbed => embed::cohere(&call),
        Family::TitanImage { v2 } => image::titan_nova(&call, image::Canvas::Titan { v2 }),
        Family::NovaCanvas => image::titan_nova(&call, image::Canvas::Nova),
        Family::Stability { image_to_image } => image::stability(&call, image_to_image),
        Family::AnthropicMessages | Family::NovaText => unreachable!("answered above"),
    }
}

/// Checked access to one JSON object of a request body, with Bedrock's messages for
/// model-native schema errors (`#/path: ...`).
pub(crate) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    /// The object at `path` (`#` for the body), refusing keys outside `allowed`.
    pub fn new(
        obj: &'a Map<String, Value>,
        path: impl Into<String>,
        allowed: &[&str],
    ) -> Result<Self, AwsError> {
        let path = path.into();
        if let Some(key) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(malformed(format!("{path}: extraneous key [{key}] is not permitted")));
        }
        Ok(Fields { obj, path })
    }

    /// The path of member `key`.
    pub fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.path)
    }

    fn wrong_type(&self, key: &str, expected: &str) -> AwsError {
        let found = match &self.obj[key] {
            Value::Null => "Null",
            Value::Bool(_) => "Boolean",
            Value::Number(_) => "Number",
            Value::String(_) => "String",
            Value::Array(_) => "JSONArray",
            Value::Object(_) => "JSONObject",
        };
        malformed(format!("{}: expected type: {expected}, found: {found}", self.at(key)))
    }

    /// Fails when `key` is absent.
    pub fn require(&self, key: &str) -> Result<(), AwsError> {
        if self.obj.contains_key(key) {
            Ok(())
        } else {
            Err(malformed(format!("{}: required key [{key}] not found", self.path)))
        }
    }

    /// An optional string member.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, AwsError> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong_type(key, "String")),
        }
    }

    /// A required string member whose length (in characters) is within `min..=max`.
    pub fn text(&self, key: &str, min: usize, max: usize) -> Result<&'a str, AwsError> {
        self.require(key)?;
        let s = self.str(key)?.unwrap_or_default();
        self.length(key, s, min, max)?;
        Ok(s)
    }

    /// Checks the length of an optional string already read.
    pub fn length(&self, key: &str, s: &str, min: usize, max: usize) -> Result<(), AwsError> {
        let n = s.chars().count();
        if n < min {
            return Err(malformed(format!("{}: expected minLength: {min}, actual: {n}", self.at(key))));
        }
        if n > max {
            return Err(malformed(format!("{}: expected maxLength: {max}, actual: {n}", self.at(key))));
        }
        Ok(())
    }

    /// An optional string member that must be one of `values`.
    pub fn one_of(&self, key: &str, values: &[&str]) -> Result<Option<&'a str>, AwsError> {
        match self.str(key)? {
            Some(s) if !values.contains(&s) => {
                Err(malformed(format!("{}: {s} is not a valid enum value", self.at(key))))
            }
            other => Ok(other),
        }
    }

    /// An optional integer member within `min..=max`.
    pub fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, AwsError> {
        let Some(v) = self.obj.get(key) else { return Ok(None) };
        let n = v.as_i64().ok_or_else(|| self.wrong_type(key, "Integer"))?;
        self.range(key, n as f64, min as f64, max as f64)?;
        Ok(Some(n))
    }

    /// An optional number member within `min..=max`.
    pub fn number(&self, key: &str, min: f64, max: f64) -> Result<Option<f64>, AwsError> {
        let Some(v) = self.obj.get(key) else { return Ok(None) };
        let x = v.as_f64().ok_or_else(|| self.wrong_type(key, "Number"))?;
        self.range(key, x, min, max)?;
        Ok(Some(x))
    }

    fn range(&self, key: &str, x: f64, min: f64, max: f64) -> Result<(), AwsError> {
        if x < min {
            return Err(malformed(format!("{}: {x} is not greater or equal to {min}", self.at(key))));
        }
        if x > max {
            return Err(malformed(format!("{}: {x} is not less or equal to {max}", self.at(key))));
        }
        Ok(())
    }

    /// An optional boolean member.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, AwsError> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.wrong_type(key, "Boolean")),
        }
    }

    /// An optional array member.
    pub fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, AwsError> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.wrong_type(key, "JSONArray")),
        }
    }

    /// An optional object member.
    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, AwsError> {
        match self.obj.get(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(self.wrong_type(key, "JSONObject")),
        }
    }

    /// A required object member.
    pub fn required_object(&self, key: &str) -> Result<&'a Map<String, Value>, AwsError> {
        self.require(key)?;
        self.object(key)?.ok_or_else(|| self.wrong_type(key, "JSONObject"))
    }

    /// A required array member.
    pub fn required_array(&self, key: &str) -> Result<&'a Vec<Value>, AwsError> {
        self.require(key)?;
        self.array(key)?.ok_or_else(|| self.wrong_type(key, "JSONArray"))
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }
}

/// A 64-bit seed from a hash of `parts` (stable across runs and platforms).
pub(crate) fn seed(parts: &[&[u8]]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// SplitMix64: the next value of a deterministic sequence.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_ids_profiles_and_arns() {
        assert_eq!(Family::of("amazon.titan-embed-text-v2:0"), Some(Family::TitanEmbedV2));
        assert_eq!(Family::of("amazon.titan-embed-text-v1"), Some(Family::TitanEmbedV1));
        assert_eq!(Family::of("cohere.embed-multilingual-v3"), Some(Family::CohereEmbed));
        assert_eq!(Family::of("us.amazon.nova-canvas-v1:0"), Some(Family::NovaCanvas));
        assert_eq!(
            Family::of("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-image-generator-v2:0"),
            Some(Family::TitanImage { v2: true })
        );
        assert_eq!(
            Family::of("stability.sd3-5-large-v1:0"),
            Some(Family::Stability { image_to_image: true })
        );
        assert_eq!(
            Family::of("us.stability.stable-image-core-v1:1"),
            Some(Family::Stability { image_to_image: false })
        );
        assert_eq!(Family::of("us.anthropic.claude-3-haiku-20240307-v1:0"), Some(Family::AnthropicMessages));
        assert_eq!(Family::of("eu.amazon.nova-pro-v1:0"), Some(Family::NovaText));
        assert_eq!(Family::of("meta.llama3-1-70b-instruct-v1:0"), None);
    }

    #[test]
    fn seeds_are_stable() {
        assert_eq!(seed(&[b"a", b"bc"]), seed(&[b"a", b"bc"]));
        assert_ne!(seed(&[b"ab", b"c"]), seed(&[b"a", b"bc"]));
        let mut s = 1;
        assert_ne!(splitmix64(&mut s), splitmix64(&mut s));
    }
}
