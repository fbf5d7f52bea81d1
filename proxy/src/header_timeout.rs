//! The slowloris guard of the listeners (`--header-read-timeout-ms`): a client must send a whole
//! request head within the timeout, or its connection is closed.
//!
//! hyper does most of it, with a timer set on the builder ([`configure`]): HTTP/1's
//! `header_read_timeout` bounds each request head and, in the hyper this workspace locks,
//! also the idle wait before the next request on a keep-alive connection (its timer restarts
//! when a response is done); HTTP/2 connections are pinged after the
//! same time without a request head, body data or ping answer, and closed when the ping goes
//! unanswered. That also bounds a header block trickling in on a later stream, which h2 does
//! not time itself: until the block is complete the client may send no other frame (RFC 9113
//! section 6.10), so it cannot answer the ping. Request bodies have their own idle timeout
//! ([`crate::request_body`]). What hyper leaves open
//! is the start of a connection: hyper-util's auto builder first reads up to 24 bytes to tell
//! HTTP/2's preface from HTTP/1, and the HTTP/2 handshake follows, both without a time limit.
//! [`guard`] covers that: the connection's reads fail once the timeout has passed and its
//! service has not yet been called with a request. (Cleartext connections are sniffed by a
//! `peek` in the server instead; that wait counts against the same deadline.)

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::time::Sleep;

/// Sets hyper's own header-read timeout (HTTP/1) and keep-alive pings (HTTP/2) to `timeout`.
pub fn configure(builder: &mut auto::Builder<TokioExecutor>, timeout: Duration) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(timeout);
    builder.http2().timer(TokioTimer::new()).keep_alive_interval(timeout).keep_alive_timeout(timeout);
}

/// [`configure`]'s HTTP/1 settings on a builder that serves HTTP/1 only.
pub fn configure_http1(builder: &mut http1::Builder, timeout: Duration) {
    builder.timer(TokioTimer::new()).header_read_timeout(timeout);
}

/// Wraps a new connection's `io` and `service` so that the connection fails unless a first
/// request reaches `service` within `timeout`.
pub fn guard<I, S>(io: I, service: S, timeout: Duration) -> (FirstRequestDeadline<I>, Arrival<S>) {
    let arrived = Arc::new(AtomicBool::new(false));
    let io = FirstRequestDeadline {
        io,
        deadline: Some(Box::pin(tokio::time::sleep(timeout))),
        arrived: arrived.clone(),
    };
    (io, Arrival { service, arrived })
}

/// A connection whose reads fail with `TimedOut` once its deadline passes before a first request
/// arrived; then the deadline is dropped.
pub struct FirstRequestDeadline<I> {
    io: I,
    deadline: Option<Pin<Box<Sleep>>>,
    arrived: Arc<AtomicBool>,
}

/// A service that records that a request reached it.
pub struct Arrival<S> {
    service: S,
    arrived: Arc<AtomicBool>,
}

impl<S, B> Service<Request<Incoming>> for Arrival<S>
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = S::Future;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.arrived.store(true, Ordering::Relaxed);
        self.service.call(req)
    }
}

impl<I: Read + Unpin> Read for FirstRequestDeadline<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(deadline) = &mut this.deadline {
            if this.arrived.load(Ordering::Relaxed) {
                this.deadline = None;
            } else if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request head within the header-read timeout",
                )));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: Write + Unpin> Write for FirstRequestDeadline<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
