//! OpenAI chat completions <-> Bedrock Converse / ConverseStream.
//!
//! One file per concern, so a mapping is found by its name:
//! - `mod.rs` (here): the request as a whole: turns, `system`, `inferenceConfig`, `top_k`,
//!   `service_tier`, `metadata`, `additional_model_request_fields`;
//! - [`family`] - what each model family accepts (a missing feature is a 400 naming the model);
//! - [`tools`] - `tools`, `tool_choice`, tool names, `tool_calls` -> `toolUse`, `tool` -> `toolResult`;
//! - [`content`] - images, documents, `cache_control` -> `cachePoint`;
//! - [`structured`] - `response_format`;
//! - [`reasoning`] - `reasoning_effort` and thinking blocks;
//! - [`response`] - Converse response -> `chat.completion`;
//! - [`stream`] - ConverseStream events -> `chat.completion.chunk` SSE.
//!
//! Turn rules (Bedrock wants alternating user/assistant turns starting with a user turn):
//! - `system` and `developer` messages become `system` text blocks, in order, wherever they
//!   appear: one after the first user turn is moved up too, since Converse has no mid-
//!   conversation instructions;
//! - blank text parts (empty or whitespace only) are dropped, because Bedrock rejects blank
//!   text, and a message left with nothing is dropped with them;
//! - consecutive messages of the same role are merged into one turn, parts kept in order, so
//!   consecutive `tool` messages become one user turn of `toolResult` blocks;
//! - every tool call of an assistant message must be answered by a `tool` message before the
//!   conversation goes on, and every `tool` message must answer one: Bedrock needs exactly one
//!   result per call, and a clear 400 here beats its error;
//! - the first remaining turn must be a user turn, else 400.
//!
//! `top_k` goes where the family reads it (see [`family::TopK`]) and is ignored elsewhere;
//! `seed`, `frequency_penalty` and `presence_penalty` reach the families with native fields of
//! those names (Cohere Command R) and are ignored elsewhere, as no other Converse family has them;
//! `service_tier` `auto` sends nothing; `metadata` becomes `requestMetadata` (Bedrock's key and
//! value rules checked); `additional_model_request_fields` is merged last, so it wins.

pub mod content;
pub mod family;
pub mod reasoning;
pub mod response;
pub mod stream;
pub mod structured;
pub mod tools;

use std::collections::BTreeMap;

use serde_json::json;

use self::content::{CachePoints, Documents};
use self::family::{Capabilities, TopK};
pub use self::response::chat_completion;
pub use self::stream::ChatStream;
use self::tools::{ToolNames, ToolUse};
use crate::bedrock::converse::{
    ContentBlock, ConversationRole, ConverseRequest, InferenceConfig, Message, OutputConfig, ServiceTier,
    SystemContentBlock, ToolResultBlock, ToolResultContent,
};
use crate::error::ApiError;
use crate::openai::chat::{ChatCompletionRequest, ChatMessage, ContentPart, ServiceTier as OpenAiTier};

/// A translated request: the Converse body and what the reply translator needs to know.
#[derive(Debug)]
pub struct Translation<'a> {
    /// The Converse / ConverseStream body.
    pub body: ConverseRequest<'a>,
    /// How to read the reply.
    pub reply: ReplyContext,
    /// `cache_control` marks left out because the model does not cache there.
    pub dropped_cache_points: u32,
}

/// What the reply translators need from the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyContext {
    /// Tool names as the caller knows them.
    pub names: ToolNames,
    /// The structured-output tool, whose input is the answer.
    pub json_tool: Option<String>,
    /// Drop tool calls from the reply (`tool_choice: none`).
    pub suppress_tools: bool,
}

impl ReplyContext {
    /// What to do with a `toolUse` block calling `name`.
    pub fn tool_use(&self, name: &str) -> ToolUse {
        if self.json_tool.as_deref() == Some(name) {
            ToolUse::Content
        } else if self.suppress_tools {
            ToolUse::Suppressed
        } else {
            ToolUse::Call
        }
    }
}

