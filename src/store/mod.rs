//! The store seam: batched reads, and a transaction handle that is the only way to write.
//!
//! - [`Backend`] is what a backend implements: every read batched (by ids,
//!   by parents, by page), plus [`Backend::run`], which runs one typed
//!   [`Command`] in one ACID transaction. It has no write methods at all.
//! - [`Tx`] is the transaction handle. Every write lives there, and a handle
//!   only exists inside [`Backend::run`], so a cascade step outside the
//!   transaction does not compile.
//! - [`Store`] is the backend this process runs on, chosen at start-up
//!   ([`embedded`] on redb, or [`mongo`] on the MongoDB driver). It
//!   dispatches statically, so commands keep their result types and reads
//!   cost no boxing. It is also where reads leave out what staged deletions
//!   hide ([`hidden`]): one place, so no resolver can forget it.
//!
//! A "round trip" is one call through this seam. On the embedded store it
//! is one read transaction; on MongoDB one `find`, or one `aggregate` per
//! distinct page size in the batch (a batch normally has one), or one
//! session transaction.

/// Calls the same [`Backend`] method on whichever backend `$store` holds,
/// counting the round trip when the test hooks are compiled in.
macro_rules! on_backend {
    ($store:expr, $b:ident => $call:expr) => {{
        $store.count_round_trip();
        on_engine!($store, $b => $call)
    }};
}

/// [`on_backend!`] without the count, for the process's own calls: probes,
/// the reaper's reads of its jobs and the checker's snapshot. The round-trip
/// count measures what requests cost, and the reaper polls on its own clock,
/// so counting it would make a request's count depend on timing.
macro_rules! on_engine {
    ($store:expr, $b:ident => $call:expr) => {
        match &$store.backend {
            $crate::store::Engine::Embedded($b) => $call,
            $crate::store::Engine::Mongo($b) => $call,
        }
    };
}

pub mod embedded;
pub mod events;
pub mod hidden;
pub mod idempotency;
mod lists;
pub mod mongo;
mod port;
mod relation;

use std::sync::Arc;

use bson::DateTime;
use tracing::Instrument;

pub use self::hidden::refill::{Paged, REFILL_BUDGET};
pub use self::hidden::visible::Scrub;
use self::hidden::{Hidden, Sets};
use self::idempotency::{Claim, Fingerprint, IdemKey, Lease};
pub use self::port::*;
pub use self::relation::{Listing, Relation};
use secrecy::ExposeSecret;

use crate::error::Result;
use crate::limits::gate::Gate;
use crate::model::{DeletionJobDoc, JobHeader};
use crate::settings::StoreSettings;

/// Read-only commands that may run at once: one, so a preview flood costs
/// at most one core, whatever it looks like.
const HEAVY_READ_SLOTS: usize = 1;
/// Read-only commands that may wait for the slot before the next is refused.
const HEAVY_READ_QUEUE: usize = 16;

/// A read-only command with the slot it runs in.
struct Slotted<C> {
    cmd: C,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<C: ReadCommand> ReadCommand for Slotted<C> {
    type Output = C::Output;
    const NAME: &'static str = C::NAME;

    async fn read<R: Reads>(&self, view: &mut R) -> Result<C::Output> {
        self.cmd.read(view).await
    }
}

/// Write transactions since start-up, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxCounts {
    /// Commands that committed.
    pub committed: u64,
    /// Commands that rolled back (refused, failed or conflicting).
    pub rolled_back: u64,
    /// Re-runs after transient conflicts (MongoDB only).
    pub retried: u64,
}

/// Committed and rolled-back transactions, shared by a store and its views.
#[derive(Debug, Default)]
struct TxTally {
    committed: std::sync::atomic::AtomicU64,
    rolled_back: std::sync::atomic::AtomicU64,
}

