//! OpenAI chat completions <-> Bedrock Converse / ConverseStream.
//!
//! Request rules (Bedrock wants alternating user/assistant turns starting with a user turn):
//! - `system` and `developer` messages become `system` text blocks, in order, wherever they
//!   appear: one after the first user turn is moved up too, since Converse has no mid-
//!   conversation instructions;
//! - blank text parts (empty or whitespace only) are dropped, because Bedrock rejects blank
//!   text, and a message left with nothing is dropped with them;
//! - consecutive messages of the same role are merged into one turn, parts kept in order;
//! - the first remaining turn must be a user turn, else 400.
//!
//! Responses: text blocks are concatenated; `stopReason` maps to `finish_reason`
//! (`end_turn`/`stop_sequence` -> `stop`, `max_tokens`/`model_context_window_exceeded` ->
//! `length`, `tool_use` -> `tool_calls`, `guardrail_intervened`/`content_filtered` ->
//! `content_filter`, anything else -> `stop`); `prompt_tokens` counts cached input too
//! (`inputTokens + cacheReadInputTokens + cacheWriteInputTokens`), as OpenAI's does.

use bytes::{BufMut, BytesMut};

use super::{ResponseMeta, StreamStep, StreamTranslator, write_sse_error};
use crate::bedrock::converse::{
    ContentBlock, ConversationRole, ConverseRequest, ConverseResponse, ConverseStreamEvent, InferenceConfig,
    Message, StopReason, SystemContentBlock, TokenUsage,
};
use crate::bedrock::errors::stream_exception_error;
use crate::bedrock::eventstream::StreamFrame;
use crate::error::ApiError;
use crate::openai::chat::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, Choice, ChunkChoice,
    ContentPart, Delta, FinishReason, ObjectKind, PromptTokensDetails, ResponseMessage, Role, Usage,
};

/// Builds the Converse body for `req`; it borrows the request's text.
pub fn converse_request(req: &ChatCompletionRequest) -> Result<ConverseRequest<'_>, ApiError> {
    let mut system = Vec::new();
    let mut messages: Vec<Message<'_>> = Vec::with_capacity(req.messages.len());
    for (i, message) in req.messages.iter().enumerate() {
        let (role, content) = match message {
            ChatMessage::System { content } | ChatMessage::Developer { content } => {
                system.extend(texts(content).map(SystemContentBlock::Text));
                continue;
            }
            ChatMessage::User { content } => (ConversationRole::User, content),
            ChatMessage::Assistant { content } => (ConversationRole::Assistant, content),
        };
        let mut blocks = texts(content).map(ContentBlock::Text).peekable();
        if blocks.peek().is_none() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(blocks),
            None if role == ConversationRole::Assistant => {
                return Err(ApiError::invalid_request(format!(
                    "The conversation must start with a user message: Bedrock does not accept an \
                     assistant message (`messages[{i}]`) before the first user message."
                ))
                .with_param(format!("messages[{i}]")));
            }
            _ => messages.push(Message { role, content: blocks.collect() }),
        }
    }
    if messages.is_empty() {
        return Err(ApiError::invalid_request(
            "`messages` must contain at least one user message with non-blank text.",
        )
        .with_param("messages"));
    }
    let config = InferenceConfig {
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop.iter().map(String::as_str).collect(),
    };
    Ok(ConverseRequest {
        messages,
        system,
        inference_config: if config.is_empty() { None } else { Some(config) },
    })
}

/// The non-blank text of a message's parts.
fn texts(content: &[ContentPart]) -> impl Iterator<Item = &str> {
    content
        .iter()
        .map(|part| match part {
            ContentPart::Text(text) => text.as_str(),
        })
        .filter(|text| !text.trim().is_empty())
}

/// Translates a Converse response into a chat completion.
pub fn chat_completion(resp: ConverseResponse, meta: &ResponseMeta) -> ChatCompletion {
    let mut content: Option<String> = None;
    for text in resp.output.message.into_iter().flat_map(|m| m.content).filter_map(|b| b.text) {
        match &mut content {
            Some(all) => all.push_str(&text),
            None => content = Some(text),
        }
    }
    ChatCompletion {
        id: meta.id.clone(),
        object: ObjectKind::ChatCompletion,
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage { role: Role::Assistant, content, refusal: () },
            logprobs: (),
            finish_reason: finish_reason(resp.stop_reason),
        }],
        usage: usage(&resp.usage),
    }
}

fn finish_reason(reason: StopReason) -> FinishReason {
    match reason {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse => FinishReason::ToolCalls,
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => FinishReason::ContentFilter,
        StopReason::EndTurn
        | StopReason::StopSequence
        | StopReason::MalformedModelOutput
        | StopReason::MalformedToolUse
        | StopReason::Other => FinishReason::Stop,
    }
}

fn usage(u: &TokenUsage) -> Usage {
    let cache_read = u.cache_read_input_tokens.unwrap_or(0);
    let cache_write = u.cache_write_input_tokens.unwrap_or(0);
    // Saturating: the counts come from the wire.
    let prompt_tokens = u.input_tokens.saturating_add(cache_read).saturating_add(cache_write);
    let cache_reported = u.cache_read_input_tokens.is_some() || u.cache_write_input_tokens.is_some();
    Usage {
        prompt_tokens,
        completion_tokens: u.output_tokens,
        total_tokens: prompt_tokens.saturating_add(u.output_tokens),
        prompt_tokens_details: cache_reported
            .then_some(PromptTokensDetails { cached_tokens: cache_read, cache_write_tokens: cache_write }),
    }
}

