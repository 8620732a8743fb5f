//! The answer cache: a query's encoded answer, served again while the store
//! has not changed, so a popular page costs one execution per write, not
//! one per request.
//!
//! It is exact, never "fresh enough": an entry is keyed by everything an
//! answer depends on (the document's hash, the operation name, the
//! variables and the viewer's token) and is valid only at the store
//! [`Version`] it was computed at. That version is the embedded store's
//! commit count with what staged deletion hides (see [`Version`]); any
//! commit moves it, and the whole cache is dropped the first time a newer
//! version is seen. An answer is kept only if the version was the same, and
//! stable (no write in progress), before and after its execution, so its
//! snapshot was exactly that version. Apollo's response cache and Hasura's
//! `@cached` expire entries by time instead, and may serve what a fresh
//! execution would not.
//!
//! Only answers without errors are kept. The memory is bounded
//! (`--answer-cache-mib`); past it new answers are not kept until the next
//! version empties the cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use bytes::Bytes;
use tokio::sync::watch;

use crate::graphql::Viewer;
use crate::metrics::series;
use crate::store::Store;

/// A state of the store: its commit count and the generation of what staged
/// deletion hides (which changes around commits, and on a reaper's poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The store's commit count (see `Backend::version`).
    pub store: u64,
    /// `Hidden`'s generation.
    pub hidden: u64,
}

impl Version {
    /// The state `store` is in now; `None` while it changes, or on a store
    /// other processes write to (see `Store::version`).
    pub fn of(store: &Store) -> Option<Version> {
        store.version().map(|(store, hidden)| Version { store, hidden })
    }

    /// Whether `self` is later than `other` in either count (both only grow).
    fn after(self, other: Version) -> bool {
        self.store > other.store || self.hidden > other.hidden
    }
}

/// What an answer depends on besides the store: equal keys at one version
/// always have equal answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The SHA-256 of the document's text.
    pub document: [u8; 32],
    /// The operation the request names.
    pub operation: Option<String>,
    /// The variables, as JSON.
    pub variables: Vec<u8>,
    /// The viewer's token (account, session, id), or none for an anonymous request.
    pub viewer: Option<([u8; 12], i64, [u8; 12])>,
}

impl Key {
    /// The key of a query whose document hashes to `document`, or `None`
    /// when its answer must not be kept: a token that could not be read (an
    /// error, whatever the store says).
    pub fn of(document: [u8; 32], req: &async_graphql::Request, viewer: &Viewer) -> Option<Key> {
        let viewer = match viewer {
            Viewer::Anonymous => None,
            Viewer::User(token) => Some((token.user.bytes(), token.session, token.id.bytes())),
            Viewer::Invalid(_) => return None,
        };
        let variables = serde_json::to_vec(&req.variables).ok()?;
        Some(Key { document, operation: req.operation_name.clone(), variables, viewer })
    }

    /// The bytes an entry for this key holds besides its answer.
    fn size(&self) -> usize {
        std::mem::size_of::<Key>() + self.operation.as_ref().map_or(0, String::len) + self.variables.len()
    }
}

/// One key's place in the cache.
enum Slot {
    /// Its answer.
    Ready(Bytes),
    /// A request is running it; its answer will be sent here.
    Running(watch::Sender<Option<Bytes>>),
}

/// The entries of one version.
struct Entries {
    at: Option<Version>,
    slots: HashMap<Key, Slot>,
    /// Answers' and keys' bytes.
    bytes: usize,
}

impl Entries {
    /// Makes `at` the cache's version if it is later (emptying it, which
    /// wakes every waiting request: they execute themselves); false if `at`
    /// is earlier than the cache's version, whose entries stay.
    fn move_to(&mut self, at: Version) -> bool {
        match self.at {
            Some(now) if now == at => true,
            Some(now) if !at.after(now) => false,
            _ => {
                self.at = Some(at);
                self.slots.clear();
                self.slots.shrink_to(64);
                self.bytes = 0;
                true
            }
        }
    }
}

/// Whether the client asked for a fresh execution (`Cache-Control: no-cache`
/// or `no-store`): it is executed, and its answer may still be kept.
pub fn fresh_asked(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|d| matches!(d.trim(), "no-cache" | "no-store")))
}

/// A query about to be executed whose answer may be kept: its key, and the
/// state the store was in before it ran. If it claimed the key (see
/// [`Pending::lookup`]), other requests for the same key wait for its answer
/// instead of executing the same query again; dropped without keeping an
/// answer, it lets them go, and they execute themselves.
pub struct Pending {
    cache: Arc<AnswerCache>,
    at: Version,
    key: Key,
    claimed: bool,
}

impl Pending {
    /// A query about to run at `at`.
    pub fn new(cache: Arc<AnswerCache>, at: Version, key: Key) -> Self {
        Pending { cache, at, key, claimed: false }
    }

