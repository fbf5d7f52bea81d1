//! Translators, one per incoming-API/backend pair (`<surface>_<backend>.rs`).
//!
//! A translator is pure: typed values and bytes in, typed values and bytes out, with no I/O,
//! clocks or randomness; whatever depends on the outside world (the response id, the time, the
//! served model name) comes in as a [`ResponseMeta`] from the server. Each pair module offers:
//!
//! - a request function: validated OpenAI request -> backend request body, or a 400 for a
//!   request the backend cannot express (e.g. a conversation starting with an assistant turn);
//! - a response function: backend response -> OpenAI response, total (a response that parsed
//!   always translates);
//! - for streaming surfaces, a [`StreamTranslator`]: fed one decoded backend frame at a time,
//!   it appends the caller's SSE bytes to an output buffer and says when the stream is over.
//!
//! Backend HTTP errors are mapped by the backend module (`bedrock::errors`), not here.

pub mod batch_bedrock;
pub mod chat_converse;
pub mod embeddings_cohere;
pub mod embeddings_titan;
pub mod images_nova;
pub mod images_stability;

use bytes::BytesMut;

use crate::bedrock::embeddings::FloatVector;
use crate::bedrock::eventstream::StreamFrame;
use crate::error::ApiError;
use crate::openai::chat::Usage;
use crate::openai::embeddings::{EncodingFormat, Vector};

/// Per-request facts supplied by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseMeta {
    /// Response id (`chatcmpl-...`), the same on every chunk.
    pub id: String,
    /// Unix time (seconds) the request was received.
    pub created: u64,
    /// Served model name, echoed as `model`.
    pub model: String,
}

/// What a stream translator wants after a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamStep {
    /// Keep feeding frames.
    Continue,
    /// The response is complete, terminator included; stop reading the backend.
    Done,
    /// The backend reported an error; the SSE error event is written and nothing may follow it.
    Failed(ApiError),
}

/// A stateful backend-stream -> OpenAI-SSE translator.
pub trait StreamTranslator {
    /// Translates one backend frame, appending SSE bytes to `out`. After `Done` or `Failed`,
    /// further frames are ignored (nothing is written) and `Done` is returned.
    fn on_frame(&mut self, frame: StreamFrame, out: &mut BytesMut) -> StreamStep;

    /// Ends the stream with `err` (backend body cut short, unreadable, timed out): writes the SSE
    /// error event unless the stream is already over.
    fn abort(&mut self, err: &ApiError, out: &mut BytesMut);

    /// Token counts, once the backend has reported them.
    fn usage(&self) -> Option<Usage>;
}

/// Appends `data: {"error": {...}}\n\n`, the in-stream form of an error.
fn write_sse_error(err: &ApiError, out: &mut BytesMut) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&err.to_json());
    out.extend_from_slice(b"\n\n");
}

/// One Bedrock embedding in the caller's `encoding_format`: floats go out as Bedrock wrote them,
/// base64 over their `f32` bytes. A component beyond the `f64` range (which no `f32` model sends)
/// makes the response unreadable: 502.
fn embedding_vector(vector: FloatVector, format: EncodingFormat) -> Result<Vector, ApiError> {
    match format {
        EncodingFormat::Float => Ok(Vector::Float(vector.into_json())),
        EncodingFormat::Base64 => vector
            .to_f32()
            .map(|floats| Vector::base64(&floats))
            .ok_or_else(|| ApiError::bad_gateway("Bedrock returned an embedding component out of range.")),
    }
}
