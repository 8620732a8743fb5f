//! Reads over one redb read transaction: documents by id, newest-first pages
//! from an index, related-user pages from an id array, and whole collections.

use std::ops::Bound;

use bson::oid::ObjectId;
use redb::{ReadTransaction, ReadableTable};

use super::keys::{concat, desc_key, id_from_desc_tail, id_from_plain_tail};
use super::schema::{IndexTable, Stored, USERS_BY_EMAIL};
use crate::domain::Page;
use crate::error::Result;
use crate::model::{PostDoc, UserDoc};
use crate::store::UsersOf;

/// Decodes a stored document.
pub(super) fn decode<D: Stored>(bytes: &[u8]) -> Result<D> {
    Ok(bson::deserialize_from_slice(bytes)?)
}

/// The document with `id` in `table`, if any.
pub(super) fn get_doc<D: Stored>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &ObjectId,
) -> Result<Option<D>> {
    match table.get(id.bytes().as_slice())? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Up to `limit` index keys under `prefix`, strictly after `prefix ++ after`
/// when `after` is given, in index order.
pub(super) fn scan_prefix(
    index: &impl ReadableTable<&'static [u8], ()>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let lower = match after {
        Some(suffix) => Bound::Excluded(concat(prefix, suffix)),
        None => Bound::Included(prefix.to_vec()),
    };
    let lower = lower.as_ref().map(Vec::as_slice);
    let mut out = Vec::new();
    for entry in index.range::<&[u8]>((lower, Bound::Unbounded))? {
        if out.len() >= limit {
            break;
        }
        let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(key.to_vec());
    }
    Ok(out)
}

/// The page of ids, newest account first, from an id array stored on a parent document.
///
/// User relations are ordered by id (an ObjectId starts with its creation
/// second), so the cursor's `created_ms` is unused and always 0.
pub(super) fn related_page_ids(mut ids: Vec<ObjectId>, page: &Page) -> Vec<ObjectId> {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.into_iter().filter(|id| page.after().is_none_or(|c| *id < c.id)).take(page.fetch_limit()).collect()
}

/// The read helpers, over one read transaction.
pub(super) struct Reader<'a>(pub(super) &'a ReadTransaction);

impl Reader<'_> {
    /// The documents with these ids, in the order asked; missing ones are skipped.
    pub(super) fn docs<D: Stored>(&self, ids: &[ObjectId]) -> Result<Vec<D>> {
        let table = self.0.open_table(D::TABLE)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(doc) = get_doc(&table, id)? {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// The user with this normalised email.
    pub(super) fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        let emails = self.0.open_table(USERS_BY_EMAIL)?;
        let Some(id) = emails.get(email)? else {
            return Ok(None);
        };
        let id = id_from_plain_tail(id.value())?;
        Ok(self.docs::<UserDoc>(&[id])?.pop())
    }

    /// One newest-first page of documents from `index` under `prefix`.
    pub(super) fn page<D: Stored>(&self, index: IndexTable, prefix: &[u8], page: &Page) -> Result<Vec<D>> {
        let table = self.0.open_table(index)?;
        let after = page.after().map(|c| desc_key(&c));
        let keys = scan_prefix(&table, prefix, after.as_ref().map(|a| a.as_slice()), page.fetch_limit())?;
        let ids = keys.iter().map(|k| id_from_desc_tail(k)).collect::<Result<Vec<_>>>()?;
        self.docs(&ids)
    }

    /// One page per key of `index`, aligned with `keys`.
    pub(super) fn pages<D: Stored>(&self, index: IndexTable, keys: &[(ObjectId, Page)]) -> Result<Vec<Vec<D>>> {
        keys.iter().map(|(parent, page)| self.page(index, &parent.bytes(), page)).collect()
    }

    /// One page of related users per parent, from the parent's id array.
    pub(super) fn related_users(&self, of: UsersOf, keys: &[(ObjectId, Page)]) -> Result<Vec<Vec<UserDoc>>> {
        keys.iter()
            .map(|(parent, page)| {
                let ids = match of {
                    UsersOf::Followers => self.docs::<UserDoc>(&[*parent])?.pop().map(|u| u.followers),
                    UsersOf::Following => self.docs::<UserDoc>(&[*parent])?.pop().map(|u| u.following),
                    UsersOf::Likers => self.docs::<PostDoc>(&[*parent])?.pop().map(|p| p.liked_by),
                };
                self.docs(&related_page_ids(ids.unwrap_or_default(), page))
            })
            .collect()
    }

    /// Every document of one collection, by id.
    pub(super) fn all<D: Stored>(&self) -> Result<Vec<D>> {
        let table = self.0.open_table(D::TABLE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::CursorKey;

    proptest! {
        /// A relation page is the ids newest first, without duplicates, strictly after
        /// the cursor, and at most `first + 1` long.
        #[test]
        fn related_pages(ids in prop::collection::vec(any::<[u8; 12]>(), 0..40), cut in any::<[u8; 12]>(), first in 0usize..10) {
            let ids: Vec<ObjectId> = ids.into_iter().map(ObjectId::from_bytes).collect();
            let cursor = CursorKey { created_ms: 0, id: ObjectId::from_bytes(cut) };
            let page = Page::parse(Some(first as i32), Some(&cursor.encode())).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = related_page_ids(ids.clone(), &page);
            let mut want: Vec<ObjectId> = ids.into_iter().filter(|id| *id < cursor.id).collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            want.dedup();
            want.truncate(first + 1);
            prop_assert_eq!(got, want);
        }
    }
}
