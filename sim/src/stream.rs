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

use crate::converse::{Metrics, Usage};
use crate::eventstream::{event_frame, exception_frame, garbage_frame};
use crate::faults::Directives;
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
struct TextDelta<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockDelta<'a> {
    content_block_index: u32,
    delta: TextDelta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p: Option<&'a str>,
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
pub(crate) fn delta_payload(text: &str, padding: Option<&str>) -> Vec<u8> {
    to_json(&ContentBlockDelta { content_block_index: 0, delta: TextDelta { text }, p: padding })
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
    steps.push_back(Step::Event("messageStart", to_json(&MessageStart { role: "assistant", p: padding() })));
    let deltas = reply.deltas();
    let mut deltas =
        deltas.iter().map(|text| Step::Event("contentBlockDelta", delta_payload(text, Some(&padding()))));
    steps.extend(deltas.next());
    let faulted = directives.garbage || directives.stream_error.is_some() || directives.reset;
    if faulted {
        if directives.garbage {
            steps.push_back(Step::Garbage);
        }
        if let Some(name) = directives.stream_error {
            steps.push_back(Step::Exception(name, exception_payload(name)));
        }
        if directives.reset {
            steps.push_back(Step::Reset);
        }
        return steps;
    }
    steps.extend(deltas);
    steps.push_back(Step::Event(
        "contentBlockStop",
        to_json(&ContentBlockStop { content_block_index: 0, p: padding() }),
    ));
    steps.push_back(Step::Event(
        "messageStop",
        to_json(&MessageStop { stop_reason: reply.stop_reason, p: padding() }),
    ));
    // Simulated latency: time to first byte plus every gap the client waited through.
    let gaps = steps.len() as u64;
    let latency_ms = directives.latency.as_millis() as u64 + directives.gap.as_millis() as u64 * gaps;
    let metadata = Metadata {
        usage: Usage::new(reply.input_tokens, reply.output_tokens),
        metrics: Metrics { latency_ms },
        p: padding(),
    };
    steps.push_back(Step::Event("metadata", to_json(&metadata)));
    steps
}

fn encode(step: Step) -> io::Result<Bytes> {
    match step {
        Step::Event(event_type, payload) => event_frame(event_type, payload),
        Step::Exception(name, payload) => exception_frame(name, payload),
        Step::Garbage => garbage_frame(),
        Step::Reset => {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "bedrock-sim: injected connection reset"))
        }
    }
}

/// The body stream; an `Err` item makes hyper abort the connection (HTTP/1.1) or reset the stream (h2).
pub(crate) fn body(
    reply: &Reply,
    directives: &Directives,
) -> impl Stream<Item = io::Result<Frame<Bytes>>> + Send + use<> {
    let state = (plan(reply, directives), directives.gap, true);
    futures_util::stream::unfold(
        state,
        |(mut steps, gap, first): (VecDeque<Step>, Duration, bool)| async move {
            let step = steps.pop_front()?;
            if !first && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if matches!(step, Step::Reset) {
                // hyper drops buffered bytes when the body fails; pause so the frames before the
                // reset are flushed to the client first.
                tokio::time::sleep(RESET_SETTLE).await;
            }
            let item = encode(step).map(Frame::data);
            // After an error nothing more is sent.
            if item.is_err() {
                steps.clear();
            }
            Some((item, (steps, gap, false)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> Reply {
        Reply { text: "a b c".into(), stop_reason: "end_turn", input_tokens: 2, output_tokens: 3 }
    }

    fn names(steps: &VecDeque<Step>) -> Vec<&'static str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Event(n, _) | Step::Exception(n, _) => *n,
                Step::Garbage => "garbage",
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
