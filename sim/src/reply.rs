//! Deterministic replies: text, stop reason and token counts derived from the request.

use crate::faults::Directives;
use crate::request::ConverseInput;

/// The simulated model output for one request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    /// Full reply text.
    pub text: String,
    /// Bedrock stopReason: `end_turn`, `max_tokens` or `stop_sequence`.
    pub stop_reason: &'static str,
    /// Input tokens (words of system and message texts, at least 1).
    pub input_tokens: u64,
    /// Output tokens (words of the reply).
    pub output_tokens: u64,
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

/// Builds the reply for a validated request and its directives.
pub(crate) fn generate(input: &ConverseInput, directives: &Directives) -> Reply {
    let full = match &directives.reply {
        Some(text) => text.clone(),
        None => format!("Simulated reply to: {}", directives.clean_text).trim_end().to_owned(),
    };
    let spans = word_spans(&full);
    let limit = input.max_tokens.and_then(|m| usize::try_from(m).ok()).filter(|&m| m < spans.len());
    let budget_end = limit.map_or(full.len(), |m| spans[m - 1].1);
    // The model stops at a stop sequence only if it was fully generated within the token budget.
    let stop_at = input
        .stop_sequences
        .iter()
        .filter_map(|s| full.find(s.as_str()).filter(|pos| pos + s.len() <= budget_end))
        .min();
    let (text, stop_reason) = match (stop_at, limit) {
        (Some(pos), _) => (full[..pos].to_owned(), "stop_sequence"),
        (None, Some(_)) => (full[..budget_end].to_owned(), "max_tokens"),
        (None, None) => (full, "end_turn"),
    };
    let output_tokens = text.split_whitespace().count() as u64;
    Reply { text, stop_reason, input_tokens: input.input_tokens(), output_tokens }
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
            messages: vec![InputMessage { role: Role::User, texts: vec![text.into()] }],
            max_tokens,
            stop_sequences: stops.iter().map(|s| (*s).to_owned()).collect(),
        };
        let d = crate::faults::parse(text).unwrap();
        (input, d)
    }

    #[test]
    fn default_reply_echoes_cleaned_text() {
        let (i, d) = input("Hello   there [[sim:gap=1]]", None, &[]);
        let r = generate(&i, &d);
        assert_eq!(r.text, "Simulated reply to: Hello there");
        assert_eq!((r.stop_reason, r.input_tokens, r.output_tokens), ("end_turn", 5, 5));
        assert_eq!(r.deltas(), ["Simulated ", "reply ", "to: ", "Hello ", "there"]);
    }

    #[test]
    fn scripted_reply_is_exact() {
        let (i, d) = input("x [[sim:reply= a  b ]]", None, &[]);
        let r = generate(&i, &d);
        assert_eq!(r.text, " a  b ");
        assert_eq!(r.output_tokens, 2);
        assert_eq!(r.deltas().concat(), r.text);
        assert_eq!(r.deltas(), [" a  ", "b "]);
    }

    #[test]
    fn max_tokens_truncates() {
        let (i, d) = input("one two three", Some(3), &[]);
        let r = generate(&i, &d);
        assert_eq!(
            (r.text.as_str(), r.stop_reason, r.output_tokens),
            ("Simulated reply to:", "max_tokens", 3)
        );
        let (i, d) = input("one", Some(4), &[]);
        assert_eq!(generate(&i, &d).stop_reason, "end_turn");
    }

    #[test]
    fn stop_sequence_cuts_before_it() {
        let (i, d) = input("alpha STOP beta", None, &["beta", "STOP"]);
        let r = generate(&i, &d);
        assert_eq!(
            (r.text.as_str(), r.stop_reason, r.output_tokens),
            ("Simulated reply to: alpha ", "stop_sequence", 4)
        );
        // Beyond the token budget the stop sequence is never produced.
        let (i, d) = input("alpha STOP beta", Some(3), &["STOP"]);
        assert_eq!(generate(&i, &d).stop_reason, "max_tokens");
    }

    #[test]
    fn empty_reply_has_no_deltas() {
        let (i, d) = input("[[sim:reply=]]", None, &[]);
        let r = generate(&i, &d);
        assert_eq!((r.text.as_str(), r.output_tokens), ("", 0));
        assert!(r.deltas().is_empty());
    }
}
