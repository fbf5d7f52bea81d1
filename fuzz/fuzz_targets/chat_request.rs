#![no_main]
//! OpenAI chat request bytes -> `parse_chat_request` -> `converse_request` for each model
//! family -> Converse JSON.
//!
//! Never a panic; a body that does not parse, or a request a model cannot take, is a 400
//! `invalid_request_error`; a translated request always serializes to JSON.

use libfuzzer_sys::fuzz_target;
use proxy::openai::chat::parse_chat_request;
use proxy::translate::chat_converse::converse_request;

/// One model of each family the translator treats differently.
const MODEL_IDS: &[&str] = &[
    "amazon.nova-lite-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "mistral.mistral-large-2407-v1:0",
    "cohere.command-r-plus-v1:0",
    "deepseek.r1-v1:0",
    "openai.gpt-oss-120b-1:0",
];

fuzz_target!(|data: &[u8]| {
    let request = match parse_chat_request(data) {
        Ok(request) => request,
        Err(err) => {
            assert_eq!(err.status, 400, "{err:?}");
            return;
        }
    };
    for model_id in MODEL_IDS {
        match converse_request(&request, model_id) {
            Ok(converse) => {
                let body = serde_json::to_vec(&converse.body).expect("a Converse request serializes");
                serde_json::from_slice::<serde_json::Value>(&body).expect("the Converse body is JSON");
            }
            Err(err) => assert_eq!(err.status, 400, "{model_id}: {err:?}"),
        }
    }
});
