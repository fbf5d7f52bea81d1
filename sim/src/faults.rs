//! `[[sim:...]]` directives in the last user message: scripted replies and injected faults.

use std::time::Duration;

use crate::errors::AwsError;

/// Exception events ConverseStream may send inside a 200 stream.
pub(crate) const STREAM_EXCEPTIONS: &[&str] = &[
    "modelStreamErrorException",
    "throttlingException",
    "internalServerException",
    "validationException",
    "serviceUnavailableException",
];

/// Everything the directives of one request ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Directives {
    /// `[[sim:error=Name]]`: answer with this modeled exception.
    pub error: Option<String>,
    /// `[[sim:latency=MS]]`: delay before the response headers.
    pub latency: Duration,
    /// `[[sim:gap=MS]]`: delay between stream events.
    pub gap: Duration,
    /// `[[sim:stream-error=name]]`: exception frame after the first delta.
    pub stream_error: Option<&'static str>,
    /// `[[sim:reset]]`: abort the connection after the first delta.
    pub reset: bool,
    /// `[[sim:garbage]]`: invalid frame bytes after the first delta.
    pub garbage: bool,
    /// `[[sim:reply=TEXT]]`: the exact reply text.
    pub reply: Option<String>,
    /// `[[sim:tool=NAME]]` or `[[sim:tool=NAME:{json input}]]`: call this tool (several make
    /// parallel calls); without an input the model writes one from the tool's schema.
    pub tools: Vec<(String, Option<serde_json::Value>)>,
    /// `[[sim:redacted-thinking]]`: add a redacted thinking block when thinking.
    pub redacted_thinking: bool,
    /// `[[sim:guardrail]]`: a guardrail blocks the answer (`guardrail_intervened`).
    pub guardrail: bool,
    /// `[[sim:filter]]`: the content filters block the prompt (InvokeModel image models).
    pub filter: bool,
    /// The message text with directives removed and whitespace normalized.
    pub clean_text: String,
}

fn bad(message: String) -> AwsError {
    AwsError::validation(message)
}

fn millis(name: &str, value: Option<&str>) -> Result<Duration, AwsError> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| bad(format!("bedrock-sim: [[sim:{name}=MS]] needs a whole number of milliseconds")))
}

/// Extracts the directives from `text`; unknown or malformed directives are a ValidationException
/// so that a typo in a test fails loudly instead of silently doing nothing.
pub(crate) fn parse(text: &str) -> Result<Directives, AwsError> {
    let mut d = Directives::default();
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("[[sim:") {
        plain.push_str(&rest[..start]);
        plain.push(' ');
        let after = &rest[start + "[[sim:".len()..];
        let end =
            after.find("]]").ok_or_else(|| bad("bedrock-sim: unterminated [[sim:...]] directive".into()))?;
        let body = &after[..end];
        rest = &after[end + 2..];
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        match (name, value) {
            ("reply", Some(v)) => d.reply = Some(v.to_owned()),
            ("error", Some(v)) => {
                if AwsError::modeled(v, "").is_none() {
                    return Err(bad(format!("bedrock-sim: unknown exception in [[sim:error={v}]]")));
                }
                d.error = Some(v.to_owned());
            }
            ("latency", v) => d.latency = millis(name, v)?,
            ("gap", v) => d.gap = millis(name, v)?,
            ("stream-error", Some(v)) => {
                let found = STREAM_EXCEPTIONS.iter().find(|e| **e == v);
                d.stream_error =
                    Some(*found.ok_or_else(|| bad(format!("bedrock-sim: unknown stream exception '{v}'")))?);
            }
            ("tool", Some(v)) => {
                let (name, input) = match v.split_once(':') {
                    Some((name, json)) => {
                        let input = serde_json::from_str(json).map_err(|e| {
                            bad(format!("bedrock-sim: [[sim:tool={name}:...]] input is not JSON: {e}"))
                        })?;
                        (name, Some(input))
                    }
                    None => (v, None),
                };
                d.tools.push((name.to_owned(), input));
            }
            ("redacted-thinking", None) => d.redacted_thinking = true,
            ("guardrail", None) => d.guardrail = true,
            ("reset", None) => d.reset = true,
            ("garbage", None) => d.garbage = true,
            ("filter", None) => d.filter = true,
            _ => return Err(bad(format!("bedrock-sim: unknown directive [[sim:{body}]]"))),
        }
    }
    plain.push_str(rest);
    d.clean_text = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_has_no_faults() {
        let d = parse("  hello \n world ").unwrap();
        assert_eq!(d, Directives { clean_text: "hello world".into(), ..Directives::default() });
    }

    #[test]
    fn directives_combine_and_are_removed() {
        let d = parse(
            "hi[[sim:latency=20]] there [[sim:gap=5]][[sim:stream-error=throttlingException]] \
             [[sim:reset]][[sim:garbage]] [[sim:error=ThrottlingException]] [[sim:reply=a  b]]",
        )
        .unwrap();
        assert_eq!(d.latency, Duration::from_millis(20));
        assert_eq!(d.gap, Duration::from_millis(5));
        assert_eq!(d.stream_error, Some("throttlingException"));
        assert!(d.reset && d.garbage);
        assert_eq!(d.error.as_deref(), Some("ThrottlingException"));
        assert_eq!(d.reply.as_deref(), Some("a  b"));
        assert_eq!(d.clean_text, "hi there");
    }

    #[test]
    fn bad_directives_are_validation_errors() {
        for text in [
            "[[sim:error=NoSuchException]]",
            "[[sim:latency=soon]]",
            "[[sim:stream-error=boom]]",
            "[[sim:explode]]",
            "[[sim:reset",
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.code, "ValidationException", "{text}");
        }
    }
}
