//! `--metrics-listen`: `/metrics`, `/healthz` and `/readyz` on their own port; `/metrics` leaves
//! the API listener.

#[allow(dead_code)]
mod config_support;
mod fixtures;

use std::sync::Arc;

use bytes::Bytes;
use config_support::{Parts, say};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proxy::server::{App, serve_ops};
use tokio::net::TcpListener;

/// Status and body of `method path` on `base`.
async fn call(base: &str, method: Method, path: &str) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::builder().method(method).uri(format!("{base}{path}")).body(Full::default()).unwrap();
    let resp = client.request(req).await.unwrap();
    let status = resp.status();
    (status, String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_move_to_the_ops_listener() {
    let parts = Parts::new().await;
    let mut app = App::new(parts.store.clone(), parts.metrics.clone(), 1024 * 1024);
    app.metrics_on_api = false;
    let app = Arc::new(app);
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops_url = format!("http://{}", ops.local_addr().unwrap());
    tokio::spawn(serve_ops(ops, app.clone()));
    let (sim, dir, publisher, rendered) = (parts.sim, parts.dir, parts.publisher, parts.rendered);
    let h = fixtures::Harness::serve(sim, dir, app).await;

    // No config yet: not ready on either listener, alive on both.
    assert_eq!(
        call(&ops_url, Method::GET, "/readyz").await,
        (StatusCode::SERVICE_UNAVAILABLE, "no config loaded\n".into())
    );
    assert_eq!(call(&ops_url, Method::GET, "/healthz").await, (StatusCode::OK, "ok\n".into()));
    assert_eq!(h.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert!(tokio::task::spawn_blocking(move || publisher.apply("test", Ok(rendered))).await.unwrap());
    assert_eq!(call(&ops_url, Method::GET, "/readyz").await, (StatusCode::OK, "ready\n".into()));
    assert_eq!(h.call(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);

    // Metrics count API traffic but are served only on the ops port.
    assert_eq!(h.chat(say("demo/nova-lite", "count me")).await.status, StatusCode::OK);
    let (status, metrics) = call(&ops_url, Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains(
            "bedrock_gateway_requests_total{endpoint=\"chat\",model=\"demo/nova-lite\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("bedrock_gateway_config_reloads_total{result=\"success\"} 1"), "{metrics}");
    let r = h.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["message"], "Unknown request URL: GET /metrics.");

    // The ops port serves nothing else.
    let (status, body) = call(&ops_url, Method::GET, "/v1/models").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"],
        serde_json::json!({"message": "Unknown request URL: GET /v1/models.", "type": "invalid_request_error",
            "param": null, "code": "not_found"})
    );
    let (status, body) = call(&ops_url, Method::POST, "/metrics").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]["message"],
        "POST is not allowed on /metrics."
    );
}
