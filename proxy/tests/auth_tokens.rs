//! Kubernetes service-account tokens end to end: a local HTTP server stands in for the API
//! server and answers TokenReviews exactly as Kubernetes does (201, the review echoed back with
//! its status); the proxy serves a service account its AccessPolicy names.

mod fixtures;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use fixtures::Harness;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy::auth::tokenreview::{TokenReviewConfig, TokenReviewer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const PROXY_TOKEN: &str = "proxy-own-service-account-token";

/// A JWT-shaped token; the fake API server knows it by its `sub`.
fn token(sub: &str, exp_in: u64) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + exp_in;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "kid": "k1"})),
        b64(json!({"sub": sub, "exp": exp, "aud": ["bedrock-gateway"]}))
    )
}

/// The fake API server: counts reviews; `apps/bot` and `apps/other-audience` are valid tokens.
async fn api_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let reviews = Arc::new(AtomicUsize::new(0));
    let counter = reviews.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let counter = counter.clone();
                    async move { Ok::<_, Infallible>(review(req, &counter).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, reviews)
}

async fn review(req: Request<Incoming>, counter: &AtomicUsize) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    if req.method() != Method::POST || req.uri().path() != "/apis/authentication.k8s.io/v1/tokenreviews" {
        return reply(StatusCode::NOT_FOUND, json!({"kind": "Status", "code": 404}));
    }
    if req.headers().get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {PROXY_TOKEN}"))
    {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"kind": "Status", "code": 401, "reason": "Unauthorized"}),
        );
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let body: Value = serde_json::from_slice(&req.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(body["kind"], "TokenReview");
    let token = body["spec"]["token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let requested: Vec<&str> =
        body["spec"]["audiences"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let (ns, name, token_audience) = match claims["sub"].as_str() {
        Some("apps/bot") => ("apps", "bot", "bedrock-gateway"),
        Some("apps/other-audience") => ("apps", "other", "https://kubernetes.default.svc"),
        _ => ("", "", ""),
    };
    // As Kubernetes: unknown tokens and tokens for another audience are not authenticated.
    let status = if ns.is_empty() || !requested.contains(&token_audience) {
        json!({"user": {}, "error": "[invalid bearer token, token audiences [\"x\"] is invalid for the target audiences]"})
    } else {
        json!({
            "authenticated": true,
            "user": {
                "username": format!("system:serviceaccount:{ns}:{name}"),
                "uid": "6c2a4f6e-0b1e-4a53-8f2d-0d6f2f6b1f10",
                "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["bot-7d9f"]}
            },
            "audiences": [token_audience]
        })
    };
    reply(
        StatusCode::CREATED,
        json!({"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
               "metadata": {"creationTimestamp": null}, "spec": body["spec"], "status": status}),
    )
}

const SA_POLICY: &str = r#"apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: bot, namespace: apps}
spec:
  subjects: [{serviceAccount: {namespace: apps, name: bot}}]
  models: ["demo/nova-lite"]
"#;

async fn start(api_url: &str) -> Harness {
    let dir = std::env::temp_dir().join(format!("bgw-sa-token-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{PROXY_TOKEN}\n")).unwrap();
    let config = TokenReviewConfig {
        api_url: api_url.to_owned(),
        token_file,
        ca_file: None,
        audience: "bedrock-gateway".into(),
    };
    let h =
        Harness::start_configured(|app| app.auth.token_review = Some(TokenReviewer::new(config).unwrap()))
            .await;
    for attempt in 0..100 {
        if attempt % 10 == 0 {
            std::fs::write(h.dir.join("sa-policy.yaml"), format!("# {attempt}\n{SA_POLICY}")).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = h.call(Method::GET, "/v1/models", Some(&token("apps/bot", 3600)), None).await;
        if r.status == StatusCode::OK && r.json()["data"].as_array().is_some_and(|d| !d.is_empty()) {
            return h;
        }
    }
    panic!("the service-account policy was not served");
}

#[tokio::test]
async fn service_account_tokens_are_reviewed_cached_and_authorized() {
    let (api, reviews) = api_server().await;
    let h = start(&api).await;
    let bot = token("apps/bot", 3600);
    let r = h.call(Method::GET, "/v1/models", Some(&bot), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["demo/nova-lite"]);
    let body = r#"{"model":"demo/nova-lite","messages":[{"role":"user","content":"hi"}]}"#;
    let before = reviews.load(Ordering::SeqCst);
    assert_eq!(
        h.call(Method::POST, "/v1/chat/completions", Some(&bot), Some(body)).await.status,
        StatusCode::OK
    );
    assert_eq!(reviews.load(Ordering::SeqCst), before, "a reviewed token is cached until it expires");
    // The policy names the service account, not its other models.
    let other = r#"{"model":"demo/claude-sonnet","messages":[{"role":"user","content":"hi"}]}"#;
    let r = h.call(Method::POST, "/v1/chat/completions", Some(&bot), Some(other)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert!(!metrics.contains(&bot) && !metrics.contains(PROXY_TOKEN));
}

#[tokio::test]
async fn unknown_and_wrong_audience_tokens_are_401() {
    let (api, reviews) = api_server().await;
    let h = start(&api).await;
    for t in [token("apps/stranger", 3600), token("apps/other-audience", 3600)] {
        let r = h.call(Method::GET, "/v1/models", Some(&t), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
        assert!(!r.text().contains(&t));
    }
    // A refused token is remembered for a while: retrying it does not ask again.
    let before = reviews.load(Ordering::SeqCst);
    let r = h.call(Method::GET, "/v1/models", Some(&token("apps/stranger", 3600)), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reviews.load(Ordering::SeqCst), before);
    // Keys that are not JWTs never reach the API server.
    let before = reviews.load(Ordering::SeqCst);
    assert_eq!(
        h.call(Method::GET, "/v1/models", Some("sk-bgw-wrong"), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(reviews.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn unreachable_api_server_is_503() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = TokenReviewConfig {
        api_url: format!("http://127.0.0.1:{port}"),
        token_file: "/nonexistent-token-file".into(),
        ca_file: None,
        audience: "bedrock-gateway".into(),
    };
    let h =
        Harness::start_configured(|app| app.auth.token_review = Some(TokenReviewer::new(config).unwrap()))
            .await;
    let r = h.call(Method::GET, "/v1/models", Some(&token("apps/bot", 3600)), None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    // API keys keep working.
    assert_eq!(h.call(Method::GET, "/v1/models", Some(fixtures::KEY), None).await.status, StatusCode::OK);
}
