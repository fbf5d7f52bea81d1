//! `POST /v1/chat/completions`: request parsing and validation, response and chunk types.
//!
//! Parsing happens in two steps: serde reads the body into private wire structs (every field
//! optional, unknown keys collected), then validation turns them into [`ChatCompletionRequest`],
//! which holds only what the gateway can translate. A field the gateway cannot honour is refused
//! with a 400 naming it rather than dropped, so callers never get silently different behaviour;
//! a field that cannot change the output on Bedrock (`store`, `parallel_tool_calls`, ...) is
//! accepted and not forwarded. `seed` and the penalties are best-effort at OpenAI too: they reach
//! the families that take them and are ignored elsewhere (see `translate::chat_converse`).
//!
//! Extensions beyond OpenAI's schema: `top_k`, `additional_model_request_fields` (an object passed
//! as is to Bedrock's `additionalModelRequestFields`; unknown top-level keys, as the SDKs send
//! `extra_body`, join it, so model-specific parameters reach Bedrock, which judges them), and on assistant messages `thinking_blocks`
//! (the signed thinking of an earlier response, returned unchanged) and `reasoning_content`
//! (accepted and ignored, so a response message can be sent back as it came).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parse::{check_rest, from_json, invalid, missing, unsupported};
use crate::error::ApiError;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// Instructions from the application (newer name for `system`).
    Developer,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
    /// A function result (deprecated form of `tool`).
    Function,
}

/// A validated chat completion request: everything in it is something the gateway translates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatCompletionRequest {
    /// Served model name (`<account>/<model>`).
    pub model: String,
    /// The conversation, in order; never empty.
    pub messages: Vec<ChatMessage>,
    /// Output token limit: `max_completion_tokens` when given, else `max_tokens`; at least 1.
    pub max_tokens: Option<u32>,
    /// Sampling temperature, checked to be within Bedrock's range 0..=1.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass, 0..=1.
    pub top_p: Option<f32>,
    /// Stop sequences, with empty strings (which can never match) removed.
    pub stop: Vec<String>,
    /// Whether the caller asked for server-sent events.
    pub stream: bool,
    /// Choices wanted (`n`), 1..=[`MAX_CHOICES`]; more than 1 only without `stream`.
    pub n: u32,
    /// Options for a streamed response.
    pub stream_options: StreamOptions,
    /// End-user identifier supplied by the caller.
    pub user: Option<String>,
    /// Functions the model may call, in order.
    pub tools: Vec<Tool>,
    /// How the model must use the tools.
    pub tool_choice: Option<ToolChoice>,
    /// The shape of the answer.
    pub response_format: ResponseFormat,
    /// How hard the model should think.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Processing tier.
    pub service_tier: Option<ServiceTier>,
    /// Caller's key/value tags.
    pub metadata: BTreeMap<String, String>,
    /// Top-k sampling (extension).
    pub top_k: Option<u32>,
    /// `seed`, forwarded to the families that take one.
    pub seed: Option<i64>,
    /// `frequency_penalty`, forwarded to the families that take one.
    pub frequency_penalty: Option<f32>,
    /// `presence_penalty`, forwarded to the families that take one.
    pub presence_penalty: Option<f32>,
    /// Passed as is to `additionalModelRequestFields` (extension).
    pub additional_model_request_fields: Map<String, Value>,
}

/// Largest `n`: each choice is one Bedrock call.
pub const MAX_CHOICES: u32 = 8;

/// `stream_options` of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and `"usage": null` on every other chunk).
    pub include_usage: bool,
}

/// One function tool.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// The name the caller uses (may need sanitising for Bedrock).
    pub name: String,
    /// What the function does.
    pub description: Option<String>,
    /// JSON schema of the arguments; `None` means any object.
    pub parameters: Option<Value>,
    /// `cache_control` on the tool: cache the definitions up to and including it.
    pub cache: Option<CacheTtl>,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// Never call a tool.
    None,
    /// The model decides.
    Auto,
    /// Call at least one tool.
    Required,
    /// Call this tool.
    Function(String),
}

