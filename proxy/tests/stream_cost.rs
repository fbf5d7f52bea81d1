//! The cost of streamed chats as callers get it: the `x-bedrock-gateway-cost-usd` trailer over
//! HTTP/1.1 (`TE: trailers`) and HTTP/2, equal to the usage log line; the prices `/v1/models`
//! gives browsers; the long-context surcharge; and `--log-content`, the only way a prompt or
//! completion reaches a log.

mod fixtures;

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use fixtures::{Harness, KEY, sse_events};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proxy::limits::Limiter;
use proxy::usage::{Recorder, cost_text};
use serde_json::{Value, json};

/// Every log line of this test binary, as JSON, in one buffer (tests filter by request id).
static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || LogWriter(sink.clone()))
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test binary");
    buffer
});

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged so far, as text.
fn logs() -> String {
    String::from_utf8(LOGS.lock().unwrap().clone()).unwrap()
}

/// The log lines of `target` about `request_id`.
fn lines(target: &str, request_id: &str) -> Vec<Value> {
    logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == target && l["fields"]["request_id"] == request_id)
        .collect()
}

/// What a client that keeps trailers gets back.
struct Streamed {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
    trailers: Option<HeaderMap>,
}

impl Streamed {
    /// The id of the completion (first SSE chunk).
    fn id(&self) -> String {
        let first: Value = serde_json::from_str(&sse_events(&self.body)[0]).unwrap();
        first["id"].as_str().unwrap().to_owned()
    }
}

async fn stream_chat(h: &Harness, model: &str, http2: bool, te_trailers: bool) -> Streamed {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(http2);
    let client = builder.build_http::<Full<Bytes>>();
    let body = json!({
        "model": model,
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hello there"}]
    });
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/v1/chat/completions", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json");
    if te_trailers {
        req = req.header("te", "trailers");
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    Streamed {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(collected.to_bytes().to_vec()).unwrap(),
        trailers,
    }
}

/// The cost in the trailer of `r`, checked against the usage line of the same request.
fn trailer_matches_usage_line(r: &Streamed) -> f64 {
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["trailer"], "x-bedrock-gateway-cost-usd");
    assert_eq!(r.headers.get("x-bedrock-gateway-cost-usd"), None, "a stream's cost is not a header");
    assert_eq!(sse_events(&r.body).last().unwrap(), "[DONE]");
    let trailers = r.trailers.as_ref().expect("the stream ends with trailers");
    let text = trailers["x-bedrock-gateway-cost-usd"].to_str().unwrap();
    let usage = lines("bedrock_gateway::usage", &r.id());
    assert_eq!(usage.len(), 1, "one usage line per request");
    let logged = usage[0]["fields"]["cost_usd"].as_f64().unwrap();
    // The same number, written as the cost header writes it.
    assert_eq!(text, cost_text(logged), "trailer {text} vs usage line {logged}");
    logged
}

#[tokio::test]
async fn http1_streams_end_with_the_cost_trailer_when_asked() {
    LazyLock::force(&LOGS);
    let h = Harness::start().await;
    let r = stream_chat(&h, "demo/nova-lite", false, true).await;
    // amazon.nova-lite: 2 input tokens at $0.06/M + 5 output tokens at $0.24/M.
    assert_eq!(r.trailers.as_ref().unwrap()["x-bedrock-gateway-cost-usd"], "0.00000132");
    assert_eq!(cost_text(trailer_matches_usage_line(&r)), "0.00000132");
}

#[tokio::test]
async fn http2_streams_always_end_with_the_cost_trailer() {
    LazyLock::force(&LOGS);
    let h = Harness::start().await;
    let r = stream_chat(&h, "demo/claude-sonnet", true, false).await;
    // us.anthropic.claude-3-7-sonnet: 2 input tokens at $3/M + 5 output tokens at $15/M.
    assert_eq!(r.trailers.as_ref().unwrap()["x-bedrock-gateway-cost-usd"], "0.000081");
    assert_eq!(cost_text(trailer_matches_usage_line(&r)), "0.000081");
}

#[tokio::test]
async fn no_trailer_for_http1_clients_that_did_not_ask_or_unpriced_models() {
    LazyLock::force(&LOGS);
    let h = Harness::start().await;
    let plain = stream_chat(&h, "demo/nova-lite", false, false).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.headers.get("trailer"), None);
    assert!(plain.trailers.is_none());
    assert_eq!(sse_events(&plain.body).last().unwrap(), "[DONE]");
    // The usage line still has the cost.
    let logged = lines("bedrock_gateway::usage", &plain.id())[0]["fields"]["cost_usd"].as_f64().unwrap();
    assert_eq!(cost_text(logged), "0.00000132");
    // A model without a price announces no trailer it could not send.
    let unpriced = stream_chat(&h, "demo/team-profile", true, true).await;
    assert_eq!(unpriced.status, StatusCode::OK);
    assert_eq!(unpriced.headers.get("trailer"), None);
    assert!(unpriced.trailers.is_none());
}

