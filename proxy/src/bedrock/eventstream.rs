//! Incremental decoder for `application/vnd.amazon.eventstream` bodies (ConverseStream and
//! InvokeModelWithResponseStream).
//!
//! Feed the body in whatever chunks the connection delivers ([`EventStreamDecoder::push`]) and
//! drain whole frames ([`EventStreamDecoder::next_frame`]). A frame is buffered only once its
//! declared length is plausible; then both checksums are verified over the frame in one pass each
//! (crc32fast), the headers are read in place and the payload is a slice of the received bytes,
//! not a copy. Frames are classified by `:message-type`. Any framing error is final: the decoder
//! keeps returning it, because nothing after a corrupt frame can be trusted.
//!
//! Wire format (the AWS event-stream encoding, as aws-smithy-eventstream writes it): a prelude
//! of total length, headers length (both big-endian u32) and the prelude's CRC-32; the headers
//! (name length u8, name, value type u8, value); the payload; the CRC-32 of everything before it.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

/// Largest frame accepted: botocore's limits (24 MiB payload, 128 KiB headers) plus framing.
const MAX_FRAME_LEN: usize = 24 * 1024 * 1024 + 128 * 1024 + 16;
/// Prelude (12 bytes) plus message CRC (4 bytes): the smallest possible frame.
const MIN_FRAME_LEN: usize = 16;
/// Total length, headers length and the prelude CRC.
const PRELUDE_LEN: usize = 12;
/// The message CRC at the end of a frame.
const CRC_LEN: usize = 4;
/// Header value type of a byte array (with a u16 length).
const TYPE_BYTES: u8 = 6;
/// Header value type of a string (UTF-8 with a u16 length).
const TYPE_STRING: u8 = 7;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFrame {
    /// `:message-type: event`: a member of the stream union.
    Event {
        /// `:event-type` (e.g. `contentBlockDelta`).
        event_type: String,
        /// The JSON payload.
        payload: Bytes,
    },
    /// `:message-type: exception`: a modeled error inside a 200 stream.
    Exception {
        /// `:exception-type` (e.g. `throttlingException`).
        exception_type: String,
        /// The payload's `message`, or the raw payload when it has none.
        message: String,
    },
    /// `:message-type: error`: an unmodeled error.
    Error {
        /// `:error-code`.
        code: String,
        /// `:error-message`.
        message: String,
    },
}

/// The body is not a valid event stream (bad checksum, impossible length, missing headers).
/// It names the check that failed, for the log; the caller gets one message for every such
/// case, `resilience::stream_malformed`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed event stream from Bedrock: {0}")]
pub struct FrameError(String);

/// Incremental event-stream decoder; see the module docs.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    failed: Option<FrameError>,
}

impl EventStreamDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the body.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<StreamFrame>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.decode() {
            Ok(frame) => Ok(frame),
            Err(err) => {
                self.buf.clear();
                self.failed = Some(err.clone());
                Err(err)
            }
        }
    }

    fn decode(&mut self) -> Result<Option<StreamFrame>, FrameError> {
        let Some(prefix) = self.buf.first_chunk::<4>() else { return Ok(None) };
        let total = u32::from_be_bytes(*prefix) as usize;
        if !(MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&total) {
            return Err(FrameError(format!("frame length {total} is out of range")));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        read_frame(self.buf.split_to(total).freeze()).map(Some)
    }
}

