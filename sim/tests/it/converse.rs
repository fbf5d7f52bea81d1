//! Converse: exact response bytes, deterministic replies, validation errors, unknown operations.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn exact_converse_response_for_fixed_input() {
    let sim = start().await;
    let body = json!({
        "system": [{"text": "You are terse."}],
        "messages": [
            {"role": "user", "content": [{"text": "What is the capital of France?"}]},
            {"role": "assistant", "content": [{"text": "Paris."}]},
            {"role": "user", "content": [{"text": "And   of\nSpain?"}]}
        ],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2}
    });
    let resp =
        send(&http1(), post(&sim.url(), &converse_path(), body.to_string().into_bytes(), test_sigv4())).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), "application/json");
    assert_eq!(resp.header("x-amzn-requestid").len(), 36);
    assert_eq!(
        std::str::from_utf8(&resp.body).unwrap(),
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"Simulated reply to: And of Spain?"}]}},"stopReason":"end_turn","usage":{"inputTokens":13,"outputTokens":6,"totalTokens":19},"metrics":{"latencyMs":0}}"#
    );
}

#[tokio::test]
async fn scripted_reply_max_tokens_and_stop_sequences() {
    let sim = start().await;
    let url = sim.url();
    let call = |body: serde_json::Value| {
        let url = url.clone();
        async move {
            let resp =
                send(&http1(), post(&url, &converse_path(), body.to_string().into_bytes(), test_bearer()))
                    .await;
            assert_eq!(resp.status, 200, "{:?}", resp.body);
            resp.json()
        }
    };
    let msg = |t: &str| json!([{"role": "user", "content": [{"text": t}]}]);

    let v = call(json!({"messages": msg("x [[sim:reply=one two three four]] y")})).await;
    assert_eq!(v["output"]["message"]["content"][0]["text"], "one two three four");
    assert_eq!(v["usage"]["outputTokens"], 4);

    let v = call(
        json!({"messages": msg("[[sim:reply=one two three four]]"), "inferenceConfig": {"maxTokens": 2}}),
    )
    .await;
    assert_eq!(v["output"]["message"]["content"][0]["text"], "one two");
    assert_eq!(v["stopReason"], "max_tokens");
    // Directives are part of the message text, so they count as input words.
    assert_eq!(v["usage"], json!({"inputTokens": 4, "outputTokens": 2, "totalTokens": 6}));

    let v = call(json!({
        "messages": msg("[[sim:reply=one two three four]]"),
        "inferenceConfig": {"stopSequences": ["three"]}
    }))
    .await;
    assert_eq!(v["output"]["message"]["content"][0]["text"], "one two ");
    assert_eq!(v["stopReason"], "stop_sequence");
}

#[tokio::test]
async fn validation_errors() {
    let sim = start().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"[1,2]".to_vec(), "Malformed input request: the request body must be a JSON object"),
        (b"{".to_vec(), "Malformed input request: invalid JSON"),
        (json!({"messages": []}).to_string().into_bytes(), "A conversation must start with a user message."),
        (
            json!({"messages": [{"role": "assistant", "content": [{"text": "a"}]}]}).to_string().into_bytes(),
            "A conversation must start with a user message.",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]})
                .to_string()
                .into_bytes(),
            "A conversation must alternate between user and assistant roles.",
        ),
        (
            json!({"messages": [{"role": "user", "content": []}]}).to_string().into_bytes(),
            "The content field in the Message object at messages.0 is empty.",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "inferenceConfig": {"maxTokens": 0}})
                .to_string()
                .into_bytes(),
            "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "inferenceConfig": {"temperature": 1.5}})
                .to_string()
                .into_bytes(),
            "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature'",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "inferenceConfig": {"topP": 2}})
                .to_string()
                .into_bytes(),
            "1 validation error detected: Value '2' at 'inferenceConfig.topP'",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "max_tokens": 5}).to_string().into_bytes(),
            "Malformed input request: extraneous key [max_tokens] is not permitted",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"text": "[[sim:bogus]]"}]}]}).to_string().into_bytes(),
            "bedrock-sim: unknown directive [[sim:bogus]]",
        ),
    ];
    for path in [converse_path(), stream_path()] {
        for (body, expected) in &cases {
            let resp = send(&http1(), post(&sim.url(), &path, body.clone(), test_bearer())).await;
            let message = resp.assert_error(400, "ValidationException");
            assert!(message.starts_with(expected), "{path}: {message:?} should start with {expected:?}");
        }
    }
}

#[tokio::test]
async fn unknown_operations_are_404() {
    let sim = start().await;
    for path in ["/v1/chat/completions", "/model/m/invoke-with-response-stream", "/model/a/b/converse", "/"] {
        let resp = send(&http1(), post(&sim.url(), path, user_body("a"), test_bearer())).await;
        resp.assert_error(404, "UnknownOperationException");
    }
    let get = http::Request::get(format!("{}{}", sim.url(), converse_path()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send(&http1(), get).await.assert_error(404, "UnknownOperationException");
}
