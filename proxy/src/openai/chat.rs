//! `POST /v1/chat/completions`: request parsing and validation, response and chunk types.
//!
//! Parsing happens in two steps: serde reads the body into private wire structs (every field
//! optional, unknown keys collected), then validation turns them into [`ChatCompletionRequest`],
//! which holds only what the gateway can translate. A field the gateway does not translate yet
//! is refused with a 400 naming it rather than dropped, so callers never get silently different
//! behaviour; a field that cannot change the output (`user`, `seed`, `metadata`, ...) is accepted.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parse::{check_rest, missing, not_yet, parse_error, unparsable};
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
#[derive(Clone, Debug, PartialEq)]
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
    /// Options for a streamed response.
    pub stream_options: StreamOptions,
    /// End-user identifier supplied by the caller.
    pub user: Option<String>,
}

/// `stream_options` of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` (and `"usage": null` on every other chunk).
    pub include_usage: bool,
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
    },
}

/// One part of a message's content; a plain string content is a single text part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentPart {
    /// `{"type": "text", "text": ...}`.
    Text(String),
}

/// Top-level fields accepted and not forwarded: none of them changes what the model writes.
const HARMLESS_FIELDS: &[&str] = &[
    "metadata",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "store",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
];

/// Top-level OpenAI fields this gateway does not translate yet.
const NOT_YET_FIELDS: &[&str] = &[
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
    "web_search_options",
    "reasoning_effort",
    "verbosity",
    "moderation",
    "prompt_cache_retention",
    "prompt_cache_options",
];

/// Message fields this gateway does not translate yet.
const NOT_YET_MESSAGE_FIELDS: &[&str] = &["tool_calls", "function_call", "audio", "refusal", "tool_call_id"];

/// Content-part fields this gateway does not translate yet.
const NOT_YET_PART_FIELDS: &[&str] = &["cache_control", "prompt_cache_breakpoint"];

/// Content-part types this gateway does not translate yet.
const NOT_YET_PART_TYPES: &[&str] = &["image_url", "input_audio", "file", "refusal"];

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
#[serde(expecting = "a message object")]
struct WireMessage {
    role: Option<Role>,
    content: Option<OneOrMany<WirePart>>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(expecting = "a content part object")]
struct WirePart {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
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
    let mut de = serde_json::Deserializer::from_slice(body);
    let wire: WireRequest = serde_path_to_error::deserialize(&mut de).map_err(parse_error)?;
    de.end().map_err(|e| unparsable(&e))?;
    wire.validate()
}

impl WireRequest {
    fn validate(self) -> Result<ChatCompletionRequest, ApiError> {
        check_rest(&self.rest, HARMLESS_FIELDS, NOT_YET_FIELDS, str::to_owned)?;
        match self.n {
            Some(0) => {
                return Err(ApiError::invalid_request("Invalid value for `n`: it must be at least 1.")
                    .with_param("n"));
            }
            Some(n) if n > 1 => {
                return Err(ApiError::invalid_request(
                    "`n` greater than 1 is not supported yet by this gateway.",
                )
                .with_param("n"));
            }
            _ => {}
        }
        if self.logprobs == Some(true) {
            return Err(not_yet("logprobs".to_owned()));
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
            return Err(ApiError::invalid_request(format!(
                "Invalid value for `{tokens_field}`: it must be at least 1."
            ))
            .with_param(tokens_field));
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
            stream_options: StreamOptions {
                include_usage: self.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
            },
            user: self.user,
        })
    }
}

impl WireMessage {
    fn validate(self, i: usize) -> Result<ChatMessage, ApiError> {
        let role = self.role.ok_or_else(|| missing(format!("messages[{i}].role")))?;
        if let Role::Tool | Role::Function = role {
            let name = if role == Role::Tool { "tool" } else { "function" };
            return Err(ApiError::invalid_request(format!(
                "Messages with role `{name}` (`messages[{i}]`) are not supported yet by this gateway."
            ))
            .with_param(format!("messages[{i}].role")));
        }
        check_rest(&self.rest, &["name"], NOT_YET_MESSAGE_FIELDS, |k| format!("messages[{i}].{k}"))?;
        let content = match self.content {
            None if role == Role::Assistant => Vec::new(),
            None => return Err(missing(format!("messages[{i}].content"))),
            Some(OneOrMany::One(text)) => vec![ContentPart::Text(text)],
            Some(OneOrMany::Many(parts)) => {
                parts.into_iter().enumerate().map(|(j, p)| p.validate(i, j)).collect::<Result<_, _>>()?
            }
        };
        Ok(match role {
            Role::System => ChatMessage::System { content },
            Role::Developer => ChatMessage::Developer { content },
            Role::User => ChatMessage::User { content },
            Role::Assistant | Role::Tool | Role::Function => ChatMessage::Assistant { content },
        })
    }
}

impl WirePart {
    fn validate(self, i: usize, j: usize) -> Result<ContentPart, ApiError> {
        match self.kind.as_deref() {
            None => Err(missing(format!("messages[{i}].content[{j}].type"))),
            Some("text") => {
                check_rest(&self.rest, &[], NOT_YET_PART_FIELDS, |k| {
                    format!("messages[{i}].content[{j}].{k}")
                })?;
                match self.text {
                    Some(text) => Ok(ContentPart::Text(text)),
                    None => Err(missing(format!("messages[{i}].content[{j}].text"))),
                }
            }
            Some(kind) if NOT_YET_PART_TYPES.contains(&kind) => Err(ApiError::invalid_request(format!(
                "Content parts of type `{kind}` (`messages[{i}].content[{j}]`) are not supported yet \
                 by this gateway."
            ))
            .with_param(format!("messages[{i}].content[{j}].type"))),
            Some(kind) => Err(ApiError::invalid_request(format!(
                "Invalid value for `messages[{i}].content[{j}].type`: unknown content part type `{kind}`."
            ))
            .with_param(format!("messages[{i}].content[{j}].type"))),
        }
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

/// Prompt-cache part of `prompt_tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
}
