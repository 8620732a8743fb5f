//! Batching by executor progress: the per-request loader behind every reference field.
//!
//! async-graphql resolves the fields of an object, and the items of a list,
//! concurrently inside the request's one task. The first load of a batch
//! becomes its leader: it yields to the executor, which polls every sibling
//! resolver of the same pass, each adding its key to the open batch and
//! waiting. When a yield adds no new key, the leader closes the batch and
//! makes one store call for all of it. No timer and no spawned task are
//! involved, so a batch holds exactly one query level however slow the CPU,
//! and costs no thread hop.
//!
//! Results are shared by the waiters of one batch and then dropped: there is
//! no cache across batches, so a read after the request's own write sees it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::dataloader::Loader;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// What a batch found, by key.
///
/// Hashed with foldhash (seeded at random per map), not SipHash: a list
/// query hashes its ids a few hundred times over these maps, and SipHash was
/// about 1% of a nested list's CPU.
pub type Found<K, V> = HashMap<K, Arc<V>, foldhash::fast::RandomState>;

/// One batch: the keys collected so far, then the store's answer.
struct Batch<K, V> {
    keys: Mutex<Vec<K>>,
    result: OnceLock<Result<Found<K, V>>>,
    done: Notify,
}

/// The batch currently collecting keys, if any.
type OpenBatch<K, V> = Mutex<Option<Arc<Batch<K, V>>>>;

/// A per-request loader that batches keys by executor progress (see the module docs).
///
/// Values come back as `Arc`s: a document referenced by many parents (one
/// author of many posts) is decoded once and shared, never deep-cloned.
pub struct Batcher<K: Send + Sync + Hash + Eq + Clone + 'static, L: Loader<K>> {
    loader: L,
    open: OpenBatch<K, L::Value>,
    /// Where batch sizes are recorded, when metrics are on.
    metrics: Option<Arc<Metrics>>,
}

impl<K, L> Batcher<K, L>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K, Error = Error>,
{
    /// A batcher over `loader`.
    pub fn new(loader: L) -> Self {
        Batcher { loader, open: Mutex::new(None), metrics: None }
    }

    /// Records every batch's size in `metrics`.
    pub fn recording(mut self, metrics: Option<&Arc<Metrics>>) -> Self {
        self.metrics = metrics.cloned();
        self
    }

    /// Takes the open batch (if any) and runs `f` on it, under the lock.
    fn with_open<T>(&self, f: impl FnOnce(&mut Option<Arc<Batch<K, L::Value>>>) -> T) -> Result<T> {
        let mut open = self.open.lock().map_err(|_| Error::internal("batch lock poisoned"))?;
        Ok(f(&mut open))
    }

    /// Loads one key, batched with every other key its query level asks for.
    pub async fn load_one(&self, key: K) -> Result<Option<Arc<L::Value>>> {
        let batch = self.answer(vec![key.clone()]).await?;
        Ok(Self::found(&batch)?.get(&key).cloned())
    }

    /// Loads several keys at once (a whole page's references), in the same
    /// batch as every other load of this query level; keys not found are absent.
    pub async fn load_many(&self, keys: Vec<K>) -> Result<Found<K, L::Value>> {
        if keys.is_empty() {
            return Ok(Found::default());
        }
        let batch = self.answer(keys.clone()).await?;
        let found = Self::found(&batch)?;
        Ok(keys.into_iter().filter_map(|k| found.get(&k).map(|v| (k, Arc::clone(v)))).collect())
    }

    /// Adds `keys` to the open batch (opening one, and leading it, if none is
    /// open) and waits for the batch's answer.
    async fn answer(&self, keys: Vec<K>) -> Result<Arc<Batch<K, L::Value>>> {
        let (batch, leader) = self.with_open(|open| match open {
            Some(batch) => {
                if let Ok(mut open_keys) = batch.keys.lock() {
                    open_keys.extend(keys);
                }
                (Arc::clone(batch), false)
            }
            None => {
                let batch = Arc::new(Batch { keys: Mutex::new(keys), result: OnceLock::new(), done: Notify::new() });
                *open = Some(Arc::clone(&batch));
                (batch, true)
            }
        })?;
        if leader {
            // Boxed: the store call's state is kilobytes, and without the box
            // it would be inside every load's future, so inside every field
            // future async-graphql allocates and moves (one per field that
            // loads a reference). Only one load per batch leads.
            Box::pin(self.lead(&batch)).await?;
        } else {
            let notified = batch.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if batch.result.get().is_none() {
                notified.await;
            }
        }
        Ok(batch)
    }

