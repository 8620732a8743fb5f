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
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use bytes::Bytes;

use crate::graphql::Viewer;
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

struct Entries {
    at: Option<Version>,
    answers: HashMap<Key, Bytes>,
    bytes: usize,
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

/// A query being executed whose answer may be kept: its key, and the state
/// the store was in before it ran.
pub struct Pending {
    cache: Arc<AnswerCache>,
    at: Version,
    key: Key,
}

impl Pending {
    /// A query about to run at `at`.
    pub fn new(cache: Arc<AnswerCache>, at: Version, key: Key) -> Self {
        Pending { cache, at, key }
    }

    /// The answer kept for this query at its state, if any.
    pub fn lookup(&self) -> Option<Bytes> {
        self.cache.get(self.at, &self.key)
    }

    /// Whether the store is still in the state the query started in, so its
    /// reads saw exactly that state: only then may its answer be kept.
    pub fn still_valid(&self, store: &Store) -> bool {
        Version::of(store) == Some(self.at)
    }

    /// Keeps the encoded `answer`.
    pub fn keep(self, answer: &Bytes) {
        self.cache.put(self.at, self.key, answer.clone());
    }
}

/// The cache's series for `/metrics`: hits, misses and bytes held.
pub fn render(cache: Option<&AnswerCache>) -> String {
    let Some(cache) = cache else { return String::new() };
    let mut out = String::new();
    out.push_str("# HELP blogql_answer_cache_hits_total Queries answered from the answer cache.\n");
    out.push_str("# TYPE blogql_answer_cache_hits_total counter\n");
    let _ = writeln!(out, "blogql_answer_cache_hits_total {}", cache.hits.load(Ordering::Relaxed));
    out.push_str("# HELP blogql_answer_cache_misses_total Queries the answer cache could have answered, executed.\n");
    out.push_str("# TYPE blogql_answer_cache_misses_total counter\n");
    let _ = writeln!(out, "blogql_answer_cache_misses_total {}", cache.misses.load(Ordering::Relaxed));
    out.push_str("# HELP blogql_answer_cache_bytes Bytes the answer cache holds (answers and keys).\n");
    out.push_str("# TYPE blogql_answer_cache_bytes gauge\n");
    let _ = writeln!(out, "blogql_answer_cache_bytes {}", cache.bytes());
    out
}

/// The cache (see the module docs).
pub struct AnswerCache {
    entries: Mutex<Entries>,
    max_bytes: usize,
    /// Answers served from the cache.
    pub hits: AtomicU64,
    /// Cacheable requests that were executed.
    pub misses: AtomicU64,
}

impl AnswerCache {
    /// A cache of at most `max_bytes` of answers and keys.
    pub fn new(max_bytes: usize) -> Self {
        AnswerCache {
            entries: Mutex::new(Entries { at: None, answers: HashMap::new(), bytes: 0 }),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The answer kept for `key` at `at`, if any.
    pub fn get(&self, at: Version, key: &Key) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let found = if entries.at == Some(at) { entries.answers.get(key).cloned() } else { None };
        drop(entries);
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Keeps `answer` for `key` at `at`: the version its execution saw, the
    /// same before and after it. A later version than the cache's empties it
    /// first; an earlier one is not kept.
    pub fn put(&self, at: Version, key: Key, answer: Bytes) {
        let Ok(mut entries) = self.entries.lock() else { return };
        match entries.at {
            Some(now) if now == at => {}
            Some(now) if !at.after(now) => return,
            _ => {
                entries.at = Some(at);
                entries.answers.clear();
                entries.answers.shrink_to(64);
                entries.bytes = 0;
            }
        }
        let size = key.size() + answer.len();
        if entries.bytes + size > self.max_bytes || entries.answers.contains_key(&key) {
            return;
        }
        entries.bytes += size;
        entries.answers.insert(key, answer);
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
        cache.put(V1, key(1), Bytes::from_static(b"one"));
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
        cache.put(V1, key(1), Bytes::from_static(b"one"));
        cache.put(V2, key(2), Bytes::from_static(b"two"));
        assert_eq!(cache.get(V1, &key(1)), None);
        cache.put(V1, key(3), Bytes::from_static(b"old"));
        assert_eq!(cache.get(V2, &key(3)), None);
        assert_eq!(cache.get(V2, &key(2)).as_deref(), Some(&b"two"[..]));
        assert!(cache.bytes() < 200, "only one entry is held: {}", cache.bytes());
    }

    /// Past its bytes, the cache keeps nothing more.
    #[test]
    fn it_stays_within_its_bytes() {
        let cache = AnswerCache::new(4096);
        for n in 0..100u8 {
            cache.put(V1, key(n), Bytes::from(vec![b'x'; 500]));
        }
        assert!(cache.bytes() <= 4096, "{}", cache.bytes());
        assert!(cache.get(V1, &key(0)).is_some() && cache.get(V1, &key(99)).is_none());
    }
}
