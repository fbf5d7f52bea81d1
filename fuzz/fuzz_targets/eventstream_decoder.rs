#![no_main]
//! Arbitrary bytes, delivered in arbitrary chunks, into the proxy's event-stream decoder.
//!
//! Never a panic, and the frames decoded do not depend on how the body was chunked: the first
//! byte picks the chunk size, and the result is compared with decoding the body in one piece.

use libfuzzer_sys::fuzz_target;
use proxy::bedrock::eventstream::{EventStreamDecoder, FrameError, StreamFrame};

/// Decodes `body` fed in `chunk`-byte pieces: the frames, then the error that stopped it, if any.
fn decode(body: &[u8], chunk: usize) -> (Vec<StreamFrame>, Option<FrameError>) {
    let mut decoder = EventStreamDecoder::new();
    let mut frames = Vec::new();
    for piece in body.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(err) => {
                    // A failed decoder stays failed.
                    assert_eq!(decoder.next_frame(), Err(err.clone()));
                    return (frames, Some(err));
                }
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else { return };
    let chunk = usize::from(first % 64) + 1;
    let whole = decode(body, body.len().max(1));
    let pieces = decode(body, chunk);
    assert_eq!(whole, pieces, "chunk size {chunk} changed the result");
});
