//! The chat endpoint end to end in-process: proxy + simulator, over real HTTP.

mod fixtures;

use fixtures::{Harness, KEY, sse_events};
use http::{Method, StatusCode};
use serde_json::json;

fn hello(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}

#[tokio::test]
async fn chat_completion_round_trip() {
    let h = Harness::start().await;
    let r = h.chat(hello("demo/claude-sonnet")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "demo/claude-sonnet");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], "Simulated reply to: Hello there");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"], json!({"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}));

    let recorded = h.sim.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse");
    let auth = recorded[0].headers.iter().find(|(k, _)| k == "authorization").unwrap();
    assert!(auth.1.contains("/us-west-2/bedrock/aws4_request"), "{}", auth.1);
}

#[tokio::test]
async fn arn_model_ids_are_encoded_in_the_path() {
    let h = Harness::start().await;
    let r = h.chat(hello("demo/team-profile")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        h.sim.requests()[0].path,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456/converse"
    );
}

#[tokio::test]
async fn streaming_with_usage() {
    let h = Harness::start().await;
    let mut body = hello("demo/nova-lite");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = h.chat(body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/event-stream");
    let events = sse_events(&r.text());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(text, "Simulated reply to: Hello there");
    let finishes: Vec<_> = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).collect();
    assert_eq!(finishes.len(), 1);
    assert_eq!(finishes[0]["choices"][0]["finish_reason"], "stop");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 7);
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
}

#[tokio::test]
async fn stream_error_mid_way_ends_with_an_error_event() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/nova-lite", "stream": true,
        "messages": [{"role": "user", "content": "one two three [[sim:stream-error=throttlingException]]"}]});
    let r = h.chat(body).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = sse_events(&r.text());
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "rate_limit_error", "{last}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn stream_reset_mid_way_ends_with_an_error_event() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/nova-lite", "stream": true,
        "messages": [{"role": "user", "content": "one two three [[sim:reset]]"}]});
    let r = h.chat(body).await;
    let events = sse_events(&r.text());
    let last: serde_json::Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{last}");
}

#[tokio::test]
async fn bedrock_errors_map_to_openai_statuses() {
    let h = Harness::start().await;
    for (exception, status, kind) in [
        ("ValidationException", 400, "invalid_request_error"),
        ("AccessDeniedException", 403, "permission_error"),
        ("ThrottlingException", 429, "rate_limit_error"),
        ("ServiceUnavailableException", 503, "server_error"),
        ("InternalServerException", 502, "server_error"),
    ] {
        let body = json!({"model": "demo/nova-lite",
            "messages": [{"role": "user", "content": format!("hi [[sim:error={exception}]]")}]});
        let r = h.chat(body).await;
        assert_eq!(r.status.as_u16(), status, "{exception}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], kind, "{exception}");
    }
}

#[tokio::test]
async fn caller_errors() {
    let h = Harness::start().await;
    let body = hello("demo/nova-lite").to_string();
    let r = h.call(Method::POST, "/v1/chat/completions", None, Some(&body)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = h.call(Method::POST, "/v1/chat/completions", Some("sk-wrong"), Some(&body)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["message"], "Incorrect API key provided.");
    let r = h.call(Method::POST, "/v1/chat/completions", Some(KEY), Some("{not json")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = h.chat(hello("demo/missing")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    let r = h.call(Method::GET, "/v1/nothing", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = h.call(Method::GET, "/v1/chat/completions", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.sim.requests().is_empty(), "no caller error may reach Bedrock");
}

#[tokio::test]
async fn models_are_listed_per_caller_and_reloaded() {
    let h = Harness::start().await;
    let r = h.call(Method::GET, "/v1/models", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let ids: Vec<_> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        ids,
        [
            "demo/claude-sonnet",
            "demo/cohere-embed",
            "demo/nova-canvas",
            "demo/nova-lite",
            "demo/sd35",
            "demo/team-profile",
            "demo/titan-embed-v2"
        ]
    );

    // A model added to the folder is served without a restart; a broken file changes nothing.
    std::fs::write(
        h.dir.join("extra.yaml"),
        "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {name: llama, namespace: ai-gateway}\n\
         spec: {accountRef: demo, modelId: meta.llama3-1-70b-instruct-v1:0}\n",
    )
    .unwrap();
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if h.call(Method::GET, "/v1/models", Some(KEY), None).await.text().contains("demo/llama") {
            seen = true;
            break;
        }
    }
    assert!(seen, "the new model was not served after 5 s");
    std::fs::write(h.dir.join("broken.yaml"), "kind: BedrockModel\nspec: [unclosed").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = h.chat(hello("demo/llama")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert!(metrics.contains("bedrock_gateway_config_reloads_total{result=\"error\"} 1"), "{metrics}");
}

#[tokio::test]
async fn ops_endpoints() {
    let h = Harness::start().await;
    assert_eq!(h.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert_eq!(h.call(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
    h.chat(hello("demo/nova-lite")).await;
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert!(
        metrics.contains(
            "bedrock_gateway_requests_total{endpoint=\"chat\",model=\"demo/nova-lite\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(KEY));
}
