//! The embedded transaction handle and the way a command runs in it.
//!
//! redb allows one writer at a time, so every transaction is serializable
//! and a crash at any point leaves all of it or none of it on disk. A command
//! runs on the blocking pool, inside one redb write transaction. Its future is
//! polled exactly once: every [`Tx`] method here finishes without waiting, so
//! the command must be done after that poll, and if it is not (it awaited
//! something else) the transaction is rolled back with an internal error
//! instead of parking a thread.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bson::DateTime;
use bson::oid::ObjectId;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableHandle, WriteTransaction};

use super::codec::encode;
use super::disk::Disk;
use super::keys::{id_from_desc_tail, id_from_plain_tail};
use super::read::{Walk, get_doc, scan_prefix};
use super::schema::{
    ALL_INDEXES, COMMENTS_BY_AUTHOR, COMMENTS_BY_POST, DELETION_JOB_PARTS, DELETION_JOBS, IndexTable, POSTS_BY_AUTHOR,
    POSTS_BY_LIKER, Stored, USERS_BY_EMAIL, USERS_BY_FOLLOWER, USERS_BY_FOLLOWING,
};
use crate::error::{Error, Result};
use crate::model::{CommentDoc, DeletionJobDoc, JobHeader, JobPart, PostDoc, UserDoc};
use crate::store::hidden::Hidden;
use crate::store::hidden::stage::Staging;
use crate::store::{Command, ReadCommand};
use crate::store::{CommentRef, CommentsOf, Reads, RemovedComment, Tx};

/// One write transaction for the writer thread, with its reply channel inside.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// How many transactions may wait for the writer thread; a request beyond
/// that waits (asynchronously) to enqueue.
const QUEUED_WRITES: usize = 64;

/// Starts the thread that runs every write transaction, one at a time.
///
/// redb has one writer, so one thread is all writes can use. A dedicated
/// thread, rather than a blocking-pool task per write, keeps waiting writers
/// as cheap queued jobs instead of parked threads, and keeps the allocator's
/// memory for large documents in one thread's heap, reused by every write.
/// The thread ends when the last store handle (the last sender) is dropped.
pub(super) fn start_writer() -> Result<tokio::sync::mpsc::Sender<Job>> {
    let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(QUEUED_WRITES);
    std::thread::Builder::new()
        .name("blogql-writer".into())
        .spawn(move || {
            while let Some(job) = queue.blocking_recv() {
                // A panicking command drops its reply (its caller gets an
                // internal error); the thread goes on with the next one.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .map_err(|e| Error::internal_from("starting the embedded store's writer thread", e))?;
    Ok(jobs)
}

/// Runs `cmd` in one write transaction on the writer thread: commit on `Ok`,
/// roll back otherwise. While the store is failing after an I/O error the
/// command is refused with `SERVICE_UNAVAILABLE` before it runs (see `disk`).
pub(super) async fn run<C: Command + 'static>(
    disk: &Arc<Disk>,
    writer: &tokio::sync::mpsc::Sender<Job>,
    hidden: &Arc<Hidden>,
    cmd: C,
) -> Result<C::Output> {
    let (disk, hidden) = (Arc::clone(disk), Arc::clone(hidden));
    on_writer(writer, move || {
        disk.writable()?;
        let db = disk.db()?;
        let out = run_now(&db, &hidden, cmd);
        // Release the database before answering, so a caller that drops the
        // store on the answer can reopen the file at once.
        drop(db);
        disk.after_write(&out);
        out
    })
    .await
}

/// A recovery attempt on the writer thread (a readiness probe of a failing
/// store): `Ok` once a probe write has committed.
pub(super) async fn recover(disk: &Arc<Disk>, writer: &tokio::sync::mpsc::Sender<Job>) -> Result<()> {
    let disk = Arc::clone(disk);
    on_writer(writer, move || disk.writable()).await
}

/// Runs `work` on the writer thread and waits for its answer.
pub(super) async fn on_writer<T: Send + 'static>(
    writer: &tokio::sync::mpsc::Sender<Job>,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = reply.send(work());
    });
    writer.send(job).await.map_err(|_| Error::internal("the embedded store's writer thread has stopped"))?;
    answer.await.map_err(|_| Error::internal("a write transaction ended without an answer"))?
}

