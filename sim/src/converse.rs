//! Converse (non-streaming) response bodies and the usage/metrics shapes shared with the stream.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use serde_json::{Value, json};

use crate::cache::{CacheUse, PromptCache};
use crate::cancel::Completion;
use crate::errors::AwsError;
use crate::faults::{self, Directives};
use crate::reply::{self, Reply};
use crate::request;

/// TokenUsage.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_read_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_write_input_tokens: Option<u64>,
}

impl Usage {
    /// The usage of `reply`; `totalTokens` counts cache reads and writes too, as Bedrock's does.
    pub fn of(reply: &Reply) -> Self {
        let cached = reply.cache.map_or(0, |c| c.read + c.write);
        Self {
            input_tokens: reply.input_tokens,
            output_tokens: reply.output_tokens,
            total_tokens: reply.input_tokens + reply.output_tokens + cached,
            cache_read_input_tokens: reply.cache.map(|c| c.read),
            cache_write_input_tokens: reply.cache.map(|c| c.write),
        }
    }
}

/// ConverseMetrics / ConverseStreamMetrics.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metrics {
    /// Simulated model latency in milliseconds.
    pub latency_ms: u64,
}

/// The content blocks of `reply`, in order: thinking, redacted thinking, text, tool calls. The
/// text block is left out when empty beside other blocks, as Bedrock does.
pub(crate) fn content_blocks(reply: &Reply) -> Vec<Value> {
    let mut blocks = Vec::with_capacity(3 + reply.tool_calls.len());
    if let Some(text) = &reply.reasoning {
        blocks.push(json!({"reasoningContent": {"reasoningText": {
            "text": text, "signature": crate::request::thinking_signature(text)
        }}}));
    }
    if let Some(data) = &reply.redacted {
        blocks.push(json!({"reasoningContent": {"redactedContent": data}}));
    }
    if !reply.text.is_empty() || (blocks.is_empty() && reply.tool_calls.is_empty()) {
        blocks.push(json!({"text": reply.text}));
    }
    for call in &reply.tool_calls {
        blocks.push(json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": call.input}}));
    }
    blocks
}

#[derive(Serialize)]
struct OutputMessage<'a> {
    role: &'a str,
    content: Vec<Value>,
}

#[derive(Serialize)]
struct Output<'a> {
    message: OutputMessage<'a>,
}

// Members in the order Bedrock writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    output: Output<'a>,
    stop_reason: &'a str,
    usage: Usage,
    metrics: Metrics,
}

/// The ConverseResponse JSON for `reply`; `latency_ms` is the simulated model latency.
pub(crate) fn response_body(reply: &Reply, latency_ms: u64) -> Vec<u8> {
    let response = ConverseResponse {
        output: Output { message: OutputMessage { role: "assistant", content: content_blocks(reply) } },
        stop_reason: reply.stop_reason,
        usage: Usage::of(reply),
        metrics: Metrics { latency_ms },
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

/// What a live call adds to a batch record's answer: the region it was signed for (for
/// `[[sim:fault-region=..]]`), the count of calls the client abandoned, and its attempt number
/// among identical calls (for `[[sim:times=N]]`).
pub(crate) struct LiveCall<'a> {
    /// Region of the SigV4 credential scope; `None` for bearer tokens.
    pub region: Option<&'a str>,
    /// Calls the client gave up on while they waited.
    pub cancelled: &'a Arc<AtomicU64>,
    /// Counts this call among identical ones and returns its number, this one included.
    pub attempt: &'a (dyn Fn() -> u32 + Sync),
}

/// Answers a Converse request body (or a batch record's `modelInput` of a Converse job): validates
/// it, applies the latency and error directives of its last user message and builds the reply,
/// reading and writing `cache` when given. Returns the reply with the directives that shape a stream.
pub(crate) async fn answer(
    model_id: &str,
    body: &[u8],
    cache: Option<&PromptCache>,
    live: Option<LiveCall<'_>>,
) -> Result<(Reply, Directives), AwsError> {
    let input = request::parse(body)?;
    let mut directives = faults::parse(&input.last_user_text())?;
    if let Some(live) = &live {
        directives.target(model_id, live.region);
    }
    if !directives.latency.is_zero() {
        // A client that gives up while it waits drops this future: counted as cancelled.
        let mut waiting = live.as_ref().map(|live| Completion::new(live.cancelled));
        tokio::time::sleep(directives.latency).await;
        waiting.iter_mut().for_each(Completion::finish);
    }
    if (directives.error.is_some() || directives.first_frame.is_some())
        && directives.times.is_some_and(|n| live.as_ref().map_or(1, |live| (live.attempt)()) > n)
    {
        // The retries `times=N` allows are over: this call is answered.
        directives.error = None;
        directives.first_frame = None;
    }
    if let Some(name) = &directives.error {
        return Err(AwsError::modeled(name, model_id).unwrap_or_else(|| AwsError::validation(name.clone())));
    }
    let cache_use: Option<CacheUse> = cache.and_then(|c| c.lookup(input.cache_prefix.as_ref()));
    let reply = reply::generate(&input, &directives, cache_use)?;
    Ok((reply, directives))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::CacheUse;
    use crate::reply::ToolCall;

    #[test]
    fn exact_json() {
        let reply = Reply {
            text: "hi \"you\"".into(),
            stop_reason: "max_tokens",
            input_tokens: 3,
            output_tokens: 2,
            ..Reply::default()
        };
        assert_eq!(
            String::from_utf8(response_body(&reply, 7)).unwrap(),
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi \"you\""}]}},"stopReason":"max_tokens","usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":7}}"#
        );
    }

    #[test]
    fn thinking_tools_and_cache() {
        let reply = Reply {
            reasoning: Some("hmm".into()),
            tool_calls: vec![ToolCall { id: "tooluse_1".into(), name: "f".into(), input: json!({"a": 1}) }],
            stop_reason: "tool_use",
            input_tokens: 3,
            output_tokens: 2,
            cache: Some(CacheUse { read: 10, write: 0 }),
            ..Reply::default()
        };
        let v: Value = serde_json::from_slice(&response_body(&reply, 1)).unwrap();
        let content = &v["output"]["message"]["content"];
        assert_eq!(content[0]["reasoningContent"]["reasoningText"]["text"], "hmm");
        assert!(content[0]["reasoningContent"]["reasoningText"]["signature"].is_string());
        assert_eq!(
            content[1],
            json!({"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {"a": 1}}})
        );
        assert_eq!(content.as_array().unwrap().len(), 2);
        assert_eq!(
            v["usage"],
            json!({"inputTokens": 3, "outputTokens": 2, "totalTokens": 15, "cacheReadInputTokens": 10, "cacheWriteInputTokens": 0})
        );
    }
}