/// `response_format`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema(JsonSchemaFormat),
}

/// `response_format.json_schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonSchemaFormat {
    /// Name of the format.
    pub name: String,
    /// What the format is for.
    pub description: Option<String>,
    /// The schema; `None` means any JSON object.
    pub schema: Option<Value>,
}

/// `reasoning_effort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// No reasoning.
    None,
    /// As little as possible (treated as `low`).
    Minimal,
    /// Little.
    Low,
    /// Some.
    Medium,
    /// Much.
    High,
}

/// `service_tier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTier {
    /// Let the service pick (nothing is sent).
    Auto,
    /// Standard.
    Default,
    /// Cheaper, slower.
    Flex,
    /// Faster, dearer.
    Priority,
}

/// How long a cached prefix lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheTtl {
    /// The provider's default (5 minutes).
    Default,
    /// One hour (`"ttl": "1h"`).
    OneHour,
}

/// One message of the conversation. `name` is accepted on every role and not forwarded:
/// Bedrock has no place for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatMessage {
    /// `role: "system"`.
    System {
        /// The instructions.
        content: Vec<ContentPart>,
    },
    /// `role: "developer"`.
    Developer {
        /// The instructions.
        content: Vec<ContentPart>,
    },
    /// `role: "user"`.
    User {
        /// What the user said.
        content: Vec<ContentPart>,
    },
    /// `role: "assistant"`; `content: null` reads as no parts.
    Assistant {
        /// What the model said earlier.
        content: Vec<ContentPart>,
        /// The calls it made.
        tool_calls: Vec<ToolCall>,
        /// Its signed thinking, as returned in `thinking_blocks`.
        thinking: Vec<ThinkingBlock>,
    },
    /// `role: "tool"`.
    Tool {
        /// The call this answers.
        tool_call_id: String,
        /// What the tool returned.
        content: Vec<ContentPart>,
    },
}

/// One tool call of an assistant message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// Call id.
    pub id: String,
    /// Function name as the caller knows it.
    pub name: String,
    /// Arguments, a JSON text (possibly empty).
    pub arguments: String,
}

/// A thinking block: what `thinking_blocks` holds in responses and in assistant messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock {
    /// Readable thinking with the signature that vouches for it.
    Thinking {
        /// The text (may be empty when only the signature was kept).
        #[serde(default)]
        thinking: String,
        /// The model's signature.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Encrypted thinking.
    RedactedThinking {
        /// Opaque base64 data.
        data: String,
    },
}

/// One part of a message's content; a plain string content is a single text part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentPart {
    /// `{"type": "text", "text": ...}`.
    Text(String),
    /// `{"type": "image_url", "image_url": {"url": ...}}`: a data URL or an http(s) URL.
    Image(String),
    /// `{"type": "file", "file": {"file_data", "filename"}}`.
    File {
        /// A data URL or bare base64.
        data: String,
        /// The caller's file name.
        filename: Option<String>,
    },
    /// Follows a part that carried `cache_control`: cache the prompt up to here.
    CachePoint(CacheTtl),
}

/// Top-level fields accepted and not forwarded: Bedrock has no way to honour them, and leaving
/// them out changes nothing a caller can rely on.
const HARMLESS_FIELDS: &[&str] =
    &["parallel_tool_calls", "store", "prompt_cache_key", "prompt_cache_retention", "safety_identifier"];

/// Top-level OpenAI fields the gateway cannot honour on Bedrock.
const UNSUPPORTED_FIELDS: &[&str] = &[
    "functions",
    "function_call",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "verbosity",
    "moderation",
];

/// Message fields the gateway cannot honour.
const UNSUPPORTED_MESSAGE_FIELDS: &[&str] = &["function_call", "audio"];

/// Message fields accepted and not forwarded.
const HARMLESS_MESSAGE_FIELDS: &[&str] = &["name", "refusal", "reasoning_content", "annotations"];

