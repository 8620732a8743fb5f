//! The open database file, and getting it back after an I/O failure.
//!
//! When a write fails on I/O (typically a full disk), redb latches the
//! failure: every later operation on that `Database`, reads included,
//! answers "previous I/O error" until it is closed and opened again. So the
//! database lives in a slot that can be emptied and refilled, and a failed
//! write marks the store *failing*:
//!
//! - while failing, writes are refused at once with `SERVICE_UNAVAILABLE`
//!   (nothing is attempted, so nothing is half done), and `/readyz` says not
//!   ready;
//! - the writer thread recovers at most once per [`RECOVERY_INTERVAL`], when a
//!   write or a readiness probe asks: it reopens the file (which restores
//!   reads, after replaying the redo log: see `redo`) and commits a probe of
//!   [`PROBE_BYTES`]. Only a committed probe
//!   ends the failing state, so a disk with a few free bytes does not look
//!   writable.
//!
//! Only the writer thread empties or refills the slot, so no two threads
//! reopen at once; readers only clone the `Arc` in it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};

use crate::error::{Error, Result};

/// How often a failing store tries to recover, at most.
pub(super) const RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The size of the probe a failing store must commit before it takes writes
/// again: larger than any single document a write may add.
pub(super) const PROBE_BYTES: usize = 1024 * 1024;

/// How many times a reopen waits 10 ms for a reader to let go of the old handle.
const REOPEN_TRIES: usize = 50;

/// The table the probe is written to and removed from again.
const PROBE: TableDefinition<&str, &[u8]> = TableDefinition::new("health_probe");

/// What refused writes and readers of an emptied slot are told (the cause
/// stays in the logs).
const UNAVAILABLE: &str = "the embedded store cannot write now (disk full or I/O failure); retrying";

/// The database file, in a slot the writer thread can refill.
pub(super) struct Disk {
    path: PathBuf,
    options: super::FileOptions,
    slot: RwLock<Option<Arc<Database>>>,
    /// Set by a write that failed on I/O; cleared by a committed probe.
    failing: AtomicBool,
    /// When recovery was last tried, so a flood of refused writes or probes
    /// costs at most one reopen per [`RECOVERY_INTERVAL`].
    last_try: Mutex<Option<Instant>>,
}

impl Disk {
    /// A slot holding the database `db`, opened from `path`.
    pub(super) fn new(path: PathBuf, options: super::FileOptions, db: Database) -> Self {
        Disk {
            path,
            options,
            slot: RwLock::new(Some(Arc::new(db))),
            failing: AtomicBool::new(false),
            last_try: Mutex::new(None),
        }
    }

    /// The open database, or `SERVICE_UNAVAILABLE` while it is being reopened.
    pub(super) fn db(&self) -> Result<Arc<Database>> {
        let slot = self.slot.read().map_err(|_| Error::internal("the database slot is poisoned"))?;
        slot.clone().ok_or_else(|| Error::unavailable(UNAVAILABLE))
    }

    /// Whether writes are being refused until a probe commits.
    pub(super) fn failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Notes the outcome of a write transaction: an I/O failure marks the
    /// store failing (and its database latched, so it is reopened at once to
    /// restore reads). Writer thread only.
    pub(super) fn after_write<T>(&self, outcome: &Result<T>) {
        if let Err(err @ Error::Unavailable { .. }) = outcome {
            tracing::error!(error = %err.chain(), "a write failed on I/O; refusing writes until a probe commits");
            self.failing.store(true, Ordering::Release);
            if let Ok(mut last) = self.last_try.lock() {
                *last = Some(Instant::now());
            }
            self.reopen();
        }
    }

    /// Refuses at once while failing, except for one recovery attempt per
    /// [`RECOVERY_INTERVAL`]; `Ok` when writes may go ahead. Writer thread only.
    pub(super) fn writable(&self) -> Result<()> {
        if !self.failing() {
            return Ok(());
        }
        let due = match self.last_try.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|at| at.elapsed() >= RECOVERY_INTERVAL);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if !due {
            return Err(Error::unavailable(UNAVAILABLE));
        }
        if self.db().is_err() {
            self.reopen();
        }
        match self.db().and_then(|db| probe(&db)) {
            Ok(()) => {
                tracing::warn!("a probe write committed; the embedded store takes writes again");
                self.failing.store(false, Ordering::Release);
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %err.chain(), "the embedded store still cannot write");
                // The failed probe latched the database again: reopen so reads go on.
                self.reopen();
                Err(Error::unavailable(UNAVAILABLE))
            }
        }
    }

    /// Empties the slot, closing the latched database, and opens the file
    /// again. If that fails (the disk is still full and the file needs a
    /// repair, or a reader still holds the old database), the slot stays
    /// empty and the next recovery attempt tries again.
    fn reopen(&self) {
        let old = match self.slot.write() {
            Ok(mut slot) => slot.take(),
            Err(_) => return,
        };
        // redb releases the file as soon as the last `Database` handle goes;
        // live read transactions then read "database closed".
        drop(old);
        // A reader may hold the old handle for a moment (handles are cloned
        // per read and dropped right after); give it a little time.
        let mut opened = super::upgrade::open_or_upgrade(&self.path, self.options);
        for _ in 0..REOPEN_TRIES {
            if !matches!(&opened, Err(err) if err.find_cause::<redb::DatabaseError>().is_some_and(|e| matches!(e, redb::DatabaseError::DatabaseAlreadyOpen)))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            opened = super::upgrade::open_or_upgrade(&self.path, self.options);
        }
        match opened {
            Ok(db) => {
                if let Ok(mut slot) = self.slot.write() {
                    *slot = Some(Arc::new(db));
                }
                tracing::info!(path = %self.path.display(), "reopened the embedded store");
            }
            Err(err) => tracing::warn!(error = %err.chain(), "reopening the embedded store failed; will retry"),
        }
    }
}

/// Commits [`PROBE_BYTES`] to the probe table and then removes them: proof
/// that the disk takes a write of that size now.
fn probe(db: &Database) -> Result<()> {
    let payload = vec![0u8; PROBE_BYTES];
    let tx = db.begin_write()?;
    tx.open_table(PROBE)?.insert("probe", payload.as_slice())?;
    tx.commit()?;
    let tx = db.begin_write()?;
    tx.open_table(PROBE)?.remove("probe")?;
    tx.commit()?;
    Ok(())
}
