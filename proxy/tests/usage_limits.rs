//! Cost, usage metrics and AccessPolicy limits end to end in-process: proxy + simulator over
//! real HTTP, with test manifests added to the quick-start ones.

mod fixtures;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fixtures::{Harness, KEY, sse_events};
use http::{Method, StatusCode};
use serde_json::json;

/// A caller whose policy has limits, and the manifests giving it to them.
const LIMITED_KEY: &str = "sk-bgw-limited-caller";

fn limited_manifests(limits: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: limited-key, namespace: ai-gateway}}
type: bedrockgateway.io/api-key
stringData: {{key: {LIMITED_KEY}, user: limited@example.com, teams: "budget-team,other-team"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: limited, namespace: ai-gateway}}
spec:
  subjects: [{{user: limited@example.com}}]
  models: ["demo/*"]
  limits: {limits}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: pricey, namespace: ai-gateway}}
spec:
  accountRef: demo
  modelId: amazon.nova-lite-v1:0
  cost: {{inputPerMillionTokens: 1000000, outputPerMillionTokens: 2000000}}
"#
    )
}

/// Starts the harness with the limited caller's manifests and waits until they are served.
async fn start(limits: &str) -> Harness {
    let h = Harness::start().await;
    for attempt in 0..100 {
        // Rewritten until served: the watcher may take its first fingerprint after a first write.
        if attempt % 10 == 0 {
            let text = format!("# attempt {attempt}\n{}", limited_manifests(limits));
            std::fs::write(h.dir.join("limited.yaml"), text).unwrap();
        }
        if h.call(Method::GET, "/v1/models", Some(LIMITED_KEY), None).await.status == StatusCode::OK {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the limited caller's manifests were not loaded");
}

/// Waits for a fresh minute when the current one is about to end, so minute windows do not
/// roll over in the middle of a test.
async fn fresh_minute() {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    if secs % 60 > 50 {
        tokio::time::sleep(Duration::from_secs(61 - secs % 60)).await;
    }
}

fn hello(model: &str) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello there"}]})
}

async fn metrics(h: &Harness) -> String {
    h.call(Method::GET, "/metrics", None, None).await.text()
}

/// The value of one sample, given its name and labels exactly as exposed.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

#[tokio::test]
async fn cost_header_and_metric_for_a_priced_model() {
    let h = Harness::start().await;
    let r = h.chat(hello("demo/claude-sonnet")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // us.anthropic.claude-3-7-sonnet: 2 input tokens at $3/M + 5 output tokens at $15/M.
    assert_eq!(r.header("x-bedrock-gateway-cost-usd").as_deref(), Some("0.000081"));
    // No policy limits: no rate-limit headers.
    assert_eq!(r.header("x-ratelimit-limit-requests"), None);
    let m = metrics(&h).await;
    assert_close(
        sample(
            &m,
            r#"bedrock_gateway_cost_usd_total{account="demo",model="demo/claude-sonnet",team="quickstart"}"#,
        ),
        0.000081,
    );
    assert!(m.contains(r#"bedrock_gateway_tokens_total{model="demo/claude-sonnet",type="input"} 2"#), "{m}");
    assert!(m.contains(r#"bedrock_gateway_tokens_total{model="demo/claude-sonnet",type="output"} 5"#), "{m}");
    assert!(!m.contains(KEY), "a caller key leaked into the metrics");
    assert!(!m.contains("user="), "no per-user label unless enabled");
}

#[tokio::test]
async fn unpriced_models_have_no_cost_header() {
    let h = Harness::start().await;
    let r = h.chat(hello("demo/team-profile")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-bedrock-gateway-cost-usd"), None);
    let m = metrics(&h).await;
    assert!(m.contains(r#"bedrock_gateway_unpriced_requests_total{model="demo/team-profile"} 1"#), "{m}");
}

#[tokio::test]
async fn streams_are_priced_from_the_final_usage_event() {
    let h = Harness::start().await;
    let mut body = hello("demo/nova-lite");
    body["stream"] = json!(true);
    let r = h.chat(body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "text/event-stream");
    assert_eq!(sse_events(&r.text()).last().unwrap(), "[DONE]");
    // The cost of a stream is known only at its end: not in a header.
    assert_eq!(r.header("x-bedrock-gateway-cost-usd"), None);
    let m = metrics(&h).await;
    // amazon.nova-lite: 2 input tokens at $0.06/M + 5 output tokens at $0.24/M.
    assert_close(
        sample(
            &m,
            r#"bedrock_gateway_cost_usd_total{account="demo",model="demo/nova-lite",team="quickstart"}"#,
        ),
        0.00000132,
    );
    assert!(
        m.contains(r#"bedrock_gateway_time_to_first_token_seconds_count{model="demo/nova-lite"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"bedrock_gateway_time_per_output_token_seconds_count{model="demo/nova-lite"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn spec_cost_overrides_the_table() {
    let h = start("{}").await;
    let r = h
        .call(
            Method::POST,
            "/v1/chat/completions",
            Some(LIMITED_KEY),
            Some(&hello("demo/pricey").to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // 2 input tokens at $1 each + 5 output tokens at $2 each.
    assert_eq!(r.header("x-bedrock-gateway-cost-usd").as_deref(), Some("12"));
    let m = metrics(&h).await;
    assert_close(
        sample(
            &m,
            r#"bedrock_gateway_cost_usd_total{account="demo",model="demo/pricey",team="budget-team"}"#,
        ),
        12.0,
    );
}

#[tokio::test]
async fn requests_per_minute() {
    fresh_minute().await;
    let h = start("{requestsPerMinute: 2}").await;
    let call = || {
        h.call(
            Method::POST,
            "/v1/chat/completions",
            Some(LIMITED_KEY),
            Some(r#"{"model":"demo/nova-lite","messages":[{"role":"user","content":"hi"}]}"#),
        )
    };
    for remaining in ["1", "0"] {
        let r = call().await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-ratelimit-limit-requests").as_deref(), Some("2"));
        assert_eq!(r.header("x-ratelimit-remaining-requests").as_deref(), Some(remaining));
        let reset = r.header("x-ratelimit-reset-requests").unwrap();
        assert!(reset.ends_with('s') && reset.trim_end_matches('s').parse::<u64>().unwrap() <= 60, "{reset}");
        assert_eq!(r.header("x-ratelimit-limit-tokens"), None, "no token limit configured");
    }
    let sim_calls = h.sim.requests().len();
    let r = call().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["type"], "requests");
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Rate limit reached for demo/nova-lite on requests per minute (RPM) under the access policy ai-gateway/limited: Limit 2, Used 2. Please try again in "),
        "{message}"
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert_eq!(h.sim.requests().len(), sim_calls, "a refused call never reaches Bedrock");
    // Other callers are not limited by someone else's policy.
    assert_eq!(h.chat(hello("demo/nova-lite")).await.status, StatusCode::OK);
    let m = metrics(&h).await;
    assert!(
        m.contains(
            r#"bedrock_gateway_rate_limited_requests_total{limit="requests",model="demo/nova-lite"} 1"#
        ),
        "{m}"
    );
    assert!(!m.contains(LIMITED_KEY));
}

#[tokio::test]
async fn tokens_per_minute_count_what_was_used() {
    fresh_minute().await;
    let h = start("{tokensPerMinute: 10}").await;
    let body = hello("demo/nova-lite").to_string();
    let r = h.call(Method::POST, "/v1/chat/completions", Some(LIMITED_KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-ratelimit-limit-tokens").as_deref(), Some("10"));
    assert_eq!(r.header("x-ratelimit-remaining-tokens").as_deref(), Some("10"));
    let r = h.call(Method::POST, "/v1/chat/completions", Some(LIMITED_KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK, "7 of 10 tokens used: still admitted");
    assert_eq!(r.header("x-ratelimit-remaining-tokens").as_deref(), Some("3"));
    let r = h.call(Method::POST, "/v1/chat/completions", Some(LIMITED_KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "tokens");
    assert_eq!(r.header("x-ratelimit-remaining-tokens").as_deref(), Some("0"));
}

#[tokio::test]
async fn budget_per_day() {
    let h = start("{budgetUsdPerDay: 20}").await;
    let body = hello("demo/pricey").to_string();
    for _ in 0..2 {
        let r = h.call(Method::POST, "/v1/chat/completions", Some(LIMITED_KEY), Some(&body)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    // $24 spent of $20.
    let r = h.call(Method::POST, "/v1/chat/completions", Some(LIMITED_KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["type"], "insufficient_quota");
    assert_eq!(e["error"]["code"], "insufficient_quota");
    assert!(e["error"]["message"].as_str().unwrap().contains("Limit $20.000000, Used $24.000000"), "{e}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    // The budget counts every model the policy grants.
    let r = h
        .call(
            Method::POST,
            "/v1/chat/completions",
            Some(LIMITED_KEY),
            Some(&hello("demo/nova-lite").to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn per_user_cost_label_only_when_enabled() {
    let h = Harness::start_configured(|app| {
        app.metrics = proxy::metrics::Metrics::with_user_label(true);
        app.usage = proxy::usage::Recorder::new(app.metrics.clone(), proxy::limits::Limiter::local());
    })
    .await;
    assert_eq!(h.chat(hello("demo/claude-sonnet")).await.status, StatusCode::OK);
    let m = metrics(&h).await;
    assert_close(
        sample(
            &m,
            r#"bedrock_gateway_cost_usd_total{account="demo",model="demo/claude-sonnet",team="quickstart",user="dev@example.com"}"#,
        ),
        0.000081,
    );
}

#[tokio::test]
async fn embeddings_are_priced_too() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/titan-embed-v2", "input": "the quick brown fox"}).to_string();
    let r = h.call(Method::POST, "/v1/embeddings", Some(KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tokens = r.json()["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(tokens > 0);
    // amazon.titan-embed-text-v2 at $0.02 per million input tokens.
    let cost: f64 = r.header("x-bedrock-gateway-cost-usd").unwrap().parse().unwrap();
    assert_close(cost, tokens as f64 * 0.02 / 1e6);
    let m = metrics(&h).await;
    assert_close(
        sample(
            &m,
            r#"bedrock_gateway_cost_usd_total{account="demo",model="demo/titan-embed-v2",team="quickstart"}"#,
        ),
        cost,
    );
}

#[tokio::test]
async fn images_are_priced_per_image() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/nova-canvas", "prompt": "a lighthouse", "n": 2, "size": "1024x1024"})
        .to_string();
    let r = h.call(Method::POST, "/v1/images/generations", Some(KEY), Some(&body)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    // amazon.nova-canvas at $0.04 per image.
    assert_eq!(r.header("x-bedrock-gateway-cost-usd").as_deref(), Some("0.08"));
}

#[tokio::test]
async fn metrics_cover_latency_upstream_errors_and_config_under_prometheus_names() {
    use prometheus::core::Collector;

    let h = Harness::start().await;
    assert_eq!(h.chat(hello("demo/claude-sonnet")).await.status, StatusCode::OK);
    let mut stream = hello("demo/nova-lite");
    stream["stream"] = json!(true);
    assert_eq!(h.chat(stream).await.status, StatusCode::OK);
    let throttled = json!({"model": "demo/nova-lite", "messages": [
        {"role": "user", "content": "[[sim:error=ThrottlingException]]"}]});
    assert_eq!(h.chat(throttled).await.status, StatusCode::TOO_MANY_REQUESTS);
    let m = metrics(&h).await;
    assert_eq!(
        sample(
            &m,
            r#"bedrock_gateway_request_duration_seconds_count{endpoint="chat",model="demo/claude-sonnet"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            r#"bedrock_gateway_upstream_errors_total{error_type="ThrottlingException",model="demo/nova-lite"}"#
        ),
        3.0,
        "the first attempt and its two retries"
    );
    assert_eq!(
        sample(&m, r#"bedrock_gateway_requests_total{endpoint="chat",model="demo/nova-lite",status="429"}"#),
        1.0
    );
    assert!(sample(&m, "bedrock_gateway_config_generation") >= 1.0, "{m}");
    assert_eq!(sample(&m, r#"bedrock_gateway_config_reloads_total{result="success"}"#), 1.0);

    // Prometheus naming: one prefix, snake case, counters end in `_total`, durations in base units.
    let mut families: Vec<(String, String)> = m
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_once(' ').map(|(n, t)| (n.to_owned(), t.to_owned())).unwrap())
        .collect();
    let credentials = proxy::credentials::CredentialMetrics::new();
    families.extend(credentials.desc().iter().map(|d| {
        let kind = if d.fq_name.ends_with("_total") { "counter" } else { "gauge" };
        (d.fq_name.clone(), kind.to_owned())
    }));
    assert!(families.len() >= 11, "{families:?}");
    for (name, kind) in &families {
        assert!(name.starts_with("bedrock_gateway_"), "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
        match kind.as_str() {
            "counter" => assert!(name.ends_with("_total"), "counter {name} must end in _total"),
            "histogram" => assert!(name.ends_with("_seconds"), "histogram {name} must be in seconds"),
            "gauge" => assert!(!name.ends_with("_total"), "gauge {name} must not end in _total"),
            other => panic!("unexpected type {other} of {name}"),
        }
    }
}
