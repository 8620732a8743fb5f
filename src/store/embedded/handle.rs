//! The embedded transaction handle: [`Reads`] and [`Tx`] over a redb write
//! transaction (seeing its own writes) or a read snapshot, every method
//! finishing without waiting (see `tx`).

use std::collections::BTreeSet;

use bson::DateTime;
use bson::oid::ObjectId;
use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::codec::encode;
use super::schema::{
    ALL_INDEXES, COMMENTS_BY_AUTHOR, COMMENTS_BY_POST, DELETION_JOB_PARTS, DELETION_JOBS, IndexTable, POSTS_BY_AUTHOR,
    POSTS_BY_LIKER, Stored, USERS_BY_EMAIL, USERS_BY_FOLLOWER, USERS_BY_FOLLOWING,
};
use super::source::Source;
use crate::error::{Error, Result};
use crate::model::{CommentDoc, DeletionJobDoc, Id, JobHeader, JobPart, PostDoc, PostId, UserDoc, UserId};
use crate::store::{AnyDoc, CommentRef, CommentsOf, DocRef, HeldIn, IdsOf, Kind, ListChange, Reads, Tx};

/// `doc`'s index entries as `(position in ALL_INDEXES, key)`, ordered, so two
/// versions of a document can be compared entry by entry.
fn indexed<D: Stored>(doc: &D) -> BTreeSet<(usize, Vec<u8>)> {
    doc.index_entries()
        .into_iter()
        .filter_map(|(index, key)| ALL_INDEXES.iter().position(|t| t.name() == index.name()).map(|i| (i, key)))
        .collect()
}

/// Document writes with index maintenance, over one write transaction.
pub(super) struct Writer<'t> {
    /// The writer thread's group transaction (see `group`).
    pub(super) tx: &'t WriteTransaction,
    /// The transaction's clock.
    pub(super) now: DateTime,
    /// Staged deletions this command recorded, handed to its group, which publishes them at commit.
    pub(super) staged: Vec<DeletionJobDoc>,
}

