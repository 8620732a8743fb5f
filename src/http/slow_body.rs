//! The request body's own deadline and slowest rate.
//!
//! tower-http's body timeout restarts with every frame, so a client that
//! sends `Content-Length: 1000000` and then one byte every two seconds keeps
//! its request (and a connection slot) alive until the request timeout. This
//! step gives the whole body one deadline, the read timeout from the moment
//! the handler starts reading, and after a first second of grace refuses a
//! body arriving slower than the minimum rate. Either ends the request with
//! `408 REQUEST_TIMEOUT`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use bytes::Bytes;
use tokio::time::{Instant, Interval, Sleep};

/// The message a cut-off body's error carries; `http` maps it to 408.
pub const TOO_SLOW: &str = "request body too slow";

/// Grace before the minimum rate applies: a first frame may be late.
const GRACE: Duration = Duration::from_secs(1);

/// How often a stalled body's rate is checked.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The body limits, from the HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Longest the whole body may take.
    pub deadline: Duration,
    /// Slowest rate after the first second, in bytes per second (0: no minimum).
    pub min_bytes_per_sec: usize,
}

/// Wraps the request's body in [`Bounded`].
pub async fn bound_request_body(State(limits): State<BodyLimits>, req: Request) -> Request {
    req.map(|body| Body::new(Bounded::new(body, limits)))
}

/// A request body with a whole-body deadline and a minimum rate.
///
/// The timers exist only once the body has kept its reader waiting: a body
/// that arrived with its headers (nearly every request) is read without
/// touching the timer wheel.
pub struct Bounded {
    inner: Body,
    limits: BodyLimits,
    /// When the handler first read.
    first_read: Option<Instant>,
    /// The deadline and the rate check, armed on the first wait.
    timers: Option<(Pin<Box<Sleep>>, Interval)>,
    received: usize,
}

impl Bounded {
    fn new(inner: Body, limits: BodyLimits) -> Self {
        Bounded { inner, limits, first_read: None, timers: None, received: 0 }
    }
}

/// Whether `received` bytes after `elapsed` are below `min_per_sec` (after the grace).
fn too_slow(received: usize, elapsed: Duration, min_per_sec: usize) -> bool {
    let Some(rated) = elapsed.checked_sub(GRACE) else {
        return false;
    };
    (received as f64) < rated.as_secs_f64() * min_per_sec as f64
}

impl http_body::Body for Bounded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let limits = this.limits;
        let started = *this.first_read.get_or_insert_with(Instant::now);
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.received += data.len();
        }
        if polled.is_ready() {
            return polled;
        }
        let (deadline, checks) = this.timers.get_or_insert_with(|| {
            (Box::pin(tokio::time::sleep_until(started + limits.deadline)), tokio::time::interval(CHECK_EVERY))
        });
        // Polling the timers registers this task with them, so a body that
        // stays silent is woken and cut at the deadline.
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(TOO_SLOW))));
        }
        while checks.poll_tick(cx).is_ready() {
            if too_slow(this.received, started.elapsed(), limits.min_bytes_per_sec) {
                return Poll::Ready(Some(Err(axum::Error::new(TOO_SLOW))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate applies only after the grace, and is a floor on the average since the start.
    #[test]
    fn rate_rule() {
        assert!(!too_slow(0, Duration::from_millis(900), 1000), "within the grace");
        assert!(too_slow(100, Duration::from_secs(2), 1000), "100 bytes in the second after the grace");
        assert!(!too_slow(1000, Duration::from_secs(2), 1000));
        assert!(!too_slow(0, Duration::from_secs(100), 0), "a rate of 0 turns the rule off");
    }

    /// A body that never sends is cut at the deadline, with the marker error.
    #[tokio::test]
    async fn stalled_body_is_cut_at_the_deadline() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, std::io::Error>>(1);
        let stream = http_body_util_stream(rx);
        let limits = BodyLimits { deadline: Duration::from_millis(200), min_bytes_per_sec: 0 };
        let mut body = Bounded::new(Body::new(stream), limits);
        let started = std::time::Instant::now();
        let result = std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await;
        let err = result.and_then(Result::err).map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some(TOO_SLOW));
        assert!(started.elapsed() >= Duration::from_millis(200) && started.elapsed() < Duration::from_secs(2));
    }

    /// A body over a channel of frames (the test's slow client).
    fn http_body_util_stream(
        rx: tokio::sync::mpsc::Receiver<Result<http_body::Frame<Bytes>, std::io::Error>>,
    ) -> ChannelBody {
        ChannelBody(rx)
    }

    struct ChannelBody(tokio::sync::mpsc::Receiver<Result<http_body::Frame<Bytes>, std::io::Error>>);

    impl http_body::Body for ChannelBody {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx)
        }
    }
}
