//! The writer thread, and group commit: one fsync for many writes.
//!
//! redb has one writer, so every write transaction runs on one thread. Each
//! commits with `Durability::None`: at once visible to new readers, but not
//! yet on disk. After running what is queued (up to [`MAX_GROUP`] jobs),
//! the thread commits one empty transaction with `Durability::Immediate`,
//! and only then answers the group's callers and publishes their events.
//! redb documents the pairing: a non-durable commit "will not be persisted
//! to disk unless followed by a commit with `Durability::Immediate`", and
//! that commit persists every one before it. So the guarantee stays what it
//! was with one fsync per command: an answered write survives a crash, and
//! a crash before the answer leaves each command all there or all gone (a
//! crash loses the group's commits from the first unsynced one on, never a
//! part of one).
//!
//! A group forms from what queued while the previous one ran and synced: no
//! timer waits for company, so a lone write still waits for one fsync, as
//! before (plus an empty commit's work: a sequential `createPost` measured
//! 0.84–0.98 ms against 1.00–1.03 ms before, in `bench/perf.sh`).
//!
//! Readers may see a commit a moment before it is durable (MongoDB's
//! `local` read concern does the same); if the disk then fails, the group is
//! answered `SERVICE_UNAVAILABLE` and the reopened file no longer has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::disk::Disk;
use crate::error::{Error, Result};
use crate::store::hidden::Hidden;

/// How many transactions may wait for the writer thread; a request beyond
/// that waits (asynchronously) to enqueue.
pub(super) const QUEUED_WRITES: usize = 64;

/// The most jobs one durable commit covers: what the queue can hold, so a
/// group is what queued while the previous one ran.
pub(super) const MAX_GROUP: usize = QUEUED_WRITES;

/// Durable commits the writer thread has made (each covering one group),
/// since start-up; `/metrics` reports it as `blogql_store_durable_commits_total`.
pub static DURABLE_COMMITS: AtomicU64 = AtomicU64::new(0);

/// Successful writes those commits covered; divided by [`DURABLE_COMMITS`], the mean group size.
pub static GROUPED_JOBS: AtomicU64 = AtomicU64::new(0);

/// What a job leaves behind when it has run: given the outcome of its
/// group's durable commit, it answers its caller.
pub(super) type Finish = Box<dyn FnOnce(&Result<()>) + Send>;

/// One job for the writer thread: it runs (committing without waiting for
/// the disk) and returns how to answer once its group is durable.
pub(super) type Job = Box<dyn FnOnce() -> Ran + Send>;

/// A job that has run, waiting for its group's durable commit.
pub(super) struct Ran {
    /// Whether it succeeded, so it has a commit to make durable.
    wrote: bool,
    /// The file it committed to (see [`Disk::generation`]): if the file was
    /// reopened since, its commit is gone and it must not be answered `Ok`.
    generation: u64,
    finish: Finish,
}

