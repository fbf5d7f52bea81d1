//! The event-stream decoder against the vectors of `reference/eventstream_vectors.py`
//! (copied to `tests/golden/eventstream/vectors.hex`, one frame per line), split anywhere.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use aws_smithy_types::str_bytes::StrBytes;
use bytes::Bytes;
use proxy::bedrock::eventstream::{EventStreamDecoder, StreamFrame};

/// The reference frames, in order: messageStart, contentBlockDelta("Hel"), contentBlockStop(0),
/// contentBlockStart(toolUse), contentBlockDelta(toolUse input), contentBlockStop(1), messageStop,
/// metadata, InvokeModel chunk, throttlingException.
fn vectors() -> Vec<Vec<u8>> {
    let path = format!(
        "{}/tests/golden/eventstream/vectors.hex",
        std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")
    );
    std::fs::read_to_string(path).unwrap().lines().map(|l| hex::decode(l.trim()).unwrap()).collect()
}

fn event(event_type: &str, payload: &str) -> StreamFrame {
    StreamFrame::Event { event_type: event_type.into(), payload: Bytes::copy_from_slice(payload.as_bytes()) }
}

fn expected() -> Vec<StreamFrame> {
    vec![
        event("messageStart", r#"{"role":"assistant","p":"abcd"}"#),
        event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"Hel"}}"#),
        event("contentBlockStop", r#"{"contentBlockIndex":0}"#),
        event(
            "contentBlockStart",
            r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t1","name":"f"}}}"#,
        ),
        event("contentBlockDelta", r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a\":1}"}}}"#),
        event("contentBlockStop", r#"{"contentBlockIndex":1}"#),
        event("messageStop", r#"{"stopReason":"tool_use"}"#),
        event(
            "metadata",
            r#"{"usage":{"inputTokens":5,"outputTokens":3,"totalTokens":8},"metrics":{"latencyMs":12}}"#,
        ),
        event("chunk", r#"{"bytes":"eyJ0eXBlIjoibWVzc2FnZV9zdG9wIn0=","p":"abc"}"#),
        StreamFrame::Exception {
            exception_type: "throttlingException".into(),
            message: "Too many requests".into(),
        },
    ]
}

/// Feeds `pieces` in order, draining frames after each one.
fn decode_all<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Vec<StreamFrame> {
    let mut decoder = EventStreamDecoder::new();
    let mut frames = Vec::new();
    for piece in pieces {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame().expect("valid stream") {
            frames.push(frame);
        }
    }
    frames
}

#[test]
fn the_reference_delta_vector_decodes() {
    // The vector printed in bedrock-api.md section 8.
    let bytes = hex::decode(
        "000000950000005789cbb35e0b3a6576656e742d74797065070011636f6e74656e74426c6f636b44656c74610d3a636f6e\
         74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d7479706507000565766\
         56e747b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a2248656c227d\
         7d6413a776",
    )
    .unwrap();
    assert_eq!(bytes, vectors()[1]);
    assert_eq!(decode_all([bytes.as_slice()]), vec![expected()[1].clone()]);
}

#[test]
fn all_vectors_decode_in_one_piece() {
    let wire = vectors().concat();
    assert_eq!(decode_all([wire.as_slice()]), expected());
}

#[test]
fn all_vectors_decode_one_byte_at_a_time() {
    let wire = vectors().concat();
    assert_eq!(decode_all(wire.chunks(1)), expected());
}

#[test]
fn all_vectors_decode_when_split_at_every_position() {
    let wire = vectors().concat();
    for at in 0..=wire.len() {
        let (a, b) = wire.split_at(at);
        assert_eq!(decode_all([a, b]), expected(), "split at {at}");
    }
}

#[test]
fn a_partial_frame_yields_nothing_until_its_last_byte() {
    let wire = vectors().concat();
    let mut decoder = EventStreamDecoder::new();
    decoder.push(&wire[..wire.len() - 1]);
    let mut count = 0;
    while decoder.next_frame().unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, 9);
    decoder.push(&wire[wire.len() - 1..]);
    assert_eq!(decoder.next_frame().unwrap().as_ref(), expected().last());
    assert_eq!(decoder.next_frame().unwrap(), None);
}

#[test]
fn a_bad_message_crc_is_an_error_and_stays_one() {
    let mut frame = vectors()[1].clone();
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    let mut decoder = EventStreamDecoder::new();
    decoder.push(&frame);
    let err = decoder.next_frame().unwrap_err();
    assert!(err.to_string().starts_with("malformed event stream from Bedrock: message checksum"), "{err}");
    decoder.push(&vectors()[2]);
    assert_eq!(decoder.next_frame().unwrap_err(), err);
}

#[test]
fn a_bad_prelude_crc_is_an_error() {
    let mut frame = vectors()[0].clone();
    frame[8] ^= 0x01;
    let mut decoder = EventStreamDecoder::new();
    decoder.push(&frame);
    let err = decoder.next_frame().unwrap_err();
    assert!(err.to_string().contains("prelude checksum"), "{err}");
}

#[test]
fn an_implausible_length_fails_without_waiting_for_more_bytes() {
    // A JSON error body where an event stream was expected: its first bytes read as ~2 GB.
    let mut decoder = EventStreamDecoder::new();
    decoder.push(br#"{"message":"nope"}"#);
    let err = decoder.next_frame().unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed event stream from Bedrock: frame length 2065853797 is out of range"
    );
    let mut decoder = EventStreamDecoder::new();
    decoder.push(&[0, 0, 0, 4, 0, 0, 0, 0]);
    assert!(decoder.next_frame().is_err());
}

