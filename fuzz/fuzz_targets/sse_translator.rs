#![no_main]
//! Arbitrary ConverseStream frames into the chat SSE translator.
//!
//! The input is split at 0xFF bytes; each piece is one frame whose first byte picks its kind
//! (an event type, an exception or an error) and whose rest is the payload. Whatever arrives,
//! the output is a well-formed SSE body: `data: <JSON object>\n\n` events, `data: [DONE]` only
//! last, nothing after an error event, and every chunk names the request's id and model.

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use proxy::bedrock::eventstream::StreamFrame;
use proxy::error::ApiError;
use proxy::translate::chat_converse::{ChatStream, ReplyContext};
use proxy::translate::{ResponseMeta, StreamStep, StreamTranslator};

const EVENTS: &[&str] = &[
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "contentBlockStop",
    "messageStop",
    "metadata",
    "somethingNew",
];

fn frame(piece: &[u8]) -> Option<StreamFrame> {
    let (&kind, payload) = piece.split_first()?;
    let kind = usize::from(kind);
    let text = String::from_utf8_lossy(payload).into_owned();
    Some(match kind % (EVENTS.len() + 2) {
        k if k < EVENTS.len() => {
            StreamFrame::Event { event_type: EVENTS[k].to_owned(), payload: Bytes::copy_from_slice(payload) }
        }
        k if k == EVENTS.len() => {
            StreamFrame::Exception { exception_type: "throttlingException".into(), message: text }
        }
        _ => StreamFrame::Error { code: "InternalFailure".into(), message: text },
    })
}

fuzz_target!(|data: &[u8]| {
    let include_usage = data.first().is_some_and(|b| b & 1 == 1);
    let meta = ResponseMeta { id: "chatcmpl-fuzz".into(), created: 1, model: "fuzz/model".into() };
    let mut translator = ChatStream::new(meta, include_usage, ReplyContext::default());
    let mut out = BytesMut::new();
    let mut over = false;
    for piece in data.split(|&b| b == 0xFF) {
        let Some(frame) = frame(piece) else { continue };
        let before = out.len();
        let step = translator.on_frame(frame, &mut out);
        if over {
            assert_eq!(step, StreamStep::Done);
            assert_eq!(out.len(), before, "bytes written after the end");
        }
        over |= step != StreamStep::Continue;
    }
    // The body ending early always closes the stream with an error event.
    translator.abort(&ApiError::bad_gateway("cut"), &mut out);

    let text = std::str::from_utf8(&out).expect("SSE is UTF-8");
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert!(text.is_empty() || text.ends_with("\n\n"), "unterminated event: {text:?}");
    for (i, event) in events.iter().enumerate() {
        let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data line: {event:?}"));
        assert!(!data.contains('\n'), "event spans lines: {event:?}");
        let last = i + 1 == events.len();
        if data == "[DONE]" {
            assert!(last, "[DONE] before the end");
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(data).expect("event data is JSON");
        if value.get("error").is_some() {
            assert!(last, "an event after the error");
        } else {
            assert_eq!(value["id"], "chatcmpl-fuzz");
            assert_eq!(value["model"], "fuzz/model");
            assert_eq!(value["object"], "chat.completion.chunk");
        }
    }
});
