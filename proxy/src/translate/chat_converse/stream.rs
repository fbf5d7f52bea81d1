//! ConverseStream events -> `chat.completion.chunk` SSE.
//!
//! Output: a first chunk with `delta: {"role": "assistant", "content": ""}` (on `messageStart`),
//! one chunk per text, reasoning or tool-call fragment, a chunk with `delta: {}` and the
//! `finish_reason` (on `messageStop`), then on `metadata` the usage chunk (`choices: []`, only
//! with `include_usage`) and `data: [DONE]`. With `include_usage` every other chunk carries
//! `"usage": null`, as OpenAI's do.
//!
//! Tool calls: `contentBlockStart` with `toolUse` opens a call; its first chunk carries the dense
//! tool index (0, 1, ... among this reply's calls, never Bedrock's `contentBlockIndex`), `id`,
//! `type` and `name` with empty `arguments`; each `toolUse.input` delta is a chunk with the
//! index and the argument fragment only. The structured-output tool streams as `content`.
//! Reasoning text streams as `delta.reasoning_content`; when a thinking block ends with its
//! signature, one chunk carries the whole block in `delta.thinking_blocks` (redacted blocks as
//! they arrive), so the client can return them with the assistant message.

use bytes::{BufMut, BytesMut};

use super::ReplyContext;
use super::response::{finish_reason, usage};
use super::tools::ToolUse;
use crate::bedrock::converse::ConverseStreamEvent;
use crate::bedrock::errors::stream_exception_error;
use crate::bedrock::eventstream::StreamFrame;
use crate::error::ApiError;
use crate::openai::chat::{
    ChatCompletionChunk, ChunkChoice, Delta, DeltaFunction, DeltaToolCall, FinishReason, FunctionKind,
    ObjectKind, Role, ThinkingBlock, Usage,
};
use crate::translate::{ResponseMeta, StreamStep, StreamTranslator, write_sse_error};

/// What an open `toolUse` block streams as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpenTool {
    /// A tool call with this dense index; `true` once an argument fragment was sent.
    Call(u32, bool),
    /// The structured-output answer.
    Content,
    /// Dropped.
    Suppressed,
}

/// A thinking block being received: its index, text so far and signature.
#[derive(Debug, Default)]
struct Thinking {
    index: u32,
    text: String,
    signature: Option<String>,
}

/// ConverseStream -> `chat.completion.chunk` SSE translator.
#[derive(Debug)]
pub struct ChatStream {
    meta: ResponseMeta,
    /// What every chunk of this stream starts with, serialized once (see [`chunk_head`]).
    head: Vec<u8>,
    ctx: ReplyContext,
    include_usage: bool,
    started: bool,
    /// The `finish_reason` sent, once sent.
    finish_reason: Option<FinishReason>,
    over: bool,
    usage: Option<Usage>,
    /// The open toolUse block: `contentBlockIndex` and what it streams as.
    tool: Option<(u32, OpenTool)>,
    /// Tool calls sent so far.
    calls: u32,
    thinking: Option<Thinking>,
}

impl ChatStream {
    /// A translator for one response to a request translated with `ctx`.
    pub fn new(meta: ResponseMeta, include_usage: bool, ctx: ReplyContext) -> Self {
        ChatStream {
            head: chunk_head(&meta),
            meta,
            ctx,
            include_usage,
            started: false,
            finish_reason: None,
            over: false,
            usage: None,
            tool: None,
            calls: 0,
            thinking: None,
        }
    }

