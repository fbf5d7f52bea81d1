//! Deterministic replies: thinking, text, tool calls, stop reason and token counts derived from
//! the request and its directives.

use serde_json::Value;

use crate::cache::CacheUse;
use crate::errors::AwsError;
use crate::faults::Directives;
use crate::request::{ConverseInput, ToolChoice, thinking_signature};
use crate::schema::instance;

/// The blocked-output message of the simulated guardrail.
pub(crate) const GUARDRAIL_MESSAGE: &str = "Sorry, the model cannot answer this question.";

/// One tool call of the reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    /// `toolUseId`.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments.
    pub input: Value,
}

/// The simulated model output for one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Reply {
    /// Signed thinking text, when thinking is on.
    pub reasoning: Option<String>,
    /// Redacted thinking data, when asked for.
    pub redacted: Option<String>,
    /// Full reply text.
    pub text: String,
    /// Tool calls, after the text.
    pub tool_calls: Vec<ToolCall>,
    /// Bedrock stopReason: `end_turn`, `tool_use`, `max_tokens` or `stop_sequence`.
    pub stop_reason: &'static str,
    /// The stop sequence that ended the reply, with `stop_sequence`.
    pub stop_sequence: Option<String>,
    /// Uncached input tokens (words of system and message texts, at least 1).
    pub input_tokens: u64,
    /// Output tokens (words of the thinking, the text and the tool inputs).
    pub output_tokens: u64,
    /// Prompt-cache activity, when the request marked a cache point.
    pub cache: Option<CacheUse>,
}

/// Byte offsets where whitespace-separated words start and end.
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// The tool calls the model makes: forced by `toolChoice`, or asked for by directives.
fn tool_calls(input: &ConverseInput, directives: &Directives) -> Result<Vec<ToolCall>, AwsError> {
    let spec = |name: &str| {
        input.tools.iter().find(|t| t.name == name).ok_or_else(|| {
            AwsError::validation(format!("bedrock-sim: [[sim:tool={name}]] names no tool of toolConfig"))
        })
    };
    let mut wanted: Vec<(&str, Option<&Value>)> =
        directives.tools.iter().map(|(name, input)| (name.as_str(), input.as_ref())).collect();
    match &input.tool_choice {
        ToolChoice::Tool(name) => {
            let scripted = wanted.iter().find(|(n, _)| n == name).and_then(|(_, i)| *i);
            wanted = vec![(name.as_str(), scripted)];
        }
        ToolChoice::Any if wanted.is_empty() => {
            // `any` without a scripted call: the model picks the first tool.
            let first = input
                .tools
                .first()
                .ok_or_else(|| AwsError::validation("toolConfig.tools has no toolSpec"))?;
            wanted.push((first.name.as_str(), None));
        }
        ToolChoice::Any | ToolChoice::Auto => {}
    }
    wanted
        .into_iter()
        .map(|(name, scripted)| {
            let spec = spec(name)?;
            let id: String = std::iter::repeat_with(fastrand::alphanumeric).take(22).collect();
            Ok(ToolCall {
                id: format!("tooluse_{id}"),
                name: name.to_owned(),
                input: scripted.cloned().unwrap_or_else(|| instance(&spec.schema)),
            })
        })
        .collect()
}

