//! What an embedded transaction handle reads from: its own write
//! transaction (seeing its own writes) or a read snapshot.

use bson::oid::ObjectId;
use redb::{ReadTransaction, ReadableTable};

use super::by_ids::{get_doc, read_values};
use super::handle::Writer;
use super::keys::{id_from_desc_tail, id_from_plain_tail};
use super::read::{Walk, scan_prefix};
use super::schema::{IndexTable, Stored};
use crate::error::{Error, Result};
use crate::model::{CommentDoc, Id};
use crate::store::CommentRef;

/// What a transaction handle reads from: a write transaction, seeing its
/// own writes, or a read snapshot (see `tx::read_only`).
pub(super) trait Source: Send {
    /// The document with `id`, if any.
    fn get<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>>;
    /// Every id under `prefix` in `index`; `plain_tail` says how the key ends.
    fn index_ids(&self, index: IndexTable, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>>;
    /// The comments listed under each of `parents` in `index`, with their references.
    fn comment_refs(&self, index: IndexTable, parents: &[ObjectId]) -> Result<Vec<CommentRef>>;
}

/// The ids under `prefix` in `index`.
fn ids_under(index: &impl ReadableTable<&'static [u8], ()>, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>> {
    scan_prefix(index, prefix, Walk::default(), usize::MAX, |key| {
        (if plain_tail { id_from_plain_tail(key) } else { id_from_desc_tail(key) }).map(Some)
    })
}

/// The comments under each of `parents` in `index`, reading only the two
/// references out of each stored comment, not its body: a staged deletion
/// reads hundreds of thousands of these while it holds the writer. Their
/// ids come first, then the comments in one ordered read (see `by_ids`),
/// not a descent each.
fn refs_under(
    comments: &impl ReadableTable<&'static [u8], &'static [u8]>,
    index: &impl ReadableTable<&'static [u8], ()>,
    parents: &[ObjectId],
) -> Result<Vec<CommentRef>> {
    let mut ids = Vec::new();
    for parent in parents {
        ids.extend(ids_under(index, &parent.bytes(), false)?);
    }
    let refs = read_values(comments, &ids, |stored| {
        let raw = bson::RawDocument::from_bytes(stored).map_err(|e| Error::internal_from("a stored comment", e))?;
        let reference =
            |field: &str| raw.get_object_id(field).map_err(|e| Error::internal_from("a stored comment's reference", e));
        Ok((reference("post")?, reference("author")?))
    })?;
    Ok(ids
        .into_iter()
        .zip(refs)
        .filter_map(|(id, found)| {
            found.map(|(post, author)| CommentRef {
                id: Id::from_oid(id),
                post: Id::from_oid(post),
                author: Id::from_oid(author),
            })
        })
        .collect())
}

impl Source for Writer<'_> {
    fn get<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>> {
        get_doc(&self.tx.open_table(D::TABLE)?, id)
    }

    fn index_ids(&self, index: IndexTable, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>> {
        ids_under(&self.tx.open_table(index)?, prefix, plain_tail)
    }

    fn comment_refs(&self, index: IndexTable, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        refs_under(&self.tx.open_table(CommentDoc::TABLE)?, &self.tx.open_table(index)?, parents)
    }
}

/// A read snapshot, for read-only commands.
pub(super) struct Snapshot(pub(super) ReadTransaction);

impl Source for Snapshot {
    fn get<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>> {
        get_doc(&self.0.open_table(D::TABLE)?, id)
    }

    fn index_ids(&self, index: IndexTable, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>> {
        ids_under(&self.0.open_table(index)?, prefix, plain_tail)
    }

    fn comment_refs(&self, index: IndexTable, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        refs_under(&self.0.open_table(CommentDoc::TABLE)?, &self.0.open_table(index)?, parents)
    }
}
