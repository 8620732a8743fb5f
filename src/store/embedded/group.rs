//! The writer thread, and group commit: one transaction and one fsync for
//! many writes.
//!
//! redb has one writer, so every write runs on one thread. The jobs that
//! queued while the previous group ran (up to [`MAX_GROUP`]) run one after
//! another in one redb write transaction, each seeing the ones before it;
//! that transaction commits once, and is then made durable (see [`commit`]).
//! Only then are the group's callers answered and their events published.
//! So the guarantee is what it was with one fsync per command: an answered
//! write survives a crash, and a crash before the answer leaves each
//! command all there or all gone (the group's transaction is all or nothing).
//!
//! One transaction rather than one non-durable commit per job: a B-tree page
//! that several jobs change is copied and written once per group, not once
//! per job, and the per-commit bookkeeping is paid once (see the README's
//! "One transaction per group" for the figures).
//!
//! A job that fails must leave nothing behind, but redb cannot roll back
//! part of a transaction. So the group's transaction is rolled back, the
//! jobs that succeeded before it run again in a fresh one (each sees the
//! same state it saw the first time, and its answer is the one from the
//! second run), and the group ends there, so no job runs more than twice.
//! A failure on I/O instead fails the whole group, which never committed.
//!
//! A group forms from what queued while the previous one ran and synced: no
//! timer waits for company, so a lone write waits for one fsync, as before.
//!
//! Readers may see a group's writes a moment before they are durable
//! (MongoDB's `local` read concern does the same); if the disk then fails,
//! the group is answered `SERVICE_UNAVAILABLE` and the reopened file no
//! longer has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::disk::Disk;
use crate::error::{Error, Result};
use crate::model::DeletionJobDoc;
use crate::store::hidden::Hidden;
use crate::store::hidden::stage::Staging;

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

/// What jobs whose group failed on I/O before committing are told.
const GROUP_FAILED: &str = "the embedded store failed on I/O before this write was durable; it did not happen";

/// What a job that panicked is told (the panic itself is in the logs).
const PANICKED: &str = "a write transaction panicked";

/// The group's one write transaction, begun by the first job that needs it,
/// and the staged deletions its jobs recorded (published just before it commits).
pub(super) struct Group {
    /// The database the group writes to, taken when its first job is
    /// admitted; let go before a reopen (which waits for every handle).
    db: Option<Arc<redb::Database>>,
    /// The transaction, once a job began it.
    tx: Option<redb::WriteTransaction>,
    /// The staged deletions of the jobs that succeeded in `tx`.
    staged: Vec<DeletionJobDoc>,
}

impl Group {
    /// The group's transaction, begun on first use.
    pub(super) fn tx(&mut self) -> Result<&redb::WriteTransaction> {
        match &mut self.tx {
            Some(tx) => Ok(tx),
            slot @ None => {
                let db = self.db.as_ref().ok_or_else(|| Error::internal("a write ran outside a group"))?;
                Ok(slot.insert(db.begin_write()?))
            }
        }
    }

    /// Records staged deletions a job's command made, for the commit to publish.
    pub(super) fn stage(&mut self, jobs: Vec<DeletionJobDoc>) {
        self.staged.extend(jobs);
    }

    /// Drops everything the group's jobs wrote so far.
    fn roll_back(&mut self) {
        if let Some(tx) = self.tx.take() {
            // An abort that fails leaves nothing either: the transaction is dropped uncommitted.
            let _ = tx.abort();
        }
        self.staged.clear();
    }
}

/// One write waiting on the writer thread: run (maybe twice, see the module
/// doc), then answered with the outcome of its group's commit.
pub(super) trait Queued: Send {
    /// Runs the work in `group`'s transaction, replacing any earlier
    /// outcome; `Err` (a copy of the job's error) if it failed.
    fn run(&mut self, group: &mut Group) -> Result<()>;
    /// Replaces the outcome with `err`: the job's writes will not commit.
    fn void(&mut self, err: Error);
    /// Answers the caller, given whether the group's commit succeeded.
    fn finish(self: Box<Self>, committed: &Result<()>);
}

/// A queued job.
pub(super) type Job = Box<dyn Queued>;

/// A job and whether it succeeded in the group's current transaction.
struct Ran {
    job: Job,
    ok: bool,
}