/// Builds the reply for a validated request, its directives and its cache activity.
pub(crate) fn generate(
    input: &ConverseInput,
    directives: &Directives,
    cache: Option<CacheUse>,
) -> Result<Reply, AwsError> {
    if directives.guardrail {
        // What Bedrock answers when a guardrail blocks the output: its canned message, no calls.
        let text = GUARDRAIL_MESSAGE.to_owned();
        let output_tokens = text.split_whitespace().count() as u64;
        let input_tokens = input.input_tokens();
        return Ok(Reply {
            text,
            stop_reason: "guardrail_intervened",
            input_tokens,
            output_tokens,
            ..Reply::default()
        });
    }
    let tool_calls = tool_calls(input, directives)?;
    let full = match (&directives.reply, &input.json_schema) {
        (Some(text), _) => text.clone(),
        (None, _) if !tool_calls.is_empty() => String::new(),
        (None, Some(schema)) => instance(schema).to_string(),
        (None, None) => format!("Simulated reply to: {}", directives.clean_text).trim_end().to_owned(),
    };
    let spans = word_spans(&full);
    let limit = input.max_tokens.and_then(|m| usize::try_from(m).ok()).filter(|&m| m < spans.len());
    let budget_end = limit.map_or(full.len(), |m| spans[m - 1].1);
    // The model stops at a stop sequence only if it was fully generated within the token budget.
    let stop_at = input
        .stop_sequences
        .iter()
        .filter_map(|s| full.find(s.as_str()).filter(|pos| pos + s.len() <= budget_end).map(|pos| (pos, s)))
        .min_by_key(|(pos, _)| *pos);
    let stop_sequence = stop_at.map(|(_, s)| s.clone());
    let (text, stop_reason, tool_calls) = match (stop_at, limit) {
        (Some((pos, _)), _) => (full[..pos].to_owned(), "stop_sequence", Vec::new()),
        (None, Some(_)) => (full[..budget_end].to_owned(), "max_tokens", Vec::new()),
        (None, None) if !tool_calls.is_empty() => (full, "tool_use", tool_calls),
        (None, None) => (full, "end_turn", tool_calls),
    };
    let reasoning =
        input.thinking.then(|| format!("Thinking about: {}", directives.clean_text).trim_end().to_owned());
    let redacted = (input.thinking && directives.redacted_thinking).then(|| thinking_signature("redacted"));
    let words = |t: &str| t.split_whitespace().count() as u64;
    let output_tokens = words(&text)
        + reasoning.as_deref().map_or(0, words)
        + tool_calls.iter().map(|c| words(&c.input.to_string()).max(1)).sum::<u64>();
    let cached = cache.map_or(0, |c| c.read + c.write);
    let input_tokens = input.input_tokens().saturating_sub(cached).max(1);
    Ok(Reply {
        reasoning,
        redacted,
        text,
        tool_calls,
        stop_reason,
        stop_sequence,
        input_tokens,
        output_tokens,
        cache,
    })
}

