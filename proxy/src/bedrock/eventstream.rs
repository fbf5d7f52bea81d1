//! Incremental decoder for `application/vnd.amazon.eventstream` bodies (ConverseStream and
//! InvokeModelWithResponseStream).
//!
//! Feed the body in whatever chunks the connection delivers ([`EventStreamDecoder::push`]) and
//! drain whole frames ([`EventStreamDecoder::next_frame`]). Checksums and framing are verified by
//! aws-smithy-eventstream; this module bounds memory (a frame is buffered only once its declared
//! length is plausible) and classifies frames by `:message-type`. Any framing error is final:
//! the decoder keeps returning it, because nothing after a corrupt frame can be trusted.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use crate::error::ApiError;

/// Largest frame accepted: botocore's limits (24 MiB payload, 128 KiB headers) plus framing.
const MAX_FRAME_LEN: usize = 24 * 1024 * 1024 + 128 * 1024 + 16;
/// Prelude (12 bytes) plus message CRC (4 bytes): the smallest possible frame.
const MIN_FRAME_LEN: usize = 16;

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
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed event stream from Bedrock: {0}")]
pub struct FrameError(String);

impl FrameError {
    /// The error the caller sees: Bedrock sent something unusable, so 502.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::bad_gateway(format!("Bedrock sent a response the gateway could not read ({}).", self.0))
    }
}

/// Incremental event-stream decoder; see the module docs.
#[derive(Debug, Default)]
pub struct EventStreamDecoder {
    buf: BytesMut,
    frames: MessageFrameDecoder,
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

    /// True when bytes of an unfinished frame are buffered (a body ending now was cut short).
    pub fn has_partial_frame(&self) -> bool {
        !self.buf.is_empty()
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
        // Handing over exactly one whole frame keeps the decoder's prelude state from ever
        // outliving a call.
        let mut frame = self.buf.split_to(total);
        match self.frames.decode_frame(&mut frame) {
            Ok(DecodedFrame::Complete(message)) => classify(&message).map(Some),
            Ok(DecodedFrame::Incomplete) => Err(FrameError("frame shorter than its declared length".into())),
            Err(err) => Err(FrameError(err.to_string())),
        }
    }
}

fn header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message.headers().iter().find(|h| h.name().as_str() == name).and_then(|h| match h.value() {
        HeaderValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

fn required_header(message: &Message, name: &str) -> Result<String, FrameError> {
    header(message, name)
        .map(str::to_owned)
        .ok_or_else(|| FrameError(format!("frame without `{name}` header")))
}

#[derive(Deserialize)]
struct ExceptionPayload {
    #[serde(default, alias = "Message")]
    message: Option<String>,
}

fn classify(message: &Message) -> Result<StreamFrame, FrameError> {
    match header(message, ":message-type") {
        Some("event") => Ok(StreamFrame::Event {
            event_type: required_header(message, ":event-type")?,
            payload: message.payload().clone(),
        }),
        Some("exception") => {
            let payload = message.payload();
            let text = serde_json::from_slice::<ExceptionPayload>(payload)
                .ok()
                .and_then(|p| p.message)
                .unwrap_or_else(|| String::from_utf8_lossy(payload).into_owned());
            Ok(StreamFrame::Exception {
                exception_type: required_header(message, ":exception-type")?,
                message: text,
            })
        }
        Some("error") => Ok(StreamFrame::Error {
            code: required_header(message, ":error-code")?,
            message: header(message, ":error-message").unwrap_or_default().to_owned(),
        }),
        Some(other) => Err(FrameError(format!("unknown message type `{other}`"))),
        None => Err(FrameError("frame without `:message-type` header".into())),
    }
}
