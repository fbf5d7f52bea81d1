//! The fault matrix: every simulator fault with exactly what an OpenAI client sees, and the
//! retries, fallbacks, timeouts and cancellation around Bedrock calls.
//!
//! Before the first byte reaches the client a fault is an HTTP status with an OpenAI error
//! body (after the retries and fallbacks it deserves); once a stream has started it is an
//! `error` event as the last SSE event, with no `[DONE]` after it (the OpenAI SDKs raise on an
//! event carrying `error`, and a missing `[DONE]` tells raw SSE readers the answer is incomplete).

mod fixtures;

use std::time::Duration;

use bytes::Bytes;
use fixtures::{Harness, KEY, sse_events};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use proxy::resilience::Policy;
use proxy::upstream::Upstream;
use serde_json::{Value, json};

/// A model answered from two regions and then another model; one that times out fast, alone
/// and with a fallback; an account whose endpoint refuses connections, falling back to a
/// working model.
const EXTRA: &str = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-ha, namespace: ai-gateway}
spec:
  accountRef: demo
  modelId: amazon.nova-lite-v1:0
  region: us-east-1
  fallbacks: [{region: us-west-2}, {model: claude-sonnet}]
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-quick, namespace: ai-gateway}
spec: {accountRef: demo, modelId: amazon.nova-pro-v1:0, timeouts: {firstByteMs: 150}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-quick-ha, namespace: ai-gateway}
spec: {accountRef: demo, modelId: amazon.nova-pro-v1:0, timeouts: {firstByteMs: 150}, fallbacks: [{model: nova-lite}]}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: dead, namespace: ai-gateway}
spec:
  defaultRegion: us-east-1
  auth: {accessKey: {secretRef: {name: aws-keys}}}
  endpoints: {runtime: 'http://127.0.0.1:1', control: 'http://127.0.0.1:1'}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova, namespace: ai-gateway}
spec: {accountRef: dead, modelId: amazon.nova-lite-v1:0}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-rescued, namespace: ai-gateway}
spec: {accountRef: dead, modelId: amazon.nova-lite-v1:0, fallbacks: [{model: nova-lite}]}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: dead, namespace: ai-gateway}
spec:
  subjects: [{team: quickstart}]
  models: ['dead/*']
";

/// Fast backoff so that tests do not wait; an idle timeout short enough to observe.
fn policy() -> Policy {
    Policy {
        max_attempts: 3,
        backoff_base: Duration::from_millis(2),
        backoff_max: Duration::from_millis(10),
        deadline: Duration::from_secs(10),
        first_byte_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_millis(300),
    }
}

async fn harness() -> Harness {
    harness_with(policy(), "").await
}

/// A harness with `policy` and `more` manifests beside [`EXTRA`].
async fn harness_with(policy: Policy, more: &str) -> Harness {
    let mut extra = vec![("extra.yaml", EXTRA)];
    if !more.is_empty() {
        extra.push(("more.yaml", more));
    }
    Harness::start_full(bedrock_sim::SimConfig::default(), &extra, None, |app| {
        app.resilience = policy;
        // Short enough for the connect-timeout test; loopback connects take microseconds.
        app.upstream = Upstream::with_connect_timeout(Duration::from_millis(200));
    })
    .await
}

fn ask(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
}

fn error(message: &str, kind: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The value of one sample of the proxy's /metrics, 0 when absent.
async fn metric(h: &Harness, sample: &str) -> u64 {
    let text = h.call(http::Method::GET, "/metrics", None, None).await.text();
    text.lines().find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0)
}

/// The region of each recorded request's SigV4 scope, and its path.
fn calls(h: &Harness) -> Vec<(String, String)> {
    h.sim
        .requests()
        .iter()
        .map(|r| {
            let auth = &r.headers.iter().find(|(k, _)| k == "authorization").unwrap().1;
            let region = auth.split("Credential=").nth(1).unwrap().split('/').nth(2).unwrap().to_owned();
            (region, r.path.clone())
        })
        .collect()
}

const NOVA_LITE: &str = "/model/amazon.nova-lite-v1%3A0/converse";

