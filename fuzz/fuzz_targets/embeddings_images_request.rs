#![no_main]
//! OpenAI embeddings and image-generation request bytes -> `parse_embedding_request` and
//! `parse_generation_request` -> every backend family's translator (Titan Text Embeddings v1/v2,
//! Cohere Embed v3; Titan Image, Nova Canvas, Stability) -> Bedrock JSON.
//!
//! Each input is tried as both kinds of body. Never a panic; a body that does not parse, or a
//! request a family cannot take, is a 400 `invalid_request_error`; a translated request always
//! serializes.

use libfuzzer_sys::fuzz_target;
use proxy::bedrock::models::ImageFamily;
use proxy::error::ApiError;
use proxy::openai::embeddings::parse_embedding_request;
use proxy::openai::images::parse_generation_request;
use proxy::translate::{embeddings_cohere, embeddings_titan, images_nova, images_stability};

/// The image families whose generations go through Nova Canvas's request shape.
const CANVAS_FAMILIES: [ImageFamily; 3] =
    [ImageFamily::TitanV1, ImageFamily::TitanV2, ImageFamily::NovaCanvas];

fn check(err: &ApiError) {
    assert_eq!(err.status, 400, "{err:?}");
    assert_eq!(err.kind, "invalid_request_error", "{err:?}");
}

/// Serializes every call of `calls`, or checks the refusal.
fn serializes<T: serde::Serialize>(calls: Result<Vec<T>, ApiError>) {
    match calls {
        Ok(calls) => {
            for call in calls {
                serde_json::to_vec(&call).expect("a Bedrock request serializes");
            }
        }
        Err(err) => check(&err),
    }
}

fuzz_target!(|data: &[u8]| {
    match parse_embedding_request(data) {
        Ok(request) => {
            assert!(!request.input.is_empty(), "an embeddings request without input was accepted");
            serializes(embeddings_titan::titan_requests(&request, false));
            serializes(embeddings_titan::titan_requests(&request, true));
            serializes(embeddings_cohere::cohere_requests(&request, embeddings_cohere::DEFAULT_INPUT_TYPE));
        }
        Err(err) => check(&err),
    }
    match parse_generation_request(data) {
        Ok(request) => {
            for family in CANVAS_FAMILIES {
                serializes(images_nova::generation_request(&request, family).map(|call| vec![call]));
            }
            serializes(images_stability::generation_requests(&request));
        }
        Err(err) => check(&err),
    }
});
