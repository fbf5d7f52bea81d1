//! ConverseStream: frames decoded with aws-smithy-eventstream give the exact event sequence.

use serde_json::{Value, json};

use crate::common::*;

/// Removes and checks the `p` padding, returning the rest of the payload.
fn without_padding(mut v: Value) -> Value {
    let p = v.as_object_mut().unwrap().remove("p").expect("every event carries the p padding field");
    let p = p.as_str().unwrap();
    assert!((1..=32).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphabetic()), "padding {p:?}");
    v
}

async fn events(client: &HttpClient, text: &str) -> Vec<(String, Value)> {
    let sim = start().await;
    let resp = send(client, post(&sim.url(), &stream_path(), user_body(text), test_sigv4())).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), "application/vnd.amazon.eventstream");
    assert_eq!(resp.header("x-amzn-requestid").len(), 36);
    decode_frames(&resp.body)
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(frame_header(m, ":message-type").as_deref(), Some("event"));
            assert_eq!(frame_header(m, ":content-type").as_deref(), Some("application/json"));
            (frame_header(m, ":event-type").unwrap(), without_padding(payload(m)))
        })
        .collect()
}

fn expected_events() -> Vec<(String, Value)> {
    let delta =
        |t: &str| ("contentBlockDelta".to_owned(), json!({"contentBlockIndex": 0, "delta": {"text": t}}));
    vec![
        ("messageStart".to_owned(), json!({"role": "assistant"})),
        delta("Simulated "),
        delta("reply "),
        delta("to: "),
        delta("Hello "),
        delta("world"),
        ("contentBlockStop".to_owned(), json!({"contentBlockIndex": 0})),
        ("messageStop".to_owned(), json!({"stopReason": "end_turn"})),
        (
            "metadata".to_owned(),
            json!({"usage": {"inputTokens": 2, "outputTokens": 5, "totalTokens": 7}, "metrics": {"latencyMs": 0}}),
        ),
    ]
}

#[tokio::test]
async fn exact_event_sequence_over_http1() {
    assert_eq!(events(&http1(), "Hello  world").await, expected_events());
}

#[tokio::test]
async fn exact_event_sequence_over_h2c() {
    assert_eq!(events(&h2c(), "Hello world").await, expected_events());
}

#[tokio::test]
async fn stream_text_matches_converse_text() {
    let text = "[[sim:reply=  spaced   out  words ]] [[sim:gap=1]]";
    let streamed: String = events(&http1(), text)
        .await
        .iter()
        .filter(|(name, _)| name == "contentBlockDelta")
        .map(|(_, v)| v["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    let sim = start().await;
    let resp = send(&http1(), post(&sim.url(), &converse_path(), user_body(text), test_bearer())).await;
    assert_eq!(resp.json()["output"]["message"]["content"][0]["text"], streamed);
    assert_eq!(streamed, "  spaced   out  words ");
}

#[tokio::test]
async fn max_tokens_in_stream() {
    let sim = start().await;
    let body = json!({
        "messages": [{"role": "user", "content": [{"text": "[[sim:reply=a b c d]]"}]}],
        "inferenceConfig": {"maxTokens": 2}
    });
    let resp =
        send(&http1(), post(&sim.url(), &stream_path(), body.to_string().into_bytes(), test_bearer())).await;
    let frames = decode_frames(&resp.body).unwrap();
    let names: Vec<String> = frames.iter().map(|m| frame_header(m, ":event-type").unwrap()).collect();
    assert_eq!(
        names,
        [
            "messageStart",
            "contentBlockDelta",
            "contentBlockDelta",
            "contentBlockStop",
            "messageStop",
            "metadata"
        ]
    );
    assert_eq!(payload(&frames[4])["stopReason"], "max_tokens");
    assert_eq!(payload(&frames[5])["usage"]["outputTokens"], 2);
}
