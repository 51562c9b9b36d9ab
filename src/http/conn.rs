//! A connection's idle limit: a stream wrapper that ends a connection (as
//! if the client had closed it) once it has had no request in flight for a
//! while. Bytes that are not requests (HTTP/2 pings, settings, window
//! updates) do not count as activity, and neither do the bytes of a head
//! still coming in: the limit also bounds how long an HTTP/1 head may take
//! (hyper's own head timer is off), and it covers HTTP/2, where a client
//! may open a connection, send its preface or keep pinging, and hold the
//! socket for ever.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection, shared by its service and stream,
/// and when the last one ended.
#[derive(Clone)]
pub(crate) struct InFlight(Arc<Activity>);

struct Activity {
    count: AtomicUsize,
    /// Milliseconds since `origin` of the last request's end.
    last_ms: AtomicU64,
    origin: Instant,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight(Arc::new(Activity {
            count: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }))
    }
}

impl Activity {
    fn touch(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Release);
    }
}

impl InFlight {
    /// Counts one request until the guard is dropped. When it started is
    /// not kept: the idle deadline is read only while no request is in
    /// flight, so it runs from the end of the last one.
    pub(crate) fn enter(&self) -> InFlightGuard {
        self.0.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.0.clone())
    }

    fn idle(&self) -> bool {
        self.0.count.load(Ordering::Acquire) == 0
    }

    /// When the connection has been idle long enough.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.0.origin + Duration::from_millis(self.0.last_ms.load(Ordering::Acquire)) + idle
    }
}

/// Keeps a request counted as in flight.
pub(crate) struct InFlightGuard(Arc<Activity>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that reads as ended once no request has been in flight for
/// `idle`.
pub(crate) struct IdleStream<S> {
    inner: S,
    in_flight: InFlight,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<S> IdleStream<S> {
    pub(crate) fn new(inner: S, in_flight: InFlight, idle: Duration) -> IdleStream<S> {
        IdleStream {
            inner,
            in_flight,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending if self.in_flight.idle() => {
                // The idle time runs from the last request's end.
                let deadline = self.in_flight.idle_deadline(self.idle);
                if self.timer.deadline() != deadline {
                    self.timer.as_mut().reset(deadline);
                }
                match self.timer.as_mut().poll(cx) {
                    // Idle too long: end of stream, and hyper closes.
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Pending => {
                // A request is in flight. HTTP/1 reads once while it runs
                // (to see the client hang up) and, once it has answered,
                // not again until the socket or a timer wakes it: the timer
                // stays armed here, for the deadline it had or, once that
                // has passed, one idle period on, so that the connection is
                // looked at again after the answer. Most requests take less
                // than the idle period and leave the timer as it is.
                if self.timer.is_elapsed() {
                    let later = Instant::now() + self.idle;
                    self.timer.as_mut().reset(later);
                }
                // Only to keep the timer's wake-up registered.
                let _ = self.timer.as_mut().poll(cx);
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