    /// The answer kept for this query at its state: at once, or, while
    /// another request runs the same query at the same state, that
    /// request's answer when it has one. `None` means: execute it. The first
    /// request to miss claims the key.
    pub async fn lookup(&mut self) -> Option<Bytes> {
        match self.cache.lookup(self.at, &self.key) {
            Lookup::Hit(answer) => Some(answer),
            Lookup::Wait(mut running) => {
                // An error: the running request kept nothing (or the state
                // moved on); this one executes on its own, and claims nothing.
                let answer = running.wait_for(Option::is_some).await.ok().and_then(|a| a.clone());
                let counter = if answer.is_some() { &self.cache.hits } else { &self.cache.misses };
                counter.fetch_add(1, Ordering::Relaxed);
                answer
            }
            Lookup::Run { claimed } => {
                self.claimed = claimed;
                None
            }
        }
    }

    /// Whether the store is still in the state the query started in, so its
    /// reads saw exactly that state: only then may its answer be kept.
    pub fn still_valid(&self, store: &Store) -> bool {
        Version::of(store) == Some(self.at)
    }

    /// Keeps the encoded `answer`, and hands it to the requests waiting for it.
    pub fn keep(mut self, answer: &Bytes) {
        self.cache.put(self.at, &self.key, answer.clone(), self.claimed);
        self.claimed = false;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.claimed {
            self.cache.abandon(self.at, &self.key);
        }
    }
}

/// What [`AnswerCache::lookup`] found.
enum Lookup {
    /// The answer, kept.
    Hit(Bytes),
    /// Another request is running the query at this state.
    Wait(watch::Receiver<Option<Bytes>>),
    /// Nothing: the caller runs the query, holding the key's claim if there
    /// was room to note it.
    Run { claimed: bool },
}

/// The cache's series for `/metrics`: hits, misses and bytes held.
pub fn render(cache: Option<&AnswerCache>) -> String {
    let Some(cache) = cache else { return String::new() };
    let mut out = String::new();
    let (hits, misses) = (cache.hits.load(Ordering::Relaxed), cache.misses.load(Ordering::Relaxed));
    series(&mut out, "blogql_answer_cache_hits_total", "counter", "Queries answered from the answer cache.", hits);
    let help = "Queries the answer cache could have answered, executed.";
    series(&mut out, "blogql_answer_cache_misses_total", "counter", help, misses);
    let help = "Bytes the answer cache holds (answers and keys).";
    series(&mut out, "blogql_answer_cache_bytes", "gauge", help, cache.bytes());
    out
}

/// The cache (see the module docs).
pub struct AnswerCache {
    entries: Mutex<Entries>,
    max_bytes: usize,
    /// Answers served from the cache (kept, or awaited from the request running it).
    pub hits: AtomicU64,
    /// Cacheable requests that were executed.
    pub misses: AtomicU64,
}

impl AnswerCache {
    /// A cache of at most `max_bytes` of answers and keys.
    pub fn new(max_bytes: usize) -> Self {
        AnswerCache {
            entries: Mutex::new(Entries { at: None, slots: HashMap::new(), bytes: 0 }),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The answer kept for `key` at `at`, if any (no claim, no waiting):
    /// what the tests read; requests go through [`Self::lookup`].
    #[cfg(test)]
    fn get(&self, at: Version, key: &Key) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let found = match entries.slots.get(key) {
            Some(Slot::Ready(answer)) if entries.at == Some(at) => Some(answer.clone()),
            _ => None,
        };
        drop(entries);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// [`Self::get`], or the request running `key` at `at` to wait for, or a
    /// claim on it (see [`Pending::lookup`]).
    fn lookup(&self, at: Version, key: &Key) -> Lookup {
        let Ok(mut entries) = self.entries.lock() else { return Lookup::Run { claimed: false } };
        if !entries.move_to(at) {
            drop(entries);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Run { claimed: false };
        }
        match entries.slots.get(key) {
            Some(Slot::Ready(answer)) => {
                let answer = answer.clone();
                drop(entries);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(answer)
            }
            Some(Slot::Running(running)) => Lookup::Wait(running.subscribe()),
            None => {
                let size = key.size();
                let claimed = entries.bytes + size <= self.max_bytes;
                if claimed {
                    entries.bytes += size;
                    entries.slots.insert(key.clone(), Slot::Running(watch::channel(None).0));
                }
                drop(entries);
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Run { claimed }
            }
        }
    }

    /// Keeps `answer` for `key` at `at`: the version its execution saw, the
    /// same before and after it. A later version than the cache's empties it
    /// first; an earlier one is not kept. With `claimed`, the requests
    /// waiting on the claim get the answer too.
    pub fn put(&self, at: Version, key: &Key, answer: Bytes, claimed: bool) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if !entries.move_to(at) {
            return;
        }
        let size = key.size() + answer.len();
        match entries.slots.get(key) {
            Some(Slot::Ready(_)) => {}
            Some(Slot::Running(running)) if claimed => {
                running.send_replace(Some(answer.clone()));
                entries.bytes -= key.size();
                if entries.bytes + size <= self.max_bytes {
                    entries.bytes += size;
                    entries.slots.insert(key.clone(), Slot::Ready(answer));
                } else {
                    entries.slots.remove(key);
                }
            }
            Some(Slot::Running(_)) => {}
            None if entries.bytes + size <= self.max_bytes => {
                entries.bytes += size;
                entries.slots.insert(key.clone(), Slot::Ready(answer));
            }
            None => {}
        }
    }

    /// Gives up a claim that kept nothing: the waiting requests execute
    /// themselves (dropping the sender wakes them).
    fn abandon(&self, at: Version, key: &Key) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.at == Some(at) && matches!(entries.slots.get(key), Some(Slot::Running(_))) {
            entries.slots.remove(key);
            entries.bytes -= key.size();
        }
    }

