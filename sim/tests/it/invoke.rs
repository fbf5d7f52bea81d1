//! InvokeModel over the wire: signed calls per model family, Bedrock's token-count header,
//! validation errors and faults.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bedrock_sim::embedding_vector;
use serde_json::{Value, json};

use crate::common::*;

fn invoke(model_label: &str) -> String {
    format!("/model/{model_label}/invoke")
}

async fn call(model_label: &str, body: Value) -> Resp {
    let sim = start().await;
    send(&http1(), post(&sim.url(), &invoke(model_label), body.to_string().into_bytes(), test_sigv4())).await
}

#[tokio::test]
async fn titan_v2_embeds_with_the_token_count_header() {
    let resp =
        call("amazon.titan-embed-text-v2%3A0", json!({"inputText": "one two three", "dimensions": 512}))
            .await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    assert_eq!(resp.header("content-type"), "application/json");
    assert_eq!(resp.header("x-amzn-bedrock-input-token-count"), "3");
    let v = resp.json();
    assert_eq!(v["inputTextTokenCount"], 3);
    let got: Vec<f32> = serde_json::from_value(v["embedding"].clone()).unwrap();
    assert_eq!(got, embedding_vector("one two three", 512, true));
}

#[tokio::test]
async fn cohere_answers_every_text_and_refuses_97() {
    let texts: Vec<String> = (0..96).map(|i| format!("t {i}")).collect();
    let resp =
        call("cohere.embed-english-v3", json!({"texts": texts, "input_type": "search_document"})).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-amzn-bedrock-input-token-count"), "192");
    assert_eq!(resp.json()["embeddings"].as_array().unwrap().len(), 96);
    let texts: Vec<String> = (0..97).map(|i| format!("t {i}")).collect();
    let resp =
        call("cohere.embed-english-v3", json!({"texts": texts, "input_type": "search_document"})).await;
    let message = resp.assert_error(400, "ValidationException");
    assert!(message.contains("expected maxItems: 96, actual: 97"), "{message}");
}

#[tokio::test]
async fn a_field_of_another_family_is_a_validation_exception() {
    let resp = call("amazon.nova-canvas-v1%3A0", json!({"prompt": "a cat"})).await;
    let message = resp.assert_error(400, "ValidationException");
    assert_eq!(
        message,
        "Malformed input request: #: extraneous key [prompt] is not permitted, please reformat your input and try again."
    );
    let resp = call("meta.llama3-8b-instruct-v1%3A0", json!({"prompt": "x"})).await;
    resp.assert_error(400, "ValidationException");
}

#[tokio::test]
async fn canvas_returns_pngs_and_refuses_a_bad_size() {
    let body = json!({
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a cat"},
        "imageGenerationConfig": {"numberOfImages": 3, "width": 512, "height": 512}
    });
    let resp = call("amazon.titan-image-generator-v1", body).await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    let images = resp.json()["images"].as_array().unwrap().clone();
    assert_eq!(images.len(), 3);
    let png = STANDARD.decode(images[0].as_str().unwrap()).unwrap();
    assert_eq!(&png[12..24], b"IHDR\0\0\x02\0\0\0\x02\0");
    let bad = json!({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a cat"}, "imageGenerationConfig": {"width": 500, "height": 500}});
    let message = call("amazon.titan-image-generator-v1", bad).await.assert_error(400, "ValidationException");
    assert!(message.contains("500x500 is not a supported image size"), "{message}");
}

#[tokio::test]
async fn faults_apply_to_invoke_too() {
    let resp =
        call("stability.sd3-5-large-v1%3A0", json!({"prompt": "x [[sim:error=ThrottlingException]]"})).await;
    resp.assert_error(429, "ThrottlingException");
    let started = Instant::now();
    let resp = call("amazon.titan-embed-text-v1", json!({"inputText": "slow [[sim:latency=150]]"})).await;
    assert_eq!(resp.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn invoke_needs_authentication_and_json() {
    let sim = start().await;
    let body = json!({"inputText": "x"}).to_string().into_bytes();
    let resp =
        send(&http1(), post(&sim.url(), &invoke("amazon.titan-embed-text-v1"), body, Auth::None)).await;
    assert_eq!(resp.status, 403);
    let resp = send(
        &http1(),
        post(&sim.url(), &invoke("amazon.titan-embed-text-v1"), b"not json".to_vec(), test_bearer()),
    )
    .await;
    resp.assert_error(400, "ValidationException");
}