/// Starts the thread that runs every write transaction, one at a time, and
/// commits them durably in groups.
///
/// A dedicated thread, rather than a blocking-pool task per write, keeps
/// waiting writers as cheap queued jobs instead of parked threads, and keeps
/// the allocator's memory for large documents in one thread's heap, reused
/// by every write. The thread ends when the last store handle (the last
/// sender) is dropped.
pub(super) fn start_writer(
    disk: &Arc<Disk>,
    hidden: Arc<Hidden>,
    commits: Arc<AtomicU64>,
) -> Result<tokio::sync::mpsc::Sender<Job>> {
    let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(QUEUED_WRITES);
    // Held weakly, and let go before any answer: a caller that drops the
    // store on its answer can reopen the file at once.
    let weak = Arc::downgrade(disk);
    std::thread::Builder::new()
        .name("blogql-writer".into())
        .spawn(move || {
            let mut group: Vec<Ran> = Vec::with_capacity(MAX_GROUP);
            while let Some(first) = queue.blocking_recv() {
                // The queued job holds the disk too, so it is there.
                let Some(disk) = weak.upgrade() else { continue };
                group.extend(run_job(&disk, &commits, first));
                while group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(job) => group.extend(run_job(&disk, &commits, job)),
                        Err(_) => break,
                    }
                }
                let synced = if group.iter().any(|ran| ran.wrote) { sync(&disk, &hidden, &commits) } else { Ok(()) };
                let generation = disk.generation();
                drop(disk);
                if synced.is_ok() {
                    let wrote = group.iter().filter(|ran| ran.wrote).count();
                    GROUPED_JOBS.fetch_add(wrote as u64, Ordering::Relaxed);
                }
                for ran in group.drain(..) {
                    if ran.wrote && ran.generation != generation && synced.is_ok() {
                        (ran.finish)(&Err(Error::unavailable(REOPENED)));
                    } else {
                        (ran.finish)(&synced);
                    }
                }
            }
        })
        .map_err(|e| Error::internal_from("starting the embedded store's writer thread", e))?;
    Ok(jobs)
}

/// What a write is told when the file was reopened (after an I/O failure)
/// between its commit and its group's durable commit.
const REOPENED: &str = "the embedded store failed before this write was durable; it did not happen";

/// Runs one job. A panicking job drops its reply (its caller gets an
/// internal error) and the thread goes on with the next one.
///
/// `commits` is odd while the job runs and even again after (see
/// `Backend::version`): a reader that sees the same even count before and
/// after its reads read exactly the state that count names.
fn run_job(disk: &Disk, commits: &AtomicU64, job: Job) -> Option<Ran> {
    let generation = disk.generation();
    commits.fetch_add(1, Ordering::AcqRel);
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    commits.fetch_add(1, Ordering::AcqRel);
    let mut ran = ran.ok()?;
    ran.generation = generation;
    Some(ran)
}

/// Makes every commit since the last one durable: an empty transaction
/// committed with `Durability::Immediate` (redb's default). If it fails the
/// disk is reopened (see `disk`), which drops the group's commits, so the
/// staged deletions they published are reloaded from what the file holds.
fn sync(disk: &Disk, hidden: &Hidden, commits: &AtomicU64) -> Result<()> {
    let outcome = disk.db().and_then(|db| {
        db.begin_write()?.commit()?;
        Ok(())
    });
    match &outcome {
        Ok(()) => {
            DURABLE_COMMITS.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            // The state readers see goes back to the last durable commit: a change like any commit.
            commits.fetch_add(1, Ordering::AcqRel);
            disk.after_write(&outcome);
            if let Ok(db) = disk.db()
                && let Ok(jobs) = super::read::jobs_in(&db)
            {
                hidden.reset(&jobs);
            }
            commits.fetch_add(1, Ordering::AcqRel);
        }
    }
    outcome
}

/// Runs `work` on the writer thread and waits for its answer, which comes
/// once the group it ran in is durable: an `Ok` whose group failed to sync
/// becomes that failure. `then` sees the final answer first, on the writer
/// thread (so what it publishes leaves in commit order).
pub(super) async fn on_writer<T: Send + 'static>(
    writer: &tokio::sync::mpsc::Sender<Job>,
    work: impl FnOnce() -> Result<T> + Send + 'static,
    then: impl FnOnce(&Result<T>) + Send + 'static,
) -> Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let out = work();
        let wrote = out.is_ok();
        let finish: Finish = Box::new(move |synced: &Result<()>| {
            let out = match (out, synced) {
                (Ok(_), Err(failed)) => Err(failed.clone()),
                (out, _) => out,
            };
            then(&out);
            let _ = reply.send(out);
        });
        Ran { wrote, generation: 0, finish }
    });
    writer.send(job).await.map_err(|_| Error::internal("the embedded store's writer thread has stopped"))?;
    answer.await.map_err(|_| Error::internal("a write transaction ended without an answer"))?
}
