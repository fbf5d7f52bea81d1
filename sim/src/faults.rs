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

/// What a 200 ConverseStream carries instead of the answer (`[[sim:first-frame=..]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstFrame {
    /// This stream exception, refusing the call before the model started.
    Exception(&'static str),
    /// Bytes that are not an event-stream frame.
    Garbage,
}

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
    /// `[[sim:first-frame=name]]`: the 200 stream's first and only frame is this exception, or
    /// invalid frame bytes (`garbage`).
    pub first_frame: Option<FirstFrame>,
    /// `[[sim:reset]]`: abort the connection after the first delta.
    pub reset: bool,
    /// `[[sim:garbage]]`: invalid frame bytes after the first delta.
    pub garbage: bool,
    /// `[[sim:bad-crc]]`: a frame whose message CRC is wrong after the first delta.
    pub bad_crc: bool,
    /// `[[sim:truncated]]`: half a frame after the first delta, then the body ends.
    pub truncated: bool,
    /// `[[sim:times=N]]`: `error` and `first-frame` strike only the first N calls with this model
    /// and body (the caller's retries), later ones are answered.
    pub times: Option<u32>,
    /// `[[sim:fault-model=ID]]`: the faults strike only calls to this model id.
    pub fault_model: Option<String>,
    /// `[[sim:fault-region=REGION]]`: the faults strike only calls signed for this region.
    pub fault_region: Option<String>,
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

fn stream_exception(name: &str) -> Result<&'static str, AwsError> {
    let found = STREAM_EXCEPTIONS.iter().find(|e| **e == name);
    found.copied().ok_or_else(|| bad(format!("bedrock-sim: unknown stream exception '{name}'")))
}

fn millis(name: &str, value: Option<&str>) -> Result<Duration, AwsError> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| bad(format!("bedrock-sim: [[sim:{name}=MS]] needs a whole number of milliseconds")))
}

impl Directives {
    /// Drops every fault when `fault-model` or `fault-region` names another model or region
    /// than this call's, so that a test can fault one model and let its fallback answer.
    pub(crate) fn target(&mut self, model_id: &str, region: Option<&str>) {
        let other_model = self.fault_model.as_deref().is_some_and(|m| m != model_id);
        let other_region = self.fault_region.as_deref().is_some_and(|r| Some(r) != region);
        if other_model || other_region {
            self.error = None;
            self.latency = Duration::ZERO;
            self.gap = Duration::ZERO;
            self.stream_error = None;
            self.first_frame = None;
            self.reset = false;
            self.garbage = false;
            self.bad_crc = false;
            self.truncated = false;
        }
    }

    /// Whether a mid-stream fault cuts the stream after its first delta.
    pub(crate) fn cuts_stream(&self) -> bool {
        self.garbage || self.bad_crc || self.truncated || self.stream_error.is_some() || self.reset
    }
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
            ("stream-error", Some(v)) => d.stream_error = Some(stream_exception(v)?),
            ("first-frame", Some("garbage")) => d.first_frame = Some(FirstFrame::Garbage),
            ("first-frame", Some(v)) => d.first_frame = Some(FirstFrame::Exception(stream_exception(v)?)),
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
            ("bad-crc", None) => d.bad_crc = true,
            ("truncated", None) => d.truncated = true,
            ("times", Some(v)) => {
                let n = v
                    .trim()
                    .parse()
                    .map_err(|_| bad("bedrock-sim: [[sim:times=N]] needs a whole number".into()))?;
                d.times = Some(n);
            }
            ("fault-model", Some(v)) => d.fault_model = Some(v.to_owned()),
            ("fault-region", Some(v)) => d.fault_region = Some(v.to_owned()),
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
        let more = parse("x [[sim:bad-crc]][[sim:truncated]][[sim:times=2]][[sim:fault-model=a.b:0]][[sim:fault-region=eu-west-1]][[sim:first-frame=serviceUnavailableException]]")
            .unwrap();
        assert!(more.bad_crc && more.truncated);
        assert_eq!(more.first_frame, Some(FirstFrame::Exception("serviceUnavailableException")));
        assert_eq!(parse("[[sim:first-frame=garbage]]").unwrap().first_frame, Some(FirstFrame::Garbage));
        assert_eq!(more.times, Some(2));
        assert_eq!(
            (more.fault_model.as_deref(), more.fault_region.as_deref()),
            (Some("a.b:0"), Some("eu-west-1"))
        );
    }

    #[test]
    fn faults_can_target_one_model_and_region() {
        let mut d =
            parse("[[sim:error=ThrottlingException]][[sim:latency=5]][[sim:fault-model=m1]]").unwrap();
        d.target("m1", Some("us-east-1"));
        assert!(d.error.is_some() && !d.latency.is_zero());
        d.target("m2", Some("us-east-1"));
        assert!(d.error.is_none() && d.latency.is_zero());
        let mut d =
            parse("[[sim:reset]][[sim:first-frame=throttlingException]][[sim:fault-region=us-east-1]]")
                .unwrap();
        d.target("m", Some("us-west-2"));
        assert!(!d.cuts_stream() && d.first_frame.is_none());
        let mut d = parse("[[sim:reset]][[sim:fault-region=us-east-1]]").unwrap();
        d.target("m", Some("us-east-1"));
        assert!(d.cuts_stream());
    }

    #[test]
    fn bad_directives_are_validation_errors() {
        for text in [
            "[[sim:error=NoSuchException]]",
            "[[sim:latency=soon]]",
            "[[sim:stream-error=boom]]",
            "[[sim:first-frame=ThrottlingException]]",
            "[[sim:explode]]",
            "[[sim:times=x]]",
            "[[sim:reset",
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.code, "ValidationException", "{text}");
        }
    }
}