    /// The `finish_reason` of the stream, once it was sent.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
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
            self.write_delta(
                out,
                Delta { role: Some(Role::Assistant), content: Some(""), ..Delta::default() },
                None,
            );
        }
    }

    fn finish(&mut self, reason: FinishReason, out: &mut BytesMut) {
        if self.finish_reason.is_none() {
            self.start(out);
            self.finish_reason = Some(reason);
            self.write_delta(out, Delta::default(), Some(reason));
        }
    }

    fn fail(&mut self, err: ApiError, out: &mut BytesMut) -> StreamStep {
        write_sse_error(&err, out);
        self.over = true;
        StreamStep::Failed(err)
    }

    fn write_content(&mut self, text: &str, out: &mut BytesMut) {
        if !text.is_empty() {
            self.start(out);
            self.write_delta(out, Delta { content: Some(text), ..Delta::default() }, None);
        }
    }

    fn write_thinking_block(&mut self, block: ThinkingBlock, out: &mut BytesMut) {
        self.start(out);
        self.write_delta(out, Delta { thinking_blocks: Some(&[block]), ..Delta::default() }, None);
    }

    fn write_arguments(&mut self, call: u32, arguments: &str, out: &mut BytesMut) {
        self.start(out);
        let call = [DeltaToolCall {
            index: call,
            id: None,
            kind: None,
            function: DeltaFunction { name: None, arguments },
        }];
        self.write_delta(out, Delta { tool_calls: Some(&call), ..Delta::default() }, None);
    }

    /// Sends the finished thinking block at `index` if it was signed.
    fn close_thinking(&mut self, index: u32, out: &mut BytesMut) {
        if self.thinking.as_ref().is_some_and(|t| t.index == index)
            && let Some(Thinking { text, signature: Some(signature), .. }) = self.thinking.take()
        {
            self.write_thinking_block(
                ThinkingBlock::Thinking { thinking: text, signature: Some(signature) },
                out,
            );
        }
    }

    fn on_event(&mut self, event: ConverseStreamEvent<'_>, out: &mut BytesMut) -> StreamStep {
        match event {
            ConverseStreamEvent::MessageStart(_) => self.start(out),
            ConverseStreamEvent::ContentBlockStart(event) => {
                if let Some(tool) = event.start.tool_use {
                    let open = match self.ctx.tool_use(&tool.name) {
                        ToolUse::Call => {
                            let index = self.calls;
                            self.calls += 1;
                            self.start(out);
                            let call = [DeltaToolCall {
                                index,
                                id: Some(&tool.tool_use_id),
                                kind: Some(FunctionKind::Function),
                                function: DeltaFunction {
                                    name: Some(self.ctx.names.to_caller(&tool.name)),
                                    arguments: "",
                                },
                            }];
                            self.write_delta(
                                out,
                                Delta { tool_calls: Some(&call), ..Delta::default() },
                                None,
                            );
                            OpenTool::Call(index, false)
                        }
                        ToolUse::Content => OpenTool::Content,
                        ToolUse::Suppressed => OpenTool::Suppressed,
                    };
                    self.tool = Some((event.content_block_index, open));
                }
            }
            ConverseStreamEvent::ContentBlockDelta(event) => {
                let index = event.content_block_index;
                if let Some(text) = event.delta.text.as_deref() {
                    self.write_content(text, out);
                }
                if let Some(fragment) = event.delta.tool_use {
                    match self.tool {
                        Some((open, OpenTool::Call(call, _)))
                            if open == index && !fragment.input.is_empty() =>
                        {
                            self.tool = Some((open, OpenTool::Call(call, true)));
                            self.write_arguments(call, &fragment.input, out);
                        }
                        Some((open, OpenTool::Content)) if open == index => {
                            self.write_content(&fragment.input, out)
                        }
                        _ => {}
                    }
                }
                if let Some(r) = event.delta.reasoning_content {
                    if let Some(text) = r.text.as_deref()
                        && !text.is_empty()
                    {
                        self.start(out);
                        self.write_delta(
                            out,
                            Delta { reasoning_content: Some(text), ..Delta::default() },
                            None,
                        );
                    }
                    if r.text.is_some() || r.signature.is_some() {
                        let thinking =
                            self.thinking.get_or_insert_with(|| Thinking { index, ..Thinking::default() });
                        thinking.text.push_str(r.text.as_deref().unwrap_or(""));
                        if let Some(signature) = r.signature {
                            thinking.signature = Some(signature.into_owned());
                        }
                    }
                    if let Some(data) = r.redacted_content {
                        self.write_thinking_block(
                            ThinkingBlock::RedactedThinking { data: data.into_owned() },
                            out,
                        );
                    }
                }
            }
            ConverseStreamEvent::ContentBlockStop(event) => {
                self.close_thinking(event.content_block_index, out);
                if let Some((open, tool)) = self.tool
                    && open == event.content_block_index
                {
                    // A call without input still hands the client parseable arguments.
                    if let OpenTool::Call(call, false) = tool {
                        self.write_arguments(call, "{}", out);
                    }
                    self.tool = None;
                }
            }
            ConverseStreamEvent::MessageStop(event) => {
                self.finish(finish_reason(event.stop_reason, self.calls > 0), out);
            }
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
            ConverseStreamEvent::Unknown => {}
        }
        StreamStep::Continue
    }
}

/// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":`: the part of
/// a [`ChatCompletionChunk`] that is the same on every chunk of a stream. Serializing it once per
/// stream instead of once per chunk removes most of the JSON work of streaming (bench/RESULTS.md:
/// 522,915 -> 496,728 instructions per stream). `choices` and `usage` are the chunk's last
/// fields, so the rest is appended.
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
