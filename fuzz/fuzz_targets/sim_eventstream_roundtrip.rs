#![no_main]
//! The simulator's event-stream encoder against the proxy's decoder.
//!
//! Any event type and payload the sim encodes decodes back to the same frame, whatever chunks
//! the bytes arrive in, and ends where the sim's frame ends; exception frames decode to the same
//! exception type.

use bedrock_sim::eventstream::{event_frame, exception_frame};
use libfuzzer_sys::fuzz_target;
use proxy::bedrock::eventstream::{EventStreamDecoder, StreamFrame};

fuzz_target!(|data: &[u8]| {
    // Layout: [flags][name length][name bytes][payload].
    let [flags, name_len, rest @ ..] = data else { return };
    let (name, payload) = rest.split_at(usize::from(*name_len).min(rest.len()));
    let Ok(name) = std::str::from_utf8(name) else { return };
    if name.is_empty() {
        return;
    }
    let exception = flags & 1 == 1;
    let encoded =
        if exception { exception_frame(name, payload.to_vec()) } else { event_frame(name, payload.to_vec()) }
            .expect("the sim encodes any name and payload");
    let chunk = usize::from(flags >> 1) + 1;
    let mut decoder = EventStreamDecoder::new();
    let mut frames = Vec::new();
    for piece in encoded.chunks(chunk) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame().expect("the sim's frame decodes") {
            frames.push(frame);
        }
    }
    // The frame ended exactly where the sim's did: a second copy decodes on its own.
    decoder.push(&encoded);
    assert_eq!(decoder.next_frame().expect("the sim's frame decodes again").as_ref(), frames.first());
    match (exception, frames.as_slice()) {
        (false, [StreamFrame::Event { event_type, payload: got }]) => {
            assert_eq!(event_type, name);
            assert_eq!(got.as_ref(), payload);
        }
        (true, [StreamFrame::Exception { exception_type, .. }]) => assert_eq!(exception_type, name),
        other => panic!("unexpected frames {other:?}"),
    }
});
