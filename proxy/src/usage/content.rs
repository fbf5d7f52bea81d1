//! Opt-in logging of prompts and completions (`--log-content`), off by default.
//!
//! Without the flag nothing a caller sent or a model wrote reaches a log: the usage line carries
//! counts only. With it, each chat request adds one line at target `bedrock_gateway::content`
//! holding the request body as received and the completion text, keyed by the request id of
//! its usage line. The flag is for debugging a deployment whose callers agreed to it.

/// Target of the content lines, to route or filter them apart from the usage lines.
pub const LOG_TARGET: &str = "bedrock_gateway::content";

/// Logs one exchange: the request body as received and what the model answered.
pub fn log(request_id: &str, endpoint: &str, model: &str, prompt: &[u8], completion: &str) {
    tracing::info!(
        target: LOG_TARGET,
        request_id,
        endpoint,
        model,
        prompt = %String::from_utf8_lossy(prompt),
        completion,
        "content"
    );
}

/// The text a chat completion stream wrote: the `content` deltas of its `data:` chunks, in the
/// order they arrived.
pub fn stream_text(sse: &[u8]) -> String {
    let mut text = String::new();
    for event in sse.split(|&b| b == b'\n').filter_map(|line| line.strip_prefix(b"data: ")) {
        let Ok(chunk) = serde_json::from_slice::<serde_json::Value>(event) else { continue };
        let choices = chunk.get("choices").and_then(|c| c.as_array()).map_or(&[][..], Vec::as_slice);
        for delta in choices.iter().filter_map(|c| c.get("delta")) {
            if let Some(content) = delta.get("content").and_then(|c| c.as_str()) {
                text.push_str(content);
            }
        }
    }
    text
}

/// The message texts of a whole chat completion body, one per choice, newline-separated.
pub fn completion_text(body: &[u8]) -> String {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else { return String::new() };
    let choices = doc.get("choices").and_then(|c| c.as_array()).map_or(&[][..], Vec::as_slice);
    let texts: Vec<&str> = choices
        .iter()
        .filter_map(|c| c.get("message").and_then(|m| m.get("content")).and_then(|t| t.as_str()))
        .collect();
    texts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_text_joins_the_content_deltas() {
        let sse = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(stream_text(sse.as_bytes()), "Hello");
    }

    #[test]
    fn completion_text_reads_every_choice() {
        let body = br#"{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}}]}"#;
        assert_eq!(completion_text(body), "a\nb");
        assert_eq!(completion_text(b"not json"), "");
    }
}