/// Runs `cmd` in one write transaction on this thread.
///
/// Staged deletions the command recorded are published to `hidden` just
/// before the commit, so no read that starts after the commit can see their
/// documents, and retired again if the commit fails.
fn run_now<C: Command>(db: &Database, hidden: &Arc<Hidden>, cmd: C) -> Result<C::Output> {
    let mut tx = EmbeddedTx(Writer { tx: db.begin_write()?, now: DateTime::now(), staged: Vec::new() });
    match complete_now(cmd.apply(&mut tx)) {
        Ok(Ok(out)) => {
            let staging = Staging::new(hidden);
            staging.publish(&tx.0.staged);
            let committed = tx.0.tx.commit();
            staging.finish(committed.is_ok());
            committed?;
            Ok(out)
        }
        Ok(Err(err)) | Err(err) => {
            tx.0.tx.abort()?;
            Err(err)
        }
    }
}

/// Runs the read-only `cmd` over a fresh read snapshot on the blocking pool:
/// never on the writer thread, so a deletion preview of a huge account
/// delays no write, and never inline on an async worker, because it may
/// read tens of thousands of index entries. (Callers bound how many run.)
pub(super) async fn read_only<C: ReadCommand>(db: Arc<Database>, cmd: C) -> Result<C::Output> {
    tokio::task::spawn_blocking(move || {
        let mut view = EmbeddedTx(Snapshot(db.begin_read()?));
        complete_now(cmd.read(&mut view))?
    })
    .await?
}

/// Polls `fut` once and returns its output, or an error if it is not ready.
fn complete_now<F: Future>(fut: F) -> Result<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(Error::internal("an embedded transaction waited on something other than the store")),
    }
}

/// `doc`'s index entries as `(position in ALL_INDEXES, key)`, ordered, so two
/// versions of a document can be compared entry by entry.
fn indexed<D: Stored>(doc: &D) -> BTreeSet<(usize, Vec<u8>)> {
    doc.index_entries()
        .into_iter()
        .filter_map(|(index, key)| ALL_INDEXES.iter().position(|t| t.name() == index.name()).map(|i| (i, key)))
        .collect()
}

/// What a transaction handle reads from: a write transaction, seeing its
/// own writes, or a read snapshot (see [`read_now`]).
trait Source: Send {
    /// The document with `id`, if any.
    fn get<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>>;
    /// Every id under `prefix` in `index`; `plain_tail` says how the key ends.
    fn index_ids(&self, index: IndexTable, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>>;
    /// The comments listed under each of `parents` in `index`, with their references.
    fn comment_refs(&self, index: IndexTable, parents: &[ObjectId]) -> Result<Vec<CommentRef>>;
}

/// The ids under `prefix` in `index`.
fn ids_under(index: &impl ReadableTable<&'static [u8], ()>, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>> {
    scan_prefix(index, prefix, Walk::default(), usize::MAX)?
        .iter()
        .map(|k| if plain_tail { id_from_plain_tail(k) } else { id_from_desc_tail(k) })
        .collect()
}

/// The comments under each of `parents` in `index`, reading only the two
/// references out of each stored comment, not its body: a staged deletion
/// reads hundreds of thousands of these while it holds the writer.
fn refs_under(
    comments: &impl ReadableTable<&'static [u8], &'static [u8]>,
    index: &impl ReadableTable<&'static [u8], ()>,
    parents: &[ObjectId],
) -> Result<Vec<CommentRef>> {
    let mut refs = Vec::new();
    for parent in parents {
        for key in scan_prefix(index, &parent.bytes(), Walk::default(), usize::MAX)? {
            let id = id_from_desc_tail(&key)?;
            let Some(stored) = comments.get(id.bytes().as_slice())? else { continue };
            let raw = bson::RawDocument::from_bytes(stored.value())
                .map_err(|e| Error::internal_from("a stored comment", e))?;
            let reference = |field: &str| {
                raw.get_object_id(field).map_err(|e| Error::internal_from("a stored comment's reference", e))
            };
            refs.push(CommentRef { id, post: reference("post")?, author: reference("author")? });
        }
    }
    Ok(refs)
}

impl Source for Writer {
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
struct Snapshot(ReadTransaction);

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

/// Document writes with index maintenance, over one write transaction.
struct Writer {
    tx: WriteTransaction,
    /// The transaction's clock.
    now: DateTime,
    /// Staged deletions recorded by this transaction, published at commit.
    staged: Vec<DeletionJobDoc>,
}

impl Writer {
    /// Adds `delta` to the post count `user`'s record keeps (see
    /// `store::embedded::codec`): a rewrite of the same small size whatever
    /// the count. False if there is no such user.
    /// False too if the user's deletion is staged: a tombstoned account takes no new posts.
    fn add_to_post_count(&self, user: ObjectId, delta: i64) -> Result<bool> {
        let Some(mut doc) = self.get::<UserDoc>(&user)?.filter(|u| u.deleting.is_none()) else { return Ok(false) };
        doc.stored_post_count = Some(doc.post_count().saturating_add_signed(delta));
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
        let new = indexed(doc);
        let old = match self.get::<D>(&doc.id())? {
            Some(old) => indexed(&old),
            None => BTreeSet::new(),
        };
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
        if self.get::<D>(&doc.id())?.is_some() {
            return Err(Error::internal(format!("inserting {}: the id is taken", doc.id())));
        }
        self.put(doc)
    }