/// A 400 saying the model lacks a feature.
fn unsupported(req: &ChatCompletionRequest, caps: &Capabilities, feature: &str, param: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "The model `{}` ({}) does not support {feature}.",
        req.model, caps.family
    ))
    .with_param(param)
}

/// Builds the Converse body for `req` sent to the Bedrock model `model_id`; it borrows the
/// request's text.
pub fn converse_request<'a>(
    req: &'a ChatCompletionRequest,
    model_id: &str,
) -> Result<Translation<'a>, ApiError> {
    let caps = Capabilities::of(model_id);
    let names = ToolNames::new(req);
    let reasoning = reasoning::plan(req, &caps)?;
    let mut cache = CachePoints::new(caps);
    let turns = Turns::build(req, &caps, &names, reasoning.thinking, &mut cache)?;
    let structured = structured::plan(req, &caps, &names, reasoning.thinking)?;
    let json_tool = structured.tool_name.clone();
    let tool_plan = tools::tool_config(req, &caps, &names, turns.uses_tools, structured.forced, &mut cache)?;

    // Claude refuses sampling changes while it thinks (see `reasoning`).
    let (temperature, top_p, top_k) = if reasoning.thinking {
        (req.temperature.filter(|t| *t == 1.0), req.top_p.filter(|p| *p >= 0.95), None)
    } else {
        (req.temperature, req.top_p, req.top_k)
    };
    let config = InferenceConfig {
        max_tokens: reasoning.max_tokens.or(req.max_tokens),
        temperature,
        top_p,
        stop_sequences: req.stop.iter().map(String::as_str).collect(),
    };
    let mut fields = reasoning.fields;
    if let Some(k) = top_k {
        match caps.top_k {
            TopK::Field(name) => {
                fields.insert(name.into(), json!(k));
            }
            TopK::NovaInferenceConfig => {
                fields.insert("inferenceConfig".into(), json!({"topK": k}));
            }
            TopK::None => {}
        }
    }
    if caps.seed_and_penalties {
        let extras = [
            ("seed", req.seed.map(|v| json!(v))),
            ("frequency_penalty", req.frequency_penalty.map(|v| json!(v))),
            ("presence_penalty", req.presence_penalty.map(|v| json!(v))),
        ];
        fields.extend(extras.into_iter().filter_map(|(k, v)| Some((k.to_owned(), v?))));
    }
    fields.extend(req.additional_model_request_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    let output_config = OutputConfig { text_format: structured.text_format, effort: reasoning.effort };
    let body = ConverseRequest {
        messages: turns.messages,
        system: turns.system,
        inference_config: if config.is_empty() { None } else { Some(config) },
        tool_config: tool_plan.config,
        additional_model_request_fields: fields,
        output_config: (output_config != OutputConfig::default()).then_some(output_config),
        request_metadata: request_metadata(&req.metadata)?,
        service_tier: req.service_tier.and_then(|t| {
            let kind = match t {
                OpenAiTier::Auto => return None,
                OpenAiTier::Default => "default",
                OpenAiTier::Flex => "flex",
                OpenAiTier::Priority => "priority",
            };
            Some(ServiceTier { kind })
        }),
    };
    Ok(Translation {
        body,
        reply: ReplyContext { names, json_tool, suppress_tools: tool_plan.suppress },
        dropped_cache_points: cache.dropped,
    })
}

/// `metadata` as `requestMetadata`, checked against Bedrock's rules.
fn request_metadata(metadata: &BTreeMap<String, String>) -> Result<BTreeMap<&str, &str>, ApiError> {
    let allowed = |s: &str| {
        s.chars().all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ":_@$#=/+,-.".contains(c))
    };
    if metadata.len() > 16 {
        return Err(ApiError::invalid_request("Invalid value for `metadata`: at most 16 entries.")
            .with_param("metadata"));
    }
    for (k, v) in metadata {
        if k.is_empty() || k.chars().count() > 256 || v.chars().count() > 256 || !allowed(k) || !allowed(v) {
            return Err(ApiError::invalid_request(format!(
                "Invalid value for `metadata.{k}`: Bedrock accepts keys of 1 to 256 and values of at most 256 \
                 letters, digits, whitespace and `:_@$#=/+,-.`."
            ))
            .with_param(format!("metadata.{k}")));
        }
    }
    Ok(metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
}