/// The backend this process runs on.
///
/// Cheap to clone. [`Store::per_request`] gives each request its own
/// snapshot view; everything else is shared.
#[derive(Clone)]
pub struct Store {
    backend: Engine,
    tally: std::sync::Arc<TxTally>,
    /// Bounds the read-only commands running and waiting at once: each may
    /// read an account's whole fan-out.
    heavy_reads: Arc<Gate>,
    /// Round trips through this store and every view of it. Compiled only
    /// for the test crate (the `test-hooks` feature), never in the server.
    #[cfg(feature = "test-hooks")]
    round_trips: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
enum Engine {
    Embedded(embedded::EmbeddedStore),
    Mongo(mongo::MongoStore),
}

/// Opens the configured store: MongoDB when a URI is set, else the embedded one.
pub async fn open(settings: &StoreSettings) -> Result<Store> {
    Ok(match &settings.mongodb_uri {
        Some(uri) => {
            let options = mongo::ConnectOptions { database: settings.mongodb_database.clone(), ..Default::default() };
            let store = mongo::MongoStore::connect(uri.expose_secret(), options).await?;
            tracing::info!(database = %store.database().name(), "using MongoDB");
            store.into()
        }
        None => {
            let options = embedded::FileOptions {
                cache_bytes: settings.store_cache_mib.saturating_mul(1024 * 1024),
                redo_log_bytes: settings.store_redo_log_mib.saturating_mul(1024 * 1024),
            };
            embedded::EmbeddedStore::open_with(&settings.data_dir, options)?.into()
        }
    })
}

impl From<embedded::EmbeddedStore> for Store {
    fn from(store: embedded::EmbeddedStore) -> Self {
        Store::new(Engine::Embedded(store))
    }
}

impl From<mongo::MongoStore> for Store {
    fn from(store: mongo::MongoStore) -> Self {
        Store::new(Engine::Mongo(store))
    }
}

impl Store {
    fn new(backend: Engine) -> Self {
        Store {
            backend,
            tally: std::sync::Arc::default(),
            heavy_reads: Arc::new(Gate::new(HEAVY_READ_SLOTS, HEAVY_READ_QUEUE)),
            #[cfg(feature = "test-hooks")]
            round_trips: std::sync::Arc::default(),
        }
    }

    #[inline]
    fn count_round_trip(&self) {
        #[cfg(feature = "test-hooks")]
        self.round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Round trips made through this store and its views since it was opened.
    #[cfg(feature = "test-hooks")]
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// See [`Backend::ping`].
    pub async fn ping(&self) -> Result<()> {
        on_engine!(self, b => b.ping().await)
    }

    /// See [`Backend::claim_key`].
    pub async fn claim_key(&self, key: &IdemKey, fingerprint: &Fingerprint, until: DateTime) -> Result<Claim> {
        on_backend!(self, b => b.claim_key(key, fingerprint, until).await)
    }

    /// See [`Backend::keep_answer`].
    pub async fn keep_answer(&self, key: &IdemKey, lease: Lease, answer: Vec<u8>, until: DateTime) -> Result<()> {
        on_backend!(self, b => b.keep_answer(key, lease, answer, until).await)
    }

    /// See [`Backend::release_key`].
    pub async fn release_key(&self, key: &IdemKey, lease: Lease) -> Result<()> {
        on_backend!(self, b => b.release_key(key, lease).await)
    }

    /// The documents staged deletions hide right now, if any job is in progress.
    fn hidden_now(&self) -> Option<Arc<Sets>> {
        on_engine!(self, b => b.hidden().current())
    }

    /// Where committed writes' events go; see [`Backend::hub`].
    pub fn hub(&self) -> &Arc<events::Hub> {
        on_engine!(self, b => b.hub())
    }

    /// Starts listening on `topic` for what commits from now on: listens
    /// first, then asks the backend how far commits have got and skips the
    /// events up to there, whose effects the caller's next reads see.
    pub async fn listen(&self, topic: events::Topic) -> Result<events::Listener> {
        let mut listener = self.hub().listen(topic);
        listener.skip_through(on_engine!(self, b => b.event_horizon().await)?);
        Ok(listener)
    }

    /// The registry of staged deletions this process knows of.
    pub fn hidden(&self) -> &Arc<Hidden> {
        on_engine!(self, b => b.hidden())
    }

    /// See [`Backend::per_request`].
    pub fn per_request(&self) -> Store {
        let backend = match &self.backend {
            Engine::Embedded(b) => Engine::Embedded(b.per_request()),
            Engine::Mongo(b) => Engine::Mongo(b.per_request()),
        };
        Store {
            backend,
            tally: std::sync::Arc::clone(&self.tally),
            heavy_reads: Arc::clone(&self.heavy_reads),
            #[cfg(feature = "test-hooks")]
            round_trips: std::sync::Arc::clone(&self.round_trips),
        }
    }

    /// The store's state ([`Backend::version`]) with what staged deletion
    /// hides now: equal before and after a request's reads, its answer is
    /// exactly the one for that state. `None` while a commit is being made,
    /// and always on MongoDB.
    pub fn version(&self) -> Option<(u64, u64)> {
        let store = on_engine!(self, b => b.version())?;
        Some((store, self.hidden().generation()?))
    }

    /// See [`Backend::renew`].
    pub async fn renew(&self) {
        on_engine!(self, b => b.renew().await)
    }

    /// Runs one command in one transaction; see [`Backend::run`].
    ///
    /// Each runs in a `transaction` span (a child of the request's) with the
    /// command's name, its attempts (more than one only after transient
    /// conflicts on MongoDB) and whether it committed.
    pub async fn run<C: Command>(&self, cmd: C) -> Result<C::Output> {
        let span =
            tracing::info_span!("transaction", command = C::NAME, attempts = 1u64, outcome = tracing::field::Empty);
        let outcome = on_backend!(self, b => b.run(cmd).instrument(span.clone()).await);
        let (counter, label) = match &outcome {
            Ok(_) => (&self.tally.committed, "committed"),
            Err(_) => (&self.tally.rolled_back, "rolled_back"),
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        span.record("outcome", label);
        outcome
    }

    /// Runs a read-only command in a slot of the process's bounded pool
    /// (`RATE_LIMITED` when its queue is full); see [`Backend::read_only`].
    /// The slot goes with the command, so it is freed when the reads are
    /// really done, not when a client that gave up stops waiting.
    pub async fn read_only<C: ReadCommand>(&self, cmd: C) -> Result<C::Output> {
        let slot = self.heavy_reads.enter().await?;
        let span = tracing::info_span!("read", command = C::NAME);
        on_backend!(self, b => b.read_only(Slotted { cmd, _slot: slot }).instrument(span.clone()).await)
    }

    /// Transactions since start-up, across this store and all its views.
    pub fn transactions(&self) -> TxCounts {
        let retried = on_engine!(self, b => b.transaction_retries());
        TxCounts {
            committed: self.tally.committed.load(std::sync::atomic::Ordering::Relaxed),
            rolled_back: self.tally.rolled_back.load(std::sync::atomic::Ordering::Relaxed),
            retried,
        }
    }

    /// See [`Backend::snapshot`]: everything, hidden documents included.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        on_engine!(self, b => b.snapshot().await)
    }

    /// See [`Backend::deletion_job_headers`].
    pub async fn deletion_job_headers(&self) -> Result<Vec<JobHeader>> {
        on_engine!(self, b => b.deletion_job_headers().await)
    }

    /// See [`Backend::deletion_job`].
    pub async fn deletion_job(&self, header: JobHeader) -> Result<DeletionJobDoc> {
        on_engine!(self, b => b.deletion_job(header).await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::*;
    use crate::error::Error;

    /// A span's `name#id` and its fields.
    type Seen = (String, Vec<(String, String)>);

    /// Every span opened, with its fields as recorded by the end.
    #[derive(Clone, Default)]
    struct Spans(Arc<Mutex<Vec<Seen>>>);

    struct Fields<'a>(&'a mut Vec<(String, String)>);

    impl Visit for Fields<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.retain(|(name, _)| name != field.name());
            self.0.push((field.name().to_owned(), format!("{value:?}").trim_matches('"').to_owned()));
        }
    }

