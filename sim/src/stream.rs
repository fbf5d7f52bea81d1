//! ConverseStream response bodies: the event sequence, padding, and mid-stream faults.
//!
//! Frames are encoded and handed to hyper one at a time as the stream is polled, so gaps,
//! resets and garbage are observable by the client exactly where they happen.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::Frame;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cancel::Completion;
use crate::converse::{Metrics, Usage};
use crate::eventstream::{bad_crc_frame, event_frame, exception_frame, garbage_frame, truncated_frame};
use crate::faults::{Directives, FirstFrame};
use crate::reply::Reply;

/// Pause before an injected reset so earlier frames leave the socket.
const RESET_SETTLE: Duration = Duration::from_millis(20);

/// One thing the body still has to send.
enum Step {
    /// An event frame: `:event-type` and JSON payload.
    Event(&'static str, Vec<u8>),
    /// An exception frame: `:exception-type` and JSON payload.
    Exception(&'static str, Vec<u8>),
    /// Bytes with a bad prelude CRC.
    Garbage,
    /// A frame with a bad message CRC.
    BadCrc,
    /// Half a frame; the body ends after it.
    Truncated,
    /// Abort the connection without finishing the body.
    Reset,
}

/// Random 1..=32 letters, like the `p` side-channel padding real Bedrock adds to every event.
fn padding() -> String {
    (0..fastrand::usize(1..=32)).map(|_| fastrand::alphabetic()).collect()
}

#[derive(Serialize)]
struct MessageStart<'a> {
    role: &'a str,
    p: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockDelta<'a> {
    content_block_index: u32,
    delta: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockStart {
    content_block_index: u32,
    start: Value,
    p: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockStop {
    content_block_index: u32,
    p: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop<'a> {
    stop_reason: &'a str,
    p: String,
}

#[derive(Serialize)]
struct Metadata {
    usage: Usage,
    metrics: Metrics,
    p: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StreamException<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_message: Option<&'a str>,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Payload of a text contentBlockDelta for block 0, with optional padding.
#[cfg(test)]
pub(crate) fn delta_payload(text: &str, padding: Option<&str>) -> Vec<u8> {
    to_json(&ContentBlockDelta { content_block_index: 0, delta: json!({"text": text}), p: padding })
}

fn delta(index: u32, delta: Value) -> Step {
    Step::Event(
        "contentBlockDelta",
        to_json(&ContentBlockDelta { content_block_index: index, delta, p: Some(&padding()) }),
    )
}

fn block_stop(index: u32) -> Step {
    Step::Event("contentBlockStop", to_json(&ContentBlockStop { content_block_index: index, p: padding() }))
}

/// Pieces of `text`: each word with the whitespace that follows it.
fn words(text: &str) -> Vec<&str> {
    let mut cuts: Vec<usize> = text
        .char_indices()
        .filter(|&(i, c)| !c.is_whitespace() && (i == 0 || text[..i].ends_with(char::is_whitespace)))
        .map(|(i, _)| i)
        .collect();
    if cuts.first() != Some(&0) {
        cuts.insert(0, 0);
    }
    cuts.push(text.len());
    cuts.windows(2).map(|w| &text[w[0]..w[1]]).filter(|p| !p.is_empty()).collect()
}

/// The content block events of `reply`, blocks numbered in order as Bedrock does: thinking
/// (text deltas, then the signature), redacted thinking, text (no start event), tool calls
/// (a start event, then the JSON input in pieces).
fn content_events(reply: &Reply) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut index = 0;
    if let Some(text) = &reply.reasoning {
        steps.extend(words(text).into_iter().map(|w| delta(index, json!({"reasoningContent": {"text": w}}))));
        let signature = crate::request::thinking_signature(text);
        steps.push(delta(index, json!({"reasoningContent": {"signature": signature}})));
        steps.push(block_stop(index));
        index += 1;
    }
    if let Some(data) = &reply.redacted {
        steps.push(delta(index, json!({"reasoningContent": {"redactedContent": data}})));
        steps.push(block_stop(index));
        index += 1;
    }
    if !reply.text.is_empty() || (index == 0 && reply.tool_calls.is_empty()) {
        steps.extend(reply.deltas().into_iter().map(|text| delta(index, json!({"text": text}))));
        steps.push(block_stop(index));
        index += 1;
    }
    for call in &reply.tool_calls {
        let start = json!({"toolUse": {"toolUseId": call.id, "name": call.name}});
        steps.push(Step::Event(
            "contentBlockStart",
            to_json(&ContentBlockStart { content_block_index: index, start, p: padding() }),
        ));
        let input = call.input.to_string();
        // Split inside the JSON text, as Bedrock's fragments are.
        let mid = input.char_indices().nth(input.chars().count() / 2).map_or(input.len(), |(i, _)| i);
        for piece in [&input[..mid], &input[mid..]] {
            if !piece.is_empty() {
                steps.push(delta(index, json!({"toolUse": {"input": piece}})));
            }
        }
        steps.push(block_stop(index));
        index += 1;
    }
    steps
}

fn exception_payload(name: &str) -> Vec<u8> {
    let message = match name {
        "throttlingException" => "Too many requests, please wait before trying again.",
        "validationException" => "The model returned a validation error while streaming the response.",
        "serviceUnavailableException" => "Bedrock is unable to process your request.",
        "modelStreamErrorException" => "The model encountered an error while streaming the response.",
        _ => "The system encountered an unexpected error during processing. Try your request again.",
    };
    let model_error = name == "modelStreamErrorException";
    to_json(&StreamException {
        message,
        original_status_code: model_error.then_some(500),
        original_message: model_error.then_some("Internal server error"),
    })
}

/// The steps of a ConverseStream body for `reply`, with the mid-stream faults of `directives`.
fn plan(reply: &Reply, directives: &Directives) -> VecDeque<Step> {
    let mut steps = VecDeque::new();
    match directives.first_frame {
        // Refused before the model started: the exception is all the 200 stream carries.
        Some(FirstFrame::Exception(name)) => {
            steps.push_back(Step::Exception(name, exception_payload(name)));
            return steps;
        }
        Some(FirstFrame::Garbage) => {
            steps.push_back(Step::Garbage);
            return steps;
        }
        None => {}
    }
    steps.push_back(Step::Event("messageStart", to_json(&MessageStart { role: "assistant", p: padding() })));
    let mut content = content_events(reply).into_iter();
    if directives.cuts_stream() {
        // Faults strike right after the first delta.
        for step in content.by_ref() {
            let is_delta = matches!(step, Step::Event("contentBlockDelta", _));
            steps.push_back(step);
            if is_delta {
                break;
            }
        }
        if directives.garbage {
            steps.push_back(Step::Garbage);
        }
        if directives.bad_crc {
            steps.push_back(Step::BadCrc);
        }
        if directives.truncated {
            // Nothing can follow half a frame.
            steps.push_back(Step::Truncated);
            return steps;
        }
        if let Some(name) = directives.stream_error {
            steps.push_back(Step::Exception(name, exception_payload(name)));
        }
        if directives.reset {
            steps.push_back(Step::Reset);
        }
        return steps;
    }
    steps.extend(content);
    steps.push_back(Step::Event(
        "messageStop",
        to_json(&MessageStop { stop_reason: reply.stop_reason, p: padding() }),
    ));
    // Simulated latency: time to first byte plus every gap the client waited through.
    let gaps = steps.len() as u64;
    let latency_ms = directives.latency.as_millis() as u64 + directives.gap.as_millis() as u64 * gaps;
    let metadata = Metadata { usage: Usage::of(reply), metrics: Metrics { latency_ms }, p: padding() };
    steps.push_back(Step::Event("metadata", to_json(&metadata)));
    steps
}

fn encode(step: Step) -> io::Result<Bytes> {
    match step {
        Step::Event(event_type, payload) => event_frame(event_type, payload),
        Step::Exception(name, payload) => exception_frame(name, payload),
        Step::Garbage => garbage_frame(),
        Step::BadCrc => bad_crc_frame(),
        Step::Truncated => truncated_frame(),
        Step::Reset => {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "bedrock-sim: injected connection reset"))
        }
    }
}

/// The body stream; an `Err` item makes hyper abort the connection (HTTP/1.1) or reset the stream (h2).
/// `completion` counts the call as cancelled if the body is dropped before its last step.
pub(crate) fn body(
    reply: &Reply,
    directives: &Directives,
    completion: Completion,
) -> impl Stream<Item = io::Result<Frame<Bytes>>> + Send + use<> {
    let state = (plan(reply, directives), directives.gap, true, completion);
    futures_util::stream::unfold(
        state,
        |(mut steps, gap, first, mut completion): (VecDeque<Step>, Duration, bool, Completion)| async move {
            let Some(step) = steps.pop_front() else {
                completion.finish();
                return None;
            };
            if !first && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if matches!(step, Step::Reset) {
                // hyper drops buffered bytes when the body fails; pause so the frames before the
                // reset are flushed to the client first.
                tokio::time::sleep(RESET_SETTLE).await;
            }
            let item = encode(step).map(Frame::data);
            // After an error nothing more is sent (hyper stops polling: the injected end is complete).
            if item.is_err() {
                steps.clear();
                completion.finish();
            }
            Some((item, (steps, gap, false, completion)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Reply {
        Reply {
            text: "a b c".into(),
            stop_reason: "end_turn",
            input_tokens: 2,
            output_tokens: 3,
            ..Reply::default()
        }
    }

    fn names(steps: &VecDeque<Step>) -> Vec<&'static str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Event(n, _) | Step::Exception(n, _) => *n,
                Step::Garbage => "garbage",
                Step::BadCrc => "bad-crc",
                Step::Truncated => "truncated",
                Step::Reset => "reset",
            })
            .collect()
    }

    #[test]
    fn normal_sequence() {
        let steps = plan(&reply(), &Directives::default());
        assert_eq!(
            names(&steps),
            [
                "messageStart",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockDelta",
                "contentBlockStop",
                "messageStop",
                "metadata"
            ]
        );
    }

    #[test]
    fn thinking_text_and_tool_blocks_are_numbered_in_order() {
        let reply = Reply {
            reasoning: Some("hmm ok".into()),
            text: "x".into(),
            tool_calls: vec![crate::reply::ToolCall {
                id: "t1".into(),
                name: "f".into(),
                input: json!({"a": 1}),
            }],
            stop_reason: "tool_use",
            ..Reply::default()
        };
        let steps = plan(&reply, &Directives::default());
        let events: Vec<(&str, Value)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Event(n, p) => {
                    let mut v: Value = serde_json::from_slice(p).unwrap();
                    v.as_object_mut().unwrap().remove("p");
                    Some((*n, v))
                }
                _ => None,
            })
            .collect();
        let sig = crate::request::thinking_signature("hmm ok");
        assert_eq!(
            events[1],
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm "}}})
            )
        );
        assert_eq!(
            events[3],
            (
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": sig}}})
            )
        );
        assert_eq!(events[4], ("contentBlockStop", json!({"contentBlockIndex": 0})));
        assert_eq!(events[5], ("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"text": "x"}})));
        assert_eq!(
            events[7],
            (
                "contentBlockStart",
                json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}})
            )
        );
        let input: String =
            events[8..10].iter().map(|(_, v)| v["delta"]["toolUse"]["input"].as_str().unwrap()).collect();
        assert_eq!(input, r#"{"a":1}"#);
        assert_eq!(events[11].1["stopReason"], "tool_use");
    }

    #[test]
    fn faults_cut_after_first_delta() {
        let d = Directives {
            garbage: true,
            reset: true,
            stream_error: Some("modelStreamErrorException"),
            ..Directives::default()
        };
        let steps = plan(&reply(), &d);
        assert_eq!(
            names(&steps),
            ["messageStart", "contentBlockDelta", "garbage", "modelStreamErrorException", "reset"]
        );
    }

    #[test]
    fn a_first_frame_exception_is_the_whole_stream() {
        let d = Directives {
            first_frame: Some(FirstFrame::Exception("throttlingException")),
            stream_error: Some("modelStreamErrorException"),
            ..Directives::default()
        };
        assert_eq!(names(&plan(&reply(), &d)), ["throttlingException"]);
        let d = Directives { first_frame: Some(FirstFrame::Garbage), ..Directives::default() };
        assert_eq!(names(&plan(&reply(), &d)), ["garbage"]);
    }

    #[test]
    fn truncation_ends_the_body() {
        let d = Directives {
            bad_crc: true,
            truncated: true,
            stream_error: Some("throttlingException"),
            ..Directives::default()
        };
        assert_eq!(names(&plan(&reply(), &d)), ["messageStart", "contentBlockDelta", "bad-crc", "truncated"]);
    }

    #[test]
    fn model_stream_error_has_original_fields() {
        let v: serde_json::Value =
            serde_json::from_slice(&exception_payload("modelStreamErrorException")).unwrap();
        assert_eq!(v["originalStatusCode"], 500);
        assert!(v["originalMessage"].is_string());
        let v: serde_json::Value = serde_json::from_slice(&exception_payload("throttlingException")).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
    }

    #[test]
    fn padding_is_1_to_32_letters() {
        for _ in 0..200 {
            let p = padding();
            assert!((1..=32).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()), "{p}");
        }
    }
}
