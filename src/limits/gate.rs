//! Bounded concurrency for expensive work, with a bounded queue: at most
//! `slots` run at once, at most `queue` wait, and the next is refused at once
//! with `RATE_LIMITED` rather than piling up (argon2 hashing, deletion
//! previews).
//!
//! A slot is an owned permit, so it can travel with work that outlives its
//! caller (a blocking task that runs on after the client has gone) and is
//! freed only when that work is really done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// A pool of `slots` with a waiting line of at most `queue`.
#[derive(Debug)]
pub struct Gate {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

/// Leaves the waiting count when a caller stops waiting, however it stops.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    /// A gate running `slots` (at least one) at a time, with `queue` waiting.
    pub fn new(slots: usize, queue: usize) -> Self {
        Gate { slots: Arc::new(Semaphore::new(slots.max(1))), waiting: AtomicUsize::new(0), queue }
    }

    /// How many callers wait for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Waits for a slot; `RATE_LIMITED` at once when `queue` callers already wait.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit> {
        // A free slot is taken without queueing, so a queue of 0 means "refuse only when busy".
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(slot);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::RateLimited { retry_after_secs: 1 });
        }
        let _waiting = Waiting(&self.waiting);
        Arc::clone(&self.slots).acquire_owned().await.map_err(|_| Error::internal("a work gate is closed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one slot taken and the queue full, the next caller is refused at
    /// once; a waiter that gives up frees its place in the queue.
    #[tokio::test]
    async fn a_full_queue_refuses_and_a_cancelled_waiter_leaves_it() {
        let gate = Arc::new(Gate::new(1, 1));
        let held = gate.enter().await.expect("first slot");
        let waiter = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.enter().await.map(drop) }
        });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(gate.enter().await, Err(Error::RateLimited { retry_after_secs: 1 })));
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(gate.waiting(), 0, "the cancelled waiter left the queue");
        drop(held);
        assert!(gate.enter().await.is_ok(), "the freed slot is taken");
    }
}
