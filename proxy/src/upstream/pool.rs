//! Keep-alive HTTP/1 connections to Bedrock, each driven by the task of the request using it.
//!
//! hyper_util's pooled client runs every connection in a task of its own, so each response
//! chunk crosses from that task to the caller's, usually to another worker thread (an eventfd
//! wake per chunk, 16 for a 16-event stream). Here a request takes an idle connection (or
//! connects), and its own task polls the connection together with the response future and then
//! with the response body ([`PooledBody`]). The wake-ups hyper sends between the connection and
//! the body stay inside that task ([`LocalWake`]): only the socket wakes it.
//!
//! A connection goes back to the pool once its body has ended cleanly and hyper can take another
//! request on it. Dropping the body before its end drops the connection, which closes it (a
//! client that goes away cancels the Bedrock call). An idle connection is polled once when it is
//! taken, so that one the server closed meanwhile is replaced rather than used.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

/// What a connection runs on: TCP, with TLS for https.
type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// hyper's side of one connection.
type Connection = http1::Connection<Io, Full<Bytes>>;

/// Connections are shared by scheme and authority (host and port).
type Key = (Scheme, Authority);

/// Why a request got no response.
#[derive(Debug)]
pub(super) enum Failure {
    /// Connecting (TCP, TLS) failed; nothing was sent.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed before the response headers.
    Send(hyper::Error),
}

/// The idle connections of every Bedrock endpoint, and how to make new ones.
pub(super) struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// HTTP/1 settings of every connection (buffer sizes and such).
    http1: http1::Builder,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
    idle_timeout: Duration,
    max_idle_per_host: usize,
    /// Whether a task is closing connections idle for longer than `idle_timeout`.
    reaping: AtomicBool,
}

/// A connection waiting in the pool, and since when.
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// An empty pool connecting through `connector`, speaking HTTP/1 as `http1` says.
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        http1: http1::Builder,
        idle_timeout: Duration,
        max_idle_per_host: usize,
    ) -> Self {
        Pool {
            connector,
            http1,
            idle: Mutex::default(),
            idle_timeout,
            max_idle_per_host,
            reaping: AtomicBool::new(false),
        }
    }

    /// Sends `request` (origin-form URI, `Host` set) to `uri`'s scheme and authority on an idle
    /// connection, or a new one. A reused connection that closed before taking the request is
    /// replaced and the request sent again, as hyper_util does; anything else is the caller's.
    pub(super) async fn send(
        self: &Arc<Self>,
        uri: &Uri,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<PooledBody>, Failure> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(Failure::Connect("the Bedrock endpoint has no scheme or host".into()));
        };
        let key = (scheme.clone(), authority.clone());
        loop {
            let (mut conn, reused) = match self.checkout(&key) {
                Some(conn) => (conn, true),
                None => (self.connect(uri, key.clone()).await.map_err(Failure::Connect)?, false),
            };
            // Handing the request over wakes the connection: that wake belongs to the poll below.
            conn.wake.enter();
            let mut response = pin!(conn.send.try_send_request(request));
            match poll_fn(|cx| conn.drive(cx, |inner| response.as_mut().poll(inner))).await {
                Ok(response) => {
                    return Ok(response.map(|body| PooledBody {
                        body,
                        conn: Some(conn),
                        pool: Arc::clone(self),
                    }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => {
                        tracing::debug!(error = %error.error(), "idle Bedrock connection closed; sending on another");
                        request = unsent;
                    }
                    _ => return Err(Failure::Send(error.into_error())),
                },
            }
        }
    }

    /// The most recently used live idle connection for `key`; closed and expired ones are dropped.
    fn checkout(&self, key: &Key) -> Option<Conn> {
        loop {
            let entry = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.get_mut(key)?;
                let entry = list.pop()?;
                if entry.since.elapsed() >= self.idle_timeout {
                    // The others were returned earlier: expired too.
                    let expired = std::mem::take(list);
                    drop(idle);
                    drop(expired);
                    return None;
                }
                entry
            };
            let mut conn = entry.conn;
            if conn.is_reusable() {
                return Some(conn);
            }
        }
    }

    /// A new connection to `uri`'s authority: TCP (with the connect timeout), then TLS for https.
    async fn connect(&self, uri: &Uri, key: Key) -> Result<Conn, Box<dyn std::error::Error + Send + Sync>> {
        let mut connector = self.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx)).await?;
        let io = connector.call(uri.clone()).await?;
        let (send, connection) = self.http1.handshake(io).await?;
        Ok(Conn::new(key, send, connection))
    }

    /// Keeps `conn` for the next request to its endpoint if hyper can take one on it.
    fn release(self: &Arc<Self>, mut conn: Conn) {
        // Whoever used it last must not be woken by it any more.
        drop(conn.wake.task.take());
        if !conn.is_reusable() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(conn.key.clone()).or_default();
        let dropped: Vec<Idle> = expired(list, now, self.idle_timeout).collect();
        let full = list.len() >= self.max_idle_per_host;
        if !full {
            list.push(Idle { conn, since: now });
        }
        drop(idle);
        drop(dropped);
        if !full && !self.reaping.swap(true, Ordering::AcqRel) {
            self.start_reaper();
        }
    }

    /// Closes connections idle for longer than the idle timeout, every idle timeout, until the
    /// pool is empty or gone (outside a runtime nothing is reaped; checkout still skips them).
    fn start_reaper(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.reaping.store(false, Ordering::Release);
            return;
        };
        let pool: Weak<Pool> = Arc::downgrade(self);
        let every = self.idle_timeout.max(Duration::from_millis(100));
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else { return };
                let now = Instant::now();
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                let mut closing = Vec::new();
                idle.retain(|_, list| {
                    closing.extend(expired(list, now, pool.idle_timeout));
                    !list.is_empty()
                });
                let empty = idle.is_empty();
                if empty {
                    // Under the lock: a connection released after this starts a new reaper.
                    pool.reaping.store(false, Ordering::Release);
                }
                drop(idle);
                // Closed outside the lock.
                drop(closing);
                if empty {
                    return;
                }
            }
        });
    }
}

