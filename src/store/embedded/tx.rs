//! The embedded transaction handle and the way a command runs in it.
//!
//! redb allows one writer at a time, so every transaction is serializable
//! and a crash at any point leaves all of it or none of it on disk. A command
//! runs on the writer thread (see `group`), inside one redb write
//! transaction, and is answered once its group is durable. Its future is
//! polled exactly once: every [`Tx`] method here finishes without waiting, so
//! the command must be done after that poll, and if it is not (it awaited
//! something else) the transaction is rolled back with an internal error
//! instead of parking a thread.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bson::DateTime;
use redb::{Database, ReadableDatabase};

use super::disk::Disk;
use super::group::{Job, on_writer};
use super::handle::{EmbeddedTx, Writer};
use super::source::Snapshot;
use crate::error::{Error, Result};
use crate::store::events::Hub;
use crate::store::hidden::Hidden;
use crate::store::hidden::stage::Staging;
use crate::store::{Command, ReadCommand};

/// Runs `cmd` in one write transaction on the writer thread: commit on `Ok`,
/// roll back otherwise; answered once its group's commit is durable (see
/// `group`). While the store is failing after an I/O error the command is
/// refused with `SERVICE_UNAVAILABLE` before it runs (see `disk`).
pub(super) async fn run<C: Command + 'static>(
    disk: &Arc<Disk>,
    writer: &tokio::sync::mpsc::Sender<Job>,
    (hidden, hub): (&Arc<Hidden>, &Arc<Hub>),
    cmd: C,
) -> Result<C::Output> {
    let (disk, hidden, hub) = (Arc::clone(disk), Arc::clone(hidden), Arc::clone(hub));
    let cmd = Arc::new(cmd);
    let published = Arc::clone(&cmd);
    on_writer(
        writer,
        move || {
            disk.writable()?;
            let db = disk.db()?;
            let out = run_now(&db, &hidden, &*cmd);
            // Release the database before answering, so a caller that drops the
            // store on the answer can reopen the file at once.
            drop(db);
            disk.after_write(&out);
            out
        },
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
/// store): `Ok` once a probe write has committed.
pub(super) async fn recover(disk: &Arc<Disk>, writer: &tokio::sync::mpsc::Sender<Job>) -> Result<()> {
    let disk = Arc::clone(disk);
    on_writer(writer, move || disk.writable(), |_| {}).await
}

/// Runs `cmd` in one write transaction on this thread.
///
/// Staged deletions the command recorded are published to `hidden` just
/// before the commit, so no read that starts after the commit can see their
/// documents, and retired again if the commit fails.
fn run_now<C: Command>(db: &Database, hidden: &Arc<Hidden>, cmd: &C) -> Result<C::Output> {
    let mut tx = EmbeddedTx(Writer { tx: begin_write(db)?, now: DateTime::now(), staged: Vec::new() });
    match complete_now(cmd.apply(&mut tx)) {
        Ok(Ok(out)) => {
            let staging = Staging::new(hidden);
            staging.publish(&tx.0.staged);
            let committed = tx.0.tx.commit();
            staging.finish(committed.is_ok());
            committed?;
            Ok(out)
        }
        Ok(Err(err)) | Err(err) => {
            tx.0.tx.abort()?;
            Err(err)
        }
    }
}

/// A write transaction that commits without waiting for the disk: the
/// writer thread's durable commit after its group makes it durable (see `group`).
pub(super) fn begin_write(db: &Database) -> Result<redb::WriteTransaction> {
    let mut tx = db.begin_write()?;
    tx.set_durability(redb::Durability::None)
        .map_err(|e| Error::internal_from("setting an embedded transaction's durability", e))?;
    Ok(tx)
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
