//! Converse and ConverseStream bodies (`POST /model/{modelId}/converse[-stream]`).
//!
//! Unions of the AWS model (`ContentBlock`, `SystemContentBlock`) are externally tagged enums
//! on the request side, so new members (image, toolUse, cachePoint, ...) are new variants. On
//! the response side they are structs of optional members, so members this gateway does not
//! read yet are skipped instead of failing the whole response.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// Tools the model may call; required whenever the history holds toolUse/toolResult blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    /// Model-native extras (`thinking`, `top_k`, ...).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub additional_model_request_fields: Map<String, Value>,
    /// Native structured output and reasoning effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Key/value pairs for invocation-log filtering.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub request_metadata: BTreeMap<&'a str, &'a str>,
    /// Processing tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

/// `serviceTier`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceTier {
    /// `priority`, `default` or `flex`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `toolConfig`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    /// At least one tool (cache points included).
    pub tools: Vec<Tool<'a>>,
    /// How the model must pick; absent means `auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

/// Member of the `Tool` union.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Tool<'a> {
    /// A function the model may call.
    ToolSpec(ToolSpec<'a>),
    /// Cache the tool definitions up to here.
    CachePoint(CachePoint),
}

/// `ToolSpecification`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    /// `[a-zA-Z0-9_-]{1,64}`.
    pub name: Cow<'a, str>,
    /// What the tool does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// The JSON schema of the input.
    pub input_schema: InputSchema<'a>,
}

/// `ToolInputSchema` union (only member: `json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputSchema<'a> {
    /// A JSON schema document.
    pub json: Cow<'a, Value>,
}

/// The `ToolChoice` union.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice<'a> {
    /// The model decides.
    Auto(Empty),
    /// The model must call some tool.
    Any(Empty),
    /// The model must call this tool.
    Tool(NamedTool<'a>),
}

/// An empty JSON object (`{}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

/// `SpecificToolChoice`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NamedTool<'a> {
    /// The tool's (sanitised) name.
    pub name: Cow<'a, str>,
}

/// `CachePointBlock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CachePoint {
    /// Always `default`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `5m` (Bedrock's default, left out) or `1h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<&'static str>,
}

/// `outputConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig {
    /// Native structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_format: Option<TextFormat>,
    /// Reasoning effort (`low`, `medium`, `high`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<&'static str>,
}

/// `OutputFormat` with `type: json_schema`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextFormat {
    /// Always `json_schema`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The schema.
    pub structure: TextFormatStructure,
}

/// `OutputFormatStructure` union (only member: `jsonSchema`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TextFormatStructure {
    /// The schema definition.
    pub json_schema: JsonSchemaDefinition,
}

/// `JsonSchemaDefinition`: the schema travels as a string.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JsonSchemaDefinition {
    /// The JSON schema, serialized.
    pub schema: String,
    /// Name of the schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the schema describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
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
    /// An image, bytes base64 on the JSON wire.
    Image(ImageBlock<'a>),
    /// A document, bytes base64 on the JSON wire.
    Document(DocumentBlock<'a>),
    /// A tool call the model made earlier.
    ToolUse(ToolUseBlock<'a>),
    /// The result of a tool call.
    ToolResult(ToolResultBlock<'a>),
    /// A thinking block replayed unchanged.
    ReasoningContent(ReasoningBlock<'a>),
    /// Cache the prompt up to here.
    CachePoint(CachePoint),
}

/// `ImageBlock`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageBlock<'a> {
    /// `png`, `jpeg`, `gif` or `webp`.
    pub format: &'static str,
    /// Where the bytes are.
    pub source: BytesSource<'a>,
}

/// `DocumentBlock`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DocumentBlock<'a> {
    /// `pdf`, `csv`, `doc`, `docx`, `xls`, `xlsx`, `html`, `txt` or `md`.
    pub format: &'static str,
    /// Unique within the request; letters, digits, single spaces, hyphens, parentheses, brackets.
    pub name: String,
    /// Where the bytes are.
    pub source: BytesSource<'a>,
}

/// `ImageSource` / `DocumentSource` with the `bytes` member.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BytesSource<'a> {
    /// The content, base64.
    pub bytes: &'a str,
}

/// `ToolUseBlock`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseBlock<'a> {
    /// `[a-zA-Z0-9_.:-]{1,64}`.
    pub tool_use_id: &'a str,
    /// The (sanitised) tool name.
    pub name: Cow<'a, str>,
    /// The arguments, a JSON document.
    pub input: Value,
}