    fn replace<D: Stored>(&self, doc: &D) -> Result<()> {
        if self.get::<D>(&doc.id())?.is_none() {
            return Err(Error::internal(format!("replacing {}: it vanished inside its transaction", doc.id())));
        }
        self.put(doc)
    }

    /// Pulls `user` out of these posts' `likedBy`; returns the posts that held it.
    fn pull_liker_from(&self, user: ObjectId, posts: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut changed = Vec::with_capacity(posts.len());
        for id in posts {
            if let Some(mut post) = self.get::<PostDoc>(id)?
                && post.liked_by.contains(&user)
            {
                post.liked_by.retain(|u| *u != user);
                self.put(&post)?;
                changed.push(*id);
            }
        }
        Ok(changed)
    }

    /// Pulls `user` out of these users' `followers` and `following`; returns those that exist.
    fn pull_follows_from(&self, user: ObjectId, users: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut changed = Vec::with_capacity(users.len());
        for id in users {
            if let Some(mut other) = self.get::<UserDoc>(id)? {
                other.followers.retain(|u| *u != user);
                other.following.retain(|u| *u != user);
                self.put(&other)?;
                changed.push(*id);
            }
        }
        Ok(changed)
    }

    fn delete_comments(&self, ids: &[ObjectId]) -> Result<Vec<CommentDoc>> {
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            gone.extend(self.remove::<CommentDoc>(id)?);
        }
        Ok(gone)
    }
}

/// The embedded handle over a [`Source`]: a transaction handle over a
/// [`Writer`], a read-only view over a [`Snapshot`].
struct EmbeddedTx<S>(S);

impl<S: Source> Reads for EmbeddedTx<S> {
    async fn user(&mut self, id: ObjectId) -> Result<Option<UserDoc>> {
        // The record only: its count stands for the list (the author index),
        // so checking a big author costs one small read, not an index scan.
        self.0.get(&id)
    }

    async fn post(&mut self, id: ObjectId) -> Result<Option<PostDoc>> {
        self.0.get(&id)
    }

    async fn comment(&mut self, id: ObjectId) -> Result<Option<CommentDoc>> {
        self.0.get(&id)
    }

    async fn post_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>> {
        self.0.index_ids(POSTS_BY_AUTHOR, &author.bytes(), false)
    }

    async fn comment_ids_on_posts(&mut self, posts: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut ids = Vec::new();
        for post in posts {
            ids.extend(self.0.index_ids(COMMENTS_BY_POST, &post.bytes(), false)?);
        }
        Ok(ids)
    }

    async fn comment_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>> {
        self.0.index_ids(COMMENTS_BY_AUTHOR, &author.bytes(), false)
    }

    async fn post_ids_liked_by(&mut self, user: ObjectId) -> Result<Vec<ObjectId>> {
        self.0.index_ids(POSTS_BY_LIKER, &user.bytes(), true)
    }