#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct WireRequest {
    model: Option<String>,
    messages: Option<Vec<WireMessage>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Option<OneOrMany<String>>,
    stream: Option<bool>,
    stream_options: Option<WireStreamOptions>,
    user: Option<String>,
    n: Option<u32>,
    logprobs: Option<bool>,
    tools: Option<Vec<WireTool>>,
    tool_choice: Option<Value>,
    response_format: Option<WireResponseFormat>,
    reasoning_effort: Option<ReasoningEffort>,
    service_tier: Option<ServiceTier>,
    metadata: Option<BTreeMap<String, String>>,
    top_k: Option<u32>,
    seed: Option<i64>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    additional_model_request_fields: Option<Map<String, Value>>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

// Unknown keys here (`include_obfuscation`) are ignored: they only shape the byte stream.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
struct WireStreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
#[serde(expecting = "a tool object")]
struct WireTool {
    #[serde(rename = "type")]
    kind: Option<String>,
    function: Option<WireFunction>,
    cache_control: Option<WireCacheControl>,
}

#[derive(Deserialize)]
#[serde(expecting = "a function object")]
struct WireFunction {
    name: Option<String>,
    description: Option<String>,
    parameters: Option<Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a cache_control object")]
struct WireCacheControl {
    #[serde(rename = "type")]
    kind: Option<String>,
    ttl: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a response_format object")]
struct WireResponseFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    json_schema: Option<WireJsonSchema>,
}

#[derive(Deserialize)]
#[serde(expecting = "a json_schema object")]
struct WireJsonSchema {
    name: Option<String>,
    description: Option<String>,
    schema: Option<Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a message object")]
struct WireMessage {
    role: Option<Role>,
    content: Option<OneOrMany<WirePart>>,
    tool_calls: Option<Vec<WireToolCall>>,
    tool_call_id: Option<String>,
    thinking_blocks: Option<Vec<ThinkingBlock>>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a tool call object")]
struct WireToolCall {
    id: Option<String>,
    function: Option<WireCallFunction>,
}

#[derive(Deserialize)]
#[serde(expecting = "a function call object")]
struct WireCallFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a content part object")]
struct WirePart {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    image_url: Option<WireImageUrl>,
    file: Option<WireFile>,
    cache_control: Option<WireCacheControl>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "an image_url object")]
struct WireImageUrl {
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(expecting = "a file object")]
struct WireFile {
    file_data: Option<String>,
    file_id: Option<String>,
    filename: Option<String>,
}

/// A string or an array of `T` (`content`, `stop`), read without buffering so that errors
/// inside the array keep their path.
enum OneOrMany<T> {
    One(String),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // The hint comes from the body; cap it so a lie cannot reserve much.
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

/// Parses and validates a chat completion request body.
///
/// Malformed JSON and every refused or ill-typed field give a 400 `invalid_request_error`
/// whose `param` is the path of the field at fault (e.g. `messages[1].content`).
pub fn parse_chat_request(body: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    let wire: WireRequest = from_json(body)?;
    wire.validate()
}

/// Unknown top-level keys (the SDKs' `extra_body`) joined to `additional_model_request_fields`,
/// which wins on a clash; OpenAI fields Bedrock cannot honour are refused.
fn extra_body_fields(
    rest: Map<String, Value>,
    mut explicit: Map<String, Value>,
) -> Result<Map<String, Value>, ApiError> {
    for (key, value) in rest {
        if value.is_null() || HARMLESS_FIELDS.contains(&key.as_str()) {
            continue;
        }
        if UNSUPPORTED_FIELDS.contains(&key.as_str()) {
            return Err(unsupported(key));
        }
        explicit.entry(key).or_insert(value);
    }
    Ok(explicit)
}

impl WireRequest {
    fn validate(self) -> Result<ChatCompletionRequest, ApiError> {
        let additional_model_request_fields =
            extra_body_fields(self.rest, self.additional_model_request_fields.unwrap_or_default())?;
        let n = self.n.unwrap_or(1);
        if n == 0 || n > MAX_CHOICES {
            return Err(invalid("n".into(), format_args!("it must be between 1 and {MAX_CHOICES}")));
        }
        if n > 1 && self.stream == Some(true) {
            return Err(ApiError::invalid_request(
                "`n` greater than 1 is not supported with `stream: true` by this gateway: Bedrock streams one \
                 choice per call.",
            )
            .with_param("n"));
        }
        if self.logprobs == Some(true) {
            return Err(unsupported("logprobs".to_owned()));
        }
        let model = match self.model {
            Some(model) if !model.is_empty() => model,
            _ => return Err(missing("model".to_owned())),
        };
        let (tokens_field, max_tokens) = match self.max_completion_tokens {
            Some(n) => ("max_completion_tokens", Some(n)),
            None => ("max_tokens", self.max_tokens),
        };
        if max_tokens == Some(0) {
            return Err(invalid(tokens_field.into(), "it must be at least 1"));
        }
        if let Some(t) = self.temperature
            && !(0.0..=1.0).contains(&t)
        {
            return Err(ApiError::invalid_request(format!(
                "Invalid value for `temperature`: {t}. Bedrock models accept a temperature between 0 and 1 \
                 (OpenAI's range up to 2 is not available)."
            ))
            .with_param("temperature"));
        }
        if let Some(p) = self.top_p
            && !(0.0..=1.0).contains(&p)
        {
            return Err(ApiError::invalid_request(format!(
                "Invalid value for `top_p`: {p}. It must be between 0 and 1."
            ))
            .with_param("top_p"));
        }
        let mut stop = match self.stop {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        stop.retain(|s| !s.is_empty());
        let tools = self
            .tools
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, t)| t.validate(i))
            .collect::<Result<Vec<_>, _>>()?;
        let tool_choice = match self.tool_choice {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_tool_choice(&v, &tools)?),
        };
        let response_format = match self.response_format {
            None => ResponseFormat::Text,
            Some(f) => f.validate()?,
        };
        let wire_messages = self.messages.ok_or_else(|| missing("messages".to_owned()))?;
        if wire_messages.is_empty() {
            return Err(ApiError::invalid_request("`messages` must contain at least one message.")
                .with_param("messages"));
        }
        let messages =
            wire_messages.into_iter().enumerate().map(|(i, m)| m.validate(i)).collect::<Result<_, _>>()?;
        Ok(ChatCompletionRequest {
            model,
            messages,
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop,
            stream: self.stream.unwrap_or(false),
            n,
            stream_options: StreamOptions {
                include_usage: self.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
            },
            user: self.user,
            tools,
            tool_choice,
            response_format,
            reasoning_effort: self.reasoning_effort,
            service_tier: self.service_tier,
            metadata: self.metadata.unwrap_or_default(),
            top_k: self.top_k,
            seed: self.seed,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            additional_model_request_fields,
        })
    }
}

impl WireTool {
    fn validate(self, i: usize) -> Result<Tool, ApiError> {
        match self.kind.as_deref() {
            Some("function") => {}
            None => return Err(missing(format!("tools[{i}].type"))),
            Some(other) => {
                return Err(invalid(
                    format!("tools[{i}].type"),
                    format_args!("`{other}`; only `function` tools are supported"),
                ));
            }
        }
        let function = self.function.ok_or_else(|| missing(format!("tools[{i}].function")))?;
        let name = match function.name {
            Some(name) if !name.is_empty() => name,
            _ => return Err(missing(format!("tools[{i}].function.name"))),
        };
        if let Some(p) = &function.parameters
            && !p.is_object()
        {
            return Err(invalid(
                format!("tools[{i}].function.parameters"),
                "it must be a JSON schema object",
            ));
        }
        let cache =
            self.cache_control.map(|c| c.validate(&format!("tools[{i}].cache_control"))).transpose()?;
        Ok(Tool { name, description: function.description, parameters: function.parameters, cache })
    }
}

impl WireCacheControl {
    fn validate(self, path: &str) -> Result<CacheTtl, ApiError> {
        if self.kind.as_deref() != Some("ephemeral") {
            return Err(invalid(format!("{path}.type"), "the only cache type is `ephemeral`"));
        }
        match self.ttl.as_deref() {
            None | Some("5m") => Ok(CacheTtl::Default),
            Some("1h") => Ok(CacheTtl::OneHour),
            Some(other) => Err(invalid(format!("{path}.ttl"), format_args!("`{other}`; use `5m` or `1h`"))),
        }
    }
}

fn parse_tool_choice(v: &Value, tools: &[Tool]) -> Result<ToolChoice, ApiError> {
    let choice = match v {
        Value::String(s) if s == "none" => ToolChoice::None,
        Value::String(s) if s == "auto" => ToolChoice::Auto,
        Value::String(s) if s == "required" => ToolChoice::Required,
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| missing("tool_choice.function.name".into()))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(
                    "tool_choice.function.name".into(),
                    format_args!("`{name}` is not one of the `tools`"),
                ));
            }
            ToolChoice::Function(name.to_owned())
        }
        _ => {
            return Err(invalid(
                "tool_choice".into(),
                "expected `none`, `auto`, `required` or {\"type\": \"function\", \"function\": {\"name\": ...}}",
            ));
        }
    };
    if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) {
        return Err(
            ApiError::invalid_request("`tool_choice` requires `tools` to be set.").with_param("tool_choice")
        );
    }
    Ok(choice)
}