/// Starts the thread that runs every write, one at a time, in groups that
/// commit durably once each.
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
            let mut ran: Vec<Ran> = Vec::with_capacity(MAX_GROUP);
            let mut carried: Option<Job> = None;
            while let Some(first) = carried.take().or_else(|| queue.blocking_recv()) {
                // The queued job holds the disk too, so it is there.
                let Some(disk) = weak.upgrade() else { continue };
                let mut group = Group { db: None, tx: None, staged: Vec::new() };
                let mut next = Some(first);
                while let Some(job) = next.take() {
                    // A recovery probe begins its own transaction, which would
                    // wait forever on the group's: end the group first.
                    if disk.failing() && group.tx.is_some() {
                        carried = Some(job);
                        break;
                    }
                    if admit(&disk, &mut group, &mut ran, job) || ran.len() >= MAX_GROUP {
                        break;
                    }
                    next = queue.try_recv().ok();
                }
                let committed = commit(&disk, &hidden, &commits, group, &ran);
                drop(disk);
                for Ran { job, .. } in ran.drain(..) {
                    job.finish(&committed);
                }
            }
        })
        .map_err(|e| Error::internal_from("starting the embedded store's writer thread", e))?;
    Ok(jobs)
}

/// Runs `job` in the group; true when the group must end now (a job failed).
fn admit(disk: &Disk, group: &mut Group, ran: &mut Vec<Ran>, mut job: Job) -> bool {
    // While the store is failing a write is refused before it runs, except
    // for the recovery attempt this makes when one is due (see `disk`).
    let ready = disk.writable().and_then(|()| match group.db {
        Some(_) => Ok(()),
        None => disk.db().map(|db| group.db = Some(db)),
    });
    if let Err(refused) = ready {
        job.void(refused);
        ran.push(Ran { job, ok: false });
        return false;
    }
    let outcome = run_once(&mut job, group);
    ran.push(Ran { job, ok: outcome.is_ok() });
    match outcome {
        Ok(()) => false,
        Err(err @ Error::Unavailable { .. }) => {
            fail_group(disk, group, ran, err);
            true
        }
        Err(_) => {
            if group.tx.is_some() {
                run_again(disk, group, ran);
            }
            true
        }
    }
}

/// Runs `job` once, a panic becoming an internal error.
fn run_once(job: &mut Job, group: &mut Group) -> Result<()> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(group))) {
        Ok(outcome) => outcome,
        Err(_) => {
            job.void(Error::internal(PANICKED));
            Err(Error::internal(PANICKED))
        }
    }
}

/// Rolls the group back and runs the jobs that succeeded again in a fresh
/// transaction, so the failed job's writes are gone and theirs are not.
/// (A job that fails the second time, which a deterministic command does
/// not, is dropped in turn and the rest run once more.)
fn run_again(disk: &Disk, group: &mut Group, ran: &mut [Ran]) {
    'again: loop {
        group.roll_back();
        for entry in ran.iter_mut().filter(|r| r.ok) {
            match run_once(&mut entry.job, group) {
                Ok(()) => {}
                Err(err @ Error::Unavailable { .. }) => {
                    entry.ok = false;
                    fail_group(disk, group, ran, err);
                    return;
                }
                Err(_) => {
                    entry.ok = false;
                    continue 'again;
                }
            }
        }
        return;
    }
}

/// A write failed on I/O: nothing of the group will commit, every job in it
/// is answered with the failure, and the store goes failing (see `disk`),
/// which reopens the file once the transaction is gone.
fn fail_group(disk: &Disk, group: &mut Group, ran: &mut [Ran], err: Error) {
    group.roll_back();
    group.db = None;
    for entry in ran.iter_mut().filter(|r| r.ok) {
        entry.job.void(Error::unavailable(GROUP_FAILED));
        entry.ok = false;
    }
    disk.after_write::<()>(&Err(err));
}

