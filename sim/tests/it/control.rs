//! Control endpoints, request recording and shutdown.

use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::common::*;

fn control(method: &str, url: String) -> Request<Full<Bytes>> {
    Request::builder().method(method).uri(url).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn records_raw_requests_and_serves_them_as_json() {
    let sim = start().await;
    let client = http1();
    let path = format!("{}?trace=a%2Fb", converse_path());
    let body = user_body("recorded");
    assert_eq!(send(&client, post(&sim.url(), &path, body.clone(), test_sigv4())).await.status, 200);

    let health = send(&client, control("GET", format!("{}/_sim/health", sim.url()))).await;
    assert_eq!((health.status.as_u16(), &health.body[..]), (200, &b"ok"[..]));

    let recorded = sim.requests();
    assert_eq!(recorded.len(), 1, "control calls are not recorded");
    let r = &recorded[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse?trace=a%2Fb");
    assert_eq!(r.body, body);
    assert!(r.header("authorization").unwrap().starts_with("AWS4-HMAC-SHA256 Credential="));
    assert_eq!(r.header("content-type"), Some("application/json"));

    let listed = send(&client, control("GET", format!("{}/_sim/requests", sim.url()))).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.header("content-type"), "application/json");
    let json = listed.json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["path"], r.path);
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(json[0]["body_base64"].as_str().unwrap()).unwrap();
    assert_eq!(decoded, body);

    let cleared = send(&client, control("DELETE", format!("{}/_sim/requests", sim.url()))).await;
    assert_eq!(cleared.status, 204);
    assert!(sim.requests().is_empty());

    // Failed requests are recorded too, so tests can see what a client sent.
    send(&client, post(&sim.url(), &converse_path(), b"{}".to_vec(), Auth::None)).await;
    assert_eq!(sim.requests().len(), 1);
    sim.clear_requests();
    assert!(sim.requests().is_empty());

    send(&client, control("GET", format!("{}/_sim/nothing", sim.url())))
        .await
        .assert_error(404, "UnknownOperationException");
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let sim = start().await;
    let addr = sim.addr();
    assert!(sim.url().starts_with("http://127.0.0.1:"));
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    sim.shutdown();
    // The accept loop ends asynchronously; give it a moment.
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "server still accepting after shutdown");
}