/// Checks and classifies one whole frame (`frame.len()` is its declared total length).
fn read_frame(frame: Bytes) -> Result<StreamFrame, FrameError> {
    let total = frame.len();
    let word = |at: usize| u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]);
    let headers_len = word(4) as usize;
    let (expected, actual) = (crc32fast::hash(&frame[..8]), word(8));
    if expected != actual {
        return Err(FrameError(format!(
            "prelude checksum 0x{actual:X} didn't match expected checksum 0x{expected:X}"
        )));
    }
    // The headers length is 0 or at least 2 (one name-length and one type byte), within the frame.
    if headers_len == 1 || headers_len > total - PRELUDE_LEN - CRC_LEN {
        return Err(FrameError("invalid headers length".into()));
    }
    let (expected, actual) = (crc32fast::hash(&frame[..total - CRC_LEN]), word(total - CRC_LEN));
    if expected != actual {
        return Err(FrameError(format!(
            "message checksum 0x{actual:X} didn't match expected checksum 0x{expected:X}"
        )));
    }
    let headers = Headers::read(&frame[PRELUDE_LEN..PRELUDE_LEN + headers_len])?;
    let payload = || frame.slice(PRELUDE_LEN + headers_len..total - CRC_LEN);
    match headers.message_type {
        Some("event") => Ok(StreamFrame::Event {
            event_type: required(headers.event_type, ":event-type")?,
            payload: payload(),
        }),
        Some("exception") => {
            let exception_type = required(headers.exception_type, ":exception-type")?;
            let payload = payload();
            let message = serde_json::from_slice::<ExceptionPayload>(&payload)
                .ok()
                .and_then(|p| p.message)
                .unwrap_or_else(|| String::from_utf8_lossy(&payload).into_owned());
            Ok(StreamFrame::Exception { exception_type, message })
        }
        Some("error") => Ok(StreamFrame::Error {
            code: required(headers.error_code, ":error-code")?,
            message: headers.error_message.unwrap_or_default().to_owned(),
        }),
        Some(other) => Err(FrameError(format!("unknown message type `{other}`"))),
        None => Err(FrameError("frame without `:message-type` header".into())),
    }
}

/// The string headers a frame is classified by (the first of each name); other headers are
/// checked for well-formedness and skipped.
#[derive(Default)]
struct Headers<'a> {
    message_type: Option<&'a str>,
    event_type: Option<&'a str>,
    exception_type: Option<&'a str>,
    error_code: Option<&'a str>,
    error_message: Option<&'a str>,
}

impl<'a> Headers<'a> {
    fn read(mut rest: &'a [u8]) -> Result<Self, FrameError> {
        let invalid_value = || FrameError("invalid header value".into());
        let mut headers = Headers::default();
        while let Some((&name_len, after)) = rest.split_first() {
            let name_len = usize::from(name_len);
            // The name and the value-type byte.
            if after.len() <= name_len {
                return Err(FrameError("invalid header name length".into()));
            }
            let name = &after[..name_len];
            check_utf8(name)?;
            let value_type = after[name_len];
            let value = &after[name_len + 1..];
            // Value sizes by type: true, false; byte; int16; int32; int64, timestamp; uuid; and
            // byte array or string, a u16 length and that many bytes.
            let mut len = match value_type {
                0 | 1 => 0,
                2 => 1,
                3 => 2,
                4 => 4,
                5 | 8 => 8,
                9 => 16,
                TYPE_BYTES | TYPE_STRING => 2,
                other => return Err(FrameError(format!("invalid header value type: {other}"))),
            };
            if matches!(value_type, TYPE_BYTES | TYPE_STRING) {
                let Some(&[hi, lo]) = value.first_chunk::<2>() else { return Err(invalid_value()) };
                len += usize::from(u16::from_be_bytes([hi, lo]));
            }
            if value.len() < len {
                return Err(invalid_value());
            }
            if value_type == TYPE_STRING {
                let text = &value[2..len];
                let slot = match name {
                    b":message-type" => Some(&mut headers.message_type),
                    b":event-type" => Some(&mut headers.event_type),
                    b":exception-type" => Some(&mut headers.exception_type),
                    b":error-code" => Some(&mut headers.error_code),
                    b":error-message" => Some(&mut headers.error_message),
                    _ => None,
                };
                match slot {
                    Some(slot @ None) => *slot = Some(utf8(text)?),
                    _ => check_utf8(text)?,
                }
            }
            rest = &value[len..];
        }
        Ok(headers)
    }
}

/// Validates text the decoder does not keep; ASCII (all Bedrock sends) needs no full UTF-8 check.
fn check_utf8(bytes: &[u8]) -> Result<(), FrameError> {
    if bytes.is_ascii() { Ok(()) } else { utf8(bytes).map(drop) }
}

fn utf8(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|_| FrameError("encountered invalid UTF-8 string".into()))
}

fn required(value: Option<&str>, name: &str) -> Result<String, FrameError> {
    value.map(str::to_owned).ok_or_else(|| FrameError(format!("frame without `{name}` header")))
}

#[derive(Deserialize)]
struct ExceptionPayload {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}
