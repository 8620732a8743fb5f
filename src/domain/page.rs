//! A page request (`first`/`after`) and the opaque cursor it carries.
//!
//! Every listing is ordered newest first by `(createdAt, _id)`. A cursor is
//! that pair, base64url encoded behind a version byte, so pages stay stable
//! while documents are inserted or deleted around them. Clients must treat
//! cursors as opaque.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::oid::ObjectId;

use crate::error::{Error, Result};

/// Page size when a client gives no `first`.
pub const DEFAULT_PAGE: usize = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 100;

const CURSOR_VERSION: u8 = 1;
const CURSOR_LEN: usize = 1 + 8 + 12;

/// A position in a listing: listings are ordered by `(createdAt desc, _id desc)`,
/// so this pair identifies a place that survives inserts and deletes around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorKey {
    /// Creation time in milliseconds since the epoch.
    pub created_ms: i64,
    /// Tie-breaker for documents created in the same millisecond.
    pub id: ObjectId,
}

impl CursorKey {
    /// The opaque cursor string clients see.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; CURSOR_LEN];
        bytes[0] = CURSOR_VERSION;
        bytes[1..9].copy_from_slice(&self.created_ms.to_be_bytes());
        bytes[9..].copy_from_slice(&self.id.bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a cursor made by [`CursorKey::encode`]; anything else is `BAD_USER_INPUT` on `after`.
    pub fn decode(cursor: &str) -> Result<Self> {
        let bad = || Error::bad_input("after", "after is not a valid cursor");
        let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| bad())?;
        let bytes: [u8; CURSOR_LEN] = bytes.as_slice().try_into().map_err(|_| bad())?;
        if bytes[0] != CURSOR_VERSION {
            return Err(bad());
        }
        let ms: [u8; 8] = bytes[1..9].try_into().map_err(|_| bad())?;
        let id: [u8; 12] = bytes[9..].try_into().map_err(|_| bad())?;
        Ok(CursorKey { created_ms: i64::from_be_bytes(ms), id: ObjectId::from_bytes(id) })
    }
}

/// The listing order every connection uses: newest `createdAt` first, then highest id.
pub fn newest_first(a: &CursorKey, b: &CursorKey) -> std::cmp::Ordering {
    b.cmp(a)
}

/// One validated page request: at most `first` items strictly after `after`.
///
/// Stores return up to `first + 1` items; the extra one only tells the
/// connection whether there is a next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    first: usize,
    after: Option<CursorKey>,
}

impl Page {
    /// Validates the GraphQL arguments: `first` defaults to 20 and must be
    /// within `0..=100`; `after` must be a cursor this server issued.
    pub fn parse(first: Option<i32>, after: Option<&str>) -> Result<Self> {
        let first = match first {
            None => DEFAULT_PAGE,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n <= MAX_PAGE)
                .ok_or_else(|| Error::bad_input("first", format!("first must be between 0 and {MAX_PAGE}")))?,
        };
        let after = after.map(CursorKey::decode).transpose()?;
        Ok(Page { first, after })
    }

    /// The first page of the default size (seeding, checks and tests).
    pub fn newest(first: usize) -> Self {
        Page { first: first.min(MAX_PAGE), after: None }
    }

    /// The page size asked for.
    pub fn first(&self) -> usize {
        self.first
    }

    /// The exclusive start position; `None` starts at the newest item.
    pub fn after(&self) -> Option<CursorKey> {
        self.after
    }

    /// How many items a store should fetch: one more than asked, to see past the page.
    pub fn fetch_limit(&self) -> usize {
        self.first + 1
    }

    /// Whether `key` lies after this page's start, i.e. may appear on this page.
    pub fn admits(&self, key: &CursorKey) -> bool {
        self.after.is_none_or(|after| newest_first(key, &after).is_gt())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(ms: i64, id: [u8; 12]) -> CursorKey {
        CursorKey { created_ms: ms, id: ObjectId::from_bytes(id) }
    }

    /// `first` is 0–100 with a default of 20, and is refused outside that range.
    #[test]
    fn first_is_bounded() {
        assert_eq!(Page::parse(None, None).map(|p| p.first()).ok(), Some(DEFAULT_PAGE));
        assert_eq!(Page::parse(Some(0), None).map(|p| p.fetch_limit()).ok(), Some(1));
        for bad in [-1, 101, i32::MIN, i32::MAX] {
            assert!(matches!(Page::parse(Some(bad), None), Err(Error::BadInput { field: "first", .. })));
        }
    }

    /// Strings that are not cursors this server issued are refused on `after`.
    #[test]
    fn foreign_cursors_are_refused() {
        for bad in ["garbage!", "", "AAAA", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert!(matches!(Page::parse(None, Some(bad)), Err(Error::BadInput { field: "after", .. })), "{bad}");
        }
        let mut wrong_version = key(1, [1; 12]).encode().into_bytes();
        wrong_version[0] = b'B';
        assert!(CursorKey::decode(std::str::from_utf8(&wrong_version).unwrap_or("")).is_err());
    }

    proptest! {
        /// Every cursor decodes to the key it was made from.
        #[test]
        fn cursor_round_trips(ms in any::<i64>(), id in any::<[u8; 12]>()) {
            let k = key(ms, id);
            prop_assert_eq!(CursorKey::decode(&k.encode()).ok(), Some(k));
        }

        /// A page after cursor `c` admits exactly the keys that sort after `c`, newest first.
        #[test]
        fn admits_what_sorts_after(a in any::<(i64, [u8; 12])>(), b in any::<(i64, [u8; 12])>()) {
            let (ka, kb) = (key(a.0, a.1), key(b.0, b.1));
            let page = Page { first: 10, after: Some(ka) };
            prop_assert_eq!(page.admits(&kb), (kb.created_ms, kb.id) < (ka.created_ms, ka.id));
        }
    }
}
