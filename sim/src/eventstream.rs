//! `application/vnd.amazon.eventstream` frames as Bedrock sends them (bedrock-api.md §8); public so
//! the fuzz targets can round-trip them through the proxy's decoder.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;

/// Content type of an event-stream response body.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

fn string_header(name: &'static str, value: &str) -> Header {
    Header::new(name, HeaderValue::String(value.to_owned().into()))
}

fn encode(headers: Vec<Header>, payload: Vec<u8>) -> std::io::Result<Bytes> {
    let message = Message::new_from_parts(headers, payload);
    let mut out = Vec::with_capacity(message.payload().len() + 128);
    write_message_to(&message, &mut out).map_err(std::io::Error::other)?;
    Ok(out.into())
}

/// An event frame (`:message-type: event`) with a JSON payload.
pub fn event_frame(event_type: &str, payload: Vec<u8>) -> std::io::Result<Bytes> {
    encode(
        vec![
            string_header(":event-type", event_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "event"),
        ],
        payload,
    )
}

/// An exception frame (`:message-type: exception`) with a JSON payload.
pub fn exception_frame(exception_type: &str, payload: Vec<u8>) -> std::io::Result<Bytes> {
    encode(
        vec![
            string_header(":exception-type", exception_type),
            string_header(":content-type", "application/json"),
            string_header(":message-type", "exception"),
        ],
        payload,
    )
}

/// Bytes that look like a frame but whose prelude CRC is wrong, so any decoder must reject them.
pub(crate) fn garbage_frame() -> std::io::Result<Bytes> {
    let mut frame =
        event_frame("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"x"}}"#.to_vec())?
            .to_vec();
    frame[8..12].iter_mut().for_each(|b| *b = !*b);
    Ok(frame.into())
}

/// A well-formed frame whose message CRC (the last four bytes) is wrong.
pub(crate) fn bad_crc_frame() -> std::io::Result<Bytes> {
    let mut frame =
        event_frame("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"x"}}"#.to_vec())?
            .to_vec();
    let end = frame.len();
    frame[end - 4..].iter_mut().for_each(|b| *b = !*b);
    Ok(frame.into())
}

/// The first half of a valid frame: what a body cut off mid-frame leaves.
pub(crate) fn truncated_frame() -> std::io::Result<Bytes> {
    let frame =
        event_frame("contentBlockDelta", br#"{"contentBlockIndex":0,"delta":{"text":"x"}}"#.to_vec())?;
    Ok(frame.slice(..frame.len() / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::read_message_from;

    /// The contentBlockDelta vector of bedrock-api.md §8.
    const DELTA_VECTOR: &str = "00000095 00000057 89cbb35e 0b3a6576656e742d74797065 07 0011 636f6e74656e74426c6f636b44656c7461 \
        0d3a636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e \
        0d3a6d6573736167652d74797065 07 0005 6576656e74 \
        7b22636f6e74656e74426c6f636b496e646578223a302c2264656c7461223a7b2274657874223a2248656c227d7d 6413a776";
    /// THROTTLE from eventstream_vectors.py (payload written by json.dumps with default separators).
    const THROTTLE_VECTOR: &str = "0000009100000061b3f18007 0f3a657863657074696f6e2d74797065 07 0013 \
        7468726f74746c696e67457863657074696f6e 0d3a636f6e74656e742d74797065 07 0010 \
        6170706c69636174696f6e2f6a736f6e 0d3a6d6573736167652d74797065 07 0009 657863657074696f6e \
        7b226d657373616765223a2022546f6f206d616e79207265717565737473227d 898cacc1";

    fn unhex(v: &str) -> String {
        v.split_whitespace().collect()
    }

    #[test]
    fn reproduces_reference_vector() {
        let payload = crate::stream::delta_payload("Hel", None);
        let frame = event_frame("contentBlockDelta", payload).unwrap();
        assert_eq!(hex::encode(&frame), unhex(DELTA_VECTOR));
    }

    #[test]
    fn reproduces_exception_vector() {
        let frame =
            exception_frame("throttlingException", br#"{"message": "Too many requests"}"#.to_vec()).unwrap();
        assert_eq!(hex::encode(&frame), unhex(THROTTLE_VECTOR));
    }

    #[test]
    fn garbage_fails_prelude_crc() {
        let err = read_message_from(&mut garbage_frame().unwrap()).unwrap_err();
        assert!(err.to_string().contains("prelude checksum"), "{err}");
    }
}
