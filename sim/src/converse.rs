//! Converse (non-streaming) response bodies and the usage/metrics shapes shared with the stream.

use serde::Serialize;

use crate::reply::Reply;

/// TokenUsage.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Usage {
    input_tokens: u64,
    output_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    /// Usage with `totalTokens = input + output`.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self { input_tokens, output_tokens, total_tokens: input_tokens + output_tokens }
    }
}

/// ConverseMetrics / ConverseStreamMetrics.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Metrics {
    /// Simulated model latency in milliseconds.
    pub latency_ms: u64,
}

#[derive(Serialize)]
struct TextBlock<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct OutputMessage<'a> {
    role: &'a str,
    content: [TextBlock<'a>; 1],
}

#[derive(Serialize)]
struct Output<'a> {
    message: OutputMessage<'a>,
}

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
        output: Output {
            message: OutputMessage { role: "assistant", content: [TextBlock { text: &reply.text }] },
        },
        stop_reason: reply.stop_reason,
        usage: Usage::new(reply.input_tokens, reply.output_tokens),
        metrics: Metrics { latency_ms },
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_json() {
        let reply =
            Reply { text: "hi \"you\"".into(), stop_reason: "max_tokens", input_tokens: 3, output_tokens: 2 };
        assert_eq!(
            String::from_utf8(response_body(&reply, 7)).unwrap(),
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi \"you\""}]}},"stopReason":"max_tokens","usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5},"metrics":{"latencyMs":7}}"#
        );
    }
}
