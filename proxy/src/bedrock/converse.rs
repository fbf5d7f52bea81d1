//! Converse and ConverseStream bodies (`POST /model/{modelId}/converse[-stream]`).
//!
//! Unions of the AWS model (`ContentBlock`, `SystemContentBlock`) are externally tagged enums
//! on the request side, so new members (image, toolUse, cachePoint, ...) are new variants. On
//! the response side they are structs of optional members, so members this gateway does not
//! read yet are skipped instead of failing the whole response.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Body of a Converse / ConverseStream request (the model id travels in the path).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    /// Alternating user/assistant turns, starting with a user turn.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message<'a>>,
    /// System prompt blocks, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock<'a>>,
    /// Sampling and length settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig<'a>>,
}

/// Role of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationRole {
    /// The caller.
    User,
    /// The model.
    Assistant,
    /// System instructions inline (accepted by some models).
    System,
}

/// One turn of the conversation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message<'a> {
    /// Who speaks.
    pub role: ConversationRole,
    /// What was said; never empty.
    pub content: Vec<ContentBlock<'a>>,
}

/// Member of the `ContentBlock` union sent in a message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContentBlock<'a> {
    /// `{"text": ...}`; Bedrock rejects blank text.
    Text(&'a str),
}

/// Member of the `SystemContentBlock` union.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock<'a> {
    /// `{"text": ...}`; at least one character.
    Text(&'a str),
}

/// `inferenceConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig<'a> {
    /// Output token limit (at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Non-empty strings that end generation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    /// True when nothing is set, so the whole object can be left out.
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// Body of a Converse response.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// The generated output.
    pub output: ConverseOutput,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Token counts.
    pub usage: TokenUsage,
    /// Latency as Bedrock measured it.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

/// The `ConverseOutput` union (only member: `message`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ConverseOutput {
    /// The assistant message.
    #[serde(default)]
    pub message: Option<OutputMessage>,
}

/// The assistant message of a response.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct OutputMessage {
    /// Content blocks in order.
    #[serde(default)]
    pub content: Vec<OutputContentBlock>,
}

/// A `ContentBlock` as received; members not read yet are skipped.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct OutputContentBlock {
    /// Text, when this block is a text block.
    #[serde(default)]
    pub text: Option<String>,
}

/// Bedrock `StopReason`; values newer than this list read as `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end of the turn.
    EndTurn,
    /// The model asked for a tool.
    ToolUse,
    /// `maxTokens` was reached.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// A guardrail intervened.
    GuardrailIntervened,
    /// Content was filtered.
    ContentFiltered,
    /// The model produced output Bedrock could not parse.
    MalformedModelOutput,
    /// The model produced a tool call Bedrock could not parse.
    MalformedToolUse,
    /// Input plus output reached the context window.
    ModelContextWindowExceeded,
    /// A stop reason this gateway does not know.
    #[serde(other)]
    Other,
}

/// `TokenUsage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Bedrock's total.
    pub total_tokens: u64,
    /// Input tokens served from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

/// `ConverseMetrics` / `ConverseStreamMetrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Time Bedrock spent, in milliseconds.
    pub latency_ms: u64,
}

/// One ConverseStream event, parsed from its `:event-type` and JSON payload.
#[derive(Clone, Debug, PartialEq)]
pub enum ConverseStreamEvent<'a> {
    /// `messageStart`.
    MessageStart(MessageStartEvent),
    /// `contentBlockStart` (not sent for plain text blocks).
    ContentBlockStart(ContentBlockIndexEvent),
    /// `contentBlockDelta`.
    ContentBlockDelta(ContentBlockDeltaEvent<'a>),
    /// `contentBlockStop`.
    ContentBlockStop(ContentBlockIndexEvent),
    /// `messageStop`.
    MessageStop(MessageStopEvent),
    /// `metadata`: usage and metrics, after `messageStop`.
    Metadata(MetadataEvent),
    /// An event type this gateway does not know; skipped.
    Unknown,
}

impl<'a> ConverseStreamEvent<'a> {
    /// Parses the payload of an event of type `event_type`; text borrows from `payload`.
    pub fn parse(event_type: &str, payload: &'a [u8]) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "messageStart" => Self::MessageStart(serde_json::from_slice(payload)?),
            "contentBlockStart" => Self::ContentBlockStart(serde_json::from_slice(payload)?),
            "contentBlockDelta" => Self::ContentBlockDelta(serde_json::from_slice(payload)?),
            "contentBlockStop" => Self::ContentBlockStop(serde_json::from_slice(payload)?),
            "messageStop" => Self::MessageStop(serde_json::from_slice(payload)?),
            "metadata" => Self::Metadata(serde_json::from_slice(payload)?),
            _ => Self::Unknown,
        })
    }
}

/// `messageStart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct MessageStartEvent {
    /// Always `assistant` in practice.
    pub role: ConversationRole,
}

/// `contentBlockStart` / `contentBlockStop`: which block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockIndexEvent {
    /// Index of the block in the message.
    pub content_block_index: u32,
}

/// `contentBlockDelta`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDeltaEvent<'a> {
    /// Index of the block in the message.
    pub content_block_index: u32,
    /// The change.
    #[serde(borrow)]
    pub delta: ContentBlockDelta<'a>,
}

/// The `ContentBlockDelta` union; members not read yet are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ContentBlockDelta<'a> {
    /// Text to append, borrowed from the payload unless it had escapes.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

/// `messageStop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStopEvent {
    /// Why generation stopped.
    pub stop_reason: StopReason,
}

/// `metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct MetadataEvent {
    /// Token counts of the whole request.
    pub usage: TokenUsage,
    /// Latency as Bedrock measured it.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}