    async fn user_ids_following_or_followed_by(&mut self, user: ObjectId) -> Result<Vec<ObjectId>> {
        let mut ids: BTreeSet<ObjectId> =
            self.0.index_ids(USERS_BY_FOLLOWER, &user.bytes(), true)?.into_iter().collect();
        ids.extend(self.0.index_ids(USERS_BY_FOLLOWING, &user.bytes(), true)?);
        Ok(ids.into_iter().collect())
    }

    async fn comment_refs(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        let index = match of {
            CommentsOf::Post => COMMENTS_BY_POST,
            CommentsOf::Author => COMMENTS_BY_AUTHOR,
        };
        self.0.comment_refs(index, parents)
    }

    async fn user_with_posts(&mut self, id: ObjectId) -> Result<Option<UserDoc>> {
        // This store's list is its author index, whatever the record says.
        let Some(mut user) = self.0.get::<UserDoc>(&id)? else { return Ok(None) };
        user.posts = self.0.index_ids(POSTS_BY_AUTHOR, &id.bytes(), false)?;
        user.stored_post_count = None;
        Ok(Some(user))
    }
}

impl Tx for EmbeddedTx<Writer> {
    async fn touch_user(&mut self, id: ObjectId) -> Result<bool> {
        // One writer at a time: nothing can delete the user concurrently, so
        // there is nothing to conflict with; a read is enough.
        Ok(self.0.get::<UserDoc>(&id)?.is_some_and(|u| u.deleting.is_none()))
    }

    async fn push_user_post(&mut self, user: ObjectId, _post: ObjectId) -> Result<bool> {
        // The list is the author index, which the post's insert already
        // extended; the record keeps only the count.
        self.0.add_to_post_count(user, 1)
    }

    async fn pull_user_post(&mut self, user: ObjectId, _post: ObjectId) -> Result<bool> {
        self.0.add_to_post_count(user, -1)
    }

    async fn insert_user(&mut self, user: &UserDoc) -> Result<()> {
        {
            let mut emails = self.0.tx.open_table(USERS_BY_EMAIL)?;
            if emails.get(user.email.as_str())?.is_some() {
                return Err(Error::email_taken());
            }
            emails.insert(user.email.as_str(), user.id.bytes().as_slice())?;
        }
        self.0.insert(user)
    }

    async fn insert_post(&mut self, post: &PostDoc) -> Result<()> {
        self.0.insert(post)
    }

    async fn insert_comment(&mut self, comment: &CommentDoc) -> Result<()> {
        self.0.insert(comment)
    }

    async fn replace_user(&mut self, user: &UserDoc) -> Result<()> {
        self.0.replace(user)
    }

    async fn replace_post(&mut self, post: &PostDoc) -> Result<()> {
        self.0.replace(post)
    }

    async fn delete_comments_on_posts(&mut self, posts: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut gone = Vec::new();
        for post in posts {
            let ids = self.0.index_ids(COMMENTS_BY_POST, &post.bytes(), false)?;
            gone.extend(self.0.delete_comments(&ids)?.into_iter().map(|c| c.id));
        }
        Ok(gone)
    }

    async fn delete_comments_by_author(&mut self, author: ObjectId) -> Result<Vec<RemovedComment>> {
        let ids = self.0.index_ids(COMMENTS_BY_AUTHOR, &author.bytes(), false)?;
        let gone = self.0.delete_comments(&ids)?;
        Ok(gone.into_iter().map(|c| RemovedComment { id: c.id, post: c.post }).collect())
    }

    async fn delete_comment(&mut self, id: ObjectId) -> Result<bool> {
        Ok(!self.0.delete_comments(&[id])?.is_empty())
    }

    async fn add_comment_counts(&mut self, deltas: &[(ObjectId, i64)]) -> Result<()> {
        for (id, delta) in deltas {
            if let Some(mut post) = self.0.get::<PostDoc>(id)? {
                post.comment_count += delta;
                self.0.put(&post)?;
            }
        }
        Ok(())
    }

    async fn delete_posts(&mut self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            if self.0.remove::<PostDoc>(id)?.is_some() {
                gone.push(*id);
            }
        }
        Ok(gone)
    }

    async fn pull_liker_everywhere(&mut self, user: ObjectId) -> Result<Vec<ObjectId>> {
        let posts = self.post_ids_liked_by(user).await?;
        self.0.pull_liker_from(user, &posts)
    }