impl WireResponseFormat {
    fn validate(self) -> Result<ResponseFormat, ApiError> {
        match self.kind.as_deref() {
            Some("text") => Ok(ResponseFormat::Text),
            Some("json_object") => Ok(ResponseFormat::JsonObject),
            Some("json_schema") => {
                let s = self.json_schema.ok_or_else(|| missing("response_format.json_schema".into()))?;
                let name = match s.name {
                    Some(name) if !name.is_empty() => name,
                    _ => return Err(missing("response_format.json_schema.name".into())),
                };
                if let Some(schema) = &s.schema
                    && !schema.is_object()
                {
                    return Err(invalid("response_format.json_schema.schema".into(), "it must be an object"));
                }
                Ok(ResponseFormat::JsonSchema(JsonSchemaFormat {
                    name,
                    description: s.description,
                    schema: s.schema,
                }))
            }
            None => Err(missing("response_format.type".into())),
            Some(other) => Err(invalid(
                "response_format.type".into(),
                format_args!("`{other}`; expected `text`, `json_object` or `json_schema`"),
            )),
        }
    }
}

impl WireMessage {
    fn validate(self, i: usize) -> Result<ChatMessage, ApiError> {
        let role = self.role.ok_or_else(|| missing(format!("messages[{i}].role")))?;
        if role == Role::Function {
            return Err(ApiError::invalid_request(format!(
                "Messages with role `function` (`messages[{i}]`) are not supported by this gateway: \
                 use `tools` and `tool` messages."
            ))
            .with_param(format!("messages[{i}].role")));
        }
        check_rest(&self.rest, HARMLESS_MESSAGE_FIELDS, UNSUPPORTED_MESSAGE_FIELDS, unsupported, |k| {
            format!("messages[{i}].{k}")
        })?;
        let only_for = |field: &str, present: bool, wanted: Role| {
            if present && role != wanted {
                Err(invalid(
                    format!("messages[{i}].{field}"),
                    format_args!(
                        "only `{}` messages carry it",
                        if wanted == Role::Tool { "tool" } else { "assistant" }
                    ),
                ))
            } else {
                Ok(())
            }
        };
        only_for("tool_calls", self.tool_calls.is_some(), Role::Assistant)?;
        only_for("thinking_blocks", self.thinking_blocks.is_some(), Role::Assistant)?;
        only_for("tool_call_id", self.tool_call_id.is_some(), Role::Tool)?;
        let content = match self.content {
            None if role == Role::Assistant => Vec::new(),
            None => return Err(missing(format!("messages[{i}].content"))),
            Some(OneOrMany::One(text)) => vec![ContentPart::Text(text)],
            Some(OneOrMany::Many(parts)) => {
                let mut out = Vec::with_capacity(parts.len());
                for (j, p) in parts.into_iter().enumerate() {
                    p.validate(role, i, j, &mut out)?;
                }
                out
            }
        };
        Ok(match role {
            Role::System => ChatMessage::System { content },
            Role::Developer => ChatMessage::Developer { content },
            Role::User => ChatMessage::User { content },
            Role::Tool => ChatMessage::Tool {
                tool_call_id: self
                    .tool_call_id
                    .ok_or_else(|| missing(format!("messages[{i}].tool_call_id")))?,
                content,
            },
            Role::Assistant | Role::Function => ChatMessage::Assistant {
                content,
                tool_calls: self
                    .tool_calls
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(k, c)| c.validate(i, k))
                    .collect::<Result<_, _>>()?,
                thinking: self.thinking_blocks.unwrap_or_default(),
            },
        })
    }
}

