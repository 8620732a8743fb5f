//! The redo log: a durable commit costs one sequential append and one
//! `fdatasync` of a log file, not a sync of pages all over the store file.
//!
//! Why: a group's durable commit changes some 60 pages at places spread over
//! the store file, and on this class of disk an `fdatasync` after 70
//! scattered pages takes about 1.3 ms, against 0.26 ms after 70 contiguous
//! ones (README, "What bounds the write mix"). So the store file goes
//! through [`Redo`], a redb `StorageBackend` over redb's own `FileBackend`:
//!
//! - every `write` and `set_len` goes to the store file at once (so reads
//!   see it, from the page cache) and is recorded in a batch;
//! - `sync_data` appends the batch to the active log file as one frame (see
//!   `frame`) and syncs only that file;
//! - once the active log holds its size, that sync also starts a checkpoint
//!   (an `fdatasync` of the store file, on a thread of its own) and switches
//!   to the other log, which it reuses only after the checkpoint before it
//!   succeeded, so a log is dropped only once the store file holds it;
//! - on open, before redb reads the file, `frame::recover` replays every
//!   frame up to each log's last synced one, the older log first, syncs the
//!   store file and marks both logs as replayed.
//!
//! After a crash, replaying gives the store file every byte written before
//! the last completed `sync_data`, in order; bytes written after it may or
//! may not be there. That is exactly what a crash can leave in a plain file,
//! and it is all redb's crash guarantee (copy-on-write pages, a checksummed
//! header) assumes of one. So the guarantee is redb's, unchanged: only where
//! a sync's bytes first become durable moved.

mod frame;
#[cfg(test)]
mod tests;

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use self::frame::{Batch, SYNCED};

/// A batch this large is appended (not synced) before the next
/// `sync_data`, so a large transaction never holds more than this in memory.
const FLUSH_AT: usize = 4 << 20;

/// Checkpoints that synced the store file, since start-up; `/metrics`
/// reports it as `blogql_store_redo_checkpoints_total`.
pub static REDO_CHECKPOINTS: AtomicU64 = AtomicU64::new(0);

/// Frames replayed into the store file on opening it, since start-up
/// (`blogql_store_redo_replayed_frames_total`): above zero after a start
/// that followed an unclean stop.
pub static REDO_REPLAYED_FRAMES: AtomicU64 = AtomicU64::new(0);

/// The two log files beside the store file `path`.
pub(super) fn log_paths(path: &Path) -> [PathBuf; 2] {
    [path.with_extension("redo-0"), path.with_extension("redo-1")]
}

/// Replays the logs beside `path`, if any are there, and removes them: for
/// a store opened with the log turned off, whose last run may have had it on
/// and stopped uncleanly, leaving answered writes only in the log.
pub(super) fn replay_leftover(path: &Path) -> io::Result<()> {
    let paths = log_paths(path);
    if !paths.iter().any(|p| p.exists()) {
        return Ok(());
    }
    drop(Redo::open(path, u64::MAX)?);
    for p in &paths {
        match std::fs::remove_file(p) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    Ok(())
}

/// redb's file backend, made durable through the redo log.
#[derive(Debug)]
pub(super) struct Redo {
    store: FileBackend,
    /// The store file again, for checkpoints (`FileBackend` keeps its own private).
    store_file: File,
    /// A log switch happens once the active log holds this many bytes.
    log_bytes: u64,
    log: Mutex<Log>,
}

#[derive(Debug)]
struct Log {
    /// The log files as opened for reading and recovery; the first holds the lock.
    files: [File; 2],
    /// The same files as frames are appended to: with `O_DIRECT | O_DSYNC`
    /// where the file system allows it, so an append is durable when it
    /// returns and never passes through the page cache; else buffered,
    /// synced after each append that ends a sync.
    appends: [File; 2],
    direct: bool,
    active: usize,
    generation: u64,
    /// Where the next frame goes in the active file.
    tail: u64,
    batch: BatchSlot,
    /// Whether records were appended since the last synced frame.
    unsynced: bool,
    /// The running checkpoint: the store file's sync that frees the inactive log.
    checkpoint: Option<JoinHandle<io::Result<()>>>,
    /// The first failure; kept, so nothing is logged over a state that may not be durable.
    failed: Option<(io::ErrorKind, String)>,
}

/// A [`Batch`], which holds no file and so prints as its size.
struct BatchSlot(Batch);

impl std::fmt::Debug for BatchSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} bytes)", self.0.len())
    }
}

