#![no_main]
//! OpenAI chat request bytes -> `parse_chat_request` -> `converse_request` -> Converse JSON.
//!
//! Never a panic; a body that does not parse, or a request Converse cannot express, is a 400
//! `invalid_request_error`; a translated request always serializes to JSON.

use libfuzzer_sys::fuzz_target;
use proxy::openai::chat::parse_chat_request;
use proxy::translate::chat_converse::converse_request;

fuzz_target!(|data: &[u8]| {
    let request = match parse_chat_request(data) {
        Ok(request) => request,
        Err(err) => {
            assert_eq!(err.status, 400, "{err:?}");
            return;
        }
    };
    match converse_request(&request) {
        Ok(converse) => {
            let body = serde_json::to_vec(&converse).expect("a Converse request serializes");
            serde_json::from_slice::<serde_json::Value>(&body).expect("the Converse body is JSON");
        }
        Err(err) => assert_eq!(err.status, 400, "{err:?}"),
    }
});
