//! The process's budget of answer bytes in flight, and the body that holds
//! its share until the answer has gone out.
//!
//! An answer stops costing memory when its last byte has been handed to the
//! connection, not when the `Response` value exists: a client that never
//! reads (an HTTP/2 window of 0, a socket that is never drained) would
//! otherwise keep every answer it asked for. So an answer takes its bytes
//! from one process-wide budget *while it is encoded* (an encoding that would
//! pass the budget stops there and is answered `503` with `Retry-After`), and
//! its body gives them back only when it is dropped: after hyper has taken
//! the last chunk, or when the connection went away. The body hands hyper
//! 64 KiB at a time, so hyper takes more only as the peer accepts it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes.
const UNIT: usize = 1024;

/// How much an encoding takes from the budget at a time, in units.
const STEP_UNITS: usize = 16;

/// The largest chunk the body hands to hyper at once.
const CHUNK: usize = 64 * 1024;

/// Answer bytes in flight across the whole process.
#[derive(Clone, Debug)]
pub struct ResponseBudget {
    units: Arc<Semaphore>,
    total_units: usize,
}

impl ResponseBudget {
    /// A budget of `bytes` (rounded up to whole KiB, at least one step).
    pub fn new(bytes: usize) -> Self {
        let total_units = bytes.div_ceil(UNIT).clamp(STEP_UNITS, Semaphore::MAX_PERMITS);
        ResponseBudget { units: Arc::new(Semaphore::new(total_units)), total_units }
    }

    /// Bytes not taken by any answer now.
    pub fn available_bytes(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// The whole budget, in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_units * UNIT
    }

    /// A share that grows as an answer is encoded.
    pub fn share(&self) -> Share {
        Share { budget: self.clone(), permit: None }
    }
}

/// One answer's part of the [`ResponseBudget`].
#[derive(Debug)]
pub struct Share {
    budget: ResponseBudget,
    permit: Option<OwnedSemaphorePermit>,
}

impl Share {
    /// Bytes this share holds.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits) * UNIT
    }

    /// Grows the share to cover at least `bytes`; false (and no change) when the budget has no room.
    pub fn cover(&mut self, bytes: usize) -> bool {
        let held = self.bytes();
        if bytes <= held {
            return true;
        }
        let missing = (bytes - held).div_ceil(UNIT).max(STEP_UNITS);
        let Ok(more) = u32::try_from(missing) else {
            return false;
        };
        match Arc::clone(&self.budget.units).try_acquire_many_owned(more) {
            Ok(more) => {
                match &mut self.permit {
                    Some(permit) => permit.merge(more),
                    None => self.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// An encoded answer that keeps its [`Share`] until it is dropped, handing
/// hyper at most 64 KiB per frame.
pub struct BudgetedBody {
    rest: Bytes,
    _share: Share,
}

impl BudgetedBody {
    /// The body of `bytes`, holding `share`.
    pub fn new(bytes: impl Into<Bytes>, share: Share) -> Self {
        BudgetedBody { rest: bytes.into(), _share: share }
    }
}

impl http_body::Body for BudgetedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.rest.len().min(CHUNK);
        Poll::Ready(Some(Ok(http_body::Frame::data(self.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use super::*;

    /// Shares take from the budget as they grow, refuse past it, and give
    /// everything back when the body holding them is dropped.
    #[test]
    fn shares_come_back_when_the_body_is_dropped() {
        let budget = ResponseBudget::new(100 * 1024);
        let mut a = budget.share();
        assert!(a.cover(10));
        assert_eq!(a.bytes(), STEP_UNITS * UNIT, "a share grows a step at a time");
        assert!(a.cover(60 * 1024));
        let mut b = budget.share();
        assert!(!b.cover(50 * 1024), "past the budget");
        assert_eq!(b.bytes(), 0, "a refused share takes nothing");
        let body = BudgetedBody::new(vec![7; 60 * 1024], a);
        assert!(budget.available_bytes() < 50 * 1024);
        drop(body);
        assert_eq!(budget.available_bytes(), budget.total_bytes());
        assert!(b.cover(50 * 1024));
    }

    /// The body hands out its bytes in chunks of at most 64 KiB, all of them, in order.
    #[tokio::test]
    async fn body_is_chunked() {
        let budget = ResponseBudget::new(1 << 20);
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let mut body = BudgetedBody::new(data.clone(), budget.share());
        assert_eq!(body.size_hint().exact(), Some(150_000));
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let chunk = frame.ok().and_then(|f| f.into_data().ok()).unwrap_or_default();
            assert!(chunk.len() <= CHUNK);
            out.extend_from_slice(&chunk);
        }
        assert_eq!(out, data);
    }
}
