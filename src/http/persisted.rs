//! Automatic persisted queries (Apollo's APQ) and the parsed-document cache behind them.
//!
//! A client may send `extensions.persistedQuery = {version: 1, sha256Hash}`
//! without the query text. If the hash is known, the query runs; if not, the
//! answer is the error `PersistedQueryNotFound` (code
//! `PERSISTED_QUERY_NOT_FOUND`), and the client resends the hash with the
//! full text, which is checked against the hash and stored.
//!
//! The store is one LRU of parsed documents keyed by SHA-256 of the query
//! text, shared by APQ and plain requests: a document seen before is neither
//! parsed nor checked again. Only documents that passed every check *and
//! validation* get in (a document the schema refused would only take the
//! place of a useful one), and texts longer than [`MAX_CACHED_QUERY_BYTES`]
//! are never kept. The cache is bounded twice: by entry count, and by the
//! estimated bytes of what it holds (a parsed document costs far more than
//! its text: about 75 bytes per token), so distinct large documents cannot
//! grow it past its byte budget whatever their count.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Name, Value as ConstValue};
use lru::LruCache;
use sha2::{Digest, Sha256};

/// The longest query text the cache keeps. Real client documents are a few
/// KiB; this bounds each entry so the entry count bounds the memory.
pub const MAX_CACHED_QUERY_BYTES: usize = 64 * 1024;

/// A SHA-256 digest of a query text.
pub type Hash = [u8; 32];

/// What a parsed document is estimated to cost per token, in bytes
/// (measured: a 64 KB document of `[]` parsed to about 2.4 MB).
pub const BYTES_PER_TOKEN: usize = 96;

/// A query text that parsed, passed the checks and validated, with its document.
pub struct Cached {
    /// The query text, for hash-only requests.
    pub query: String,
    /// The parsed document.
    pub doc: ExecutableDocument,
    /// What the entry is estimated to cost, in bytes.
    pub cost: usize,
}

/// The LRU of parsed documents by hash, bounded by count and by bytes.
pub struct DocumentCache {
    entries: Option<Mutex<Entries>>,
    max_bytes: usize,
}

struct Entries {
    lru: LruCache<Hash, Arc<Cached>>,
    bytes: usize,
}

impl DocumentCache {
    /// A cache of at most `capacity` documents estimated at `max_bytes` in
    /// all; a capacity of 0 turns caching and APQ off.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        DocumentCache {
            entries: NonZeroUsize::new(capacity).map(|n| Mutex::new(Entries { lru: LruCache::new(n), bytes: 0 })),
            max_bytes,
        }
    }

    /// The estimated bytes the cache holds now.
    pub fn bytes(&self) -> usize {
        self.entries.as_ref().and_then(|e| e.lock().ok().map(|e| e.bytes)).unwrap_or(0)
    }

    /// The documents the cache holds now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().and_then(|e| e.lock().ok().map(|e| e.lru.len())).unwrap_or(0)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether APQ is on (the cache has room for anything).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The cached document for `hash`, marking it recently used.
    pub fn get(&self, hash: &Hash) -> Option<Arc<Cached>> {
        self.entries.as_ref()?.lock().ok()?.lru.get(hash).cloned()
    }

    /// Keeps a document that validated, unless its text is too long or it
    /// alone would pass the byte budget; evicts the least recently used
    /// until both bounds hold. `tokens` is its token count (the lexical pass's).
    pub fn put(&self, hash: Hash, query: &str, doc: ExecutableDocument, tokens: usize) {
        // The text is kept, and the document copies its names (a 64 KB name twice).
        let cost = query.len().saturating_mul(2).saturating_add(tokens.saturating_mul(BYTES_PER_TOKEN));
        if query.len() > MAX_CACHED_QUERY_BYTES || cost > self.max_bytes {
            return;
        }
        let Some(entries) = &self.entries else {
            return;
        };
        let Ok(mut entries) = entries.lock() else {
            return;
        };
        let entry = Arc::new(Cached { query: query.to_owned(), doc, cost });
        if let Some((_, old)) = entries.lru.push(hash, entry) {
            entries.bytes -= old.cost;
        }
        entries.bytes += cost;
        while entries.bytes > self.max_bytes {
            match entries.lru.pop_lru() {
                Some((_, old)) => entries.bytes -= old.cost,
                None => break,
            }
        }
    }
}

/// SHA-256 of a query text.
pub fn sha256(query: &str) -> Hash {
    Sha256::digest(query.as_bytes()).into()
}

/// Why a request's `persistedQuery` extension was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ApqError {
    /// The extension is malformed or names another protocol version.
    Malformed(&'static str),
}

