//! Writing an answer out as JSON, within its limits, without starving the
//! async workers.
//!
//! An answer is encoded into a buffer that takes its bytes from the
//! process's answer budget as it grows ([`super::budget`]) and stops at
//! `--max-response-bytes`. Most answers are small and are encoded inline. One
//! that passes [`INLINE_BYTES`] is a megabytes-long job (escaping every byte
//! of every body): it is started again on the blocking pool, in one of a few
//! slots ([`EncodeSlots`]), so a burst of huge answers (32 HTTP/2 streams
//! asking for 8 MB each) keeps at most that many cores busy while `/healthz`
//! and small answers go on, and past the slots' queue it is refused at once.

use std::sync::Arc;

use super::budget;
use crate::limits::gate::Gate;

/// Answers up to this size are encoded inline on the async worker: a few
/// hundred microseconds at most. A larger one is encoded again from the
/// start in an encoding slot (the wasted prefix is under 1/30 of the work).
pub(super) const INLINE_BYTES: usize = 256 * 1024;

/// Large answers waiting for an encoding slot before the next is refused:
/// each holds its executed answer (up to `--max-response-bytes`) while it waits.
const QUEUE: usize = 8;

/// The bounded pool large answers are encoded in: one slot per core.
#[derive(Debug, Clone)]
pub(super) struct EncodeSlots(Arc<Gate>);

impl EncodeSlots {
    /// A slot per available core, [`QUEUE`] waiting.
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        EncodeSlots::with(cores, QUEUE)
    }

    /// `slots` running, `queue` waiting.
    fn with(slots: usize, queue: usize) -> Self {
        EncodeSlots(Arc::new(Gate::new(slots, queue)))
    }
}

/// Why an encoding stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Over {
    /// The answer passed `--max-response-bytes`.
    Limit,
    /// The process's answer bytes in flight are all taken.
    Budget,
    /// The answer passed [`INLINE_BYTES`] while being encoded inline.
    Inline,
}

/// Writes into a buffer until `limit` bytes, taking each byte from the
/// process's answer budget as it goes, and fails as soon as either runs
/// out, so an oversized answer is abandoned when it passes the limit
/// instead of after it has been built in full.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    /// Where an inline encoding stops ([`INLINE_BYTES`]; no stop on the blocking pool).
    inline_until: usize,
    share: budget::Share,
    /// What `share` covers: serde_json writes a token at a time, so the
    /// common write only compares against this.
    covered: usize,
    over: Option<Over>,
}

