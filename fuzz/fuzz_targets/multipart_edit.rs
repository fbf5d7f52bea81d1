#![no_main]
//! Arbitrary multipart/form-data bodies into the `/v1/images/edits` parser and on to every
//! image family's translator.
//!
//! The first input byte picks the boundary's length (the boundary itself is fixed text, so the
//! fuzzer finds it in the body); the rest is the body. Never a panic or a hang: every outcome is
//! a request, or a 400 / 413 `invalid_request_error`, and a translated request serializes.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use proxy::bedrock::models::ImageFamily;
use proxy::openai::images::parse_edit_request;
use proxy::translate::{images_nova, images_stability};

const BOUNDARY: &str = "bgwfuzzboundary";
const FAMILIES: [ImageFamily; 5] = [
    ImageFamily::TitanV1,
    ImageFamily::TitanV2,
    ImageFamily::NovaCanvas,
    ImageFamily::Sd35Large,
    ImageFamily::StableImage,
];

/// Runs `future`, which reads only the in-memory body, so it must finish in one poll.
fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("parsing an in-memory body waited"),
    }
}

fn check(err: &proxy::error::ApiError) {
    assert!(matches!(err.status.as_u16(), 400 | 413), "{err:?}");
    assert_eq!(err.kind, "invalid_request_error", "{err:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&len, body)) = data.split_first() else { return };
    let boundary = &BOUNDARY[..1 + usize::from(len) % BOUNDARY.len()];
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let request = match run_now(parse_edit_request(Some(&content_type), Bytes::copy_from_slice(body))) {
        Ok(request) => request,
        Err(err) => return check(&err),
    };
    assert!(!request.images.is_empty(), "a request without an image was accepted");
    for family in FAMILIES {
        match family {
            ImageFamily::Sd35Large | ImageFamily::StableImage => {
                match images_stability::edit_requests(&request, family) {
                    Ok(calls) => {
                        for call in calls {
                            serde_json::to_vec(&call).expect("a Stability request serializes");
                        }
                    }
                    Err(err) => check(&err),
                }
            }
            _ => match images_nova::edit_request(&request, family) {
                Ok(call) => {
                    serde_json::to_vec(&call).expect("a Canvas request serializes");
                }
                Err(err) => check(&err),
            },
        }
    }
});
