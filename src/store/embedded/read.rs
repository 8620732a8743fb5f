//! Reads over one redb read transaction: documents by id (through
//! [`super::by_ids`]), newest-first pages from an index, related-user pages
//! from an id array, and whole collections.

use std::ops::Bound;

use bson::oid::ObjectId;
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::by_ids::get_docs;
use super::codec::decode;
use super::keys::{concat, desc_key, id_from_desc_tail, id_from_plain_tail};
use super::schema::{DELETION_JOB_PARTS, DELETION_JOBS, DocTable, IndexTable, POSTS_BY_AUTHOR, Stored, USERS_BY_EMAIL};
use crate::domain::{CursorKey, Page};
use crate::error::Result;
use crate::model::{DeletionJobDoc, Id, JobHeader, JobPart, PostDoc, UserDoc};
use crate::store::UsersOf;
use crate::store::hidden::Sets;

/// Which part of an index prefix to walk, and in which direction.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Walk<'a> {
    /// Start strictly after `prefix ++ after`.
    pub after: Option<&'a [u8]>,
    /// Stop strictly before `prefix ++ before`.
    pub before: Option<&'a [u8]>,
    /// Walk from the end of the range towards its start.
    pub backward: bool,
}

/// The smallest key greater than every key starting with `prefix`, if any.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A range of index keys, as `redb` takes it (borrowed).
type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The key range under `prefix` within `walk`'s bounds; `None` when it is
/// empty (cursors out of order), which redb would refuse as inverted bounds.
fn prefix_bounds(prefix: &[u8], walk: Walk<'_>) -> Option<KeyRange> {
    let lower = match walk.after {
        Some(suffix) => Bound::Excluded(concat(prefix, suffix)),
        None => Bound::Included(prefix.to_vec()),
    };
    let upper = match (walk.before, prefix_end(prefix)) {
        (Some(suffix), _) => Bound::Excluded(concat(prefix, suffix)),
        (None, Some(end)) => Bound::Excluded(end),
        (None, None) => Bound::Unbounded,
    };
    if let (Bound::Excluded(lo) | Bound::Included(lo), Bound::Excluded(hi)) = (&lower, &upper)
        && lo >= hi
    {
        return None;
    }
    Some((lower, upper))
}

