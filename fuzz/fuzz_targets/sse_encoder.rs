#![no_main]
//! The SSE encoder of chat streams: arbitrary response ids, model names and text deltas (quotes,
//! newlines, `data:` lines, `[DONE]`, any Unicode) through a well-formed ConverseStream.
//!
//! The input is split at 0xFF bytes: the response id, the model name, then one text delta per
//! piece (lossy UTF-8). The output must be `data: <one line>\n\n` events ending with exactly one
//! `data: [DONE]`, every chunk naming the id and model as given, and the deltas, joined, must
//! be the text that went in.

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use proxy::bedrock::eventstream::StreamFrame;
use proxy::translate::chat_converse::{ChatStream, ReplyContext};
use proxy::translate::{ResponseMeta, StreamStep, StreamTranslator};
use serde_json::{Value, json};

fn event(event_type: &str, payload: Value) -> StreamFrame {
    StreamFrame::Event { event_type: event_type.to_owned(), payload: Bytes::from(payload.to_string()) }
}

fuzz_target!(|data: &[u8]| {
    let mut pieces = data.split(|&b| b == 0xFF).map(|p| String::from_utf8_lossy(p).into_owned());
    let (Some(id), Some(model)) = (pieces.next(), pieces.next()) else { return };
    let texts: Vec<String> = pieces.collect();
    let include_usage = texts.len() % 2 == 1;
    let meta = ResponseMeta { id: id.clone(), created: 1, model: model.clone() };
    let mut translator = ChatStream::new(meta, include_usage, ReplyContext::default());
    let mut out = BytesMut::new();

    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    frames.extend(
        texts
            .iter()
            .map(|t| event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": t}}))),
    );
    frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
    frames.push(event("messageStop", json!({"stopReason": "end_turn"})));
    frames.push(event(
        "metadata",
        json!({"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3}, "metrics": {"latencyMs": 1}}),
    ));
    let last = frames.len() - 1;
    for (i, frame) in frames.into_iter().enumerate() {
        let step = translator.on_frame(frame, &mut out);
        let want = if i == last { StreamStep::Done } else { StreamStep::Continue };
        assert_eq!(step, want, "frame {i}");
    }

    let text = std::str::from_utf8(&out).expect("SSE is UTF-8");
    assert!(text.ends_with("data: [DONE]\n\n"), "no [DONE] at the end: {text:?}");
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    let mut content = String::new();
    for (i, event) in events.iter().enumerate() {
        let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data line: {event:?}"));
        assert!(!data.contains('\n') && !data.contains('\r'), "event spans lines: {event:?}");
        if data == "[DONE]" {
            assert_eq!(i + 1, events.len(), "[DONE] before the end");
            continue;
        }
        let chunk: Value = serde_json::from_str(data).expect("event data is JSON");
        assert_eq!(chunk["id"], id.as_str());
        assert_eq!(chunk["model"], model.as_str());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
            content.push_str(delta);
        }
    }
    assert_eq!(content, texts.concat(), "the deltas are not the text that went in");
});