impl Writer<'_> {
    /// Adds `delta` to the post count `user`'s record keeps (see
    /// `store::embedded::codec`): a rewrite of the same small size whatever
    /// the count. False if there is no such user.
    /// False too if the user's deletion is staged: a tombstoned account takes no new posts.
    fn add_to_post_count(&self, user: UserId, delta: i64) -> Result<bool> {
        let Some(mut doc) = self.get::<UserDoc>(&user.oid())?.filter(|u| u.deleting.is_none()) else {
            return Ok(false);
        };
        doc.post_count = doc.post_count.saturating_add_signed(delta);
        // A record from before counts were kept lists its posts; the count replaces it.
        doc.posts.clear();
        // Neither `posts` nor the count is indexed: skip the diff (and its second decode).
        self.rewrite(&doc)?;
        Ok(true)
    }

    /// Writes `doc`, replacing any previous version. Only the index entries
    /// that changed are written, so a like by a user who follows thousands
    /// does not rewrite thousands of follow-index entries.
    fn put<D: Stored>(&self, doc: &D) -> Result<()> {
        let old = self.get::<D>(&doc.id())?;
        self.write(doc, old.as_ref())
    }

    /// Writes `doc` over `old`, the version stored now (`None`: there is
    /// none), writing only the index entries that differ. Callers that have
    /// just read `old` pass it, so it is not read and decoded a second time.
    fn write<D: Stored>(&self, doc: &D, old: Option<&D>) -> Result<()> {
        let new = indexed(doc);
        let old = old.map(indexed).unwrap_or_default();
        for (index, key) in old.difference(&new) {
            self.tx.open_table(ALL_INDEXES[*index])?.remove(key.as_slice())?;
        }
        for (index, key) in new.difference(&old) {
            self.tx.open_table(ALL_INDEXES[*index])?.insert(key.as_slice(), ())?;
        }
        let bytes = encode(doc)?;
        self.tx.open_table(D::TABLE)?.insert(doc.id().bytes().as_slice(), bytes.as_slice())?;
        Ok(())
    }

    /// Writes `doc` over its previous version without touching the indexes:
    /// only for changes to fields no index covers (a user's `posts`).
    fn rewrite<D: Stored>(&self, doc: &D) -> Result<()> {
        debug_assert!(self.get::<D>(&doc.id()).ok().flatten().is_some_and(|old| indexed(&old) == indexed(doc)));
        let bytes = encode(doc)?;
        self.tx.open_table(D::TABLE)?.insert(doc.id().bytes().as_slice(), bytes.as_slice())?;
        Ok(())
    }

    /// Deletes the document with `id` and its index entries; returns it if it existed.
    fn remove<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>> {
        let Some(old) = self.get::<D>(id)? else {
            return Ok(None);
        };
        for (index, key) in old.index_entries() {
            self.tx.open_table(index)?.remove(key.as_slice())?;
        }
        self.tx.open_table(D::TABLE)?.remove(id.bytes().as_slice())?;
        Ok(Some(old))
    }

    fn insert<D: Stored>(&self, doc: &D) -> Result<()> {
        // Only whether the id is taken: nothing to decode.
        if self.tx.open_table(D::TABLE)?.get(doc.id().bytes().as_slice())?.is_some() {
            return Err(Error::internal(format!("inserting {}: the id is taken", doc.id())));
        }
        self.write(doc, None)
    }

    fn replace<D: Stored>(&self, doc: &D) -> Result<()> {
        let Some(old) = self.get::<D>(&doc.id())? else {
            return Err(Error::internal(format!("replacing {}: it vanished inside its transaction", doc.id())));
        };
        self.write(doc, Some(&old))
    }

    /// Pulls `user` out of these posts' `likedBy`.
    fn pull_liker_from(&self, user: UserId, posts: &[ObjectId]) -> Result<()> {
        for id in posts {
            if let Some(mut post) = self.get::<PostDoc>(id)?
                && post.liked_by.contains(&user)
            {
                post.liked_by.retain(|u| *u != user);
                self.put(&post)?;
            }
        }
        Ok(())
    }

    /// Pulls `user` out of these users' `followers` and `following`.
    fn pull_follows_from(&self, user: UserId, users: &[ObjectId]) -> Result<()> {
        for id in users {
            if let Some(mut other) = self.get::<UserDoc>(id)? {
                other.followers.retain(|u| *u != user);
                other.following.retain(|u| *u != user);
                self.put(&other)?;
            }
        }
        Ok(())
    }
}

/// The embedded handle over a [`Source`]: a transaction handle over a
/// [`Writer`], a read-only view over a [`Snapshot`].
pub(super) struct EmbeddedTx<S>(pub(super) S);

impl<S: Source> Reads for EmbeddedTx<S> {
    async fn find(&mut self, kind: Kind, id: ObjectId) -> Result<Option<AnyDoc>> {
        // A user's record only: its count stands for the list (the author
        // index), so checking a big author costs one small read, not a scan.
        Ok(match kind {
            Kind::User => self.0.get::<UserDoc>(&id)?.map(AnyDoc::User),
            Kind::Post => self.0.get::<PostDoc>(&id)?.map(AnyDoc::Post),
            Kind::Comment => self.0.get::<CommentDoc>(&id)?.map(AnyDoc::Comment),
        })
    }

    async fn ids(&mut self, question: IdsOf<'_>) -> Result<Vec<ObjectId>> {
        match question {
            IdsOf::PostsBy(author) => self.0.index_ids(POSTS_BY_AUTHOR, &author.bytes(), false),
            IdsOf::PostsLikedBy(user) => self.0.index_ids(POSTS_BY_LIKER, &user.bytes(), true),
            IdsOf::CommentsOn(posts) => {
                let mut ids = Vec::new();
                for post in posts {
                    ids.extend(self.0.index_ids(COMMENTS_BY_POST, &post.bytes(), false)?);
                }
                Ok(ids)
            }
            IdsOf::CommentsBy(author) => self.0.index_ids(COMMENTS_BY_AUTHOR, &author.bytes(), false),
            IdsOf::UsersFollowingOrFollowedBy(user) => {
                let mut ids: BTreeSet<ObjectId> =
                    self.0.index_ids(USERS_BY_FOLLOWER, &user.bytes(), true)?.into_iter().collect();
                ids.extend(self.0.index_ids(USERS_BY_FOLLOWING, &user.bytes(), true)?);
                Ok(ids.into_iter().collect())
            }
        }
    }

