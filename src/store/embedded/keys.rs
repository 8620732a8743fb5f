//! Index key encoding: byte strings whose ascending order is the listing order.
//!
//! redb sorts keys by bytes. Listings run newest first by `(createdAt, _id)`,
//! so [`desc_key`] inverts both parts: a plain range scan from a cursor then
//! walks the listing in order, and a page is never a table scan.

use bson::oid::ObjectId;

use crate::domain::CursorKey;
use crate::error::{Error, Result};

/// Length of a [`desc_key`].
pub(super) const DESC_LEN: usize = 20;

/// Index key ordering newest first: ascending byte order of this key is
/// descending `(createdAt, _id)` order.
pub(super) fn desc_key(key: &CursorKey) -> [u8; DESC_LEN] {
    let mut out = [0u8; DESC_LEN];
    // Flipping the sign bit maps i64 order onto u64 order; inverting every bit reverses it.
    let ms = !((key.created_ms as u64) ^ (1 << 63));
    out[..8].copy_from_slice(&ms.to_be_bytes());
    for (o, b) in out[8..].iter_mut().zip(key.id.bytes()) {
        *o = !b;
    }
    out
}

/// Recovers the document id from the tail of a [`desc_key`]-ordered index key.
pub(super) fn id_from_desc_tail(key: &[u8]) -> Result<ObjectId> {
    let tail = tail12(key)?;
    Ok(ObjectId::from_bytes(tail.map(|b| !b)))
}

/// Recovers the document id from the tail of a `parent ++ id` index key.
pub(super) fn id_from_plain_tail(key: &[u8]) -> Result<ObjectId> {
    Ok(ObjectId::from_bytes(tail12(key)?))
}

fn tail12(key: &[u8]) -> Result<[u8; 12]> {
    key.len()
        .checked_sub(12)
        .and_then(|start| key[start..].try_into().ok())
        .ok_or_else(|| Error::internal("embedded index key too short"))
}

/// `a ++ b`, for `parent ++ child` index keys.
pub(super) fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::newest_first;

    fn key(ms: i64, id: [u8; 12]) -> CursorKey {
        CursorKey { created_ms: ms, id: ObjectId::from_bytes(id) }
    }

    /// Both tails decode back to the id they were built from.
    #[test]
    fn tails_round_trip() {
        let k = key(1_700_000_000_000, [7; 12]);
        assert_eq!(id_from_desc_tail(&concat(&[1, 2, 3], &desc_key(&k))).ok(), Some(k.id));
        assert_eq!(id_from_plain_tail(&concat(&[9; 12], &k.id.bytes())).ok(), Some(k.id));
        assert!(id_from_plain_tail(&[1, 2, 3]).is_err());
    }

    /// Negative, zero and positive times order correctly across the sign boundary.
    #[test]
    fn sign_boundary() {
        let ids = [[0; 12], [0; 12], [0; 12]];
        let keys: Vec<_> = [-1, 0, 1].iter().zip(ids).map(|(ms, id)| desc_key(&key(*ms, id))).collect();
        assert!(keys[2] < keys[1] && keys[1] < keys[0], "newest (1 ms) sorts first");
    }

    proptest! {
        /// Byte order of the keys is exactly the listing order `(createdAt desc, _id desc)`.
        #[test]
        fn key_order_is_listing_order(a in any::<(i64, [u8; 12])>(), b in any::<(i64, [u8; 12])>()) {
            let (ka, kb) = (key(a.0, a.1), key(b.0, b.1));
            prop_assert_eq!(desc_key(&ka).cmp(&desc_key(&kb)), newest_first(&ka, &kb));
            prop_assert_eq!(id_from_desc_tail(&desc_key(&ka)).ok(), Some(ka.id));
        }

        /// The same holds for keys sharing a parent prefix, as the per-author and per-post indexes use.
        #[test]
        fn prefixed_order(p in any::<[u8; 12]>(), a in any::<(i64, [u8; 12])>(), b in any::<(i64, [u8; 12])>()) {
            let (ka, kb) = (key(a.0, a.1), key(b.0, b.1));
            let (x, y) = (concat(&p, &desc_key(&ka)), concat(&p, &desc_key(&kb)));
            prop_assert_eq!(x.cmp(&y), newest_first(&ka, &kb));
        }
    }
}
