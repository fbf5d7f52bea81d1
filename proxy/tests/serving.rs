//! The serving side: the concurrency cap, the request body limit, HTTP/2 (h2c and over TLS with
//! ALPN), the TLS listener reloading its certificate and exporting its expiry, and the
//! header-read timeout that closes slow (slowloris) connections.

mod fixtures;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fixtures::{Harness, KEY, sse_events};
use futures_util::{StreamExt, stream};
use http::{Method, Request, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy::concurrency::Concurrency;
use proxy::metrics::Metrics;
use proxy::server::{App, serve_ops, serve_tls};
use proxy::tls::ReloadingCert;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn chat_request(text: &str, stream: bool) -> String {
    json!({"model": "demo/nova-lite", "stream": stream, "messages": [{"role": "user", "content": text}]})
        .to_string()
}

fn post_chat(url: &str, body: String) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("{url}/v1/chat/completions"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn text(body: Incoming) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// The value of an unlabelled sample in a Prometheus exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_cap_get_503_with_retry_after_until_streams_end() {
    let h = Harness::start_configured(|app| app.concurrency = Concurrency::new(2, &app.metrics)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Two slow streams hold both slots from their headers until their last event.
    let slow = "one two three four five six [[sim:gap=100]]";
    let mut streams = Vec::new();
    for _ in 0..2 {
        let r = client.request(post_chat(&h.url, chat_request(slow, true))).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        streams.push(r);
    }

    let refused =
        h.chat(json!({"model": "demo/nova-lite", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert_eq!(refused.content_type, "application/json");
    assert_eq!(
        refused.json(),
        json!({"error": {
            "message": "The gateway is serving its limit of 2 concurrent requests; retry after 1 s.",
            "type": "server_error", "param": null, "code": "overloaded"}})
    );
    // Probes and metrics are answered over the cap.
    assert_eq!(h.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert_eq!(sample(&metrics, "bedrock_gateway_in_flight_requests"), Some(2.0), "{metrics}");
    assert_eq!(sample(&metrics, "bedrock_gateway_overloaded_requests_total"), Some(1.0), "{metrics}");

    for r in streams {
        let events = sse_events(&text(r.into_body()).await);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    // The slots came back with the last bytes of the streams.
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert_eq!(sample(&metrics, "bedrock_gateway_in_flight_requests"), Some(0.0), "{metrics}");
    let r = h.chat(json!({"model": "demo/nova-lite", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_body_over_the_limit_is_a_413() {
    // The harness allows 1 MiB.
    let h = Harness::start().await;
    let padding = "x".repeat(1024 * 1024);
    let r =
        h.chat(json!({"model": "demo/nova-lite", "messages": [{"role": "user", "content": padding}]})).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.json(),
        json!({"error": {
            "message": "The request body is larger than the gateway's limit of 1048576 bytes.",
            "type": "invalid_request_error", "param": null, "code": "request_too_large"}})
    );
    assert!(h.sim.requests().is_empty(), "nothing reached Bedrock");
    // Just under the limit is served.
    let padding = "x".repeat(1024 * 1024 - 200);
    let r =
        h.chat(json!({"model": "demo/nova-lite", "messages": [{"role": "user", "content": padding}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// Sends `req` over an HTTP/2 connection on `io` and returns the response.
async fn h2_request<I>(io: I, req: Request<Full<Bytes>>) -> http::Response<Incoming>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await.unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_and_http1_share_the_port() {
    let h = Harness::start().await;
    let addr = h.url.trim_start_matches("http://").to_owned();
    let r = h2_request(
        TcpStream::connect(&addr).await.unwrap(),
        post_chat(&h.url, chat_request("over h2", false)),
    )
    .await;
    assert_eq!((r.version(), r.status()), (Version::HTTP_2, StatusCode::OK));
    let body: Value = serde_json::from_str(&text(r.into_body()).await).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Simulated reply to: over h2");

    let r = h2_request(
        TcpStream::connect(&addr).await.unwrap(),
        post_chat(&h.url, chat_request("stream over h2", true)),
    )
    .await;
    assert_eq!((r.version(), r.status()), (Version::HTTP_2, StatusCode::OK));
    let events = sse_events(&text(r.into_body()).await);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    // The same port still speaks HTTP/1.1.
    let r = h.chat(json!({"model": "demo/nova-lite", "messages": [{"role": "user", "content": "h1"}]})).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// An HTTP/2 client's io whose first `skip` bytes of the connection preface were already sent
/// by hand: they are taken as written, so the peer sees them once.
struct PrefaceSent {
    io: TcpStream,
    skip: usize,
}

impl tokio::io::AsyncRead for PrefaceSent {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for PrefaceSent {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            self.skip -= n;
            return std::task::Poll::Ready(Ok(n));
        }
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Writes `first`, waits until the server has had time to look at it alone, then writes `rest`
/// and returns everything the server answered until it closed the connection.
async fn in_two_segments(addr: &str, first: &[u8], rest: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tcp.write_all(rest).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_is_told_from_first_bytes_that_arrive_in_pieces() {
    let h = Harness::start().await;
    let addr = h.url.trim_start_matches("http://").to_owned();
    // One byte that is not the HTTP/2 preface's: HTTP/1 at once.
    let answer =
        in_two_segments(&addr, b"G", b"ET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    // "P" may begin the preface: the rest decides, and "POST" is HTTP/1.
    let answer =
        in_two_segments(&addr, b"P", b"OST /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{answer}");
    assert!(answer.contains("\"message\":\"POST is not allowed on /healthz.\""), "{answer}");

    // The preface in two segments is still HTTP/2.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &preface[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = h2_request(PrefaceSent { io: tcp, skip: 10 }, post_chat(&h.url, chat_request("late h2", false)))
        .await;
    assert_eq!((r.version(), r.status()), (Version::HTTP_2, StatusCode::OK));
    let body: Value = serde_json::from_str(&text(r.into_body()).await).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Simulated reply to: late h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_sent_nothing_do_not_hold_up_shutdown() {
    use tokio::io::AsyncReadExt;
    let app = Arc::new(App::new(Arc::default(), Metrics::new(), 1024));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let grace = Duration::from_secs(60);
    let server = tokio::spawn(proxy::server::serve(
        listener,
        app,
        async move {
            let _ = stopped.await;
        },
        grace,
    ));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Served once it speaks: the connection is accepted and waiting for its first bytes.
    let answer =
        in_two_segments(&addr.to_string(), b"G", b"ET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

    stop.send(()).unwrap();
    // The server is done long before the grace period, and the silent connection is closed.
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("shutdown waited for a connection that never sent a request")
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut rest)).await;
    assert_eq!(read.expect("the silent connection stayed open").unwrap(), 0);
}

/// A self-signed certificate for `localhost` and its key, as PEM.
fn self_signed() -> (String, String) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (cert.pem(), key_pair.serialize_pem())
}

/// Replaces `path` the way a Secret volume does: write beside it, then rename over it.
fn swap(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A TLS connection to `addr` offering h2 and http/1.1, trusting `trusted`.
async fn tls_connect(addr: &str, trusted: &[&str]) -> tokio_rustls::client::TlsStream<TcpStream> {
    tls_connect_alpn(addr, trusted, &[b"h2", b"http/1.1"]).await
}

/// A TLS connection to `addr` offering `alpn`, trusting `trusted`.
async fn tls_connect_alpn(
    addr: &str,
    trusted: &[&str],
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in trusted {
        roots.add(pem_der(pem)).unwrap();
    }
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

fn pem_der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// The certificate the server presented on `tls`.
fn served_cert(tls: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_speaks_h2_by_alpn_and_reloads_its_certificate() {
    let dir = std::env::temp_dir().join(format!("bgw-tls-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    let (a_cert, a_key) = self_signed();
    let (b_cert, b_key) = self_signed();
    std::fs::write(&cert_path, &a_cert).unwrap();
    std::fs::write(&key_path, &a_key).unwrap();

    let metrics = Metrics::new();
    let certs = Arc::new(ReloadingCert::load(&cert_path, &key_path, &metrics).unwrap());
    let app = Arc::new(App::new(Arc::default(), metrics.clone(), 1024));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve_tls(listener, app, certs.acceptor().unwrap(), std::future::pending(), Duration::ZERO));
    tokio::spawn(certs.clone().reload_every(Duration::from_millis(50)));
    let trusted = [a_cert.as_str(), b_cert.as_str()];

    // Certificate A; ALPN picks h2, and HTTP/2 requests are served.
    let tls = tls_connect(&addr, &trusted).await;
    assert_eq!(served_cert(&tls), pem_der(&a_cert));
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let req = Request::get(format!("https://{addr}/healthz")).body(Full::default()).unwrap();
    let r = h2_request(tls, req).await;
    assert_eq!((r.version(), r.status()), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(text(r.into_body()).await, "ok\n");

    // The files become certificate B: new connections get B, without a restart.
    swap(&key_path, &b_key);
    swap(&cert_path, &b_cert);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while served_cert(&tls_connect(&addr, &trusted).await) != pem_der(&b_cert) {
        assert!(tokio::time::Instant::now() < deadline, "certificate B was never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reloads = metrics.tls_reloads.with_label_values(&["success"]);
    assert!(reloads.get() >= 2, "the first load and B's");

    // A broken pair (A's certificate with B's key) is refused, counted, and B stays.
    swap(&cert_path, &a_cert);
    let errors = metrics.tls_reloads.with_label_values(&["error"]);
    while errors.get() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the broken pair was never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_cert(&tls_connect(&addr, &trusted).await), pem_der(&b_cert));
    // Garbage is refused the same way.
    swap(&cert_path, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    while errors.get() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the garbage file was never noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(served_cert(&tls_connect(&addr, &trusted).await), pem_der(&b_cert));
    assert!(!certs.reload(), "nothing changed since the last check");

    // Clients that offer only http/1.1 get it.
    let tls = tls_connect_alpn(&addr, &trusted, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("/healthz").header("host", "localhost").body(Full::<Bytes>::default()).unwrap();
    let r = sender.send_request(req).await.unwrap();
    assert_eq!((r.version(), r.status()), (Version::HTTP_11, StatusCode::OK));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_certificate_that_does_not_load_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("bgw-tls-bad-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (a_cert, _) = self_signed();
    let (_, b_key) = self_signed();
    std::fs::write(dir.join("tls.crt"), &a_cert).unwrap();
    std::fs::write(dir.join("tls.key"), &b_key).unwrap();
    let err = ReloadingCert::load(&dir.join("tls.crt"), &dir.join("tls.key"), &Metrics::new()).err().unwrap();
    assert!(err.contains("the certificate and key do not load together"), "{err}");
    std::fs::write(dir.join("tls.key"), "").unwrap();
    let err = ReloadingCert::load(&dir.join("tls.crt"), &dir.join("tls.key"), &Metrics::new()).err().unwrap();
    assert!(err.contains("the key file holds no private key"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate for `localhost` valid until `seconds` into the day `year-month-day` (UTC), and
/// its key, as PEM.
fn expiring(year: i32, month: u8, day: u8, seconds: u64) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year, month, day) + Duration::from_secs(seconds);
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

const EXPIRY: &str = "bedrock_gateway_tls_certificate_expiry_timestamp_seconds";

#[test]
fn the_served_certificate_expiry_is_a_gauge_set_at_load_and_on_reload() {
    let dir =
        std::env::temp_dir().join(format!("bgw-tls-expiry-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    let metrics = Metrics::new();
    // Without a TLS listener there is no expiry to report, not a 0 that looks expired.
    assert!(!String::from_utf8(metrics.render()).unwrap().contains(EXPIRY));

    // 2031-05-17T00:00:00Z (UTCTime in the certificate).
    let (a_cert, a_key) = expiring(2031, 5, 17, 0);
    std::fs::write(&cert_path, &a_cert).unwrap();
    std::fs::write(&key_path, &a_key).unwrap();
    let certs = ReloadingCert::load(&cert_path, &key_path, &metrics).unwrap();
    let exposed = || sample(&String::from_utf8(metrics.render()).unwrap(), EXPIRY);
    assert_eq!(exposed(), Some(1_936_742_400.0));

    // Renewed: 2051-03-04T05:06:07Z (GeneralizedTime, past UTCTime's 2049).
    let (b_cert, b_key) = expiring(2051, 3, 4, 5 * 3600 + 6 * 60 + 7);
    swap(&key_path, &b_key);
    swap(&cert_path, &b_cert);
    assert!(certs.reload());
    assert_eq!(exposed(), Some(2_561_519_167.0));

    // A pair that does not load leaves the served certificate, and its expiry, in place.
    swap(&cert_path, &a_cert);
    assert!(!certs.reload());
    assert_eq!(exposed(), Some(2_561_519_167.0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// How long the slowloris tests let the proxy wait for a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// A proxy whose header-read timeout is [`HEADER_TIMEOUT`].
async fn impatient() -> (Harness, String) {
    let h = Harness::start_configured(|app| app.header_read_timeout = HEADER_TIMEOUT).await;
    let addr = h.url.trim_start_matches("http://").to_owned();
    (h, addr)
}

/// Reads `conn` to its end (or a reset) and returns what came; fails, naming `what`, if it
/// stays open 10 s.
async fn until_closed(conn: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    assert!(read.await.is_ok(), "{what}: still open; it sent {:?}", String::from_utf8_lossy(&got));
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_whole_request_head_is_closed_after_the_header_timeout() {
    let (h, addr) = impatient().await;
    // A partial request line; a partial header block; nothing at all (hyper-util's HTTP/1 vs
    // HTTP/2 sniffing has no timer of its own); the start of HTTP/2's preface; the whole preface
    // and SETTINGS but no request.
    let starts: [&[u8]; 5] = [
        b"GET /healthz HT",
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ",
        b"",
        b"PRI * HTTP/2.0\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ];
    // All at once: each waits out the timeout.
    let checks = starts.map(|start| {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut conn = TcpStream::connect(&addr).await.unwrap();
            conn.write_all(start).await.unwrap();
            let what = format!("after {:?}", String::from_utf8_lossy(start));
            let got = until_closed(&mut conn, &what).await;
            if start.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") {
                // HTTP/2 answers the preface with its SETTINGS, then closes: no response.
                let frames = h2_frames(&got);
                assert!(frames.first().is_some_and(|f| f.0 == 0x4), "{what}: {frames:?}");
                assert!(frames.iter().all(|f| f.2 == 0), "{what}: a stream frame in {frames:?}");
            } else {
                assert_eq!(String::from_utf8_lossy(&got), "", "{what}: no response, just the close");
            }
        })
    });
    for check in checks {
        check.await.unwrap();
    }
    // The proxy still serves.
    assert_eq!(h.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_complete_request_is_served_and_an_idle_keep_alive_connection_is_closed() {
    let (_h, addr) = impatient().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // The head trickles in, but whole within the timeout.
    for piece in ["GET /healthz HTTP/1.1\r\n", "Host: localhost\r\n", "\r\n"] {
        conn.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(HEADER_TIMEOUT / 8).await;
    }
    let got = String::from_utf8(until_closed(&mut conn, "an idle keep-alive connection").await).unwrap();
    // Answered, then closed while idle (keep-alive was on: the client did not say close).
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nok\n"), "{got}");
    assert!(!got.to_ascii_lowercase().contains("connection: close"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_longer_than_the_header_timeout_is_not_cut() {
    let (h, _) = impatient().await;
    // Eight events 300 ms apart: over twice the timeout, on HTTP/1.1 then on HTTP/2.
    let body = chat_request("[[sim:reply=a b c d e f g]] [[sim:gap=300]]", true);
    let r = h.chat(serde_json::from_str(&body).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(sse_events(&r.text()).last().map(String::as_str), Some("[DONE]"));
    let tcp = TcpStream::connect(h.url.trim_start_matches("http://")).await.unwrap();
    let r = h2_request(tcp, post_chat(&h.url, body)).await;
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(sse_events(&text(r.into_body()).await).last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_listener_has_the_header_timeout_too() {
    let parts = Metrics::new();
    let mut app = App::new(Arc::default(), parts, 1024);
    app.header_read_timeout = HEADER_TIMEOUT;
    let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ops.local_addr().unwrap();
    tokio::spawn(serve_ops(ops, Arc::new(app)));
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /metr").await.unwrap();
    assert_eq!(until_closed(&mut conn, "the ops listener").await, b"");
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The HTTP/2 frames in `bytes`: their (type, flags, stream) in order.
fn h2_frames(bytes: &[u8]) -> Vec<(u8, u8, u32)> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        frames.push((rest[3], rest[4], stream));
        rest = &rest[(9 + len).min(rest.len())..];
    }
    frames
}

/// The HTTP/2 preface, an empty SETTINGS frame and `GET /healthz` on stream 1 (END_STREAM |
/// END_HEADERS; HPACK :method GET, :scheme http from the static table, :path and :authority as
/// literals).
fn h2_preface_and_healthz() -> Vec<u8> {
    let mut head = vec![0x82, 0x86, 0x04, 8];
    head.extend_from_slice(b"/healthz");
    head.extend_from_slice(&[0x01, 9]);
    head.extend_from_slice(b"localhost");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[]));
    hello.extend(h2_frame(0x1, 0x5, 1, &head));
    hello
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http2_client_is_pinged_then_dropped() {
    let (_h, addr) = impatient().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    conn.write_all(&h2_preface_and_healthz()).await.unwrap();
    // Then silence: no SETTINGS ack, no PING ack.
    let frames = h2_frames(&until_closed(&mut conn, "a silent HTTP/2 client").await);
    let (headers, ping, goaway) = (
        frames.iter().position(|f| f.0 == 0x1 && f.2 == 1),
        frames.iter().position(|f| f.0 == 0x6 && f.1 & 0x1 == 0),
        frames.iter().position(|f| f.0 == 0x7),
    );
    // The request was answered, a keep-alive ping followed, then the close.
    assert!(headers.is_some() && ping.is_some() && goaway.is_some(), "{frames:?}");
    assert!(headers < ping && ping < goaway, "{frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_headers_that_trickle_on_a_later_stream_end_with_the_keep_alive_ping() {
    // h2 has no timer of its own for a header block, but while one is incomplete the client can
    // send nothing else (RFC 9113 section 6.10), so not the PING acknowledgement either: hyper's
    // keep-alive ping, sent after the timeout without a request or data, closes the connection.
    let (_h, addr) = impatient().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // A whole request on stream 1, then the start of stream 3's HEADERS: 64 bytes announced.
    let mut hello = h2_preface_and_healthz();
    let mut trickled = h2_frame(0x1, 0x5, 3, &[0x82; 64]);
    hello.extend(trickled.drain(..10));
    conn.write_all(&hello).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    // One byte every quarter of the timeout: 13 s for the rest of the frame.
    let trickle = tokio::spawn(async move {
        for byte in trickled {
            tokio::time::sleep(HEADER_TIMEOUT / 4).await;
            if write.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = read.read(&mut buf).await {
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    trickle.abort();
    let frames = h2_frames(&got);
    assert!(closed.is_ok(), "still open while the headers trickle: {frames:?}");
    let (answered, ping, goaway) = (
        frames.iter().position(|f| f.0 == 0x1 && f.2 == 1),
        frames.iter().position(|f| f.0 == 0x6 && f.1 & 0x1 == 0),
        frames.iter().position(|f| f.0 == 0x7),
    );
    assert!(answered.is_some() && ping.is_some() && goaway.is_some(), "{frames:?}");
    assert!(answered < ping && ping < goaway, "{frames:?}");
    assert!(!frames.iter().any(|f| f.2 == 3), "stream 3 was never a request: {frames:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_arriving_is_a_408_and_the_connection_closes() {
    let (_h, addr) = impatient().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let got = String::from_utf8(until_closed(&mut conn, "a stalled body").await).unwrap();
    assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{got}");
    assert!(got.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{got}");
    let body: serde_json::Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body, stalled_body_error());
}

/// The 408 of a body that stalled for [`HEADER_TIMEOUT`].
fn stalled_body_error() -> serde_json::Value {
    let message = format!(
        "The request body stopped arriving: nothing came for {} ms, so the gateway closed the connection.",
        HEADER_TIMEOUT.as_millis()
    );
    serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null,
        "code": "request_timeout"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_upload_that_stops_arriving_is_a_408_and_the_connection_closes() {
    let (_h, addr) = impatient().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    // The multipart body stops in the middle of the file's first line, before any S3 call.
    let body = "--b\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
                --b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\
                Content-Type: application/jsonl\r\n\r\n{\"custom_id\": \"a\", ";
    let head = format!(
        "POST /v1/files HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n{body}"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let got = String::from_utf8(until_closed(&mut conn, "a stalled upload").await).unwrap();
    assert!(got.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{got}");
    assert!(got.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{got}");
    let answer: serde_json::Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(answer, stalled_body_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_request_body_that_stops_arriving_is_a_408_on_its_stream() {
    let (h, addr) = impatient().await;
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    // A body that sends its first bytes, then nothing, and never ends.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(b"{\"model\":")))).await.unwrap();
    let frames = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let request = Request::post(format!("{}/v1/chat/completions", h.url))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(StreamBody::new(frames.boxed()))
        .unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let response = sender.send_request(request).await.unwrap();
        (response.status(), text(response.into_body()).await)
    });
    let (status, body) = answered.await.expect("a stalled HTTP/2 body is answered");
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), stalled_body_error());
    drop(tx);
    // Only that stream ended: the connection serves the next one.
    let healthz =
        Request::get(format!("{}/healthz", h.url)).body(StreamBody::new(stream::empty().boxed())).unwrap();
    assert_eq!(sender.send_request(healthz).await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_longer_than_the_timeout_in_all_is_served() {
    let (_h, addr) = impatient().await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let body = chat_request("hello", false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // Five pieces, each within the timeout of the last, twice the timeout in all.
    for piece in body.as_bytes().chunks(body.len().div_ceil(5)) {
        tokio::time::sleep(HEADER_TIMEOUT * 2 / 5).await;
        conn.write_all(piece).await.unwrap();
    }
    let got = String::from_utf8(until_closed(&mut conn, "a trickled request").await).unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.contains("\"object\":\"chat.completion\""), "{got}");
}

#[tokio::test]
async fn a_stream_event_larger_than_the_stream_read_buffer_arrives_whole() {
    // Bedrock streams are read through a 2 KiB buffer: a 6,000-byte delta takes several reads.
    let h = Harness::start().await;
    let long = "x".repeat(6000);
    let body = chat_request(&format!("[[sim:reply={long} end]]"), true);
    let r = h.chat(serde_json::from_str(&body).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let events = sse_events(&r.text());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, format!("{long} end"));
}