/// ConverseStream -> `chat.completion.chunk` SSE translator.
///
/// Output: a first chunk with `delta: {"role": "assistant", "content": ""}` (on `messageStart`),
/// one chunk per text delta, a chunk with `delta: {}` and the `finish_reason` (on
/// `messageStop`), then on `metadata` the usage chunk (`choices: []`, only with
/// `include_usage`) and `data: [DONE]`. With `include_usage` every other chunk carries
/// `"usage": null`, as OpenAI's do.
#[derive(Debug)]
pub struct ChatStream {
    meta: ResponseMeta,
    /// What every chunk of this stream starts with, serialized once (see [`chunk_head`]).
    head: Vec<u8>,
    include_usage: bool,
    started: bool,
    finish_written: bool,
    over: bool,
    usage: Option<Usage>,
}

impl ChatStream {
    /// A translator for one response.
    pub fn new(meta: ResponseMeta, include_usage: bool) -> Self {
        let head = chunk_head(&meta);
        ChatStream {
            meta,
            head,
            include_usage,
            started: false,
            finish_written: false,
            over: false,
            usage: None,
        }
    }

    /// Appends `data: <ChatCompletionChunk JSON>\n\n`: the shared head, then `choices` and `usage`.
    fn write_chunk(&self, out: &mut BytesMut, choices: &[ChunkChoice<'_>], usage: Option<&Usage>) {
        out.extend_from_slice(&self.head);
        // Plain derived structs into memory: serialization cannot fail.
        serde_json::to_writer((&mut *out).writer(), choices).expect("choices serialize");
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":");
            serde_json::to_writer((&mut *out).writer(), &usage).expect("usage serializes");
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn write_delta(&self, out: &mut BytesMut, delta: Delta<'_>, finish_reason: Option<FinishReason>) {
        self.write_chunk(out, &[ChunkChoice { index: 0, delta, logprobs: (), finish_reason }], None);
    }

    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.write_delta(out, Delta { role: Some(Role::Assistant), content: Some("") }, None);
        }
    }

    fn finish(&mut self, reason: FinishReason, out: &mut BytesMut) {
        if !self.finish_written {
            self.start(out);
            self.finish_written = true;
            self.write_delta(out, Delta::default(), Some(reason));
        }
    }

    fn fail(&mut self, err: ApiError, out: &mut BytesMut) -> StreamStep {
        write_sse_error(&err, out);
        self.over = true;
        StreamStep::Failed(err)
    }

    fn on_event(&mut self, event: ConverseStreamEvent<'_>, out: &mut BytesMut) -> StreamStep {
        match event {
            ConverseStreamEvent::MessageStart(_) => self.start(out),
            ConverseStreamEvent::ContentBlockDelta(event) => {
                if let Some(text) = event.delta.text.as_deref()
                    && !text.is_empty()
                {
                    self.start(out);
                    self.write_delta(out, Delta { role: None, content: Some(text) }, None);
                }
            }
            ConverseStreamEvent::MessageStop(event) => self.finish(finish_reason(event.stop_reason), out),
            ConverseStreamEvent::Metadata(event) => {
                // A stream without messageStop still gets a well-formed ending.
                self.finish(FinishReason::Stop, out);
                let usage = usage(&event.usage);
                self.usage = Some(usage);
                if self.include_usage {
                    self.write_chunk(out, &[], Some(&usage));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.over = true;
                return StreamStep::Done;
            }
            ConverseStreamEvent::ContentBlockStart(_)
            | ConverseStreamEvent::ContentBlockStop(_)
            | ConverseStreamEvent::Unknown => {}
        }
        StreamStep::Continue
    }
}

/// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":`: the part of
/// a [`ChatCompletionChunk`] that is the same on every chunk of a stream. Serializing it once per
/// stream instead of once per chunk removes most of the JSON work of streaming (the profile in
/// bench/RESULTS.md). `choices` and `usage` are the chunk's last fields, so the rest is appended.
fn chunk_head(meta: &ResponseMeta) -> Vec<u8> {
    let empty = ChatCompletionChunk {
        id: &meta.id,
        object: ObjectKind::ChatCompletionChunk,
        created: meta.created,
        model: &meta.model,
        choices: &[],
        usage: None,
    };
    let mut head = b"data: ".to_vec();
    serde_json::to_writer(&mut head, &empty).expect("chunk serializes");
    debug_assert!(head.ends_with(br#""choices":[]}"#), "choices must stay the last field before usage");
    head.truncate(head.len() - b"[]}".len());
    head
}

impl StreamTranslator for ChatStream {
    fn on_frame(&mut self, frame: StreamFrame, out: &mut BytesMut) -> StreamStep {
        if self.over {
            return StreamStep::Done;
        }
        match frame {
            StreamFrame::Event { event_type, payload } => {
                match ConverseStreamEvent::parse(&event_type, &payload) {
                    Ok(event) => self.on_event(event, out),
                    Err(err) => {
                        let err = ApiError::bad_gateway(format!(
                            "Bedrock sent a `{event_type}` event the gateway could not read: {err}."
                        ));
                        self.fail(err, out)
                    }
                }
            }
            StreamFrame::Exception { exception_type: code, message }
            | StreamFrame::Error { code, message } => {
                let err = stream_exception_error(&code, &message, &self.meta.model);
                self.fail(err, out)
            }
        }
    }

    fn abort(&mut self, err: &ApiError, out: &mut BytesMut) {
        if !self.over {
            write_sse_error(err, out);
            self.over = true;
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}