impl Reply {
    /// Stream deltas: each word with the whitespace that follows it; concatenated they give `text`.
    pub fn deltas(&self) -> Vec<&str> {
        let starts: Vec<usize> = word_spans(&self.text).iter().map(|s| s.0).collect();
        if starts.is_empty() {
            return if self.text.is_empty() { Vec::new() } else { vec![self.text.as_str()] };
        }
        let mut cuts = starts;
        cuts[0] = 0;
        cuts.push(self.text.len());
        cuts.windows(2).map(|w| &self.text[w[0]..w[1]]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{InputMessage, Role};

    fn input(text: &str, max_tokens: Option<u64>, stops: &[&str]) -> (ConverseInput, Directives) {
        let input = ConverseInput {
            system: vec!["sys words".into()],
            messages: vec![InputMessage {
                role: Some(Role::User),
                texts: vec![text.into()],
                ..Default::default()
            }],
            max_tokens,
            stop_sequences: stops.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let d = crate::faults::parse(text).unwrap();
        (input, d)
    }

    #[test]
    fn default_reply_echoes_cleaned_text() {
        let (i, d) = input("Hello   there [[sim:gap=1]]", None, &[]);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!(r.text, "Simulated reply to: Hello there");
        assert_eq!((r.stop_reason, r.input_tokens, r.output_tokens), ("end_turn", 5, 5));
        assert_eq!(r.deltas(), ["Simulated ", "reply ", "to: ", "Hello ", "there"]);
    }

    #[test]
    fn scripted_reply_is_exact() {
        let (i, d) = input("x [[sim:reply= a  b ]]", None, &[]);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!(r.text, " a  b ");
        assert_eq!(r.output_tokens, 2);
        assert_eq!(r.deltas().concat(), r.text);
        assert_eq!(r.deltas(), [" a  ", "b "]);
    }

    #[test]
    fn max_tokens_truncates() {
        let (i, d) = input("one two three", Some(3), &[]);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!(
            (r.text.as_str(), r.stop_reason, r.output_tokens),
            ("Simulated reply to:", "max_tokens", 3)
        );
        let (i, d) = input("one", Some(4), &[]);
        assert_eq!(generate(&i, &d, None).unwrap().stop_reason, "end_turn");
    }

    #[test]
    fn stop_sequence_cuts_before_it() {
        let (i, d) = input("alpha STOP beta", None, &["beta", "STOP"]);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!(
            (r.text.as_str(), r.stop_reason, r.output_tokens),
            ("Simulated reply to: alpha ", "stop_sequence", 4)
        );
        assert_eq!(r.stop_sequence.as_deref(), Some("STOP"));
        // Beyond the token budget the stop sequence is never produced.
        let (i, d) = input("alpha STOP beta", Some(3), &["STOP"]);
        assert_eq!(generate(&i, &d, None).unwrap().stop_reason, "max_tokens");
    }

    #[test]
    fn empty_reply_has_no_deltas() {
        let (i, d) = input("[[sim:reply=]]", None, &[]);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!((r.text.as_str(), r.output_tokens), ("", 0));
        assert!(r.deltas().is_empty());
    }

    fn with_tools(text: &str, choice: ToolChoice) -> (ConverseInput, Directives) {
        let (mut i, d) = input(text, None, &[]);
        i.tools = vec![crate::request::ToolSpec {
            name: "f".into(),
            schema: serde_json::json!({"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}),
        }];
        i.tool_choice = choice;
        (i, d)
    }

    #[test]
    fn tool_calls_come_from_directives_or_the_forced_choice() {
        let (i, d) = with_tools(r#"go [[sim:tool=f:{"x":5}]]"#, ToolChoice::Auto);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!((r.stop_reason, r.text.as_str()), ("tool_use", ""));
        assert_eq!(r.tool_calls[0].input, serde_json::json!({"x": 5}));
        assert!(r.tool_calls[0].id.starts_with("tooluse_"));
        let (i, d) = with_tools("go", ToolChoice::Tool("f".into()));
        assert_eq!(generate(&i, &d, None).unwrap().tool_calls[0].input, serde_json::json!({"x": 1}));
        let (i, d) = with_tools("go", ToolChoice::Auto);
        assert!(generate(&i, &d, None).unwrap().tool_calls.is_empty());
        let (i, d) = with_tools("go [[sim:tool=g]]", ToolChoice::Auto);
        assert!(generate(&i, &d, None).unwrap_err().message.contains("names no tool"));
    }

    #[test]
    fn thinking_and_cache_shape_the_reply() {
        let (mut i, d) = input("why [[sim:redacted-thinking]]", None, &[]);
        i.thinking = true;
        let cache = CacheUse { read: 2, write: 0 };
        let r = generate(&i, &d, Some(cache)).unwrap();
        assert_eq!(r.reasoning.as_deref(), Some("Thinking about: why"));
        assert!(r.redacted.is_some());
        // 4 input words ("sys words", "why [[sim:...]]"), 2 of them read from the cache.
        assert_eq!((r.input_tokens, r.cache), (2, Some(cache)));
        assert_eq!(r.output_tokens, 4 + 3);
    }

    #[test]
    fn a_guardrail_blocks_the_answer() {
        let (i, d) = input("bad words [[sim:guardrail]]", None, &[]);
        let r = generate(&i, &d, None).unwrap();
        assert_eq!((r.text.as_str(), r.stop_reason), (GUARDRAIL_MESSAGE, "guardrail_intervened"));
    }
}
