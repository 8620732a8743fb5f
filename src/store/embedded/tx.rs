//! The embedded transaction handle and the way a command runs in it.
//!
//! redb allows one writer at a time, so every transaction is serializable
//! and a crash at any point leaves all of it or none of it on disk. A command
//! runs on the writer thread (see `group`), inside its group's redb write
//! transaction, and is answered once that group is durable. Its future is
//! polled exactly once: every [`Tx`] method here finishes without waiting, so
//! the command must be done after that poll, and if it is not (it awaited
//! something else) its writes are rolled back with an internal error
//! instead of parking a thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bson::DateTime;
use redb::{Database, ReadableDatabase};

use super::group::{Group, Job, on_writer};
use super::handle::{EmbeddedTx, Writer};
use super::source::Snapshot;
use crate::error::{Error, Result};
use crate::store::events::Hub;
use crate::store::{Command, ReadCommand};

/// Runs `cmd` on the writer thread, in its group's write transaction (see
/// `group`): its writes stay on `Ok` and are rolled back otherwise; answered
/// once the group's commit is durable. While the store is failing after an
/// I/O error the command is refused with `SERVICE_UNAVAILABLE` before it
/// runs (see `disk`).
pub(super) async fn run<C: Command + 'static>(
    writer: &tokio::sync::mpsc::Sender<Job>,
    hub: &Arc<Hub>,
    cmd: C,
) -> Result<C::Output> {
    let hub = Arc::clone(hub);
    let cmd = Arc::new(cmd);
    let published = Arc::clone(&cmd);
    on_writer(
        writer,
        move |group| run_now(group, &*cmd),
        // On the writer thread, once the commit is durable: events leave in commit order.
        move |out| {
            if let Ok(out) = out
                && hub.is_heard()
            {
                hub.publish(published.events(out));
            }
        },
    )
    .await
}

/// A recovery attempt on the writer thread (a readiness probe of a failing
/// store): `Ok` once a probe write has committed. The writer thread makes
/// the attempt before it runs any job (see `group`), so the job itself is empty.
pub(super) async fn recover(writer: &tokio::sync::mpsc::Sender<Job>) -> Result<()> {
    on_writer(writer, |_| Ok(()), |_| {}).await
}

/// Applies `cmd` in `group`'s transaction, on this thread, and hands the
/// staged deletions it recorded to the group, which publishes them just
/// before its commit.
fn run_now<C: Command>(group: &mut Group, cmd: &C) -> Result<C::Output> {
    let mut tx = EmbeddedTx(Writer { tx: group.tx()?, now: DateTime::now(), staged: Vec::new() });
    let out = complete_now(cmd.apply(&mut tx))??;
    let staged = std::mem::take(&mut tx.0.staged);
    group.stage(staged);
    Ok(out)
}

/// Runs the read-only `cmd` over a fresh read snapshot on the blocking pool:
/// never on the writer thread, so a deletion preview of a huge account
/// delays no write, and never inline on an async worker, because it may
/// read tens of thousands of index entries. (Callers bound how many run.)
pub(super) async fn read_only<C: ReadCommand>(db: Arc<Database>, cmd: C) -> Result<C::Output> {
    tokio::task::spawn_blocking(move || {
        let mut view = EmbeddedTx(Snapshot(db.begin_read()?));
        complete_now(cmd.read(&mut view))?
    })
    .await?
}

/// Polls `fut` once and returns its output, or an error if it is not ready.
fn complete_now<F: Future>(fut: F) -> Result<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(Error::internal("an embedded transaction waited on something other than the store")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A future that is not ready on its first poll is reported, never waited on.
    #[test]
    fn a_pending_command_is_an_error_not_a_hang() {
        let pending = std::future::pending::<()>();
        assert!(matches!(complete_now(pending), Err(Error::Internal { .. })));
        assert_eq!(complete_now(async { 7 }).ok(), Some(7));
    }
}