    async fn pull_follow_refs_everywhere(&mut self, user: ObjectId) -> Result<Vec<ObjectId>> {
        let users = self.user_ids_following_or_followed_by(user).await?;
        self.0.pull_follows_from(user, &users)
    }

    async fn delete_user(&mut self, id: ObjectId) -> Result<bool> {
        let Some(user) = self.0.remove::<UserDoc>(&id)? else {
            return Ok(false);
        };
        self.0.tx.open_table(USERS_BY_EMAIL)?.remove(user.email.as_str())?;
        Ok(true)
    }

    async fn delete_comments(&mut self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        Ok(self.0.delete_comments(ids)?.into_iter().map(|c| c.id).collect())
    }

    async fn pull_liker(&mut self, user: ObjectId, posts: &[ObjectId]) -> Result<()> {
        self.0.pull_liker_from(user, posts).map(drop)
    }

    async fn pull_follow_refs(&mut self, user: ObjectId, users: &[ObjectId]) -> Result<()> {
        self.0.pull_follows_from(user, users).map(drop)
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
        let (a, b) = (ObjectId::new(), ObjectId::new());
        let now = DateTime::now();
        let user = UserDoc {
            id: a,
            name: "n".into(),
            email: "e@x.io".into(),
            password_hash: String::new(),
            created_at: now,
            posts: vec![b],
            followers: vec![b],
            following: vec![b],
            rev: 0,
            stored_post_count: None,
            deleting: None,
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
        let comment = CommentDoc { id: ObjectId::new(), body: "c".into(), post: b, author: a, created_at: now };
        assert_eq!(indexed(&user).len(), user.index_entries().len());
        assert_eq!(indexed(&post).len(), post.index_entries().len());
        assert_eq!(indexed(&comment).len(), comment.index_entries().len());
    }

    /// A future that is not ready on its first poll is reported, never waited on.
    #[test]
    fn a_pending_command_is_an_error_not_a_hang() {
        let pending = std::future::pending::<()>();
        assert!(matches!(complete_now(pending), Err(Error::Internal { .. })));
        assert_eq!(complete_now(async { 7 }).ok(), Some(7));
    }
}

#[cfg(test)]
mod record_tests {
    use redb::ReadableDatabase as _;

    use super::*;
    use crate::cmd::CreatePost;
    use crate::domain::{PostBody, Title};
    use crate::store::Store;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::embedded::schema::USERS;

    /// A user record written before records kept counts (the full `posts`
    /// list, serde's layout) reads with the list's length as its count, and
    /// the next post turns it into a counted record, one higher.
    #[tokio::test]
    async fn a_listed_record_becomes_a_counted_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let embedded = EmbeddedStore::open(dir.path()).expect("open");
        let id = ObjectId::new();
        let old = UserDoc {
            id,
            name: "Old".into(),
            email: "old@example.com".into(),
            password_hash: String::new(),
            created_at: DateTime::now(),
            posts: vec![ObjectId::new(), ObjectId::new()],
            followers: vec![],
            following: vec![],
            rev: 0,
            stored_post_count: None,
            deleting: None,
        };
        let wtx = embedded.disk.db().expect("db").begin_write().expect("write");
        wtx.open_table(USERS)
            .expect("users")
            .insert(id.bytes().as_slice(), bson::serialize_to_vec(&old).expect("encode").as_slice())
            .expect("insert");
        wtx.commit().expect("commit");
        let store: Store = embedded.clone().into();
        let read = |store: Store| async move { store.users_by_ids(&[id]).await.expect("read").pop().expect("user") };
        assert_eq!(read(store.clone()).await.post_count(), 2);

        let cmd = CreatePost {
            author: id,
            title: Title::parse("New").expect("title"),
            body: PostBody::parse("Body").expect("body"),
        };
        store.run(cmd).await.expect("create post");
        let user = read(store.clone()).await;
        assert_eq!((user.post_count(), user.posts.len()), (3, 0), "counted, not listed");
        let raw = embedded.disk.db().expect("db").begin_read().expect("read").open_table(USERS).expect("users");
        let bytes = raw.get(id.bytes().as_slice()).expect("get").expect("present");
        let record = bson::RawDocument::from_bytes(bytes.value()).expect("bson");
        assert_eq!(record.get_i64("postCount").ok(), Some(3));
    }
}