impl WireToolCall {
    fn validate(self, i: usize, k: usize) -> Result<ToolCall, ApiError> {
        let path = format!("messages[{i}].tool_calls[{k}]");
        let id = match self.id {
            Some(id) if !id.is_empty() => id,
            _ => return Err(missing(format!("{path}.id"))),
        };
        let function = self.function.ok_or_else(|| missing(format!("{path}.function")))?;
        let name = match function.name {
            Some(name) if !name.is_empty() => name,
            _ => return Err(missing(format!("{path}.function.name"))),
        };
        Ok(ToolCall { id, name, arguments: function.arguments.unwrap_or_default() })
    }
}

impl WirePart {
    /// Appends the part (and the cache point its `cache_control` asks for) to `out`.
    fn validate(self, role: Role, i: usize, j: usize, out: &mut Vec<ContentPart>) -> Result<(), ApiError> {
        let path = |field: &str| format!("messages[{i}].content[{j}].{field}");
        let kind = self.kind.ok_or_else(|| missing(path("type")))?;
        let allowed = match role {
            Role::User => &["text", "image_url", "file"][..],
            Role::Tool => &["text", "image_url"][..],
            Role::Assistant => &["text", "refusal"][..],
            Role::System | Role::Developer | Role::Function => &["text"][..],
        };
        if !allowed.contains(&kind.as_str()) {
            let detail = if matches!(kind.as_str(), "text" | "image_url" | "file" | "refusal" | "input_audio")
            {
                format!("`{kind}` parts are not accepted in this message's role")
            } else {
                format!("unknown content part type `{kind}`")
            };
            return Err(invalid(path("type"), detail));
        }
        check_rest(&self.rest, &[], &[], unsupported, |k| path(k))?;
        out.push(match kind.as_str() {
            "text" => ContentPart::Text(self.text.ok_or_else(|| missing(path("text")))?),
            // A refusal the model wrote earlier carries no instructions; it is dropped.
            "refusal" => return Ok(()),
            "image_url" => {
                let url = self.image_url.and_then(|u| u.url).ok_or_else(|| missing(path("image_url.url")))?;
                ContentPart::Image(url)
            }
            _ => {
                let file = self.file.ok_or_else(|| missing(path("file")))?;
                if file.file_id.is_some() {
                    return Err(ApiError::invalid_request(format!(
                        "`{}` is not supported by this gateway: send the content in `file_data`.",
                        path("file.file_id")
                    ))
                    .with_param(path("file.file_id")));
                }
                let data = file.file_data.ok_or_else(|| missing(path("file.file_data")))?;
                ContentPart::File { data, filename: file.filename }
            }
        });
        if let Some(cache) = self.cache_control {
            out.push(ContentPart::CachePoint(cache.validate(&path("cache_control"))?));
        }
        Ok(())
    }
}

