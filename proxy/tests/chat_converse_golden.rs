//! Golden tests of the chat completions <-> Converse translator.
//!
//! Each folder under `tests/golden/chat_converse/` is one case:
//! - `openai_request.json`: the caller's body (input);
//! - `model_id.txt` (optional): the Bedrock model id the served model maps to, which picks the
//!   family's capabilities; [`DEFAULT_MODEL_ID`] when absent;
//! - `converse_request.json`: the expected Converse body, or `error.json` (`{"status", "body"}`)
//!   when the request must be refused;
//! - `converse_response.json` (input) and `openai_response.json` (expected), for non-stream cases;
//! - `converse_stream.jsonl` (input, one `{"event": type, "payload": {...}}`,
//!   `{"exception": type, "message": ...}` or `{"error": code, "message": ...}` per line) and
//!   `openai_stream.txt` (expected SSE bytes), for stream cases. The lines are encoded as real
//!   event-stream frames and fed through the decoder in small uneven pieces.
//!
//! `UPDATE_GOLDEN=1 cargo test -p bedrock-gateway-proxy --test chat_converse_golden` rewrites the
//! expected files from the current output; review the diff before committing.

mod golden_support;

use std::fs;
use std::path::Path;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::BytesMut;
use golden_support::{check_bytes, check_json, error_value};
use proxy::bedrock::converse::ConverseResponse;
use proxy::bedrock::eventstream::EventStreamDecoder;
use proxy::openai::chat::parse_chat_request;
use proxy::translate::chat_converse::{ChatStream, ReplyContext, chat_completion, converse_request};
use proxy::translate::{ResponseMeta, StreamStep, StreamTranslator};
use serde_json::{Value, json};

const ID: &str = "chatcmpl-golden";
/// The Bedrock model of cases without `model_id.txt`.
const DEFAULT_MODEL_ID: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";
const CREATED: u64 = 1_700_000_000;

#[test]
fn chat_converse_golden() {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("tests/golden/chat_converse");
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("golden folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 50, "expected the golden cases under {}", root.display());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| run_case(case, update).err().map(|e| format!("{}: {e}", case.display())))
        .collect();
    assert!(failures.is_empty(), "{} golden case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

fn run_case(dir: &Path, update: bool) -> Result<(), String> {
    let body = fs::read(dir.join("openai_request.json")).map_err(|e| format!("openai_request.json: {e}"))?;
    let req = match parse_chat_request(&body) {
        Ok(req) => req,
        Err(err) => return check_json(dir, "error.json", &error_value(&err), update),
    };
    let model_id = fs::read_to_string(dir.join("model_id.txt"))
        .map_or(DEFAULT_MODEL_ID.to_owned(), |s| s.trim().to_owned());
    let translation = match converse_request(&req, &model_id) {
        Ok(translation) => translation,
        Err(err) => return check_json(dir, "error.json", &error_value(&err), update),
    };
    if dir.join("error.json").exists() {
        return Err("error.json is present but the request was accepted".into());
    }
    check_json(dir, "converse_request.json", &translation.body, update)?;
    let ctx = translation.reply;
    let meta = ResponseMeta { id: ID.into(), created: CREATED, model: req.model.clone() };

    let response_path = dir.join("converse_response.json");
    if response_path.exists() {
        let raw = fs::read(&response_path).unwrap();
        let resp: ConverseResponse =
            serde_json::from_slice(&raw).map_err(|e| format!("converse_response.json: {e}"))?;
        let completion = chat_completion(resp, &meta, &ctx);
        check_json(dir, "openai_response.json", &completion, update)?;
    }

    let stream_path = dir.join("converse_stream.jsonl");
    if stream_path.exists() {
        let lines = fs::read_to_string(&stream_path).unwrap();
        let out = run_stream(&lines, meta, req.stream_options.include_usage, ctx)?;
        check_bytes(dir, "openai_stream.txt", &out, update)?;
    }
    Ok(())
}

/// Encodes the jsonl lines as frames, feeds them in 7-byte pieces and translates them.
fn run_stream(
    lines: &str,
    meta: ResponseMeta,
    include_usage: bool,
    ctx: ReplyContext,
) -> Result<Vec<u8>, String> {
    let mut wire = Vec::new();
    let mut count = 0;
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("jsonl line {line}: {e}"))?;
        write_message_to(&frame(&v), &mut wire).unwrap();
        count += 1;
    }
    let mut decoder = EventStreamDecoder::new();
    let mut translator = ChatStream::new(meta, include_usage, ctx);
    let mut out = BytesMut::new();
    let mut seen = 0;
    let mut ended = false;
    for piece in wire.chunks(7) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
            seen += 1;
            if ended {
                return Err(format!("frame {seen} arrived after the stream ended"));
            }
            match translator.on_frame(frame, &mut out) {
                StreamStep::Continue => {}
                StreamStep::Done | StreamStep::Failed(_) => ended = true,
            }
        }
    }
    if seen != count {
        return Err(format!("decoded {seen} of {count} frames"));
    }
    if !ended {
        return Err("the stream never ended (no Done or Failed)".into());
    }
    Ok(out.to_vec())
}

fn frame(line: &Value) -> Message {
    let header = |name: &'static str, value: &str| {
        Header::new(name, HeaderValue::String(StrBytes::from(value.to_owned())))
    };
    let text =
        |key: &str| line[key].as_str().unwrap_or_else(|| panic!("`{key}` string in {line}")).to_owned();
    if line.get("event").is_some() {
        Message::new(serde_json::to_vec(&line["payload"]).unwrap())
            .add_header(header(":event-type", &text("event")))
            .add_header(header(":content-type", "application/json"))
            .add_header(header(":message-type", "event"))
    } else if line.get("exception").is_some() {
        Message::new(serde_json::to_vec(&json!({"message": line["message"]})).unwrap())
            .add_header(header(":exception-type", &text("exception")))
            .add_header(header(":content-type", "application/json"))
            .add_header(header(":message-type", "exception"))
    } else {
        Message::new(Vec::new())
            .add_header(header(":error-code", &text("error")))
            .add_header(header(":error-message", &text("message")))
            .add_header(header(":message-type", "error"))
    }
}