fn encode(headers: &[(&'static str, &str)], payload: &'static [u8]) -> Vec<u8> {
    let message = headers.iter().fold(Message::new(payload), |m, (name, value)| {
        m.add_header(Header::new(*name, HeaderValue::String(StrBytes::from((*value).to_owned()))))
    });
    let mut out = Vec::new();
    write_message_to(&message, &mut out).unwrap();
    out
}

#[test]
fn error_frames_carry_code_and_message_headers() {
    let wire = encode(
        &[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "boom")],
        b"",
    );
    assert_eq!(
        decode_all([wire.as_slice()]),
        vec![StreamFrame::Error { code: "InternalFailure".into(), message: "boom".into() }]
    );
}

#[test]
fn an_exception_without_json_keeps_the_raw_payload() {
    let wire =
        encode(&[(":message-type", "exception"), (":exception-type", "internalServerException")], b"oops");
    assert_eq!(
        decode_all([wire.as_slice()]),
        vec![StreamFrame::Exception {
            exception_type: "internalServerException".into(),
            message: "oops".into()
        }]
    );
}

#[test]
fn frames_without_required_headers_are_errors() {
    for (headers, want) in [
        (&[(":event-type", "messageStart")][..], "frame without `:message-type` header"),
        (&[(":message-type", "event")][..], "frame without `:event-type` header"),
        (&[(":message-type", "exception")][..], "frame without `:exception-type` header"),
        (&[(":message-type", "gossip")][..], "unknown message type `gossip`"),
    ] {
        let mut decoder = EventStreamDecoder::new();
        decoder.push(&encode(headers, b"{}"));
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(err.to_string(), format!("malformed event stream from Bedrock: {want}"));
    }
}

#[test]
fn headers_of_every_type_are_skipped() {
    use aws_smithy_types::DateTime;
    let message = Message::new(&b"{\"bytes\":\"e30=\"}"[..])
        .add_header(Header::new("flag", HeaderValue::Bool(true)))
        .add_header(Header::new("off", HeaderValue::Bool(false)))
        .add_header(Header::new("b", HeaderValue::Byte(-3)))
        .add_header(Header::new("s", HeaderValue::Int16(-300)))
        .add_header(Header::new("i", HeaderValue::Int32(70_000)))
        .add_header(Header::new("l", HeaderValue::Int64(-5_000_000_000)))
        .add_header(Header::new("raw", HeaderValue::ByteArray(Bytes::from_static(b"\x00\xff:event-type"))))
        .add_header(Header::new("at", HeaderValue::Timestamp(DateTime::from_millis(1_700_000_000_000))))
        .add_header(Header::new("id", HeaderValue::Uuid(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)))
        .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
        .add_header(Header::new(":message-type", HeaderValue::String("event".into())))
        .add_header(Header::new(":event-type", HeaderValue::String("chunk".into())))
        // A later header of the same name does not replace the first.
        .add_header(Header::new(":event-type", HeaderValue::String("other".into())));
    let mut wire = Vec::new();
    write_message_to(&message, &mut wire).unwrap();
    assert_eq!(decode_all([wire.as_slice()]), vec![event("chunk", r#"{"bytes":"e30="}"#)]);
}

/// A frame around `headers` (raw header bytes) and `payload` with correct length and checksums,
/// `headers_len` claimed in its prelude.
fn raw_frame(headers: &[u8], headers_len: u32, payload: &[u8]) -> Vec<u8> {
    let total = (16 + headers.len() + payload.len()) as u32;
    let mut frame = Vec::new();
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&headers_len.to_be_bytes());
    frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
    frame.extend_from_slice(headers);
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&crc32fast::hash(&frame).to_be_bytes());
    frame
}

#[test]
fn malformed_headers_are_errors_even_with_good_checksums() {
    for (headers, want) in [
        (&[5, b'a'][..], "invalid header name length"),
        (&[1, b'a'][..], "invalid header name length"),
        (&[1, b'a', 42][..], "invalid header value type: 42"),
        (&[1, b'a', 4, 0, 0][..], "invalid header value"),
        (&[1, b'a', 7, 0][..], "invalid header value"),
        (&[1, b'a', 7, 0, 5, b'x'][..], "invalid header value"),
        (&[1, 0xff, 0][..], "encountered invalid UTF-8 string"),
        (&[1, b'a', 7, 0, 1, 0xff][..], "encountered invalid UTF-8 string"),
    ] {
        let mut decoder = EventStreamDecoder::new();
        decoder.push(&raw_frame(headers, headers.len() as u32, b"{}"));
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(err.to_string(), format!("malformed event stream from Bedrock: {want}"), "{headers:?}");
    }
}

#[test]
fn an_impossible_headers_length_is_an_error() {
    // One byte cannot hold a header; more than the frame holds is a lie.
    for (headers, claimed) in [(&[0u8][..], 1), (&[0u8, 0][..], 9)] {
        let mut decoder = EventStreamDecoder::new();
        decoder.push(&raw_frame(headers, claimed, b"{}"));
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(err.to_string(), "malformed event stream from Bedrock: invalid headers length");
    }
    // A frame without headers at all is well-formed but unclassifiable.
    let mut decoder = EventStreamDecoder::new();
    decoder.push(&raw_frame(&[], 0, b"{}"));
    let err = decoder.next_frame().unwrap_err();
    assert_eq!(err.to_string(), "malformed event stream from Bedrock: frame without `:message-type` header");
}
