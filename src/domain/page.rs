//! A page request (`first`/`after`, `last`/`before`) and the opaque cursors it carries.
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

    /// Decodes a cursor made by [`CursorKey::encode`]; anything else is
    /// `BAD_USER_INPUT` on `field` (`after` or `before`).
    pub fn decode(cursor: &str, field: &'static str) -> Result<Self> {
        let bad = || Error::bad_input(field, format!("{field} is not a valid cursor"));
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

/// One validated page request: `first` items after `after`, or (Relay's
/// backward pagination) the `last` items before `before`; `after` and
/// `before` may both bound either direction.
///
/// Stores walk the listing from the page's start (forward) or from its end
/// (backward) and return up to `size + 1` items in walk order; the extra one
/// only tells the connection that more lie beyond the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Page {
    size: usize,
    after: Option<CursorKey>,
    before: Option<CursorKey>,
    backward: bool,
}

fn size_arg(field: &'static str, n: i32) -> Result<usize> {
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_PAGE)
        .ok_or_else(|| Error::bad_input(field, format!("{field} must be between 0 and {MAX_PAGE}")))
}

impl Page {
    /// Validates the GraphQL arguments. `first` and `last` are each `0..=100`
    /// and may not both be given; with neither, the page is the first 20.
    /// Cursors must be ones this server issued.
    pub fn parse(first: Option<i32>, after: Option<&str>, last: Option<i32>, before: Option<&str>) -> Result<Self> {
        let (size, backward) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(Error::bad_input("last", "pass either first or last, not both"));
            }
            (Some(n), None) => (size_arg("first", n)?, false),
            (None, Some(n)) => (size_arg("last", n)?, true),
            (None, None) => (DEFAULT_PAGE, false),
        };
        let after = after.map(|c| CursorKey::decode(c, "after")).transpose()?;
        let before = before.map(|c| CursorKey::decode(c, "before")).transpose()?;
        Ok(Page { size, after, before, backward })
    }

    /// The first page of the default size (seeding, checks and tests).
    pub fn newest(first: usize) -> Self {
        Page { size: first.min(MAX_PAGE), after: None, before: None, backward: false }
    }

    /// The `size` items just newer than `cursor`, walked oldest first (a
    /// backward page ending at it): where resuming from a cursor starts
    /// replaying what was added after it.
    pub fn newer_than(cursor: CursorKey, size: usize) -> Self {
        Page { size: size.min(MAX_PAGE), after: None, before: Some(cursor), backward: true }
    }

    /// The rest of this page's range beyond `last`, the last item a store
    /// returned for it (in walk order), `size` items at a time: where a read
    /// that left out hidden documents continues.
    pub fn resume(&self, last: CursorKey, size: usize) -> Page {
        let mut next = *self;
        next.size = size;
        if self.backward {
            next.before = Some(last);
        } else {
            next.after = Some(last);
        }
        next
    }

    /// The page size asked for.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the page is taken from the end of the range (`last`).
    pub fn backward(&self) -> bool {
        self.backward
    }

    /// The exclusive start of the range; `None` starts at the newest item.
    pub fn after(&self) -> Option<CursorKey> {
        self.after
    }

    /// The exclusive end of the range; `None` runs to the oldest item.
    pub fn before(&self) -> Option<CursorKey> {
        self.before
    }

    /// How many items a store should fetch: one more than asked, to see past the page.
    pub fn fetch_limit(&self) -> usize {
        self.size + 1
    }

    /// Whether `key` lies strictly between the page's bounds, i.e. may appear on it.
    pub fn admits(&self, key: &CursorKey) -> bool {
        self.after.is_none_or(|after| newest_first(key, &after).is_gt())
            && self.before.is_none_or(|before| newest_first(key, &before).is_lt())
    }

    /// Picks this page from `keys` sorted in listing order, the way every
    /// store must: the admitted keys, walked from the page's end when
    /// backward, at most [`Page::fetch_limit`] of them, in walk order.
    pub fn select<T: Copy>(&self, listed: impl DoubleEndedIterator<Item = T>, key: impl Fn(&T) -> CursorKey) -> Vec<T> {
        let admitted = listed.filter(|t| self.admits(&key(t)));
        if self.backward {
            admitted.rev().take(self.fetch_limit()).collect()
        } else {
            admitted.take(self.fetch_limit()).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(ms: i64, id: [u8; 12]) -> CursorKey {
        CursorKey { created_ms: ms, id: ObjectId::from_bytes(id) }
    }

    /// `first` and `last` are 0–100 with a default of `first: 20`, refused
    /// outside that range and together.
    #[test]
    fn sizes_are_bounded() {
        assert_eq!(
            Page::parse(None, None, None, None).map(|p| (p.size(), p.backward())).ok(),
            Some((DEFAULT_PAGE, false))
        );
        assert_eq!(Page::parse(Some(0), None, None, None).map(|p| p.fetch_limit()).ok(), Some(1));
        assert_eq!(Page::parse(None, None, Some(7), None).map(|p| (p.size(), p.backward())).ok(), Some((7, true)));
        for bad in [-1, 101, i32::MIN, i32::MAX] {
            assert!(matches!(Page::parse(Some(bad), None, None, None), Err(Error::BadInput { field: "first", .. })));
            assert!(matches!(Page::parse(None, None, Some(bad), None), Err(Error::BadInput { field: "last", .. })));
        }
        assert!(matches!(Page::parse(Some(1), None, Some(1), None), Err(Error::BadInput { field: "last", .. })));
    }

    /// Strings that are not cursors this server issued are refused, naming the argument.
    #[test]
    fn foreign_cursors_are_refused() {
        for bad in ["garbage!", "", "AAAA", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            assert!(matches!(Page::parse(None, Some(bad), None, None), Err(Error::BadInput { field: "after", .. })));
            assert!(matches!(Page::parse(None, None, None, Some(bad)), Err(Error::BadInput { field: "before", .. })));
        }
        let mut wrong_version = key(1, [1; 12]).encode().into_bytes();
        wrong_version[0] = b'B';
        assert!(CursorKey::decode(std::str::from_utf8(&wrong_version).unwrap_or(""), "after").is_err());
    }

    fn arb_key() -> impl Strategy<Value = CursorKey> {
        (0i64..20, any::<[u8; 12]>()).prop_map(|(ms, id)| key(ms, id))
    }

    proptest! {
        /// Every cursor decodes to the key it was made from.
        #[test]
        fn cursor_round_trips(ms in any::<i64>(), id in any::<[u8; 12]>()) {
            let k = key(ms, id);
            prop_assert_eq!(CursorKey::decode(&k.encode(), "after").ok(), Some(k));
        }

        /// A page admits exactly the keys strictly between its bounds in listing order.
        #[test]
        fn admits_what_lies_between(a in any::<(i64, [u8; 12])>(), b in any::<(i64, [u8; 12])>(), k in any::<(i64, [u8; 12])>()) {
            let (ka, kb, kk) = (key(a.0, a.1), key(b.0, b.1), key(k.0, k.1));
            let page = Page { size: 10, after: Some(ka), before: Some(kb), backward: false };
            let t = |k: CursorKey| (k.created_ms, k.id);
            prop_assert_eq!(page.admits(&kk), t(kk) < t(ka) && t(kk) > t(kb));
        }

        /// Walking forward then backward over the same bounds covers the same
        /// items: forward pages are the head of the range, backward pages its
        /// tail in reverse, each at most `size + 1` long.
        #[test]
        fn select_takes_head_or_tail(
            mut keys in prop::collection::vec(arb_key(), 0..40),
            after in prop::option::of(arb_key()),
            before in prop::option::of(arb_key()),
            size in 0usize..10,
        ) {
            keys.sort_by(newest_first);
            keys.dedup();
            let inside: Vec<CursorKey> = keys.iter().copied().filter(|k| {
                after.is_none_or(|a| newest_first(k, &a).is_gt()) && before.is_none_or(|b| newest_first(k, &b).is_lt())
            }).collect();
            let fwd = Page { size, after, before, backward: false }.select(keys.iter().copied(), |k| *k);
            let back = Page { size, after, before, backward: true }.select(keys.iter().copied(), |k| *k);
            let head: Vec<CursorKey> = inside.iter().copied().take(size + 1).collect();
            let tail: Vec<CursorKey> = inside.iter().rev().copied().take(size + 1).collect();
            prop_assert_eq!(fwd, head);
            prop_assert_eq!(back, tail);
        }
    }
}
