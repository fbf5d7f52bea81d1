//! The Bedrock connection pool: keep-alive reuse through the proxy (the simulator counts the
//! connections it accepted), and `Upstream` against small raw HTTP/1 servers that close
//! connections at chosen moments.

mod fixtures;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fixtures::{Harness, sse_events};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use proxy::upstream::{SendError, Signer, Target, Upstream};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn ask(text: &str, stream: bool) -> serde_json::Value {
    json!({"model": "demo/nova-lite", "stream": stream, "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn sequential_calls_share_one_bedrock_connection_and_streams_another() {
    let h = Harness::start().await;
    for i in 0..3 {
        let r = h.chat(ask(&format!("hi {i}"), false)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let r = h.chat(ask(&format!("stream {i}"), true)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(sse_events(&r.text()).last().unwrap(), "[DONE]");
    }
    assert_eq!(h.sim.requests().len(), 6);
    // JSON answers and event streams have a pool each (streams hold a smaller read buffer).
    assert_eq!(h.sim.connections(), 2);
}

#[tokio::test]
async fn a_stream_the_client_abandons_closes_its_connection_and_the_next_stream_opens_another() {
    let h = Harness::start().await;
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let body = ask("[[sim:reply=a b c d e f g h i j]] [[sim:gap=100]]", true).to_string();
    let request = http::Request::post(format!("{}/v1/chat/completions", h.url))
        .header("authorization", format!("Bearer {}", fixtures::KEY))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let mut body = response.into_body();
    body.frame().await.unwrap().unwrap();
    drop(body);
    drop(client);
    for _ in 0..100 {
        if h.sim.cancelled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(h.sim.cancelled(), 1);
    // A stream again, so it would take the abandoned connection had it gone back to the pool.
    let r = h.chat(ask("hi", true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(h.sim.connections(), 2);
}

/// What a raw test server does with each connection.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answers every request on the connection with `200 ok` (keep-alive).
    KeepAlive,
    /// Answers one request with `200 ok` (no `Connection: close`), then closes the connection
    /// 20 ms later, while the client holds it idle.
    AnswerThenClose,
    /// Reads the request and closes without answering.
    CloseUnanswered,
}

/// A raw HTTP/1 server on loopback: its URL and how many connections it accepted.
async fn raw_server(behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp, behaviour));
        }
    });
    (url, accepted)
}

async fn serve(mut tcp: TcpStream, behaviour: Behaviour) {
    let mut buf = Vec::new();
    loop {
        // Requests without a body: one ends with its blank line.
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 1024];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.clear();
        if let Behaviour::CloseUnanswered = behaviour {
            return;
        }
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        if let Behaviour::AnswerThenClose = behaviour {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    }
}

/// `GET /ping` through `upstream`, body read.
async fn ping(upstream: &Upstream, url: &str) -> Result<Bytes, SendError> {
    let target = Target::at(url, "/ping", "us-east-1").unwrap();
    let signer = Signer::api_key("test", "test-key");
    let response = upstream.send(Method::GET, &target, &signer, Bytes::new(), "text/plain").await?;
    assert_eq!(response.status(), StatusCode::OK);
    Ok(response.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn a_connection_is_reused_after_its_body_was_read() {
    let (url, accepted) = raw_server(Behaviour::KeepAlive).await;
    let upstream = Upstream::new();
    for _ in 0..3 {
        assert_eq!(ping(&upstream, &url).await.unwrap(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_while_idle_is_replaced_without_failing_the_call() {
    let (url, accepted) = raw_server(Behaviour::AnswerThenClose).await;
    let upstream = Upstream::new();
    for _ in 0..3 {
        assert_eq!(ping(&upstream, &url).await.unwrap(), "ok");
        // Time for the server's close to reach the idle connection.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_new_connection_closed_before_the_answer_is_a_502_and_not_sent_again() {
    let (url, accepted) = raw_server(Behaviour::CloseUnanswered).await;
    let upstream = Upstream::new();
    let Err(SendError::Connection(error)) = ping(&upstream, &url).await else {
        panic!("not a connection error")
    };
    assert_eq!(error.status, StatusCode::BAD_GATEWAY);
    assert_eq!(error.message, "The gateway could not reach Bedrock; the request was not completed.");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_502() {
    // Bound and dropped: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let Err(SendError::Connection(error)) = ping(&Upstream::new(), &format!("http://127.0.0.1:{port}")).await
    else {
        panic!("not a connection error")
    };
    assert_eq!(error.status, StatusCode::BAD_GATEWAY);
}
