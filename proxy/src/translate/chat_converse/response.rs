//! Converse response -> `chat.completion`.
//!
//! Text blocks are concatenated into `content`; `toolUse` blocks become `tool_calls` (names
//! restored to the caller's), except the structured-output tool, whose input becomes `content`,
//! and calls dropped under `tool_choice: none`; reasoning text becomes `reasoning_content` and
//! signed or redacted thinking `thinking_blocks`. `stopReason` maps to `finish_reason`
//! (`end_turn`/`stop_sequence` -> `stop`, `max_tokens`/`model_context_window_exceeded` ->
//! `length`, `tool_use` -> `tool_calls` when a call is returned, else `stop`,
//! `guardrail_intervened`/`content_filtered` -> `content_filter`, anything else -> `stop`);
//! `prompt_tokens` counts cached input too (`inputTokens + cacheReadInputTokens +
//! cacheWriteInputTokens`), as OpenAI's does.

use super::ReplyContext;
use super::tools::ToolUse;
use crate::bedrock::converse::{ConverseResponse, StopReason, TokenUsage};
use crate::openai::chat::{
    ChatCompletion, Choice, FinishReason, FunctionCall, FunctionKind, ObjectKind, PromptTokensDetails,
    ResponseMessage, ResponseToolCall, Role, ThinkingBlock, Usage,
};
use crate::translate::ResponseMeta;

fn append(into: &mut Option<String>, text: &str) {
    match into {
        Some(all) => all.push_str(text),
        None => *into = Some(text.to_owned()),
    }
}

/// Translates a Converse response into a chat completion.
pub fn chat_completion(resp: ConverseResponse, meta: &ResponseMeta, ctx: &ReplyContext) -> ChatCompletion {
    let mut content: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for block in resp.output.message.into_iter().flat_map(|m| m.content) {
        if let Some(text) = block.text {
            append(&mut content, &text);
        }
        if let Some(tool) = block.tool_use {
            match ctx.tool_use(&tool.name) {
                ToolUse::Call => tool_calls.push(ResponseToolCall {
                    id: tool.tool_use_id,
                    kind: FunctionKind::Function,
                    function: FunctionCall {
                        name: ctx.names.to_caller(&tool.name).to_owned(),
                        arguments: tool.input.to_string(),
                    },
                }),
                ToolUse::Content => append(&mut content, &tool.input.to_string()),
                ToolUse::Suppressed => {}
            }
        }
        if let Some(r) = block.reasoning_content {
            if let Some(text) = r.reasoning_text {
                append(&mut reasoning, &text.text);
                if text.signature.is_some() {
                    thinking_blocks
                        .push(ThinkingBlock::Thinking { thinking: text.text, signature: text.signature });
                }
            }
            if let Some(data) = r.redacted_content {
                thinking_blocks.push(ThinkingBlock::RedactedThinking { data });
            }
        }
    }
    ChatCompletion {
        id: meta.id.clone(),
        object: ObjectKind::ChatCompletion,
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![Choice {
            index: 0,
            finish_reason: finish_reason(resp.stop_reason, !tool_calls.is_empty()),
            message: ResponseMessage {
                role: Role::Assistant,
                content,
                refusal: (),
                reasoning_content: reasoning,
                thinking_blocks,
                tool_calls,
            },
            logprobs: (),
        }],
        usage: usage(&resp.usage),
    }
}

/// `finish_reason` for `reason`; `called`: a tool call reaches the caller.
pub(super) fn finish_reason(reason: StopReason, called: bool) -> FinishReason {
    match reason {
        StopReason::MaxTokens | StopReason::ModelContextWindowExceeded => FinishReason::Length,
        StopReason::ToolUse if called => FinishReason::ToolCalls,
        StopReason::GuardrailIntervened | StopReason::ContentFiltered => FinishReason::ContentFilter,
        StopReason::ToolUse
        | StopReason::EndTurn
        | StopReason::StopSequence
        | StopReason::MalformedModelOutput
        | StopReason::MalformedToolUse
        | StopReason::Other => FinishReason::Stop,
    }
}

/// OpenAI usage from Bedrock's.
pub(super) fn usage(u: &TokenUsage) -> Usage {
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
