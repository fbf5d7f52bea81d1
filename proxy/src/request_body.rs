//! The request body every endpoint reads: the client's body with an idle timeout
//! (`--header-read-timeout-ms`), installed once by the server's service. A client that stops
//! sending its body for that long gets [`RequestBodyError::Stalled`] in place of its next frame,
//! so a slow body cannot hold a connection, its concurrency slot or an S3 upload forever. A body
//! that keeps trickling (no pause as long as the timeout) is read to its end.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// The body of every request the API and ops listeners answer.
pub type RequestBody = IdleTimeout<Incoming>;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    /// Nothing came for the idle timeout.
    #[error("the request body stopped arriving: nothing came for {} ms", .0.as_millis())]
    Stalled(Duration),
    /// The connection failed (or the client broke off) while the body was read.
    #[error("the request body could not be read: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `body` with an idle timeout: the wait for each frame may last `idle` at most.
///
/// The timer is allocated on the body's first wait and reset (not reallocated) on each later
/// one; a body whose frames are ready when asked for (one JSON frame, usually) never makes one.
pub struct IdleTimeout<B> {
    body: B,
    idle: Duration,
    /// The deadline of the current wait, once a wait happened.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` was set for the wait in progress (cleared by each frame).
    armed: bool,
}

impl<B> IdleTimeout<B> {
    /// `body`, whose frames may each keep the reader waiting for `idle` at most.
    pub fn new(body: B, idle: Duration) -> Self {
        IdleTimeout { body, idle, timer: None, armed: false }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame.map(|f| f.map_err(|e| RequestBodyError::Read(e.into()))));
        }
        // Counted from the first wait after a frame: time the reader spent elsewhere (an S3 part
        // upload between two frames) is not the client's.
        let deadline = Instant::now() + this.idle;
        let timer = match &mut this.timer {
            Some(timer) if this.armed => timer,
            Some(timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => this.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        this.armed = true;
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(RequestBodyError::Stalled(this.idle))))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::StreamExt;
    use futures_util::stream::{self, BoxStream};
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;

    use super::*;

    /// What a test body is made of.
    type Frames<E> = BoxStream<'static, Result<Frame<Bytes>, E>>;

    /// A body whose frames come from `rx`, with a 100 ms idle timeout.
    fn body_of<E: Send + 'static>(
        rx: mpsc::UnboundedReceiver<Result<Frame<Bytes>, E>>,
    ) -> IdleTimeout<StreamBody<Frames<E>>> {
        let frames = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        IdleTimeout::new(StreamBody::new(frames.boxed()), Duration::from_millis(100))
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, Infallible> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test]
    async fn frames_that_are_ready_pass_through_without_a_timer() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = body_of(rx);
        tx.send(data("one")).unwrap();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "one");
        assert!(body.timer.is_none(), "no wait, no timer");
        drop(tx);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_body_that_pauses_longer_than_the_timeout_is_stalled() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = body_of(rx);
        tx.send(data("start")).unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, RequestBodyError::Stalled(d) if d == Duration::from_millis(100)), "{err:?}");
        assert_eq!(err.to_string(), "the request body stopped arriving: nothing came for 100 ms");
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_that_trickles_longer_than_the_timeout_in_all_is_read_to_its_end() {
        let (tx, rx) = mpsc::unbounded_channel();
        let body = body_of(rx);
        tokio::spawn(async move {
            for piece in ["a", "b", "c", "d", "e", "f"] {
                tokio::time::sleep(Duration::from_millis(40)).await;
                tx.send(data(piece)).unwrap();
            }
        });
        // 240 ms in all, never 100 ms without a frame: the timer is reset for every wait.
        let whole: Vec<Bytes> = body.into_data_stream().map(Result::unwrap).collect().await;
        assert_eq!(whole.concat(), b"abcdef");
    }

    #[tokio::test]
    async fn an_error_of_the_body_is_a_read_error() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = body_of(rx);
        tx.send(Err(std::io::Error::other("reset"))).unwrap();
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(matches!(err, RequestBodyError::Read(_)), "{err:?}");
    }
}