/// The hash a request's `extensions.persistedQuery` names, if it has one.
pub fn requested_hash(extensions: &std::collections::HashMap<String, ConstValue>) -> Result<Option<Hash>, ApqError> {
    let Some(pq) = extensions.get("persistedQuery") else {
        return Ok(None);
    };
    let ConstValue::Object(pq) = pq else {
        return Err(ApqError::Malformed("extensions.persistedQuery must be an object"));
    };
    match pq.get(&Name::new("version")) {
        Some(ConstValue::Number(n)) if n.as_u64() == Some(1) => {}
        _ => return Err(ApqError::Malformed("extensions.persistedQuery.version must be 1")),
    }
    let Some(ConstValue::String(hex)) = pq.get(&Name::new("sha256Hash")) else {
        return Err(ApqError::Malformed("extensions.persistedQuery.sha256Hash must be a string"));
    };
    parse_hex_hash(hex)
        .map(Some)
        .ok_or(ApqError::Malformed("extensions.persistedQuery.sha256Hash must be 64 hex digits"))
}

/// A SHA-256 hash as 64 lowercase hex digits.
pub fn hex(hash: &Hash) -> String {
    use std::fmt::Write as _;
    hash.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// A SHA-256 hash from its 64 hex digits.
pub fn parse_hex_hash(hex: &str) -> Option<Hash> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn ext(value: serde_json::Value) -> HashMap<String, ConstValue> {
        let mut map = HashMap::new();
        map.insert("persistedQuery".to_owned(), ConstValue::from_json(value).unwrap_or(ConstValue::Null));
        map
    }

    /// A well-formed extension yields its hash; every malformed shape is refused.
    #[test]
    fn extension_shapes() {
        let hash = sha256("{ viewer { id } }");
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(requested_hash(&ext(serde_json::json!({ "version": 1, "sha256Hash": hex }))), Ok(Some(hash)));
        assert_eq!(requested_hash(&HashMap::new()), Ok(None));
        for bad in [
            serde_json::json!("x"),
            serde_json::json!({ "version": 2, "sha256Hash": hex }),
            serde_json::json!({ "sha256Hash": hex }),
            serde_json::json!({ "version": 1 }),
            serde_json::json!({ "version": 1, "sha256Hash": "abc" }),
            serde_json::json!({ "version": 1, "sha256Hash": "z".repeat(64) }),
        ] {
            assert!(requested_hash(&ext(bad.clone())).is_err(), "{bad}");
        }
    }

    /// The cache keeps at most its capacity, evicting the least recently used,
    /// and never keeps an over-long text.
    #[test]
    fn cache_is_bounded_by_count() {
        let cache = DocumentCache::new(2, usize::MAX);
        let doc = |q: &str| async_graphql::parser::parse_query(q).ok();
        for q in ["{ a }", "{ b }", "{ c }"] {
            if let Some(d) = doc(q) {
                cache.put(sha256(q), q, d, 3);
            }
        }
        assert!(cache.get(&sha256("{ a }")).is_none());
        assert!(cache.get(&sha256("{ c }")).is_some());
        let long = format!("{{ a }} #{}", "x".repeat(MAX_CACHED_QUERY_BYTES));
        if let Some(d) = doc(&long) {
            cache.put(sha256(&long), &long, d, 3);
        }
        assert!(cache.get(&sha256(&long)).is_none());
        assert!(!DocumentCache::new(0, usize::MAX).enabled());
    }

    /// Many distinct documents never hold more than the byte budget, the
    /// newest stay, and replacing an entry does not count it twice.
    #[test]
    fn cache_is_bounded_by_bytes() {
        let budget = 10 * (1000 * BYTES_PER_TOKEN + 2 * 8);
        let cache = DocumentCache::new(1000, budget);
        for i in 0..100 {
            let q = format!("{{ a{i} }}");
            if let Ok(d) = async_graphql::parser::parse_query(&q) {
                cache.put(sha256(&q), &q, d, 1000);
            }
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        }
        assert!(cache.len() <= 10);
        assert!(cache.get(&sha256("{ a99 }")).is_some());
        let before = cache.bytes();
        if let Ok(d) = async_graphql::parser::parse_query("{ a99 }") {
            cache.put(sha256("{ a99 }"), "{ a99 }", d, 1000);
        }
        assert_eq!(cache.bytes(), before);
        if let Ok(d) = async_graphql::parser::parse_query("{ huge }") {
            cache.put(sha256("{ huge }"), "{ huge }", d, 1_000_000);
        }
        assert!(cache.get(&sha256("{ huge }")).is_none(), "an entry over the whole budget is not kept");
    }

    proptest! {
        /// Hex decoding accepts exactly the 64-digit lowercase or uppercase encodings of a digest.
        #[test]
        fn hex_round_trips(bytes in any::<[u8; 32]>(), upper in any::<bool>()) {
            let hex: String = bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
            prop_assert_eq!(parse_hex_hash(&hex), Some(bytes));
            prop_assert_eq!(parse_hex_hash(&hex[1..]), None);
        }
    }
}