impl std::io::Write for Capped {
    #[inline]
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let len = self.buf.len() + data.len();
        if len > self.covered {
            if len > self.inline_until {
                self.over = Some(Over::Inline);
                return Err(std::io::Error::other("response over the inline size"));
            }
            if len > self.limit {
                self.over = Some(Over::Limit);
                return Err(std::io::Error::other("response over the size limit"));
            }
            if !self.share.cover(len) {
                self.over = Some(Over::Budget);
                return Err(std::io::Error::other("response bytes in flight over the budget"));
            }
            self.covered = self.share.bytes().min(self.limit);
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A response to a request that never started executing: GraphQL's spec says
/// its result has no `data` entry at all (async-graphql would write `null`).
#[derive(serde::Serialize)]
struct NotExecuted<'a> {
    errors: &'a [async_graphql::ServerError],
}

/// Why [`encode`] produced no body.
pub(super) enum EncodeError {
    /// The answer would not fit (see [`Over`]).
    Over(Over),
    /// Serialisation itself failed.
    Serde(serde_json::Error),
    /// A large answer found every encoding slot taken and the queue full.
    Busy,
}

/// Serialises `resp` within `limit` bytes and the answer budget, or says
/// why not. A request error (`not_executed`) is written without `data`.
fn encode(
    resp: &async_graphql::Response,
    not_executed: bool,
    limit: usize,
    inline_until: usize,
    budget: &budget::ResponseBudget,
) -> Result<(Vec<u8>, budget::Share), EncodeError> {
    let mut out = Capped {
        buf: Vec::with_capacity(4096.min(limit)),
        limit,
        inline_until,
        share: budget.share(),
        covered: 0,
        over: None,
    };
    let written = if not_executed {
        serde_json::to_writer(&mut out, &NotExecuted { errors: &resp.errors })
    } else {
        serde_json::to_writer(&mut out, resp)
    };
    match (written, out.over) {
        (Ok(()), _) => Ok((out.buf, out.share)),
        (Err(_), Some(over)) => Err(EncodeError::Over(over)),
        (Err(err), None) => Err(EncodeError::Serde(err)),
    }
}

/// Encodes `resp` (see the module docs): inline when it stays under
/// [`INLINE_BYTES`], else again on the blocking pool in an encoding slot
/// (`Busy` when none is free and the queue is full).
pub(super) async fn encode_answer(
    resp: &Arc<async_graphql::Response>,
    not_executed: bool,
    limit: usize,
    budget: &budget::ResponseBudget,
    slots: &EncodeSlots,
) -> Result<(Vec<u8>, budget::Share), EncodeError> {
    match encode(resp, not_executed, limit, INLINE_BYTES, budget) {
        Err(EncodeError::Over(Over::Inline)) => {}
        done => return done,
    }
    let Ok(slot) = slots.0.enter().await else { return Err(EncodeError::Busy) };
    let (resp, budget) = (Arc::clone(resp), budget.clone());
    let encoded = tokio::task::spawn_blocking(move || {
        let encoded = encode(&resp, not_executed, limit, usize::MAX, &budget);
        drop(slot);
        encoded
    })
    .await;
    encoded.unwrap_or_else(|err| {
        tracing::error!(error = %err, "encoding a large answer failed");
        Err(EncodeError::Busy)
    })
}

/// Encodes a small answer inline, whatever its size (the cut-down answer of
/// a mutation, a refusal), under `budget`.
pub(super) fn encode_small(
    resp: &async_graphql::Response,
    not_executed: bool,
    limit: usize,
    budget: &budget::ResponseBudget,
) -> Result<(Vec<u8>, budget::Share), EncodeError> {
    encode(resp, not_executed, limit, usize::MAX, budget)
}

#[cfg(test)]
mod tests {
    use async_graphql::Value;

    use super::*;

    fn answer(bytes: usize) -> Arc<async_graphql::Response> {
        Arc::new(async_graphql::Response::new(Value::List(vec![Value::String("é\"x".repeat(bytes / 5)); 1])))
    }

    /// A small answer and a large one both come out byte for byte as serde
    /// writes them: the large one is stopped inline and encoded again whole.
    #[tokio::test]
    async fn large_answers_are_encoded_whole_off_the_worker() {
        let (budget, slots) = (budget::ResponseBudget::new(64 << 20), EncodeSlots::with(1, 1));
        for size in [1_000, 3 * INLINE_BYTES] {
            let resp = answer(size);
            assert_eq!(
                encode(&resp, false, 16 << 20, INLINE_BYTES, &budget).is_ok(),
                size < INLINE_BYTES,
                "only answers under INLINE_BYTES encode inline"
            );
            let Ok((body, _)) = encode_answer(&resp, false, 16 << 20, &budget, &slots).await else { panic!("encoded") };
            assert_eq!(body, serde_json::to_vec(&*resp).expect("serde"));
        }
    }

    /// With every slot taken and the queue full, a large answer is `Busy` at
    /// once; a small one is still encoded inline.
    #[tokio::test]
    async fn a_full_queue_refuses_large_answers_only() {
        let (budget, slots) = (budget::ResponseBudget::new(64 << 20), EncodeSlots::with(1, 0));
        let _held = slots.0.enter().await.expect("the one slot");
        let large = encode_answer(&answer(2 * INLINE_BYTES), false, 16 << 20, &budget, &slots).await;
        assert!(matches!(large, Err(EncodeError::Busy)));
        assert!(encode_answer(&answer(100), false, 16 << 20, &budget, &slots).await.is_ok());
    }
}