/// Takes out the connections of `list` idle for `idle_timeout` or longer at `now` (the oldest
/// come first: connections are returned to the end).
fn expired(list: &mut Vec<Idle>, now: Instant, idle_timeout: Duration) -> std::vec::Drain<'_, Idle> {
    let n = list.iter().take_while(|e| now.duration_since(e.since) >= idle_timeout).count();
    list.drain(..n)
}

/// One HTTP/1 connection: its request sender, the connection future (polled by whoever uses it)
/// and the waker that keeps hyper's internal wake-ups inside that task.
struct Conn {
    key: Key,
    send: http1::SendRequest<Full<Bytes>>,
    /// `None` once the connection has finished (closed by the server, or failed). Boxed: it
    /// holds the TLS state inline, and a connection moves in and out of the pool.
    connection: Option<Pin<Box<Connection>>>,
    wake: Arc<LocalWake>,
    /// `wake` as a waker, made once.
    waker: Waker,
}

impl Conn {
    fn new(key: Key, send: http1::SendRequest<Full<Bytes>>, connection: Connection) -> Self {
        let wake = Arc::new(LocalWake { state: AtomicU8::new(IDLE), task: AtomicWaker::new() });
        let waker = Waker::from(Arc::clone(&wake));
        Conn { key, send, connection: Some(Box::pin(connection)), wake, waker }
    }

    /// Polls the connection, then `f`, in `cx`'s task, until `f` is ready or nothing inside
    /// woke: hyper's wakes between the connection and the response body land here as a flag,
    /// not as a wake of the task (tokio would requeue the task and wake another worker).
    fn drive<T>(&mut self, cx: &mut Context<'_>, mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> Poll<T> {
        self.wake.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        loop {
            self.wake.enter();
            poll_connection(&mut self.connection, &mut inner);
            let polled = f(&mut inner);
            let woken = self.wake.leave();
            if polled.is_ready() || !woken {
                return polled;
            }
        }
    }

    /// Whether the connection is still open and waiting for a request (polled once, so that a
    /// close by the server is noticed).
    fn is_reusable(&mut self) -> bool {
        poll_connection(&mut self.connection, &mut Context::from_waker(Waker::noop()));
        self.connection.is_some() && self.send.is_ready()
    }
}

/// Polls `connection` once; a finished one (closed by the server, or failed) becomes `None`.
fn poll_connection(connection: &mut Option<Pin<Box<Connection>>>, cx: &mut Context<'_>) {
    let Some(open) = connection else { return };
    if let Poll::Ready(result) = open.as_mut().poll(cx) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "Bedrock connection ended");
        }
        *connection = None;
    }
}