/// The `object` field of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ObjectKind {
    /// A whole completion.
    #[serde(rename = "chat.completion")]
    ChatCompletion,
    /// One streamed chunk.
    #[serde(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end or a stop sequence.
    Stop,
    /// The token limit (or the context window) was reached.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// Output was withheld by a content filter or guardrail.
    ContentFilter,
}

impl FinishReason {
    /// The wire name (`stop`, `length`, `tool_calls`, `content_filter`).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Token counts of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Input tokens, cached ones included (OpenAI semantics).
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// `prompt_tokens + completion_tokens`.
    pub total_tokens: u64,
    /// Prompt-cache breakdown, present when the backend reported cache activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

impl Usage {
    /// The usage of two calls together.
    pub fn plus(&self, other: &Usage) -> Usage {
        let details = match (self.prompt_tokens_details, other.prompt_tokens_details) {
            (None, None) => None,
            (a, b) => {
                let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
                Some(PromptTokensDetails {
                    cached_tokens: a.cached_tokens + b.cached_tokens,
                    cache_write_tokens: a.cache_write_tokens + b.cache_write_tokens,
                })
            }
        };
        Usage {
            prompt_tokens: self.prompt_tokens + other.prompt_tokens,
            completion_tokens: self.completion_tokens + other.completion_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
            prompt_tokens_details: details,
        }
    }
}

/// Prompt-cache part of `prompt_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PromptTokensDetails {
    /// Tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Tokens written to the prompt cache.
    pub cache_write_tokens: u64,
}

