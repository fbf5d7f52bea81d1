//! The concurrency cap (`--max-concurrent-requests`): every API request holds a slot from its
//! first byte until its response body ends (a stream until its last event), and a request that
//! finds no free slot is answered at once with 503 and `Retry-After`, before its body is read.
//!
//! A slot is one atomic increment and one reference count; nothing is allocated per request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use prometheus::{IntCounter, IntGauge};

use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Seconds a refused caller is told to wait before retrying.
const RETRY_AFTER_SECONDS: &str = "1";

/// The slots of one listener; clones share them.
#[derive(Clone)]
pub struct Concurrency {
    inner: Arc<Inner>,
}

struct Inner {
    /// Requests holding a slot now.
    held: AtomicUsize,
    /// Most slots held at once; `usize::MAX` when uncapped.
    max: usize,
    in_flight: IntGauge,
    refused: IntCounter,
    /// The 503 body, serialized once.
    refusal: Bytes,
}

impl Concurrency {
    /// At most `max` requests at once (0: no cap), counted in `metrics`.
    pub fn new(max: usize, metrics: &Metrics) -> Self {
        let refusal = ApiError::unavailable(format!(
            "The gateway is serving its limit of {max} concurrent requests; retry after {RETRY_AFTER_SECONDS} s."
        ))
        .with_code("overloaded")
        .to_json();
        Concurrency {
            inner: Arc::new(Inner {
                held: AtomicUsize::new(0),
                max: if max == 0 { usize::MAX } else { max },
                in_flight: metrics.in_flight.clone(),
                refused: metrics.overloaded.clone(),
                refusal: Bytes::from(refusal),
            }),
        }
    }

    /// A slot, or `None` (counted as refused) when every slot is held.
    pub fn try_enter(&self) -> Option<Slot> {
        let inner = &self.inner;
        if inner.held.fetch_add(1, Ordering::AcqRel) >= inner.max {
            inner.held.fetch_sub(1, Ordering::AcqRel);
            inner.refused.inc();
            return None;
        }
        inner.in_flight.inc();
        Some(Slot { inner: inner.clone() })
    }

    /// Requests holding a slot now.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Acquire)
    }

    /// The answer to a request over the cap: 503, `Retry-After`, an OpenAI-shaped error.
    pub fn refusal(&self) -> Response<ResponseBody> {
        let mut response = Response::new(ResponseBody::full(self.inner.refusal.clone()));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        response
    }
}

/// One request's place under the cap, given back when dropped.
pub struct Slot {
    inner: Arc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.inner.held.fetch_sub(1, Ordering::AcqRel);
        self.inner.in_flight.dec();
    }
}

/// A response body that keeps its request's slot until the body ends or is dropped.
pub struct Held {
    body: ResponseBody,
    slot: Option<Slot>,
}

impl Held {
    /// `body`, holding `slot` (none for requests outside the cap: probes, refusals).
    pub fn new(body: ResponseBody, slot: Option<Slot>) -> Self {
        Held { body, slot }
    }
}

impl Body for Held {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            // The last byte is out: the slot is free for the next request.
            this.slot = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
