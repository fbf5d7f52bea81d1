//! Edges of the chat <-> Converse translator the golden cases do not cover: refused
//! conversations, stream aborts, undecodable events, frames after the end.

use bytes::{Bytes, BytesMut};
use proxy::bedrock::eventstream::StreamFrame;
use proxy::error::ApiError;
use proxy::openai::chat::{PromptTokensDetails, Usage, parse_chat_request};
use proxy::translate::chat_converse::{ChatStream, ReplyContext, converse_request};
use proxy::translate::{ResponseMeta, StreamStep, StreamTranslator};

const MODEL_ID: &str = "amazon.nova-lite-v1:0";

fn meta() -> ResponseMeta {
    ResponseMeta { id: "chatcmpl-1".into(), created: 1, model: "a/m".into() }
}

fn event(event_type: &str, payload: &str) -> StreamFrame {
    StreamFrame::Event { event_type: event_type.into(), payload: Bytes::copy_from_slice(payload.as_bytes()) }
}

fn text(out: &BytesMut) -> &str {
    std::str::from_utf8(out).unwrap()
}

const ROLE_CHUNK: &str = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\
     \"created\":1,\"model\":\"a/m\",\
     \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\
     \"finish_reason\":null}]}\n\n";

#[test]
fn a_conversation_without_text_is_refused() {
    let req = parse_chat_request(
        br#"{"model": "m", "messages": [
            {"role": "system", "content": "s"}, {"role": "user", "content": " \n"}]}"#,
    )
    .unwrap();
    let err = converse_request(&req, MODEL_ID).unwrap_err();
    assert_eq!(
        (err.status.as_u16(), err.message.as_str(), err.param.as_deref()),
        (400, "`messages` must contain at least one user message with non-blank text.", Some("messages"))
    );
}

#[test]
fn a_blank_assistant_turn_before_the_first_user_turn_is_dropped_not_refused() {
    let req = parse_chat_request(
        br#"{"model": "m", "messages": [
            {"role": "assistant", "content": ""}, {"role": "user", "content": "hi"}]}"#,
    )
    .unwrap();
    let body = serde_json::to_string(&converse_request(&req, MODEL_ID).unwrap().body).unwrap();
    assert_eq!(body, r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#);
}

#[test]
fn abort_writes_one_error_event_and_ends_the_stream() {
    let mut stream = ChatStream::new(meta(), false, ReplyContext::default());
    let mut out = BytesMut::new();
    assert_eq!(
        stream.on_frame(event("messageStart", r#"{"role":"assistant"}"#), &mut out),
        StreamStep::Continue
    );
    let err = ApiError::bad_gateway("Bedrock closed the stream early.");
    stream.abort(&err, &mut out);
    stream.abort(&err, &mut out);
    let expected = format!(
        "{ROLE_CHUNK}data: {{\"error\":{{\"message\":\"Bedrock closed the stream early.\",\
         \"type\":\"server_error\",\
         \"param\":null,\"code\":\"upstream_error\"}}}}\n\n"
    );
    assert_eq!(text(&out), expected);
    assert_eq!(
        stream.on_frame(
            event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"x"}}"#),
            &mut out
        ),
        StreamStep::Done
    );
    assert_eq!(text(&out), expected);
    assert_eq!(stream.usage(), None);
}

#[test]
fn an_undecodable_event_fails_the_stream() {
    let mut stream = ChatStream::new(meta(), true, ReplyContext::default());
    let mut out = BytesMut::new();
    let step = stream.on_frame(event("contentBlockDelta", r#"{"contentBlockIndex":"zero"}"#), &mut out);
    let StreamStep::Failed(err) = step else { panic!("expected Failed, got {step:?}") };
    assert_eq!(err.status.as_u16(), 502);
    assert!(
        err.message.starts_with("Bedrock sent a `contentBlockDelta` event the gateway could not read: "),
        "{}",
        err.message
    );
    assert_eq!(text(&out), format!("data: {}\n\n", String::from_utf8(err.to_json()).unwrap()));
}

#[test]
fn unknown_events_are_skipped_and_metadata_alone_still_ends_cleanly() {
    let mut stream = ChatStream::new(meta(), false, ReplyContext::default());
    let mut out = BytesMut::new();
    assert_eq!(stream.on_frame(event("futureEvent", "not even json"), &mut out), StreamStep::Continue);
    assert!(out.is_empty());
    let step = stream.on_frame(
        event(
            "metadata",
            r#"{"usage":{"inputTokens":2,"outputTokens":1,"totalTokens":3,"cacheReadInputTokens":4},
                "metrics":{"latencyMs":1}}"#,
        ),
        &mut out,
    );
    assert_eq!(step, StreamStep::Done);
    let finish = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\
                  \"model\":\"a/m\",\
                  \"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n";
    assert_eq!(text(&out), format!("{ROLE_CHUNK}{finish}data: [DONE]\n\n"));
    assert_eq!(
        stream.usage(),
        Some(Usage {
            prompt_tokens: 6,
            completion_tokens: 1,
            total_tokens: 7,
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 4, cache_write_tokens: 0 }),
        })
    );
    assert_eq!(stream.on_frame(event("metadata", "{}"), &mut out), StreamStep::Done);
    assert_eq!(text(&out), format!("{ROLE_CHUNK}{finish}data: [DONE]\n\n"));
}
