//! Automatic persisted queries (Apollo's APQ) and the parsed-document cache behind them.
//!
//! A client may send `extensions.persistedQuery = {version: 1, sha256Hash}`
//! without the query text. If the hash is known, the query runs; if not, the
//! answer is the error `PersistedQueryNotFound` (code
//! `PERSISTED_QUERY_NOT_FOUND`), and the client resends the hash with the
//! full text, which is checked against the hash and stored.
//!
//! The store is one bounded LRU of parsed documents keyed by SHA-256 of the
//! query text, shared by APQ and plain requests: a document seen before is
//! neither parsed nor size-checked again. Only documents that parsed and
//! passed the size check get in, and texts longer than
//! [`MAX_CACHED_QUERY_BYTES`] are never kept, so the cache's memory is
//! bounded by its entry count.

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

/// A query text that parsed and passed the size check, with its document.
pub struct Cached {
    /// The query text, for hash-only requests.
    pub query: String,
    /// The parsed document.
    pub doc: ExecutableDocument,
}

/// The bounded LRU of parsed documents by hash.
pub struct DocumentCache {
    entries: Option<Mutex<LruCache<Hash, Arc<Cached>>>>,
}

impl DocumentCache {
    /// A cache of at most `capacity` documents; 0 turns caching and APQ off.
    pub fn new(capacity: usize) -> Self {
        DocumentCache { entries: NonZeroUsize::new(capacity).map(|n| Mutex::new(LruCache::new(n))) }
    }

    /// Whether APQ is on (the cache has room for anything).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The cached document for `hash`, marking it recently used.
    pub fn get(&self, hash: &Hash) -> Option<Arc<Cached>> {
        self.entries.as_ref()?.lock().ok()?.get(hash).cloned()
    }

    /// Keeps a document that parsed and passed the size check, unless its text is too long.
    pub fn put(&self, hash: Hash, query: &str, doc: &ExecutableDocument) {
        if query.len() > MAX_CACHED_QUERY_BYTES {
            return;
        }
        if let Some(entries) = &self.entries
            && let Ok(mut entries) = entries.lock()
        {
            entries.put(hash, Arc::new(Cached { query: query.to_owned(), doc: doc.clone() }));
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
    decode_hex(hex).map(Some).ok_or(ApqError::Malformed("extensions.persistedQuery.sha256Hash must be 64 hex digits"))
}

fn decode_hex(hex: &str) -> Option<Hash> {
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
    fn cache_is_bounded() {
        let cache = DocumentCache::new(2);
        let doc = |q: &str| async_graphql::parser::parse_query(q).ok();
        for q in ["{ a }", "{ b }", "{ c }"] {
            if let Some(d) = doc(q) {
                cache.put(sha256(q), q, &d);
            }
        }
        assert!(cache.get(&sha256("{ a }")).is_none());
        assert!(cache.get(&sha256("{ c }")).is_some());
        let long = format!("{{ a }} #{}", "x".repeat(MAX_CACHED_QUERY_BYTES));
        if let Some(d) = doc(&long) {
            cache.put(sha256(&long), &long, &d);
        }
        assert!(cache.get(&sha256(&long)).is_none());
        assert!(!DocumentCache::new(0).enabled());
    }

    proptest! {
        /// Hex decoding accepts exactly the 64-digit lowercase or uppercase encodings of a digest.
        #[test]
        fn hex_round_trips(bytes in any::<[u8; 32]>(), upper in any::<bool>()) {
            let hex: String = bytes.iter().map(|b| if upper { format!("{b:02X}") } else { format!("{b:02x}") }).collect();
            prop_assert_eq!(decode_hex(&hex), Some(bytes));
            prop_assert_eq!(decode_hex(&hex[1..]), None);
        }
    }
}