#[tokio::test]
async fn throttled_then_answered_is_retried_with_the_same_bytes() {
    let h = harness().await;
    let r = h.chat(ask("demo/nova-lite", "hi [[sim:error=ThrottlingException]][[sim:times=2]]", false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "Simulated reply to: hi");
    assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-lite; region=us-east-1");
    let recorded = h.sim.requests();
    assert_eq!(recorded.len(), 3);
    assert!(recorded.iter().all(|q| q.path == NOVA_LITE && q.body == recorded[0].body));
    let retried = "bedrock_gateway_upstream_retries_total{account=\"demo\",model=\"demo/nova-lite\",reason=\"throttled\"}";
    assert_eq!(metric(&h, retried).await, 2);
}

#[tokio::test]
async fn every_attempt_is_signed_anew() {
    let h = harness().await;
    // The latency puts more than a second (SigV4's resolution) between the two signatures.
    let text = "hi [[sim:latency=1100]][[sim:error=ThrottlingException]][[sim:times=1]]";
    let r = h.chat(ask("demo/nova-lite", text, false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let recorded = h.sim.requests();
    assert_eq!(recorded.len(), 2);
    let date = |i: usize| recorded[i].header("x-amz-date").unwrap().to_owned();
    assert!(date(1) > date(0), "{} then {}", date(0), date(1));
    assert_ne!(recorded[0].header("authorization"), recorded[1].header("authorization"));
    assert_eq!(recorded[0].body, recorded[1].body);
}

#[tokio::test]
async fn unavailable_stream_is_retried_before_it_starts() {
    let h = harness().await;
    let text = "one two [[sim:error=ServiceUnavailableException]][[sim:times=1]]";
    let r = h.chat(ask("demo/nova-lite", text, true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(sse_events(&r.text()).last().unwrap(), "[DONE]");
    assert_eq!(h.sim.requests().len(), 2);
    let retried = "bedrock_gateway_upstream_retries_total{account=\"demo\",model=\"demo/nova-lite\",reason=\"unavailable\"}";
    assert_eq!(metric(&h, retried).await, 1);
}

#[tokio::test]
async fn exhausted_retries_answer_the_aws_reason() {
    let h = harness().await;
    for (exception, status, expected, reason) in [
        (
            "ThrottlingException",
            429,
            error(
                "Bedrock is rate limiting requests to model `demo/nova-lite`: Too many requests, please wait \
                 before trying again.",
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            "throttled",
        ),
        (
            "ServiceUnavailableException",
            503,
            error(
                "Model `demo/nova-lite` is temporarily unavailable on Bedrock: Bedrock is unable to process your \
                 request.",
                "server_error",
                "service_unavailable",
            ),
            "unavailable",
        ),
        (
            "ModelNotReadyException",
            503,
            error(
                "Model `demo/nova-lite` is temporarily unavailable on Bedrock: Model is not ready to serve \
                 inference requests. Try again later.",
                "server_error",
                "service_unavailable",
            ),
            "unavailable",
        ),
    ] {
        h.sim.clear_requests();
        for stream in [false, true] {
            let r = h.chat(ask("demo/nova-lite", &format!("hi [[sim:error={exception}]]"), stream)).await;
            assert_eq!(r.status.as_u16(), status, "{exception}");
            assert_eq!(r.content_type, "application/json");
            assert_eq!(r.json(), expected, "{exception}");
        }
        assert_eq!(h.sim.requests().len(), 6, "{exception}: 3 attempts per request");
        let sample = format!(
            "bedrock_gateway_upstream_retries_total{{account=\"demo\",model=\"demo/nova-lite\",reason=\"{reason}\"}}"
        );
        assert!(metric(&h, &sample).await >= 4, "{sample}");
    }
    // 5xx without a known meaning is retried too, and ends in the 502 naming it.
    h.sim.clear_requests();
    let r = h.chat(ask("demo/nova-lite", "hi [[sim:error=InternalServerException]]", false)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("(HTTP 500, InternalServerException)"));
    assert_eq!(h.sim.requests().len(), 3);
}

#[tokio::test]
async fn errors_about_the_request_are_not_retried() {
    let h = harness().await;
    for (exception, status) in [("ValidationException", 400), ("AccessDeniedException", 403)] {
        h.sim.clear_requests();
        let r = h.chat(ask("demo/nova-ha", &format!("hi [[sim:error={exception}]]"), false)).await;
        assert_eq!(r.status.as_u16(), status, "{exception}");
        assert_eq!(h.sim.requests().len(), 1, "{exception}: neither retried nor handed to a fallback");
    }
}

#[tokio::test]
async fn a_throttled_region_hands_over_to_the_next_region_with_the_same_body() {
    let h = harness().await;
    let text = "hi [[sim:error=ThrottlingException]][[sim:fault-region=us-east-1]]";
    for stream in [false, true] {
        h.sim.clear_requests();
        let r = h.chat(ask("demo/nova-ha", text, stream)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-ha; region=us-west-2");
        let path = if stream { "/model/amazon.nova-lite-v1%3A0/converse-stream" } else { NOVA_LITE };
        let regions: Vec<(String, String)> = ["us-east-1", "us-east-1", "us-east-1", "us-west-2"]
            .map(|r| (r.to_owned(), path.to_owned()))
            .into();
        assert_eq!(calls(&h), regions);
        let recorded = h.sim.requests();
        assert!(
            recorded.iter().all(|q| q.body == recorded[0].body),
            "no re-translation for a region fallback"
        );
    }
    let sample = "bedrock_gateway_fallbacks_total{model=\"demo/nova-ha\",reason=\"throttled\",served_by=\"demo/nova-ha\"}";
    assert_eq!(metric(&h, sample).await, 2);
}

#[tokio::test]
async fn another_model_answers_and_is_billed_when_both_regions_are_unavailable() {
    let h = harness().await;
    let text = "hi [[sim:error=ServiceUnavailableException]][[sim:fault-model=amazon.nova-lite-v1:0]]";
    let r = h.chat(ask("demo/nova-ha", text, false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/claude-sonnet; region=us-west-2");
    assert_eq!(r.json()["model"], "demo/nova-ha", "the caller's model name stays");
    let paths: Vec<String> = calls(&h).into_iter().map(|(region, path)| format!("{region} {path}")).collect();
    assert_eq!(
        paths,
        [
            "us-east-1 /model/amazon.nova-lite-v1%3A0/converse",
            "us-east-1 /model/amazon.nova-lite-v1%3A0/converse",
            "us-east-1 /model/amazon.nova-lite-v1%3A0/converse",
            "us-west-2 /model/amazon.nova-lite-v1%3A0/converse",
            "us-west-2 /model/amazon.nova-lite-v1%3A0/converse",
            "us-west-2 /model/amazon.nova-lite-v1%3A0/converse",
            "us-west-2 /model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse",
        ]
    );
    // Priced as the model that answered: the same cost as asking it directly.
    let direct = h.chat(ask("demo/claude-sonnet", text, false)).await;
    assert_eq!(direct.status, StatusCode::OK);
    let cost = r.header("x-bedrock-gateway-cost-usd").unwrap();
    assert_eq!(cost, direct.header("x-bedrock-gateway-cost-usd").unwrap());
    let tokens = "bedrock_gateway_tokens_total{model=\"demo/claude-sonnet\",type=\"input\"}";
    assert_eq!(metric(&h, tokens).await, 2 * r.json()["usage"]["prompt_tokens"].as_u64().unwrap());
    assert_eq!(metric(&h, "bedrock_gateway_tokens_total{model=\"demo/nova-ha\",type=\"input\"}").await, 0);
}

#[tokio::test]
async fn connection_errors_are_retried_then_fall_back() {
    let h = harness().await;
    let r = h.chat(ask("dead/nova", "hi", false)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        r.json(),
        error(
            "The gateway could not reach Bedrock; the request was not completed.",
            "server_error",
            "upstream_error"
        )
    );
    let retried =
        "bedrock_gateway_upstream_retries_total{account=\"dead\",model=\"dead/nova\",reason=\"connection\"}";
    assert_eq!(metric(&h, retried).await, 2);

    let r = h.chat(ask("dead/nova-rescued", "hi", true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-lite; region=us-east-1");
    assert_eq!(sse_events(&r.text()).last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn a_slow_first_byte_is_a_504_and_the_call_is_dropped() {
    let h = harness().await;
    for stream in [false, true] {
        let r = h.chat(ask("demo/nova-quick", "hi [[sim:latency=2000]]", stream)).await;
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            r.json(),
            error(
                "Bedrock did not start answering for model `demo/nova-quick` within 150 ms.",
                "server_error",
                "timeout"
            )
        );
    }
    assert_eq!(h.sim.requests().len(), 2, "a timeout is not retried");
    wait_for_cancelled(&h, 2).await;
}

const NOVA_LITE_STREAM: &str = "/model/amazon.nova-lite-v1%3A0/converse-stream";

/// The text of a finished stream's content chunks; panics unless it ends with `[DONE]`.
fn streamed_text(r: &fixtures::Reply) -> String {
    let events = sse_events(&r.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect()
}

#[tokio::test]
async fn a_throttling_first_frame_is_retried_before_the_caller_gets_a_byte() {
    let h = harness().await;
    let text = "one two [[sim:first-frame=throttlingException]][[sim:times=2]]";
    let r = h.chat(ask("demo/nova-lite", text, true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.content_type, "text/event-stream");
    assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-lite; region=us-east-1");
    assert_eq!(streamed_text(&r), "Simulated reply to: one two");
    let recorded = h.sim.requests();
    assert_eq!(recorded.len(), 3);
    assert!(recorded.iter().all(|q| q.path == NOVA_LITE_STREAM && q.body == recorded[0].body));
    let retried = "bedrock_gateway_upstream_retries_total{account=\"demo\",model=\"demo/nova-lite\",reason=\"throttled\"}";
    assert_eq!(metric(&h, retried).await, 2);
    let errors =
        "bedrock_gateway_upstream_errors_total{error_type=\"ThrottlingException\",model=\"demo/nova-lite\"}";
    assert_eq!(metric(&h, errors).await, 2);
}

#[tokio::test]
async fn a_first_frame_exception_is_an_http_error_after_its_retries() {
    let h = harness().await;
    for (exception, attempts, status, expected) in [
        (
            "throttlingException",
            3,
            429,
            error(
                "Bedrock is rate limiting requests to model `demo/nova-lite`: Too many requests, please wait \
                 before trying again.",
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
        ),
        (
            "serviceUnavailableException",
            3,
            503,
            error(
                "Model `demo/nova-lite` is temporarily unavailable on Bedrock: Bedrock is unable to process your \
                 request.",
                "server_error",
                "service_unavailable",
            ),
        ),
        (
            "internalServerException",
            3,
            502,
            error(
                "Bedrock failed while streaming model `demo/nova-lite` (internalServerException): The system \
                 encountered an unexpected error during processing. Try your request again.",
                "server_error",
                "upstream_error",
            ),
        ),
        // Errors about the request or the model are not retried, but no byte went out either.
        (
            "validationException",
            1,
            400,
            json!({"error": {
                "message": "The model returned a validation error while streaming the response.",
                "type": "invalid_request_error",
                "param": null,
                "code": null,
            }}),
        ),
        (
            "modelStreamErrorException",
            1,
            502,
            error(
                "Bedrock failed while streaming model `demo/nova-lite` (modelStreamErrorException): The model \
                 encountered an error while streaming the response.",
                "server_error",
                "upstream_error",
            ),
        ),
        // Bytes that are no frame: nothing to retry on, and the caller still gets no half stream.
        (
            "garbage",
            1,
            502,
            error("Bedrock sent a malformed event stream.", "server_error", "upstream_error"),
        ),
    ] {
        h.sim.clear_requests();
        let r = h.chat(ask("demo/nova-lite", &format!("hi [[sim:first-frame={exception}]]"), true)).await;
        assert_eq!(r.status.as_u16(), status, "{exception}: {}", r.text());
        assert_eq!(r.content_type, "application/json", "{exception}");
        assert_eq!(r.json(), expected, "{exception}");
        assert_eq!(h.sim.requests().len(), attempts, "{exception}");
    }
}

#[tokio::test]
async fn a_throttling_first_frame_hands_over_to_the_fallbacks_which_are_billed() {
    let h = harness().await;
    let text = "hi [[sim:first-frame=throttlingException]][[sim:fault-region=us-east-1]]";
    let r = h.chat(ask("demo/nova-ha", text, true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-ha; region=us-west-2");
    assert_eq!(streamed_text(&r), "Simulated reply to: hi");
    let regions: Vec<String> = calls(&h).into_iter().map(|(region, _)| region).collect();
    assert_eq!(regions, ["us-east-1", "us-east-1", "us-east-1", "us-west-2"]);

    h.sim.clear_requests();
    let nova_tokens = "bedrock_gateway_tokens_total{model=\"demo/nova-ha\",type=\"input\"}";
    let nova_before = metric(&h, nova_tokens).await;
    let text = "hi [[sim:first-frame=serviceUnavailableException]][[sim:fault-model=amazon.nova-lite-v1:0]]";
    let mut body = ask("demo/nova-ha", text, true);
    body["stream_options"] = json!({"include_usage": true});
    let r = h.chat(body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/claude-sonnet; region=us-west-2");
    assert_eq!(streamed_text(&r), "Simulated reply to: hi");
    assert_eq!(h.sim.requests().len(), 7, "3 attempts in each region, then the other model");
    let events = sse_events(&r.text());
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    let prompt = usage["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt > 0, "{usage}");
    // Usage goes to the model that answered, and its stream ended normally (status 200).
    let tokens = "bedrock_gateway_tokens_total{model=\"demo/claude-sonnet\",type=\"input\"}";
    assert_eq!(metric(&h, tokens).await, prompt);
    assert_eq!(metric(&h, nova_tokens).await, nova_before);
    for (served_by, reason, n) in [("demo/nova-ha", "throttled", 1), ("demo/claude-sonnet", "unavailable", 1)]
    {
        let sample = format!(
            "bedrock_gateway_fallbacks_total{{model=\"demo/nova-ha\",reason=\"{reason}\",served_by=\"{served_by}\"}}"
        );
        assert_eq!(metric(&h, &sample).await, n, "{sample}");
    }
}

#[tokio::test]
async fn a_slow_first_byte_moves_on_to_the_fallback_at_once() {
    let h = harness().await;
    let text = "hi [[sim:latency=2000]][[sim:fault-model=amazon.nova-pro-v1:0]]";
    for stream in [false, true] {
        let r = h.chat(ask("demo/nova-quick-ha", text, stream)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-lite; region=us-east-1");
        if stream {
            assert_eq!(streamed_text(&r), "Simulated reply to: hi");
        } else {
            assert_eq!(r.json()["choices"][0]["message"]["content"], "Simulated reply to: hi");
            assert_eq!(r.json()["model"], "demo/nova-quick-ha");
        }
    }
    let paths: Vec<String> = calls(&h).into_iter().map(|(_, path)| path).collect();
    assert_eq!(
        paths,
        [
            "/model/amazon.nova-pro-v1%3A0/converse",
            NOVA_LITE,
            "/model/amazon.nova-pro-v1%3A0/converse-stream",
            NOVA_LITE_STREAM,
        ],
        "the slow model is not retried"
    );
    let sample = "bedrock_gateway_fallbacks_total{model=\"demo/nova-quick-ha\",reason=\"first_byte_timeout\",served_by=\"demo/nova-lite\"}";
    assert_eq!(metric(&h, sample).await, 2);
    let text = h.call(http::Method::GET, "/metrics", None, None).await.text();
    assert!(
        !text.contains("retries_total{account=\"demo\",model=\"demo/nova-quick-ha\""),
        "no retry:\n{text}"
    );
    wait_for_cancelled(&h, 2).await;
}

#[tokio::test]
async fn no_fallback_starts_after_the_deadline() {
    let h = harness_with(Policy { deadline: Duration::from_millis(100), ..policy() }, "").await;
    let r = h.chat(ask("demo/nova-quick-ha", "hi [[sim:latency=2000]]", true)).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        r.json(),
        error(
            "Bedrock did not start answering for model `demo/nova-quick-ha` within 150 ms.",
            "server_error",
            "timeout"
        )
    );
    assert_eq!(h.sim.requests().len(), 1);
}

/// A listener whose accept queue is full: connecting to it hangs until the client gives up
/// (Linux drops the SYN), the way a firewalled or black-holed endpoint behaves.
struct Blackhole {
    url: String,
    _listener: tokio::net::TcpListener,
    _queued: std::net::TcpStream,
}

fn blackhole() -> Blackhole {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let queued = std::net::TcpStream::connect(addr).unwrap();
    Blackhole { url: format!("http://{addr}"), _listener: listener, _queued: queued }
}

#[tokio::test]
async fn a_connect_timeout_is_retried_then_falls_back() {
    let hole = blackhole();
    let more = format!(
        "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: stuck, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth: {{accessKey: {{secretRef: {{name: aws-keys}}}}}}
  endpoints: {{runtime: '{url}', control: '{url}'}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova-stuck, namespace: ai-gateway}}
spec: {{accountRef: stuck, modelId: amazon.nova-lite-v1:0}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova-unstuck, namespace: ai-gateway}}
spec: {{accountRef: stuck, modelId: amazon.nova-lite-v1:0, fallbacks: [{{model: nova-lite}}]}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: stuck, namespace: ai-gateway}}
spec:
  subjects: [{{team: quickstart}}]
  models: ['stuck/*']
",
        url = hole.url
    );
    let h = harness_with(policy(), &more).await;
    let r = h.chat(ask("stuck/nova-stuck", "hi", true)).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(
        r.json(),
        error(
            "The gateway could not connect to Bedrock within 200 ms; the request was not completed.",
            "server_error",
            "timeout"
        )
    );
    let retried = "bedrock_gateway_upstream_retries_total{account=\"stuck\",model=\"stuck/nova-stuck\",reason=\"connect_timeout\"}";
    assert_eq!(metric(&h, retried).await, 2);

    for stream in [false, true] {
        let r = h.chat(ask("stuck/nova-unstuck", "hi", stream)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-bedrock-gateway-served-by").unwrap(), "demo/nova-lite; region=us-east-1");
    }
    assert_eq!(h.sim.requests().len(), 2, "only the fallback reached Bedrock");
    let sample = "bedrock_gateway_fallbacks_total{model=\"stuck/nova-unstuck\",reason=\"connect_timeout\",served_by=\"demo/nova-lite\"}";
    assert_eq!(metric(&h, sample).await, 2);
}

#[tokio::test]
async fn a_stalled_stream_ends_with_an_error_event() {
    let h = harness().await;
    let r = h.chat(ask("demo/nova-lite", "one two [[sim:gap=2000]]", true)).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = sse_events(&r.text());
    assert_eq!(events.len(), 2, "{events:?}");
    let first: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let last: Value = serde_json::from_str(&events[1]).unwrap();
    assert_eq!(
        last,
        error(
            "Bedrock stopped sending the answer for model `demo/nova-lite`: nothing arrived for 300 ms.",
            "server_error",
            "timeout"
        )
    );
    wait_for_cancelled(&h, 1).await;
}

/// The SSE events of a stream that `fault` breaks after the first delta.
async fn broken_stream(h: &Harness, fault: &str) -> Vec<Value> {
    h.sim.clear_requests();
    let r = h.chat(ask("demo/nova-lite", &format!("one two three [[sim:{fault}]]"), true)).await;
    assert_eq!(r.status, StatusCode::OK, "{fault}");
    assert_eq!(r.content_type, "text/event-stream");
    assert_eq!(h.sim.requests().len(), 1, "{fault}: a started stream is never retried");
    let events = sse_events(&r.text());
    assert!(!events.contains(&"[DONE]".to_owned()), "{fault}: no [DONE] after an error");
    events.iter().map(|e| serde_json::from_str(e).unwrap()).collect()
}

#[tokio::test]
async fn mid_stream_faults_end_with_exactly_one_error_event() {
    let h = harness().await;
    let broken_off = error(
        "The Bedrock stream broke off before the answer was complete.",
        "server_error",
        "upstream_error",
    );
    let malformed = error("Bedrock sent a malformed event stream.", "server_error", "upstream_error");
    let ended =
        error("The Bedrock stream ended before the answer was complete.", "server_error", "upstream_error");
    let throttled = error(
        "Bedrock is rate limiting requests to model `demo/nova-lite`: Too many requests, please wait before trying \
         again.",
        "rate_limit_error",
        "rate_limit_exceeded",
    );
    for (fault, expected) in [
        ("reset", broken_off),
        ("garbage", malformed.clone()),
        ("bad-crc", malformed),
        ("truncated", ended),
        ("stream-error=throttlingException", throttled),
    ] {
        let events = broken_stream(&h, fault).await;
        assert_eq!(events.len(), 3, "{fault}: {events:?}");
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant", "{fault}");
        assert_eq!(events[1]["choices"][0]["delta"]["content"], "Simulated ", "{fault}");
        assert_eq!(events[2], expected, "{fault}");
    }
}

/// Waits until the simulator saw `n` calls abandoned by the proxy.
async fn wait_for_cancelled(h: &Harness, n: u64) {
    for _ in 0..100 {
        if h.sim.cancelled() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(h.sim.cancelled(), n);
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_bedrock_stream() {
    let h = harness().await;
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let body = ask("demo/nova-lite", "[[sim:reply=a b c d e f g h i j]] [[sim:gap=100]]", true).to_string();
    let request = Request::post(format!("{}/v1/chat/completions", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(first.starts_with(b"data: "));
    assert_eq!(h.sim.cancelled(), 0);
    drop(body);
    drop(client);
    wait_for_cancelled(&h, 1).await;
}

#[tokio::test]
async fn a_client_that_gives_up_waiting_cancels_the_bedrock_call() {
    let h = harness().await;
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let body = ask("demo/nova-lite", "hi [[sim:latency=3000]]", false).to_string();
    let request = Request::post(format!("{}/v1/chat/completions", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(300), client.request(request)).await;
    assert!(gave_up.is_err(), "the answer cannot come before the simulated latency");
    drop(client);
    wait_for_cancelled(&h, 1).await;
}