/// A whole (non-streamed) chat completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatCompletion {
    /// Completion id, shared with nothing else.
    pub id: String,
    /// Always `chat.completion`.
    pub object: ObjectKind,
    /// Unix time (seconds) the request was received.
    pub created: u64,
    /// Served model name, as the caller sent it.
    pub model: String,
    /// One choice (`n` is always 1).
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// One choice of a completion.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Choice {
    /// Position among the choices.
    pub index: u32,
    /// What the model wrote.
    pub message: ResponseMessage,
    /// Always `null`: log probabilities are not offered.
    pub logprobs: (),
    /// Why the model stopped.
    pub finish_reason: FinishReason,
}

/// The assistant message of a choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResponseMessage {
    /// Always `assistant`.
    pub role: Role,
    /// The text, or `null` when the model wrote none.
    pub content: Option<String>,
    /// Always `null`: Bedrock has no refusal channel.
    pub refusal: (),
    /// The model's readable thinking, when it thought.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Signed and redacted thinking, to send back unchanged with this message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock>,
    /// Calls the model wants made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ResponseToolCall>,
}

/// A tool call of a response message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResponseToolCall {
    /// Call id (Bedrock's toolUseId).
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionKind,
    /// The call.
    pub function: FunctionCall,
}

/// The `function` of a tool call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunctionCall {
    /// The name the caller gave the tool.
    pub name: String,
    /// Arguments, a JSON text.
    pub arguments: String,
}

/// The constant `"function"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// `function`.
    Function,
}

/// One streamed chunk, borrowing everything so it serializes straight into the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChatCompletionChunk<'a> {
    /// Completion id, the same on every chunk.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: ObjectKind,
    /// Unix time (seconds), the same on every chunk.
    pub created: u64,
    /// Served model name.
    pub model: &'a str,
    /// One choice, or none on the usage chunk.
    pub choices: &'a [ChunkChoice<'a>],
    /// Absent unless `include_usage`; then `null` except on the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<&'a Usage>>,
}

/// One choice of a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ChunkChoice<'a> {
    /// Position among the choices.
    pub index: u32,
    /// What changed.
    pub delta: Delta<'a>,
    /// Always `null`.
    pub logprobs: (),
    /// Set on the last content chunk only.
    pub finish_reason: Option<FinishReason>,
}

/// The change a chunk carries; empty (`{}`) on the finish chunk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Delta<'a> {
    /// `assistant` on the first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Text to append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// Thinking text to append.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<&'a str>,
    /// A finished signed or redacted thinking block, for the client to keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<&'a [ThinkingBlock]>,
    /// Tool-call fragments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<&'a [DeltaToolCall<'a>]>,
}

/// A fragment of a streamed tool call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeltaToolCall<'a> {
    /// Position among this choice's tool calls (0, 1, ...).
    pub index: u32,
    /// Call id, on the first fragment only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `function`, on the first fragment only.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<FunctionKind>,
    /// Name (first fragment) and argument text.
    pub function: DeltaFunction<'a>,
}

/// The `function` of a tool-call fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeltaFunction<'a> {
    /// The tool's name, on the first fragment only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// Argument text to append.
    pub arguments: &'a str,
}