/// What `pick` makes of each index key under `prefix` within `walk`'s
/// bounds (an id, mostly: no copy of the key), in walk order, up to `limit`
/// kept: the keys it passes over (`None`) cost a comparison each, no
/// document read.
pub(super) fn scan_prefix<T>(
    index: &impl ReadableTable<&'static [u8], ()>,
    prefix: &[u8],
    walk: Walk<'_>,
    limit: usize,
    mut pick: impl FnMut(&[u8]) -> Result<Option<T>>,
) -> Result<Vec<T>> {
    let Some((lower, upper)) = prefix_bounds(prefix, walk) else { return Ok(Vec::new()) };
    let entries = index.range::<&[u8]>((lower.as_ref().map(Vec::as_slice), upper.as_ref().map(Vec::as_slice)))?;
    let mut out = Vec::with_capacity(limit.min(128));
    let mut keep = |entry: std::result::Result<
        (redb::AccessGuard<'_, &'static [u8]>, redb::AccessGuard<'_, ()>),
        redb::StorageError,
    >|
     -> Result<bool> {
        if out.len() >= limit {
            return Ok(false);
        }
        let (key, _) = entry?;
        let key = key.value();
        if !key.starts_with(prefix) {
            return Ok(false);
        }
        if let Some(kept) = pick(key)? {
            out.push(kept);
        }
        Ok(true)
    };
    if walk.backward {
        for entry in entries.rev() {
            if !keep(entry)? {
                break;
            }
        }
    } else {
        for entry in entries {
            if !keep(entry)? {
                break;
            }
        }
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
    page.select(ids.into_iter(), |id| CursorKey { created_ms: 0, id: *id })
}

/// The read helpers, over one read transaction, with the ids staged
/// deletions hide when a job is in progress.
///
/// Pages pass over hidden ids on the index keys, so a list whose head is
/// thousands of hidden documents reads none of them (the store's own filter
/// still checks what is read, for what ids alone cannot tell).
pub(super) struct Reader<'a>(pub(super) &'a ReadTransaction, pub(super) Option<&'a Sets>);

/// The staged deletion jobs `db` holds, read in a fresh snapshot (to
/// reload what staged deletion hides after the file was reopened).
pub(super) fn jobs_in(db: &redb::Database) -> Result<Vec<DeletionJobDoc>> {
    use redb::ReadableDatabase as _;
    Reader(&db.begin_read()?, None).jobs()
}

impl Reader<'_> {
    /// The documents with these ids, in the order asked; missing ones are skipped.
    pub(super) fn docs<D: Stored>(&self, ids: &[impl Copy + Into<ObjectId>]) -> Result<Vec<D>> {
        Ok(get_docs(&self.0.open_table(D::TABLE)?, ids)?.into_iter().flatten().collect())
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
        let ids = self.page_ids(&self.0.open_table(index)?, prefix, page)?;
        self.docs(&ids)
    }

    /// The ids of one newest-first page of `index` under `prefix`, passing
    /// over the ids staged deletions hide.
    fn page_ids(
        &self,
        index: &impl ReadableTable<&'static [u8], ()>,
        prefix: &[u8],
        page: &Page,
    ) -> Result<Vec<ObjectId>> {
        let after = page.after().map(|c| desc_key(&c));
        let before = page.before().map(|c| desc_key(&c));
        let walk = Walk {
            after: after.as_ref().map(|a| a.as_slice()),
            before: before.as_ref().map(|b| b.as_slice()),
            backward: page.backward(),
        };
        scan_prefix(index, prefix, walk, page.fetch_limit(), |key| {
            let id = id_from_desc_tail(key)?;
            Ok(self.1.is_none_or(|sets| !sets.hides_id(&id)).then_some(id))
        })
    }

    /// One page per key of `index`, aligned with `keys`: every page's ids
    /// first, then the documents of all of them in one read (twenty posts'
    /// first comments are one walk over the comments, not a lookup each).
    pub(super) fn pages<D: Stored>(&self, index: IndexTable, keys: &[(ObjectId, Page)]) -> Result<Vec<Vec<D>>> {
        let table = self.0.open_table(index)?;
        let mut ids = Vec::new();
        let mut ends = Vec::with_capacity(keys.len());
        for (parent, page) in keys {
            ids.extend(self.page_ids(&table, &parent.bytes(), page)?);
            ends.push(ids.len());
        }
        let mut docs = get_docs::<D>(&self.0.open_table(D::TABLE)?, &ids)?.into_iter();
        let mut start = 0;
        Ok(ends
            .into_iter()
            .map(|end| {
                let page = docs.by_ref().take(end - start).flatten().collect();
                start = end;
                page
            })
            .collect())
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
                let mut ids = Id::oids(&ids.unwrap_or_default());
                if let Some(sets) = self.1 {
                    ids.retain(|id| !sets.hides_id(id));
                }
                self.docs(&related_page_ids(ids, page))
            })
            .collect()
    }

    /// How many documents `table` holds (redb keeps the count in the tree header).
    pub(super) fn len(&self, table: DocTable) -> Result<u64> {
        Ok(self.0.open_table(table)?.len()?)
    }

    /// How many keys of `index` start with `prefix`: a key-only range walk, no document is read.
    pub(super) fn count_prefix(&self, index: IndexTable, prefix: &[u8]) -> Result<u64> {
        let table = self.0.open_table(index)?;
        let upper = prefix_end(prefix);
        let range = (Bound::Included(prefix), upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded));
        let mut n = 0;
        for entry in table.range::<&[u8]>(range)? {
            entry?;
            n += 1;
        }
        Ok(n)
    }

    /// Every user, each with its whole `posts` list (this store's list is
    /// its author index) and the count its record keeps, so `check` can
    /// compare the two.
    pub(super) fn all_users(&self) -> Result<Vec<UserDoc>> {
        let mut users: Vec<UserDoc> = self.all()?;
        let index = self.0.open_table(POSTS_BY_AUTHOR)?;
        for user in &mut users {
            user.posts = scan_prefix(&index, &user.id.bytes(), Walk::default(), usize::MAX, |key| {
                id_from_desc_tail(key).map(|id| Some(Id::from_oid(id)))
            })?;
        }
        Ok(users)
    }

    /// Every staged deletion in progress, by id.
    pub(super) fn jobs(&self) -> Result<Vec<DeletionJobDoc>> {
        self.job_headers()?.into_iter().map(|h| self.job(h)).collect()
    }

    /// Every staged deletion's header, by id.
    pub(super) fn job_headers(&self) -> Result<Vec<JobHeader>> {
        let table = self.0.open_table(DELETION_JOBS)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            out.push(bson::deserialize_from_slice(value.value())?);
        }
        Ok(out)
    }

    /// The job `header` heads, with its lists.
    pub(super) fn job(&self, header: JobHeader) -> Result<DeletionJobDoc> {
        let parts = self.0.open_table(DELETION_JOB_PARTS)?;
        let mut lists = Vec::new();
        for seq in 0..header.parts {
            if let Some(bytes) = parts.get(JobPart::key(&header.id, seq).as_str())? {
                lists.push(bson::deserialize_from_slice(bytes.value())?);
            }
        }
        Ok(DeletionJobDoc::from_records(header, lists))
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
    use redb::ReadableDatabase as _;

    use super::*;
    use crate::domain::CursorKey;

    proptest! {
        /// A relation page is the ids newest first, without duplicates, strictly after
        /// the cursor, and at most `first + 1` long (backward pages: the tail, reversed).
        #[test]
        fn related_pages(ids in prop::collection::vec(any::<[u8; 12]>(), 0..40), cut in any::<[u8; 12]>(), size in 0usize..10, backward in any::<bool>()) {
            let ids: Vec<ObjectId> = ids.into_iter().map(ObjectId::from_bytes).collect();
            let cursor = CursorKey { created_ms: 0, id: ObjectId::from_bytes(cut) }.encode();
            let n = Some(size as i32);
            let page = if backward { Page::parse(None, Some(&cursor), n, None) } else { Page::parse(n, Some(&cursor), None, None) };
            let page = page.map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = related_page_ids(ids.clone(), &page);
            let mut want: Vec<ObjectId> = ids.into_iter().filter(|id| *id < ObjectId::from_bytes(cut)).collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            want.dedup();
            if backward {
                want.reverse();
            }
            want.truncate(size + 1);
            prop_assert_eq!(got, want);
        }

        /// A prefix scan returns exactly the keys under the prefix between the
        /// bounds, in either direction, whatever the neighbouring prefixes hold.
        #[test]
        fn prefix_scans_stay_inside(prefix in any::<u8>(), suffixes in prop::collection::btree_set(any::<[u8; 2]>(), 0..30),
                                    after in prop::option::of(any::<[u8; 2]>()), before in prop::option::of(any::<[u8; 2]>()),
                                    backward in any::<bool>(), limit in 0usize..40) {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let db = redb::Database::create(dir.path().join("t.redb")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let table: redb::TableDefinition<&[u8], ()> = redb::TableDefinition::new("t");
            let wtx = db.begin_write().map_err(|e| TestCaseError::fail(e.to_string()))?;
            {
                let mut t = wtx.open_table(table).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for p in [prefix.wrapping_sub(1), prefix, prefix.wrapping_add(1)] {
                    for s in &suffixes {
                        t.insert([p, s[0], s[1]].as_slice(), ()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    }
                }
            }
            wtx.commit().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let rtx = db.begin_read().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let t = rtx.open_table(table).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let walk = Walk { after: after.as_ref().map(|a| a.as_slice()), before: before.as_ref().map(|b| b.as_slice()), backward };
            let got = scan_prefix(&t, &[prefix], walk, limit, |k| Ok(Some(k.to_vec()))).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut want: Vec<Vec<u8>> = suffixes.iter()
                .filter(|s| after.is_none_or(|a| **s > a) && before.is_none_or(|b| **s < b))
                .map(|s| vec![prefix, s[0], s[1]]).collect();
            if backward {
                want.reverse();
            }
            want.truncate(limit);
            prop_assert_eq!(got, want);
        }
    }
}
