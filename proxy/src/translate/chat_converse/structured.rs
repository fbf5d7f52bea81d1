//! Structured output: `response_format` `json_object` / `json_schema`.
//!
//! Models with native structured output get `outputConfig.textFormat` (the schema as a string).
//! The others get a forced tool whose input schema is the requested one; the reply translator
//! returns that tool's input as `message.content` (finish_reason `stop`), never as a tool call.
//! Keywords Bedrock rejects in schemas (numeric and length bounds, `pattern`, ...) are stripped.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::family::{Capabilities, ReasoningStyle};
use super::tools::{ToolNames, any_object};
use crate::bedrock::converse::{
    Empty, InputSchema, JsonSchemaDefinition, NamedTool, TextFormat, TextFormatStructure, ToolChoice,
    ToolSpec,
};
use crate::error::ApiError;
use crate::openai::chat::{ChatCompletionRequest, ResponseFormat, ToolChoice as OpenAiChoice};

/// Schema keywords Bedrock refuses; stripped wherever a schema is sent.
const STRIPPED_KEYWORDS: &[&str] = &[
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
];

/// Keywords whose value is a schema.
const SCHEMA_VALUED: &[&str] = &["items", "additionalProperties", "not", "contains", "if", "then", "else"];
/// Keywords whose value is a list of schemas.
const SCHEMA_LISTS: &[&str] = &["anyOf", "allOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAPS: &[&str] = &["properties", "$defs", "definitions", "patternProperties"];

/// `schema` without the keywords Bedrock rejects; borrowed when there was nothing to strip.
pub(super) fn strip_schema(schema: &Value) -> Cow<'_, Value> {
    if needs_strip(schema) {
        let mut owned = schema.clone();
        strip_in_place(&mut owned);
        Cow::Owned(owned)
    } else {
        Cow::Borrowed(schema)
    }
}

fn subschemas(obj: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    obj.iter().flat_map(|(k, v)| {
        let k = k.as_str();
        let list: Box<dyn Iterator<Item = &Value>> = if SCHEMA_VALUED.contains(&k) {
            Box::new(std::iter::once(v))
        } else if SCHEMA_LISTS.contains(&k) {
            Box::new(v.as_array().into_iter().flatten())
        } else if SCHEMA_MAPS.contains(&k) {
            Box::new(v.as_object().into_iter().flat_map(|m| m.values()))
        } else {
            Box::new(std::iter::empty())
        };
        list
    })
}

fn needs_strip(schema: &Value) -> bool {
    let Some(obj) = schema.as_object() else { return false };
    STRIPPED_KEYWORDS.iter().any(|k| obj.contains_key(*k)) || subschemas(obj).any(needs_strip)
}

fn strip_in_place(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    obj.retain(|k, _| !STRIPPED_KEYWORDS.contains(&k.as_str()));
    for (k, v) in obj.iter_mut() {
        let k = k.as_str();
        if SCHEMA_VALUED.contains(&k) {
            strip_in_place(v);
        } else if SCHEMA_LISTS.contains(&k) {
            v.as_array_mut().into_iter().flatten().for_each(strip_in_place);
        } else if SCHEMA_MAPS.contains(&k) {
            v.as_object_mut().into_iter().flat_map(|m| m.values_mut()).for_each(strip_in_place);
        }
    }
}

/// How a request's `response_format` is carried.
#[derive(Debug, Default)]
pub(super) struct Structured<'a> {
    /// Native: `outputConfig.textFormat`.
    pub text_format: Option<TextFormat>,
    /// Forced tool: its spec and the tool choice that forces it.
    pub forced: Option<(ToolSpec<'a>, ToolChoice<'a>)>,
    /// The forced tool's name, whose input is the answer.
    pub tool_name: Option<String>,
}

/// Plans `response_format` for the model; `thinking`: the request enables reasoning.
pub(super) fn plan<'a>(
    req: &'a ChatCompletionRequest,
    caps: &Capabilities,
    names: &ToolNames,
    thinking: bool,
) -> Result<Structured<'a>, ApiError> {
    let (name, description, schema) = match &req.response_format {
        ResponseFormat::Text => return Ok(Structured::default()),
        ResponseFormat::JsonObject => ("json_object", None, None),
        ResponseFormat::JsonSchema(f) => (f.name.as_str(), f.description.as_deref(), f.schema.as_ref()),
    };
    let schema = schema.map_or_else(|| Cow::Owned(any_object()), strip_schema);
    if caps.native_json {
        let text_format = TextFormat {
            kind: "json_schema",
            structure: TextFormatStructure {
                json_schema: JsonSchemaDefinition {
                    schema: schema.to_string(),
                    name: Some(name.to_owned()),
                    description: description.map(str::to_owned),
                },
            },
        };
        return Ok(Structured { text_format: Some(text_format), ..Structured::default() });
    }
    if !caps.tools {
        return Err(super::unsupported(
            req,
            caps,
            "`response_format` (it has neither native JSON output nor tools)",
            "response_format",
        ));
    }
    if thinking && matches!(caps.reasoning, ReasoningStyle::Budget | ReasoningStyle::Adaptive) {
        return Err(ApiError::invalid_request(format!(
            "The model `{}` ({}) cannot combine `response_format` with `reasoning_effort`: without native \
             structured output the gateway forces a tool call, which thinking forbids.",
            req.model, caps.family
        ))
        .with_param("response_format"));
    }
    if matches!(req.tool_choice, Some(OpenAiChoice::Required | OpenAiChoice::Function(_))) {
        return Err(ApiError::invalid_request(format!(
            "The model `{}` ({}) cannot combine `response_format` with a forced `tool_choice`.",
            req.model, caps.family
        ))
        .with_param("tool_choice"));
    }
    // The tool is named after the format, kept clear of the caller's tools.
    let mut tool_name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .take(48)
        .collect();
    while req.tools.iter().any(|t| names.to_bedrock(&t.name) == tool_name) {
        tool_name.insert_str(0, "response_");
    }
    let other_tools = !req.tools.is_empty() && req.tool_choice != Some(OpenAiChoice::None);
    let choice = if other_tools {
        // The model may still call the caller's tools; it must call one of them or answer.
        ToolChoice::Any(Empty {})
    } else {
        ToolChoice::Tool(NamedTool { name: Cow::Owned(tool_name.clone()) })
    };
    let spec = ToolSpec {
        name: Cow::Owned(tool_name.clone()),
        description: Some(description.unwrap_or("Answer with a JSON object matching this schema.")),
        input_schema: InputSchema { json: schema },
    };
    Ok(Structured { text_format: None, forced: Some((spec, choice)), tool_name: Some(tool_name) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_keywords_but_not_property_names() {
        let schema = json!({
            "type": "object",
            "properties": {
                "minimum": {"type": "integer", "minimum": 1, "maximum": 9},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1}
            },
            "anyOf": [{"exclusiveMinimum": 0}]
        });
        assert_eq!(
            strip_schema(&schema).into_owned(),
            json!({
                "type": "object",
                "properties": {
                    "minimum": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "anyOf": [{}]
            })
        );
        let clean = json!({"type": "object"});
        assert!(matches!(strip_schema(&clean), Cow::Borrowed(_)));
    }
}