/// `ToolResultBlock`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultBlock<'a> {
    /// The id of the toolUse this answers.
    pub tool_use_id: &'a str,
    /// What the tool returned; never empty.
    pub content: Vec<ToolResultContent<'a>>,
}

/// Member of the `ToolResultContentBlock` union.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolResultContent<'a> {
    /// Text output.
    Text(&'a str),
    /// An image output.
    Image(ImageBlock<'a>),
}

/// The `ReasoningContentBlock` union.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningBlock<'a> {
    /// Thinking text with the signature that vouches for it.
    ReasoningText(ReasoningText<'a>),
    /// Encrypted thinking, base64.
    RedactedContent(&'a str),
}

/// `ReasoningTextBlock`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReasoningText<'a> {
    /// The thinking, possibly empty when only the signature was kept.
    pub text: &'a str,
    /// The model's signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<&'a str>,
}

/// Member of the `SystemContentBlock` union.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemContentBlock<'a> {
    /// `{"text": ...}`; at least one character.
    Text(&'a str),
    /// Cache the prompt up to here.
    CachePoint(CachePoint),
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

/// A `ContentBlock` as received; members not read are skipped.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputContentBlock {
    /// Text, when this block is a text block.
    #[serde(default)]
    pub text: Option<String>,
    /// A tool call.
    #[serde(default)]
    pub tool_use: Option<OutputToolUse>,
    /// Thinking.
    #[serde(default)]
    pub reasoning_content: Option<OutputReasoning>,
}

/// A `ToolUseBlock` as received.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputToolUse {
    /// Call id.
    pub tool_use_id: String,
    /// Tool name as sent to Bedrock.
    pub name: String,
    /// Arguments.
    #[serde(default)]
    pub input: Value,
}

/// A `ReasoningContentBlock` as received.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputReasoning {
    /// Readable thinking with its signature.
    #[serde(default)]
    pub reasoning_text: Option<OutputReasoningText>,
    /// Encrypted thinking, base64.
    #[serde(default)]
    pub redacted_content: Option<String>,
}

/// A `ReasoningTextBlock` as received.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct OutputReasoningText {
    /// The thinking.
    #[serde(default)]
    pub text: String,
    /// The signature.
    #[serde(default)]
    pub signature: Option<String>,
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
    ContentBlockStart(ContentBlockStartEvent<'a>),
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

/// `contentBlockStart`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockStartEvent<'a> {
    /// Index of the block in the message.
    pub content_block_index: u32,
    /// What starts; members not read are skipped.
    #[serde(borrow)]
    pub start: BlockStart<'a>,
}

/// The `ContentBlockStart` union.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart<'a> {
    /// A tool call starts.
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseStart<'a>>,
}

/// `ToolUseBlockStart`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart<'a> {
    /// Call id.
    #[serde(borrow)]
    pub tool_use_id: Cow<'a, str>,
    /// Tool name as sent to Bedrock.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `contentBlockStop`: which block.
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

/// The `ContentBlockDelta` union; members not read are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlockDelta<'a> {
    /// Text to append, borrowed from the payload unless it had escapes.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// A fragment of a tool call's JSON input.
    #[serde(borrow, default)]
    pub tool_use: Option<ToolUseDelta<'a>>,
    /// A piece of thinking.
    #[serde(borrow, default)]
    pub reasoning_content: Option<ReasoningDelta<'a>>,
}

/// `ToolUseBlockDelta`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ToolUseDelta<'a> {
    /// JSON fragment.
    #[serde(borrow)]
    pub input: Cow<'a, str>,
}

/// The `ReasoningContentBlockDelta` union.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningDelta<'a> {
    /// Thinking text to append.
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
    /// The signature of the block, sent once at its end.
    #[serde(borrow, default)]
    pub signature: Option<Cow<'a, str>>,
    /// Encrypted thinking, base64.
    #[serde(borrow, default)]
    pub redacted_content: Option<Cow<'a, str>>,
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
