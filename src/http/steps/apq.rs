//! Step 1: which document a request names. Its text is hashed; an
//! automatic persisted query (APQ) may send only the hash, or the hash with
//! the text, which must match.

use crate::code::Code;
use std::collections::HashMap;

use async_graphql::Value;

use super::Refusal;
use crate::http::persisted::{self, ApqError, Hash};

/// The document a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::http) struct Named {
    /// The SHA-256 of its text: the cache key and APQ hash.
    pub hash: Hash,
    /// Only the hash was sent (the text must come from the cache).
    pub hash_only: bool,
}

/// Resolves `extensions` and `query` to the document they name; `apq` says
/// whether APQ is on.
pub(in crate::http) fn named(extensions: &HashMap<String, Value>, query: &str, apq: bool) -> Result<Named, Refusal> {
    let requested = match persisted::requested_hash(extensions) {
        Ok(hash) if apq => hash,
        Ok(Some(_)) => return Err(Refusal::new(Code::PersistedQueryNotSupported, "PersistedQueryNotSupported")),
        Ok(None) => None,
        Err(ApqError::Malformed(why)) => return Err(Refusal::new(Code::BadUserInput, why)),
    };
    match requested {
        Some(hash) if query.is_empty() => Ok(Named { hash, hash_only: true }),
        Some(hash) if persisted::sha256(query) != hash => {
            Err(Refusal::new(Code::BadUserInput, "extensions.persistedQuery.sha256Hash does not match the query"))
        }
        Some(hash) => Ok(Named { hash, hash_only: false }),
        None => Ok(Named { hash: persisted::sha256(query), hash_only: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apq(hash: &Hash) -> HashMap<String, Value> {
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let ext = serde_json::json!({ "persistedQuery": { "version": 1, "sha256Hash": hex } });
        serde_json::from_value(ext).expect("extensions")
    }

    /// A plain query is named by its text's hash; a hash alone, or with the matching text, names that document.
    #[test]
    fn documents_are_named_by_hash() {
        let query = "{ __typename }";
        let hash = persisted::sha256(query);
        assert_eq!(named(&HashMap::new(), query, true), Ok(Named { hash, hash_only: false }));
        assert_eq!(named(&apq(&hash), "", true), Ok(Named { hash, hash_only: true }));
        assert_eq!(named(&apq(&hash), query, true), Ok(Named { hash, hash_only: false }));
    }

    /// A hash that does not match its text, APQ when it is off, and a malformed extension are refused with their codes.
    #[test]
    fn bad_apq_requests_are_refused() {
        let hash = persisted::sha256("{ a }");
        assert_eq!(named(&apq(&hash), "{ b }", true).map_err(|r| r.code), Err(Code::BadUserInput));
        assert_eq!(named(&apq(&hash), "", false).map_err(|r| r.code), Err(Code::PersistedQueryNotSupported));
        let malformed: HashMap<String, Value> =
            serde_json::from_value(serde_json::json!({ "persistedQuery": { "version": 2, "sha256Hash": "x" } }))
                .expect("extensions");
        assert_eq!(named(&malformed, "", true).map_err(|r| r.code), Err(Code::BadUserInput));
    }
}