/// No poll in progress: a wake goes to the task.
const IDLE: u8 = 0;
/// A poll of the connection is in progress: a wake is noted and polled again.
const POLLING: u8 = 1;
/// Woken during the poll in progress.
const WOKEN: u8 = 2;

/// The waker hyper gets for a connection and its response: a wake during [`Conn::drive`] is
/// handled by that same call; any other (the socket became ready) wakes the task.
struct LocalWake {
    state: AtomicU8,
    task: AtomicWaker,
}

impl LocalWake {
    fn enter(&self) {
        self.state.store(POLLING, Ordering::Release);
    }

    /// Ends a poll: whether something woke during it.
    fn leave(&self) -> bool {
        self.state.swap(IDLE, Ordering::AcqRel) == WOKEN
    }
}

impl Wake for LocalWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self.state.compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) | Err(WOKEN) => {}
            Err(_) => self.task.wake(),
        }
    }
}

/// A Bedrock response body; reading it drives its connection, which returns to the pool when
/// the body has ended. Dropped before its end, it closes the connection.
pub struct PooledBody {
    body: Incoming,
    /// `None` once the body ended (the connection went back to the pool) or failed.
    conn: Option<Conn>,
    pool: Arc<Pool>,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let body = &mut this.body;
        let polled = match &mut this.conn {
            Some(conn) => conn.drive(cx, |inner| Pin::new(&mut *body).poll_frame(inner)),
            None => Pin::new(body).poll_frame(cx),
        };
        match polled {
            Poll::Ready(None) => {
                if let Some(conn) = this.conn.take() {
                    this.pool.release(conn);
                }
            }
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A reader may stop at the last frame it needs (a stream's final event) with only the
        // body's end left unread: when that has arrived, one more poll returns the connection
        // to the pool; anything else still unread closes it with the body.
        if self.conn.is_some() {
            let _ = Pin::new(self).poll_frame(&mut Context::from_waker(Waker::noop()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use http::header::HOST;
    use http_body_util::BodyExt;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A TLS server for `localhost` (a self-signed certificate) answering every request `200 ok`
    /// with keep-alive: its port, its certificate and how many connections it accepted.
    async fn tls_server() -> (u16, rustls::pki_types::CertificateDer<'static>, Arc<AtomicUsize>) {
        let rcgen::CertifiedKey { cert, key_pair } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                        if head.windows(4).any(|w| w == b"\r\n\r\n") {
                            head.clear();
                            tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                        }
                    }
                });
            }
        });
        (port, cert.der().clone(), accepted)
    }

    fn pool(roots: rustls::RootCertStore) -> Arc<Pool> {
        pool_idle_for(roots, Duration::from_secs(60))
    }

    fn pool_idle_for(roots: rustls::RootCertStore, idle_timeout: Duration) -> Arc<Pool> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        Arc::new(Pool::new(
            super::super::https_connector_with(http, roots),
            http1::Builder::new(),
            idle_timeout,
            4,
        ))
    }

    async fn get(pool: &Arc<Pool>, port: u16) -> Result<Bytes, Failure> {
        let uri: Uri = format!("https://localhost:{port}/ping").parse().unwrap();
        let request = Request::get("/ping")
            .header(HOST, format!("localhost:{port}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = pool.send(&uri, request).await?;
        Ok(response.into_body().collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn https_connections_verify_the_roots_and_are_reused() {
        let (port, cert, accepted) = tls_server().await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let trusting = pool(roots);
        for _ in 0..3 {
            assert_eq!(get(&trusting, port).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // The webpki roots do not know the self-signed certificate: no connection, nothing sent.
        let strict = pool(rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
        let Err(Failure::Connect(error)) = get(&strict, port).await else {
            panic!("an untrusted certificate was accepted")
        };
        assert!(format!("{error:?}").contains("UnknownIssuer"), "{error:?}");
    }

    #[tokio::test]
    async fn connections_idle_longer_than_the_idle_timeout_are_closed() {
        let (port, cert, accepted) = tls_server().await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let pool = pool_idle_for(roots, Duration::from_millis(100));
        assert_eq!(get(&pool, port).await.unwrap(), "ok");
        assert_eq!(pool.idle.lock().unwrap().len(), 1);
        // The reaper runs every idle timeout: by the second run the connection is expired.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(pool.idle.lock().unwrap().is_empty());
        assert!(!pool.reaping.load(Ordering::Acquire), "the reaper stops with the pool empty");
        assert_eq!(get(&pool, port).await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