#[tokio::test]
async fn models_list_the_prices_they_are_billed_at() {
    LazyLock::force(&LOGS);
    let h = Harness::start().await;
    let r = h.call(Method::GET, "/v1/models", Some(KEY), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    let entry = |id: &str| doc["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap().clone();
    // Nova Lite has no cache-write price: cache writes bill as input.
    assert_eq!(
        entry("demo/nova-lite")["pricing"],
        json!({
            "input_per_million_tokens": 0.06,
            "output_per_million_tokens": 0.24,
            "cache_read_per_million_tokens": 0.015,
            "cache_write_per_million_tokens": 0.06,
            "per_image": 0.0
        })
    );
    assert_eq!(entry("demo/nova-canvas")["pricing"]["per_image"], 0.04);
    assert!(entry("demo/team-profile").get("pricing").is_none(), "unpriced models carry no pricing");
}

/// Claude Sonnet 4 through a geographic profile: a model with Bedrock's long-context surcharge.
const SONNET_4: &str = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata:
  name: claude-sonnet-4
  namespace: ai-gateway
spec:
  accountRef: demo
  modelId: us.anthropic.claude-sonnet-4-20250514-v1:0
";

#[tokio::test]
async fn inputs_past_200k_tokens_are_billed_at_long_context_prices() {
    LazyLock::force(&LOGS);
    let h =
        Harness::start_with(bedrock_sim::SimConfig::default(), &[("sonnet-4.yaml", SONNET_4)], None).await;
    let r = h.call(Method::GET, "/v1/models", Some(KEY), None).await;
    let doc = r.json();
    let sonnet = doc["data"].as_array().unwrap().iter().find(|m| m["id"] == "demo/claude-sonnet-4").unwrap();
    assert_eq!(
        sonnet["pricing"]["long_context"],
        json!({
            "above_input_tokens": 200_000,
            "input_per_million_tokens": 6.0,
            "output_per_million_tokens": 22.5,
            "cache_read_per_million_tokens": 0.6,
            "cache_write_per_million_tokens": 7.5
        })
    );
    // The simulator counts a word as a token and echoes the prompt after three words of its own.
    let h = &h;
    let cost = |words: usize| {
        let body = json!({"model": "demo/claude-sonnet-4", "messages": [{"role": "user", "content": "a ".repeat(words)}]});
        async move {
            let r = h.chat(body).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let usage = &r.json()["usage"];
            assert_eq!(
                (usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()),
                (Some(words as u64), Some(words as u64 + 3))
            );
            r.headers["x-bedrock-gateway-cost-usd"].to_str().unwrap().to_owned()
        }
    };
    // 200,000 x $3/M + 200,003 x $15/M; one input token more and every token of the request
    // costs $6/M and $22.50/M: 200,001 x $6/M + 200,004 x $22.50/M.
    assert_eq!(cost(200_000).await, "3.600045");
    assert_eq!(cost(200_001).await, "5.700096");
}

async fn chat(h: &Harness, marker: &str, stream: bool) -> (String, String) {
    let body = json!({"model": "demo/nova-lite", "stream": stream, "messages": [{"role": "user", "content": marker}]});
    let r = h.chat(body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    if stream {
        let first: Value = serde_json::from_str(&sse_events(&r.text())[0]).unwrap();
        (first["id"].as_str().unwrap().to_owned(), r.text())
    } else {
        let doc = r.json();
        (
            doc["id"].as_str().unwrap().to_owned(),
            doc["choices"][0]["message"]["content"].as_str().unwrap().into(),
        )
    }
}

#[tokio::test]
async fn prompts_and_completions_are_not_logged_by_default() {
    LazyLock::force(&LOGS);
    let h = Harness::start().await;
    for stream in [false, true] {
        let marker = format!("private-words-{}", fastrand::u64(..));
        let (id, _) = chat(&h, &marker, stream).await;
        assert_eq!(lines("bedrock_gateway::usage", &id).len(), 1);
        assert!(lines("bedrock_gateway::content", &id).is_empty());
        assert!(!logs().contains(&marker), "the prompt reached a log");
    }
}

#[tokio::test]
async fn log_content_logs_the_prompt_and_the_completion() {
    LazyLock::force(&LOGS);
    let h = Harness::start_configured(|app| {
        app.usage = Recorder::new(app.metrics.clone(), Limiter::local()).logging_content(true);
    })
    .await;
    for stream in [false, true] {
        let marker = format!("shared-words-{}", fastrand::u64(..));
        let (id, _) = chat(&h, &marker, stream).await;
        let content = lines("bedrock_gateway::content", &id);
        assert_eq!(content.len(), 1, "one content line per request");
        let fields = &content[0]["fields"];
        assert_eq!(fields["model"], "demo/nova-lite");
        assert_eq!(fields["endpoint"], "chat");
        let prompt: Value = serde_json::from_str(fields["prompt"].as_str().unwrap()).unwrap();
        assert_eq!(prompt["messages"][0]["content"], marker);
        assert_eq!(fields["completion"], format!("Simulated reply to: {marker}"));
        // The usage line itself stays free of content.
        let usage = &lines("bedrock_gateway::usage", &id)[0];
        assert!(!usage.to_string().contains(&marker));
        assert!(!logs().contains(KEY), "a caller key reached a log");
    }
}