    async fn comment_refs(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        self.0.comment_refs(comments_index(of), parents)
    }

    async fn user_with_posts(&mut self, id: UserId) -> Result<Option<UserDoc>> {
        // This store's list is its author index, whatever the record says.
        let Some(mut user) = self.0.get::<UserDoc>(&id.oid())? else { return Ok(None) };
        user.posts = Id::from_oids(self.0.index_ids(POSTS_BY_AUTHOR, &id.bytes(), false)?);
        Ok(Some(user))
    }
}

/// The index that lists comments by `of`'s parent.
fn comments_index(of: CommentsOf) -> IndexTable {
    match of {
        CommentsOf::Post => COMMENTS_BY_POST,
        CommentsOf::Author => COMMENTS_BY_AUTHOR,
    }
}

impl Tx for EmbeddedTx<Writer<'_>> {
    async fn touch_user(&mut self, id: UserId) -> Result<bool> {
        // One writer at a time: nothing can delete the user concurrently, so
        // there is nothing to conflict with; a read is enough.
        Ok(self.0.get::<UserDoc>(&id.oid())?.is_some_and(|u| u.deleting.is_none()))
    }

    async fn list_user_post(&mut self, user: UserId, _post: PostId, change: ListChange) -> Result<bool> {
        // The list is the author index, which the post's own write already
        // changed; the record keeps only the count.
        self.0.add_to_post_count(user, if change == ListChange::Add { 1 } else { -1 })
    }

    async fn insert_doc(&mut self, doc: DocRef<'_>) -> Result<()> {
        match doc {
            DocRef::User(user) => {
                {
                    let mut emails = self.0.tx.open_table(USERS_BY_EMAIL)?;
                    if emails.get(user.email.as_str())?.is_some() {
                        return Err(Error::email_taken());
                    }
                    emails.insert(user.email.as_str(), user.id.bytes().as_slice())?;
                }
                self.0.insert(user)
            }
            DocRef::Post(post) => self.0.insert(post),
            DocRef::Comment(comment) => self.0.insert(comment),
        }
    }

    async fn replace_doc(&mut self, doc: DocRef<'_>) -> Result<()> {
        match doc {
            DocRef::User(user) => self.0.replace(user),
            DocRef::Post(post) => self.0.replace(post),
            DocRef::Comment(comment) => self.0.replace(comment),
        }
    }

    async fn delete_ids(&mut self, kind: Kind, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            let existed = match kind {
                Kind::User => match self.0.remove::<UserDoc>(id)? {
                    Some(user) => {
                        self.0.tx.open_table(USERS_BY_EMAIL)?.remove(user.email.as_str())?;
                        true
                    }
                    None => false,
                },
                Kind::Post => self.0.remove::<PostDoc>(id)?.is_some(),
                Kind::Comment => self.0.remove::<CommentDoc>(id)?.is_some(),
            };
            if existed {
                gone.push(*id);
            }
        }
        Ok(gone)
    }

    async fn delete_comments_of(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        let mut gone = Vec::new();
        for parent in parents {
            for id in self.0.index_ids(comments_index(of), &parent.bytes(), false)? {
                if let Some(c) = self.0.remove::<CommentDoc>(&id)? {
                    gone.push(CommentRef { id: c.id, post: c.post, author: c.author });
                }
            }
        }
        Ok(gone)
    }

    async fn add_comment_counts(&mut self, deltas: &[(PostId, i64)]) -> Result<()> {
        for (id, delta) in deltas {
            if let Some(mut post) = self.0.get::<PostDoc>(&id.oid())? {
                post.comment_count += delta;
                self.0.put(&post)?;
            }
        }
        Ok(())
    }

    async fn pull_refs(&mut self, user: UserId, held: HeldIn, ids: &[ObjectId]) -> Result<()> {
        match held {
            HeldIn::Likes => self.0.pull_liker_from(user, ids),
            HeldIn::Follows => self.0.pull_follows_from(user, ids),
        }
    }

    async fn insert_job(&mut self, job: &DeletionJobDoc) -> Result<()> {
        let (header, parts) = job.to_records();
        {
            let bytes = bson::serialize_to_vec(&header)?;
            let mut jobs = self.0.tx.open_table(DELETION_JOBS)?;
            if jobs.insert(header.id.bytes().as_slice(), bytes.as_slice())?.is_some() {
                return Err(Error::internal(format!("inserting deletion job {}: the id is taken", job.id)));
            }
            let mut stored = self.0.tx.open_table(DELETION_JOB_PARTS)?;
            for part in &parts {
                stored.insert(part.key.as_str(), bson::serialize_to_vec(part)?.as_slice())?;
            }
        }
        self.0.staged.push(job.clone());
        Ok(())
    }

    async fn job(&mut self, id: ObjectId) -> Result<Option<JobHeader>> {
        let jobs = self.0.tx.open_table(DELETION_JOBS)?;
        let found = jobs.get(id.bytes().as_slice())?;
        Ok(match found {
            Some(bytes) => Some(bson::deserialize_from_slice(bytes.value())?),
            None => None,
        })
    }

    async fn job_part(&mut self, job: ObjectId, seq: i64) -> Result<Option<JobPart>> {
        let parts = self.0.tx.open_table(DELETION_JOB_PARTS)?;
        let found = parts.get(JobPart::key(&job, seq).as_str())?;
        Ok(match found {
            Some(bytes) => Some(bson::deserialize_from_slice(bytes.value())?),
            None => None,
        })
    }

    async fn replace_job(&mut self, job: &JobHeader) -> Result<()> {
        let bytes = bson::serialize_to_vec(job)?;
        self.0.tx.open_table(DELETION_JOBS)?.insert(job.id.bytes().as_slice(), bytes.as_slice())?;
        Ok(())
    }

    async fn delete_job(&mut self, job: &JobHeader) -> Result<bool> {
        let mut parts = self.0.tx.open_table(DELETION_JOB_PARTS)?;
        for seq in 0..job.parts {
            parts.remove(JobPart::key(&job.id, seq).as_str())?;
        }
        Ok(self.0.tx.open_table(DELETION_JOBS)?.remove(job.id.bytes().as_slice())?.is_some())
    }

    fn now(&self) -> DateTime {
        self.0.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every index entry of every document type is known to the diff in `put`
    /// (an unknown index would silently never be maintained).
    #[test]
    fn every_index_entry_is_diffed() {
        let (a, b, c) = (UserId::new(), PostId::new(), UserId::new());
        let now = DateTime::now();
        let user = UserDoc {
            posts: vec![b],
            post_count: 1,
            followers: vec![c],
            following: vec![c],
            ..UserDoc::new(a, "n".into(), "e@x.io".into(), String::new(), now)
        };
        let post = PostDoc {
            id: b,
            title: "t".into(),
            body: String::new(),
            author: a,
            liked_by: vec![a],
            comment_count: 0,
            created_at: now,
            updated_at: now,
            deleting: None,
        };
        let comment = CommentDoc { id: Id::new(), body: "c".into(), post: b, author: a, created_at: now };
        assert_eq!(indexed(&user).len(), user.index_entries().len());
        assert_eq!(indexed(&post).len(), post.index_entries().len());
        assert_eq!(indexed(&comment).len(), comment.index_entries().len());
    }
}