/// The conversation as Bedrock turns.
struct Turns<'a> {
    system: Vec<SystemContentBlock<'a>>,
    messages: Vec<Message<'a>>,
    /// Some turn holds a toolUse or toolResult block.
    uses_tools: bool,
}

impl<'a> Turns<'a> {
    fn build(
        req: &'a ChatCompletionRequest,
        caps: &Capabilities,
        names: &ToolNames,
        thinking: bool,
        cache: &mut CachePoints,
    ) -> Result<Self, ApiError> {
        let mut turns =
            Turns { system: Vec::new(), messages: Vec::with_capacity(req.messages.len()), uses_tools: false };
        let mut docs = Documents::default();
        // Tool calls still waiting for their result: (id, index of the assistant message).
        let mut pending: Vec<(&str, usize)> = Vec::new();
        for (i, message) in req.messages.iter().enumerate() {
            let part_path = |j: usize| format!("messages[{i}].content[{j}]");
            if !matches!(message, ChatMessage::Tool { .. })
                && let Some((id, at)) = pending.first()
            {
                return Err(ApiError::invalid_request(format!(
                    "The tool call `{id}` of `messages[{at}]` has no `tool` message answering it before \
                     `messages[{i}]`: Bedrock needs one result per tool call."
                ))
                .with_param(format!("messages[{i}]")));
            }
            let (role, blocks) = match message {
                ChatMessage::System { content } | ChatMessage::Developer { content } => {
                    if !caps.system && texts(content).next().is_some() {
                        return Err(unsupported(req, caps, "system prompts", &format!("messages[{i}]")));
                    }
                    for part in content {
                        match part {
                            ContentPart::Text(text) if !text.trim().is_empty() => {
                                turns.system.push(SystemContentBlock::Text(text));
                            }
                            ContentPart::CachePoint(ttl) if !turns.system.is_empty() => {
                                turns
                                    .system
                                    .extend(cache.message_point(*ttl).map(SystemContentBlock::CachePoint));
                            }
                            _ => {}
                        }
                    }
                    continue;
                }
                ChatMessage::User { content } => {
                    let mut blocks = Vec::with_capacity(content.len());
                    for (j, part) in content.iter().enumerate() {
                        match part {
                            ContentPart::Image(url) => {
                                if !caps.images {
                                    return Err(unsupported(
                                        req,
                                        caps,
                                        "images",
                                        &format!("{}.type", part_path(j)),
                                    ));
                                }
                                blocks.push(ContentBlock::Image(content::image(
                                    url,
                                    &format!("{}.image_url.url", part_path(j)),
                                )?));
                            }
                            ContentPart::File { data, filename } => {
                                if !caps.documents {
                                    return Err(unsupported(
                                        req,
                                        caps,
                                        "documents",
                                        &format!("{}.type", part_path(j)),
                                    ));
                                }
                                let path = format!("{}.file.file_data", part_path(j));
                                blocks.push(ContentBlock::Document(docs.document(
                                    data,
                                    filename.as_deref(),
                                    &path,
                                )?));
                            }
                            _ => push_text_or_cache(&mut blocks, part, cache),
                        }
                    }
                    (ConversationRole::User, blocks)
                }
                ChatMessage::Assistant { content, tool_calls, thinking: thought } => {
                    let mut blocks = Vec::with_capacity(content.len() + tool_calls.len() + thought.len());
                    // Thinking goes first: Bedrock wants it before the turn's toolUse blocks.
                    if thinking {
                        blocks.extend(reasoning::replay(thought));
                    }
                    for part in content {
                        push_text_or_cache(&mut blocks, part, cache);
                    }
                    for (k, call) in tool_calls.iter().enumerate() {
                        let path = || format!("messages[{i}].tool_calls[{k}].function.arguments");
                        blocks.push(ContentBlock::ToolUse(tools::tool_use(call, names, path)?));
                        pending.push((&call.id, i));
                        turns.uses_tools = true;
                    }
                    (ConversationRole::Assistant, blocks)
                }
                ChatMessage::Tool { tool_call_id, content } => {
                    let Some(at) = pending.iter().position(|(id, _)| id == tool_call_id) else {
                        return Err(ApiError::invalid_request(format!(
                            "Invalid value for `messages[{i}].tool_call_id`: `{tool_call_id}` does not answer a \
                             pending tool call of the preceding assistant message."
                        ))
                        .with_param(format!("messages[{i}].tool_call_id")));
                    };
                    pending.remove(at);
                    let mut results = Vec::with_capacity(content.len().max(1));
                    for (j, part) in content.iter().enumerate() {
                        match part {
                            ContentPart::Text(text) => results.push(ToolResultContent::Text(text)),
                            ContentPart::Image(url) => {
                                if !caps.tool_result_images {
                                    return Err(unsupported(
                                        req,
                                        caps,
                                        "images in tool results",
                                        &format!("{}.type", part_path(j)),
                                    ));
                                }
                                results.push(ToolResultContent::Image(content::image(
                                    url,
                                    &format!("{}.image_url.url", part_path(j)),
                                )?));
                            }
                            // Parsing admits only text and images in tool messages; a cache mark
                            // inside a result has no Converse place.
                            ContentPart::File { .. } | ContentPart::CachePoint(_) => {}
                        }
                    }
                    if results.is_empty() {
                        results.push(ToolResultContent::Text(""));
                    }
                    turns.uses_tools = true;
                    let mut blocks = vec![ContentBlock::ToolResult(ToolResultBlock {
                        tool_use_id: tool_call_id,
                        content: results,
                    })];
                    // A cache mark on a tool message's text caches up to its result.
                    if let Some(ttl) = content.iter().find_map(|p| match p {
                        ContentPart::CachePoint(ttl) => Some(*ttl),
                        _ => None,
                    }) {
                        blocks.extend(cache.message_point(ttl).map(ContentBlock::CachePoint));
                    }
                    (ConversationRole::User, blocks)
                }
            };
            if blocks.iter().all(|b| matches!(b, ContentBlock::CachePoint(_))) {
                continue;
            }
            match turns.messages.last_mut() {
                Some(last) if last.role == role => last.content.extend(blocks),
                None if role == ConversationRole::Assistant => {
                    return Err(ApiError::invalid_request(format!(
                        "The conversation must start with a user message: Bedrock does not accept an \
                         assistant message (`messages[{i}]`) before the first user message."
                    ))
                    .with_param(format!("messages[{i}]")));
                }
                _ => turns.messages.push(Message { role, content: blocks }),
            }
        }
        if turns.messages.is_empty() {
            return Err(ApiError::invalid_request(
                "`messages` must contain at least one user message with non-blank text.",
            )
            .with_param("messages"));
        }
        Ok(turns)
    }
}

/// Appends a text part (unless blank) or the cache point it asks for (unless nothing precedes it).
fn push_text_or_cache<'a>(
    blocks: &mut Vec<ContentBlock<'a>>,
    part: &'a ContentPart,
    cache: &mut CachePoints,
) {
    match part {
        ContentPart::Text(text) if !text.trim().is_empty() => blocks.push(ContentBlock::Text(text)),
        ContentPart::CachePoint(ttl) if !blocks.is_empty() => {
            blocks.extend(cache.message_point(*ttl).map(ContentBlock::CachePoint));
        }
        _ => {}
    }
}

/// The non-blank text of a message's parts.
fn texts(content: &[ContentPart]) -> impl Iterator<Item = &str> {
    content
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text(text) => Some(text.as_str()),
            _ => None,
        })
        .filter(|text| !text.trim().is_empty())
}