/// Commits the group's transaction, if a job began one, and makes it
/// durable, publishing its staged deletions just before (so no read that
/// starts after the commit sees their documents) and retiring them if the
/// commit fails.
///
/// Two commits, as redb allows: the group's with `Durability::None`, which
/// makes it visible, then an empty one with `Durability::Immediate`, which
/// makes it durable ("a non-durable commit will not be persisted to disk
/// unless followed by a commit with `Durability::Immediate`"). `commits` is
/// odd only around the first (see `Backend::version`: a reader that sees
/// the same even count before and after its reads read exactly the state
/// that count names), so readers go on keeping answers during the fsync.
/// One durable commit of the group instead measured half the 90/10 mix's
/// req/s with the answer cache on, every read in the fsync's window missing.
fn commit(disk: &Disk, hidden: &Arc<Hidden>, commits: &AtomicU64, mut group: Group, ran: &[Ran]) -> Result<()> {
    let Some(mut tx) = group.tx.take() else { return Ok(()) };
    let staging = Staging::new(hidden);
    staging.publish(&group.staged);
    commits.fetch_add(1, Ordering::AcqRel);
    let visible = tx
        .set_durability(redb::Durability::None)
        .map_err(|e| Error::internal_from("setting a group's durability", e))
        .and_then(|()| Ok(tx.commit()?));
    staging.finish(visible.is_ok());
    let outcome = visible.and_then(|()| {
        commits.fetch_add(1, Ordering::AcqRel);
        let durable = group.db.as_ref().map_or(Ok(()), |db| Ok(db.begin_write()?.commit()?));
        // A failed sync reopens the file (below), going back to the last durable state: a change like any commit.
        if durable.is_err() {
            commits.fetch_add(1, Ordering::AcqRel);
        }
        durable
    });
    match &outcome {
        Ok(()) => {
            DURABLE_COMMITS.fetch_add(1, Ordering::Relaxed);
            GROUPED_JOBS.fetch_add(ran.iter().filter(|r| r.ok).count() as u64, Ordering::Relaxed);
        }
        Err(_) => {
            drop(group);
            disk.after_write(&outcome);
            // The reopened file is the last durable state: reload what it stages.
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

/// A write waiting for the writer thread: `work`, then `then` and the reply
/// with the final answer.
struct Waiting<T, W, F> {
    work: W,
    then: F,
    out: Option<Result<T>>,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
}

impl<T, W, F> Queued for Waiting<T, W, F>
where
    T: Send + 'static,
    W: FnMut(&mut Group) -> Result<T> + Send + 'static,
    F: FnOnce(&Result<T>) + Send + 'static,
{
    fn run(&mut self, group: &mut Group) -> Result<()> {
        let out = (self.work)(group);
        let outcome = match &out {
            Ok(_) => Ok(()),
            Err(err) => Err(err.clone()),
        };
        self.out = Some(out);
        outcome
    }

    fn void(&mut self, err: Error) {
        self.out = Some(Err(err));
    }

    fn finish(self: Box<Self>, committed: &Result<()>) {
        let out = match (self.out, committed) {
            (None, _) => Err(Error::internal("a write ended without running")),
            (Some(Ok(_)), Err(failed)) => Err(failed.clone()),
            (Some(out), _) => out,
        };
        (self.then)(&out);
        let _ = self.reply.send(out);
    }
}

/// A job for `work` and `then`, and where its answer will come.
fn queued<T: Send + 'static>(
    work: impl FnMut(&mut Group) -> Result<T> + Send + 'static,
    then: impl FnOnce(&Result<T>) + Send + 'static,
) -> (Job, tokio::sync::oneshot::Receiver<Result<T>>) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    (Box::new(Waiting { work, then, out: None, reply }), answer)
}

/// Runs `work` on the writer thread in a group's transaction and waits for
/// its answer, which comes once the group has committed durably: an `Ok`
/// whose group failed to commit becomes that failure. `work` may run twice
/// (see the module doc); the answer is its last run's. `then` sees the final
/// answer first, on the writer thread (so what it publishes leaves in
/// commit order).
pub(super) async fn on_writer<T: Send + 'static>(
    writer: &tokio::sync::mpsc::Sender<Job>,
    work: impl FnMut(&mut Group) -> Result<T> + Send + 'static,
    then: impl FnOnce(&Result<T>) + Send + 'static,
) -> Result<T> {
    let (job, answer) = queued(work, then);
    writer.send(job).await.map_err(|_| Error::internal("the embedded store's writer thread has stopped"))?;
    answer.await.map_err(|_| Error::internal("a write transaction ended without an answer"))?
}

#[cfg(test)]
mod tests;