    /// What a finished batch found, or its error.
    fn found(batch: &Batch<K, L::Value>) -> Result<&Found<K, L::Value>> {
        match batch.result.get() {
            Some(Ok(found)) => Ok(found),
            Some(Err(err)) => Err(err.clone()),
            None => Err(Error::internal("a batch finished without a result")),
        }
    }

    /// Collects keys until a pass of the executor adds none, then loads them all.
    async fn lead(&self, batch: &Batch<K, L::Value>) -> Result<()> {
        let count = || batch.keys.lock().map(|k| k.len()).unwrap_or(0);
        loop {
            let before = count();
            tokio::task::yield_now().await;
            if count() == before {
                break;
            }
        }
        self.with_open(|open| *open = None)?;
        let mut keys = std::mem::take(&mut *batch.keys.lock().map_err(|_| Error::internal("batch lock poisoned"))?);
        let mut seen = foldhash::HashSet::with_capacity_and_hasher(keys.len(), Default::default());
        keys.retain(|k| seen.insert(k.clone()));
        if let Some(metrics) = &self.metrics {
            metrics.batch_sizes.observe(keys.len() as f64);
        }
        let outcome =
            self.loader.load(&keys).await.map(|found| found.into_iter().map(|(k, v)| (k, Arc::new(v))).collect());
        let _ = batch.result.set(outcome);
        batch.done.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts calls and echoes keys, failing on key 13.
    struct Echo(Arc<AtomicUsize>);

    impl Loader<u32> for Echo {
        type Value = u32;
        type Error = Error;
        async fn load(&self, keys: &[u32]) -> Result<HashMap<u32, u32>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            if keys.contains(&13) {
                return Err(Error::internal("unlucky"));
            }
            Ok(keys.iter().map(|k| (*k, k * 10)).collect())
        }
    }

    /// Loads polled together form one batch, however many keys; each gets its own answer.
    #[tokio::test]
    async fn one_pass_is_one_batch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher = Batcher::new(Echo(Arc::clone(&calls)));
        let key = |k: u32| 100 + k % 50;
        let answers = futures::future::join_all((0..100u32).map(|k| batcher.load_one(key(k)))).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for (k, answer) in (0..100u32).zip(answers) {
            assert_eq!(answer.ok().flatten().as_deref(), Some(&(key(k) * 10)));
        }
        // A later level is a new batch: nothing is cached across batches.
        assert_eq!(batcher.load_one(7).await.ok().flatten().as_deref(), Some(&70));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// A page's worth of keys loaded at once joins the same batch as the
    /// single loads of its level: still one call.
    #[tokio::test]
    async fn load_many_joins_the_open_batch() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher = Batcher::new(Echo(Arc::clone(&calls)));
        let (one, many) = futures::join!(batcher.load_one(1), batcher.load_many(vec![2, 3, 3, 13 + 1]));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(one.ok().flatten().as_deref(), Some(&10));
        let many = many.expect("loaded");
        let mut got: Vec<(u32, u32)> = many.iter().map(|(k, v)| (*k, **v)).collect();
        got.sort_unstable();
        assert_eq!(got, vec![(2, 20), (3, 30), (14, 140)]);
    }

    /// A failed batch fails every load in it, with the same error.
    #[tokio::test]
    async fn a_failed_batch_fails_all_its_loads() {
        let batcher = Batcher::new(Echo(Arc::default()));
        let answers = futures::future::join_all([1, 13, 2].map(|k| batcher.load_one(k))).await;
        assert!(answers.iter().all(|a| matches!(a, Err(Error::Internal { .. }))));
    }

    /// Batches do not depend on timing: even with the other core busy and the
    /// runtime starved, one pass is still one call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn batches_do_not_depend_on_timing() {
        let spin = std::thread::spawn(|| {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        for _ in 0..20 {
            let calls = Arc::new(AtomicUsize::new(0));
            let batcher = Batcher::new(Echo(Arc::clone(&calls)));
            let _ = futures::future::join_all((100..130u32).map(|k| batcher.load_one(k))).await;
            assert_eq!(calls.load(Ordering::SeqCst), 1);
        }
        let _ = spin.join();
    }
}