impl Redo {
    /// Opens the store file at `path` (creating it) and its logs, replays
    /// what the logs hold, and switches logs every `log_bytes`. Fails with
    /// `WouldBlock` while another handle has the logs.
    pub(super) fn open(path: &Path, log_bytes: u64) -> io::Result<Self> {
        let open = |p: &Path| OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p);
        let [first, second] = log_paths(path);
        let files = [open(&first)?, open(&second)?];
        match files[0].try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(io::ErrorKind::WouldBlock, "the redo log is in use by another handle"));
            }
            Err(TryLockError::Error(err)) => return Err(err),
        }
        let store_file = open(path)?;
        // The logs' directory entries must survive a power cut as their frames do.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()?;
        let recovered = frame::recover(&store_file, &files)?;
        REDO_REPLAYED_FRAMES.fetch_add(recovered.frames as u64, Ordering::Relaxed);
        if recovered.frames > 0 {
            tracing::warn!(
                frames = recovered.frames,
                "replayed the redo log into the store file after an unclean stop"
            );
        }
        let store = FileBackend::new(store_file.try_clone()?).map_err(io::Error::other)?;
        let (appends, direct) = match (open_direct(&first), open_direct(&second)) {
            (Ok(a), Ok(b)) => ([a, b], true),
            _ => ([files[0].try_clone()?, files[1].try_clone()?], false),
        };
        Ok(Redo {
            store,
            store_file,
            log_bytes,
            log: Mutex::new(Log {
                files,
                appends,
                direct,
                active: 0,
                generation: recovered.next_generation,
                tail: 0,
                batch: BatchSlot(Batch::new(FLUSH_AT + (64 << 10))),
                unsynced: false,
                checkpoint: None,
                failed: None,
            }),
        })
    }

    /// The log, even if a thread panicked holding it: every failure inside is latched first.
    fn log(&self) -> io::Result<MutexGuard<'_, Log>> {
        let log = self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match &log.failed {
            None => Ok(log),
            Some((kind, text)) => Err(io::Error::new(*kind, format!("an earlier redo log write failed: {text}"))),
        }
    }
}

/// A log file opened for durable appends that bypass the page cache.
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).custom_flags(libc::O_DIRECT | libc::O_DSYNC).open(path)
}

impl Log {
    /// Keeps the first failure (see `failed`).
    fn latch<T>(&mut self, outcome: io::Result<T>) -> io::Result<T> {
        if let Err(err) = &outcome
            && self.failed.is_none()
        {
            self.failed = Some((err.kind(), err.to_string()));
        }
        outcome
    }

    /// Appends the batch as one frame at the tail of the active log.
    fn append(&mut self, flags: u32) -> io::Result<()> {
        let frame = self.batch.0.seal(self.generation, flags);
        let written = std::os::unix::fs::FileExt::write_all_at(&self.appends[self.active], frame, self.tail);
        let len = frame.len() as u64;
        self.batch.0.clear();
        self.latch(written)?;
        self.tail += len;
        self.unsynced = flags & SYNCED == 0;
        Ok(())
    }

    /// Waits for the running checkpoint, if any.
    fn finish_checkpoint(&mut self) -> io::Result<()> {
        let Some(running) = self.checkpoint.take() else { return Ok(()) };
        let outcome = running.join().unwrap_or_else(|_| Err(io::Error::other("the checkpoint thread panicked")));
        self.latch(outcome)
    }

    /// Starts a checkpoint of everything written so far and moves to the
    /// other log, once the checkpoint that covered that log is done.
    fn switch(&mut self, store_file: &File) -> io::Result<()> {
        self.finish_checkpoint()?;
        let file = self.latch(store_file.try_clone())?;
        let started = std::thread::Builder::new().name("blogql-checkpoint".into()).spawn(move || {
            file.sync_data()?;
            REDO_CHECKPOINTS.fetch_add(1, Ordering::Relaxed);
            Ok(())
        });
        self.checkpoint = Some(self.latch(started)?);
        self.active ^= 1;
        self.generation += 1;
        self.tail = 0;
        Ok(())
    }
}

impl StorageBackend for Redo {
    fn len(&self) -> io::Result<u64> {
        self.store.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.store.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut log = self.log()?;
        let resized = self.store.set_len(len);
        log.latch(resized)?;
        log.batch.0.push_set_len(len);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut log = self.log()?;
        if log.batch.0.is_empty() && !log.unsynced {
            return Ok(());
        }
        // The file's length ends every synced frame, so a replay leaves the
        // length this sync made durable, even where a later, unsynced resize
        // shrank the file and the replayed writes stop short of that length.
        let len = self.store.len();
        let len = log.latch(len)?;
        log.batch.0.push_set_len(len);
        log.append(SYNCED)?;
        if !log.direct {
            let synced = log.appends[log.active].sync_data();
            log.latch(synced)?;
        }
        if log.tail >= self.log_bytes {
            log.switch(&self.store_file)?;
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut log = self.log()?;
        let written = self.store.write(offset, data);
        log.latch(written)?;
        log.batch.0.push_write(offset, data);
        if log.batch.0.len() >= FLUSH_AT {
            log.append(0)?;
        }
        Ok(())
    }

    /// A clean close checkpoints and marks both logs (see `frame::mark`), so
    /// the next open replays nothing; after a failure it leaves them for that replay.
    fn close(&self) -> io::Result<()> {
        let closed = self.store.close();
        let mut log = self.log()?;
        log.finish_checkpoint()?;
        if log.batch.0.is_empty() && !log.unsynced {
            let synced = self.store_file.sync_data();
            log.latch(synced)?;
            let marker = log.generation + 1;
            for file in &log.files {
                frame::mark(file, marker)?;
            }
        }
        closed
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.store.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.store.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.store.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.store.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.store.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.store.query_lock_range(start, end)
    }
}