    impl<S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for Spans {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
            let mut fields = Vec::new();
            attrs.record(&mut Fields(&mut fields));
            if let Ok(mut spans) = self.0.lock() {
                spans.push((format!("{}#{}", attrs.metadata().name(), id.into_u64()), fields));
            }
        }
        fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
            if let Ok(mut spans) = self.0.lock()
                && let Some((_, fields)) =
                    spans.iter_mut().find(|(name, _)| name.ends_with(&format!("#{}", id.into_u64())))
            {
                values.record(&mut Fields(fields));
            }
        }
    }

    /// A command that commits or fails without writing.
    struct Noop(bool);

    impl Command for Noop {
        type Output = ();
        const NAME: &'static str = "Noop";
        async fn apply<T: Tx>(&self, _: &mut T) -> Result<()> {
            if self.0 { Ok(()) } else { Err(Error::Forbidden("no".into())) }
        }
    }

    /// Each transaction runs in one `transaction` span naming its command, attempts and outcome.
    #[tokio::test(flavor = "current_thread")]
    async fn each_transaction_has_one_span_with_its_command_and_outcome() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::from(embedded::EmbeddedStore::open(dir.path()).expect("open"));
        let spans = Spans::default();
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
        store.run(Noop(true)).await.expect("commits");
        assert!(store.run(Noop(false)).await.is_err());
        let seen = spans.0.lock().expect("spans").clone();
        let fields = |i: usize| -> Vec<(String, String)> {
            let mut f = seen[i].1.clone();
            f.sort();
            f
        };
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.iter().all(|(name, _)| name.starts_with("transaction#")));
        let expect = |outcome: &str| {
            vec![
                ("attempts".to_owned(), "1".to_owned()),
                ("command".to_owned(), "Noop".to_owned()),
                ("outcome".to_owned(), outcome.to_owned()),
            ]
        };
        assert_eq!(fields(0), expect("committed"));
        assert_eq!(fields(1), expect("rolled_back"));
    }
}