    /// Bytes held now (answers and keys).
    pub fn bytes(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key { document: [n; 32], operation: None, variables: b"{}".to_vec(), viewer: None }
    }

    const V1: Version = Version { store: 2, hidden: 0 };
    const V2: Version = Version { store: 4, hidden: 0 };

    /// An answer is served at the version it was kept at, and never at another.
    #[test]
    fn answers_are_served_only_at_their_version() {
        let cache = AnswerCache::new(1 << 20);
        cache.put(V1, &key(1), Bytes::from_static(b"one"), false);
        assert_eq!(cache.get(V1, &key(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(cache.get(V1, &key(2)), None);
        assert_eq!(cache.get(V2, &key(1)), None);
        assert_eq!(cache.get(Version { hidden: 1, ..V1 }, &key(1)), None);
        assert_eq!((cache.hits.load(Ordering::Relaxed), cache.misses.load(Ordering::Relaxed)), (1, 3));
    }

    /// A later version empties the cache; an answer computed at an earlier one is not kept.
    #[test]
    fn a_later_version_empties_it_and_an_earlier_one_is_refused() {
        let cache = AnswerCache::new(1 << 20);
        cache.put(V1, &key(1), Bytes::from_static(b"one"), false);
        cache.put(V2, &key(2), Bytes::from_static(b"two"), false);
        assert_eq!(cache.get(V1, &key(1)), None);
        cache.put(V1, &key(3), Bytes::from_static(b"old"), false);
        assert_eq!(cache.get(V2, &key(3)), None);
        assert_eq!(cache.get(V2, &key(2)).as_deref(), Some(&b"two"[..]));
        assert!(cache.bytes() < 200, "only one entry is held: {}", cache.bytes());
    }

    /// Requests that miss while another runs the same query at the same
    /// state wait for its answer; if it keeps none, they are let go to run
    /// it themselves.
    #[tokio::test]
    async fn concurrent_misses_wait_for_the_first() {
        let cache = Arc::new(AnswerCache::new(1 << 20));
        let mut first = Pending::new(Arc::clone(&cache), V1, key(1));
        assert_eq!(first.lookup().await, None, "the first misses and claims");
        let mut second = Pending::new(Arc::clone(&cache), V1, key(1));
        let waiting = tokio::spawn(async move { second.lookup().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the second waits for the first");
        first.keep(&Bytes::from_static(b"answer"));
        assert_eq!(waiting.await.expect("join").as_deref(), Some(&b"answer"[..]));

        let mut failing = Pending::new(Arc::clone(&cache), V1, key(2));
        assert_eq!(failing.lookup().await, None);
        let mut other = Pending::new(Arc::clone(&cache), V1, key(2));
        let waiting = tokio::spawn(async move { other.lookup().await });
        tokio::task::yield_now().await;
        drop(failing);
        assert_eq!(waiting.await.expect("join"), None, "let go to execute on its own");
        let mut again = Pending::new(Arc::clone(&cache), V1, key(2));
        assert_eq!(again.lookup().await, None, "and the key can be claimed again");
    }

    /// A later version lets every waiting request go: the answer it waited
    /// for would be of an older state.
    #[tokio::test]
    async fn a_new_version_lets_the_waiting_go() {
        let cache = Arc::new(AnswerCache::new(1 << 20));
        let mut first = Pending::new(Arc::clone(&cache), V1, key(1));
        assert_eq!(first.lookup().await, None);
        let mut second = Pending::new(Arc::clone(&cache), V1, key(1));
        let waiting = tokio::spawn(async move { second.lookup().await });
        tokio::task::yield_now().await;
        cache.put(V2, &key(9), Bytes::from_static(b"new"), false);
        assert_eq!(waiting.await.expect("join"), None);
        first.keep(&Bytes::from_static(b"stale"));
        assert_eq!(cache.get(V1, &key(1)), None, "an answer of the older state is not kept");
    }

    /// Past its bytes, the cache keeps nothing more.
    #[test]
    fn it_stays_within_its_bytes() {
        let cache = AnswerCache::new(4096);
        for n in 0..100u8 {
            cache.put(V1, &key(n), Bytes::from(vec![b'x'; 500]), false);
        }
        assert!(cache.bytes() <= 4096, "{}", cache.bytes());
        assert!(cache.get(V1, &key(0)).is_some() && cache.get(V1, &key(99)).is_none());
    }
}
