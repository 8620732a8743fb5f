//! The reaper: finishes staged deletions in the background.
//!
//! A staged `deleteUser` or `deletePost` commits a tombstone and a job (see
//! [`crate::model::DeletionJobDoc`]); from then on its documents are hidden.
//! The reaper runs the job's [`ReapDeletion`] steps, each one transaction of
//! at most the cascade budget, until the job is done. Progress is recorded
//! in each step's own transaction, so after a crash or restart the next
//! process (this one again, or any other on the same MongoDB) resumes where
//! the last commit left off. A step run twice, or by two reapers at once,
//! deletes nothing twice: each step re-reads the job inside its transaction.

use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

use bson::DateTime;
use tokio::sync::Notify;

use crate::cmd::{ReapDeletion, Reaped};
use crate::error::Result;
use crate::store::Store;

/// How often the reaper looks for jobs without being woken: jobs left by a
/// previous run or staged by another process on the same MongoDB.
pub const POLL: Duration = Duration::from_secs(1);

/// A job this process knows of but no longer finds in the store was
/// finished by another process, once it is older than any transaction that
/// could still be committing it (MongoDB's default lifetime limit is 60 s).
const FORGET_AFTER_MS: i64 = 120_000;

/// Finishes jobs until `stop` is notified: at start-up, whenever a staged
/// deletion commits in this process ([`crate::store::hidden::Hidden::job_committed`]),
/// and every [`POLL`].
/// A failed step is logged and retried at the next round.
///
/// Stopping does not wait for a job to finish: a step in flight commits or
/// rolls back whole, and the next start resumes from the last commit.
pub async fn run(store: Store, budget: usize, stop: Arc<Notify>) {
    loop {
        tokio::select! {
            done = drain(&store, budget) => {
                if let Err(err) = done {
                    tracing::warn!(error = %err, "a staged deletion step failed; retrying at the next poll");
                }
            }
            () = stop.notified() => return,
        }
        tokio::select! {
            () = store.hidden().job_committed() => {}
            () = tokio::time::sleep(POLL) => {}
            () = stop.notified() => return,
        }
    }
}

/// Runs every job in the store to its end, one bounded step at a time;
/// returns how many jobs it finished. Also teaches this process's hidden set
/// the jobs other processes staged.
pub async fn drain(store: &Store, budget: usize) -> Result<usize> {
    // Headers only: a job's lists are read once, when this process first meets it.
    let jobs = store.deletion_job_headers().await?;
    let hidden = store.hidden();
    for job in &jobs {
        if !hidden.knows(&job.id) {
            hidden.publish(&store.deletion_job(job.clone()).await?);
        }
    }
    if let Some(sets) = hidden.current() {
        let now = DateTime::now().timestamp_millis();
        for known in sets.jobs() {
            let gone = !jobs.iter().any(|j| j.id == known.id);
            if gone && now - known.created_at.timestamp_millis() > FORGET_AFTER_MS {
                hidden.retire(&known.id);
            }
        }
    }
    let mut finished = 0;
    for job in jobs {
        let mut steps = 0u64;
        loop {
            // Each step is a trace of its own (the job outlives any request):
            // its `transaction` span is the child. Sampled before the span
            // exists, as a request is (see `otlp::UNTRACED`).
            let trace_id = crate::telemetry::TraceId::random();
            let span = if crate::telemetry::otlp::traces(trace_id, None) {
                tracing::info_span!("reaper step", trace_id = %trace_id, job = %job.id, step = steps)
            } else {
                tracing::info_span!(target: crate::telemetry::otlp::UNTRACED, "reaper step", job = %job.id, step = steps)
            };
            match store.run(ReapDeletion { job: job.id, budget }).instrument(span).await? {
                Reaped::Done => break,
                Reaped::Progress(_) => steps += 1,
            }
            // Let queued requests' writes in between steps.
            tokio::task::yield_now().await;
        }
        hidden.retire(&job.id);
        tracing::info!(job = %job.id, kind = ?job.kind, root = %job.root, steps, "staged deletion finished");
        finished += 1;
    }
    Ok(finished)
}
