//! The store port: the traits a backend implements and a command is written
//! against, with the types they speak in. Nothing here knows a backend, a
//! command or a setting, so `cmd` and both backends depend on this file and
//! it on neither.
//!
//! - [`Command`] / [`ReadCommand`]: one unit of work with a typed result,
//!   applied to a [`Tx`] (or read through [`Reads`]).
//! - [`Backend`]: batched reads, plus [`Backend::run`] and
//!   [`Backend::read_only`], the only doors to a [`Tx`] or a read view.
//! - [`Reads`] / [`Tx`]: what a command may do inside its transaction.

use std::future::Future;
use std::sync::Arc;

use bson::DateTime;
use bson::oid::ObjectId;

use super::events::{Event, Hub};
use super::hidden::Hidden;
use super::idempotency::{Claim, Fingerprint, IdemKey, Lease};
pub use super::lists::{Collection, CommentsOf, CountOf, Pages, PostsOf, UsersOf};
use crate::domain::Page;
use crate::error::{Error, Result};
pub use crate::model::CommentRef;
pub use crate::model::{AnyDoc, Doc, DocRef, Kind};
use crate::model::{CommentDoc, CommentId, DeletionJobDoc, Id, JobHeader, JobPart, PostDoc, PostId, UserDoc, UserId};

/// One unit of transactional work with a typed result.
pub trait Command: Send + Sync + 'static {
    /// What the command returns to its caller once committed.
    type Output: Send + 'static;

    /// The command's name in logs and traces.
    const NAME: &'static str;

    /// The content bytes the command adds to the store, charged (with one
    /// write) against its author's and address's write budgets before it
    /// runs; `None` for commands that only delete, plan or reap, which are
    /// free, so a user over budget (or a full disk) can still delete.
    fn written_bytes(&self) -> Option<usize> {
        None
    }

    /// What the committed `out` means to subscribers (see [`super::events`]):
    /// the backend publishes these once the commit is durable, never before, and
    /// asks only while somebody listens. None by default.
    fn events(&self, _out: &Self::Output) -> Vec<Event> {
        Vec::new()
    }

    /// Does the work through `tx`. Must be safe to run again from scratch:
    /// every effect goes through `tx`, which a retry starts afresh.
    fn apply<T: Tx>(&self, tx: &mut T) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// Read-only work over one snapshot, with a typed result: it cannot write,
/// because [`Reads`] has no write method, so a backend runs it apart from
/// the writer ([`crate::store::Backend::read_only`]).
pub trait ReadCommand: Send + Sync + 'static {
    /// What the reads return.
    type Output: Send + 'static;

    /// The command's name in logs and traces.
    const NAME: &'static str;

    /// Does the reads through `view`.
    fn read<R: Reads>(&self, view: &mut R) -> impl Future<Output = Result<Self::Output>> + Send;
}

/// A [`ReadCommand`] run as a [`Command`] (a transaction that writes
/// nothing), for backends whose transactions never queue behind one writer.
pub(crate) struct ReadInTx<C>(pub C);

impl<C: ReadCommand> Command for ReadInTx<C> {
    type Output = C::Output;
    const NAME: &'static str = C::NAME;

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<C::Output> {
        self.0.read(tx).await
    }
}

/// Everything a backend stores, read in one consistent snapshot; sorted by id.
///
/// Tests compare two of these to prove a failed transaction changed nothing,
/// and the integrity checker walks one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// All users, by id.
    pub users: Vec<UserDoc>,
    /// All posts, by id.
    pub posts: Vec<PostDoc>,
    /// All comments, by id.
    pub comments: Vec<CommentDoc>,
    /// Staged deletions in progress, by id.
    pub jobs: Vec<DeletionJobDoc>,
}

/// What a storage backend implements: batched reads and the transaction door.
///
/// Every read is one round trip however many ids or parents it is given;
/// the DataLoaders rely on that to keep round trips proportional to query
/// depth rather than list length.
pub trait Backend: Clone + Send + Sync + 'static {
    /// Answers when the store can serve reads; used by `/readyz`.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;

    /// Users with these ids; missing ids are simply absent from the result.
    fn users_by_ids(&self, ids: &[UserId]) -> impl Future<Output = Result<Vec<UserDoc>>> + Send;
    /// Posts with these ids; missing ids are absent.
    fn posts_by_ids(&self, ids: &[PostId]) -> impl Future<Output = Result<Vec<PostDoc>>> + Send;
    /// Comments with these ids; missing ids are absent.
    fn comments_by_ids(&self, ids: &[CommentId]) -> impl Future<Output = Result<Vec<CommentDoc>>> + Send;
    /// The user with this (normalised) email.
    fn user_by_email(&self, email: &str) -> impl Future<Output = Result<Option<UserDoc>>> + Send;

    /// A page of all users, newest first.
    fn users_page(&self, page: &Page) -> impl Future<Output = Result<Vec<UserDoc>>> + Send;
    /// A page of all posts, newest first.
    fn posts_page(&self, page: &Page) -> impl Future<Output = Result<Vec<PostDoc>>> + Send;
    /// One page of the posts written by any of `authors`, newest first (the
    /// home feed): one merge of the author index on the embedded store, one
    /// `find` with `$in` on MongoDB; never a copy per follower.
    fn feed_page(&self, authors: &[UserId], page: &Page) -> impl Future<Output = Result<Vec<PostDoc>>> + Send;
    /// One page of posts per parent, newest first.
    fn posts_of(&self, of: PostsOf, keys: &[(ObjectId, Page)]) -> impl Future<Output = Result<Pages<PostDoc>>> + Send;
    /// One page of comments per parent (post or author), newest first.
    fn comments_of(
        &self,
        of: CommentsOf,
        keys: &[(ObjectId, Page)],
    ) -> impl Future<Output = Result<Pages<CommentDoc>>> + Send;
    /// One page of related users per parent, newest account first.
    fn users_of(&self, of: UsersOf, keys: &[(ObjectId, Page)]) -> impl Future<Output = Result<Pages<UserDoc>>> + Send;

    /// The number of documents in `collection`, without reading them.
    fn count_all(&self, collection: Collection) -> impl Future<Output = Result<u64>> + Send;
    /// One count per parent, aligned with `parents`, counted with an index in one round trip.
    fn count_of(&self, of: CountOf, parents: &[UserId]) -> impl Future<Output = Result<Vec<u64>>> + Send;

    /// How many times a transaction was re-run after a transient conflict, since start-up.
    fn transaction_retries(&self) -> u64;

    /// A view for one request. Every read of the view sees one snapshot (so a
    /// page and the authors loaded for it never disagree about a concurrent
    /// delete), renewed after the view's own writes.
    fn per_request(&self) -> Self;

    /// Which state the store is in, where this process makes every write (the
    /// embedded store): a count that moves with every commit, and `None` while
    /// one is being made. Reads that see the same count before and after
    /// read exactly that state, which is what lets an answer be kept for as
    /// long as the count stands (see `http::answers`). `None` on a store other
    /// processes write to.
    fn version(&self) -> Option<u64> {
        None
    }

    /// Lets this view's next read take a new snapshot, as after its own
    /// write: what a subscription does before resolving each event.
    fn renew(&self) -> impl Future<Output = ()> + Send;

    /// Runs `cmd` in one ACID transaction: it commits if `cmd` returns `Ok`
    /// and rolls back otherwise. Backends with optimistic concurrency re-run
    /// `cmd` on transient conflicts, which is safe because a command builds
    /// every effect through the handle it is given.
    fn run<C: Command>(&self, cmd: C) -> impl Future<Output = Result<C::Output>> + Send;

    /// Runs a read-only command over one read snapshot, apart from the
    /// writer: on the embedded store a redb read transaction on the blocking
    /// pool, so planning a 40,000-document deletion never delays another
    /// user's write; on MongoDB a session transaction that only reads.
    fn read_only<C: ReadCommand>(&self, cmd: C) -> impl Future<Output = Result<C::Output>> + Send;

    /// Reads the whole store in one snapshot (tests, `check`, small deployments only).
    fn snapshot(&self) -> impl Future<Output = Result<Snapshot>> + Send;

    /// The headers of every staged deletion in progress (the reaper's poll: a few bytes each).
    fn deletion_job_headers(&self) -> impl Future<Output = Result<Vec<JobHeader>>> + Send;
    /// A staged deletion with its lists, read from its header's parts.
    fn deletion_job(&self, header: JobHeader) -> impl Future<Output = Result<DeletionJobDoc>> + Send;

    /// Claims `key` for a mutation sent with an `Idempotency-Key` (see
    /// [`super::idempotency`]), or says why not: one atomic step, against every
    /// process on the store, decided by [`super::idempotency::KeptDoc::verdict`].
    /// A fresh claim lasts until `until`; nobody waits for it to be durable
    /// (a crash loses a claim, never an answer).
    fn claim_key(
        &self,
        key: &IdemKey,
        fingerprint: &Fingerprint,
        until: DateTime,
    ) -> impl Future<Output = Result<Claim>> + Send;
    /// Keeps `answer` under `key` until `until`, durably, if `lease` still
    /// holds it (an attempt that outlived its lease keeps nothing).
    fn keep_answer(
        &self,
        key: &IdemKey,
        lease: Lease,
        answer: Vec<u8>,
        until: DateTime,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Gives `key` up, if `lease` still holds it: nothing was written, so a retry may run.
    fn release_key(&self, key: &IdemKey, lease: Lease) -> impl Future<Output = Result<()>> + Send;

    /// The documents staged deletions hide, shared by the store and its
    /// views. A transaction that records a job publishes it here before it
    /// commits and retires it if the commit fails.
    fn hidden(&self) -> &Arc<Hidden>;

    /// Where committed writes' events go (see [`super::events`]), shared by
    /// the store and its views: a backend publishes each command's events
    /// right after its commit.
    fn hub(&self) -> &Arc<Hub>;

    /// The number of the last commit whose events this backend's hub will
    /// publish or has published (see [`super::events::Numbered`]); a
    /// subscription that reads the store after asking skips the events up to it.
    fn event_horizon(&self) -> impl Future<Output = Result<u64>> + Send {
        let last = self.hub().last();
        async move { Ok(last) }
    }
}

/// A question about who refers to what, answered from an index with the
/// ids of the documents that match, in id order: the one id-listing
/// primitive ([`Reads::ids`]), one `find` on MongoDB, one index scan per
/// parent on the embedded store. The answer's ids are of the collection the
/// question names (`PostsBy` answers post ids), which is what lets a caller
/// type them with [`Id::from_oids`].
#[derive(Debug, Clone, Copy)]
pub enum IdsOf<'a> {
    /// The posts whose `author` is this user (the author index, not the user's array).
    PostsBy(UserId),
    /// The posts whose `likedBy` holds this user.
    PostsLikedBy(UserId),
    /// The comments on any of these posts.
    CommentsOn(&'a [PostId]),
    /// The comments this user wrote.
    CommentsBy(UserId),
    /// The users whose `followers` or `following` holds this user.
    UsersFollowingOrFollowedBy(UserId),
}

/// The reference lists a deleted user is pulled out of ([`Tx::pull_refs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldIn {
    /// Posts' `likedBy`.
    Likes,
    /// Users' `followers` and `following`.
    Follows,
}

/// Which way a list changes ([`Tx::list_user_post`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListChange {
    /// The id goes in.
    Add,
    /// The id comes out.
    Remove,
}

/// The reads a command makes, over one consistent view: a write
/// transaction (seeing its own writes), or for a [`ReadCommand`] such as a
/// deletion preview, a read snapshot that never waits for or holds a writer.
///
/// A backend implements three primitives, each one MongoDB command; the
/// named reads are default methods over them, written once here.
pub trait Reads: Send {
    /// Reads one document of `kind`. A user's `posts` may be empty, its
    /// number in [`UserDoc::post_count`] (the embedded store, whose list is
    /// the author index, so an account with 20,000 posts costs one small read
    /// here); [`Reads::user_with_posts`] when the list itself is needed.
    fn find(&mut self, kind: Kind, id: ObjectId) -> impl Future<Output = Result<Option<AnyDoc>>> + Send;
    /// The ids that answer `question`, in id order.
    fn ids(&mut self, question: IdsOf<'_>) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// The comments on any of `parents` (posts) or by any of them (authors), with what they reference.
    fn comment_refs(
        &mut self,
        of: CommentsOf,
        parents: &[ObjectId],
    ) -> impl Future<Output = Result<Vec<CommentRef>>> + Send;

    /// Reads one document.
    fn get<D: Doc>(&mut self, id: Id<D>) -> impl Future<Output = Result<Option<D>>> + Send {
        async move {
            match self.find(D::KIND, id.oid()).await? {
                None => Ok(None),
                Some(doc) => D::from_doc(doc)
                    .map(Some)
                    .ok_or_else(|| Error::internal(format!("reading {id}: the store answered another collection"))),
            }
        }
    }
    /// Reads a user's record (see [`Reads::find`] about its `posts`).
    fn user(&mut self, id: UserId) -> impl Future<Output = Result<Option<UserDoc>>> + Send {
        self.get(id)
    }
    /// Reads a post.
    fn post(&mut self, id: PostId) -> impl Future<Output = Result<Option<PostDoc>>> + Send {
        self.get(id)
    }
    /// Reads a comment.
    fn comment(&mut self, id: CommentId) -> impl Future<Output = Result<Option<CommentDoc>>> + Send {
        self.get(id)
    }

    /// Reads a user with the whole `posts` list: where the record keeps a
    /// count instead, the list is read from the author index. Only for the
    /// commands that rewrite the list (seeding, repair).
    fn user_with_posts(&mut self, id: UserId) -> impl Future<Output = Result<Option<UserDoc>>> + Send {
        async move {
            let Some(mut user) = self.user(id).await? else { return Ok(None) };
            if !user.lists_all_posts() {
                user.posts = Id::from_oids(self.ids(IdsOf::PostsBy(id)).await?);
            }
            Ok(Some(user))
        }
    }
}

/// The transaction handle: the only way to write.
///
/// Methods mirror single MongoDB commands (a `find`, a `deleteMany` with
/// `$in`, an `updateMany` with `$pull`), so a cascade costs the same, small,
/// constant number of operations on every backend, whatever its fan-out.
/// Its reads ([`Reads`]) see the transaction's own writes.
///
/// A backend implements the primitives; the compound calls are default
/// methods here, so a new write touches its command and at most one
/// primitive per backend.
pub trait Tx: Reads {
    /// Whether user `id` exists and is not being deleted (see
    /// [`UserDoc::deleting`]), and, where transactions run concurrently,
    /// a write to it (`rev` + 1) so this transaction conflicts with a
    /// concurrent deletion of the user, staged or not. This is how a write
    /// that creates a reference to a user (a comment, a like, or anything on
    /// one of the user's posts) keeps the concurrency invariant without
    /// rewriting the user's whole document: on MongoDB it is one `$inc`; on
    /// the embedded store, whose single writer already serializes every
    /// transaction, it only reads the user.
    fn touch_user(&mut self, id: UserId) -> impl Future<Output = Result<bool>> + Send;

    /// Adds `post` to `user`'s `posts` or takes it out: one `$push` or
    /// `$pull` on MongoDB, not a rewrite of the whole, possibly large,
    /// document; on the embedded store, whose list is its author index, one
    /// bump of the count the user's record keeps, called once the post itself
    /// is written or deleted. False if there is no such user, or its deletion
    /// is staged.
    fn list_user_post(
        &mut self,
        user: UserId,
        post: PostId,
        change: ListChange,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts a new document; a taken email is `CONFLICT`.
    fn insert_doc(&mut self, doc: DocRef<'_>) -> impl Future<Output = Result<()>> + Send;
    /// Replaces an existing document (read earlier in this transaction).
    fn replace_doc(&mut self, doc: DocRef<'_>) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the documents of `kind` with these ids; returns the ids of
    /// those that existed ([`Tx::delete`] is the typed door).
    fn delete_ids(&mut self, kind: Kind, ids: &[ObjectId]) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Deletes the comments on any of `parents` (posts) or by any of them
    /// (authors); returns each one removed, with what it referenced.
    fn delete_comments_of(
        &mut self,
        of: CommentsOf,
        parents: &[ObjectId],
    ) -> impl Future<Output = Result<Vec<CommentRef>>> + Send;
    /// Adds each delta to its post's `commentCount` (missing posts are skipped).
    fn add_comment_counts(&mut self, deltas: &[(PostId, i64)]) -> impl Future<Output = Result<()>> + Send;
    /// Pulls `user` out of the lists `held` names in these documents (posts'
    /// `likedBy`, or users' `followers` and `following`).
    fn pull_refs(&mut self, user: UserId, held: HeldIn, ids: &[ObjectId]) -> impl Future<Output = Result<()>> + Send;

    /// Records a staged deletion (its header and its parts), and publishes
    /// it to [`Backend::hidden`] before the commit.
    fn insert_job(&mut self, job: &DeletionJobDoc) -> impl Future<Output = Result<()>> + Send;
    /// Reads a staged deletion's header.
    fn job(&mut self, id: ObjectId) -> impl Future<Output = Result<Option<JobHeader>>> + Send;
    /// Reads part `seq` of a staged deletion's lists.
    fn job_part(&mut self, job: ObjectId, seq: i64) -> impl Future<Output = Result<Option<JobPart>>> + Send;
    /// Records a staged deletion's progress (its header only).
    fn replace_job(&mut self, job: &JobHeader) -> impl Future<Output = Result<()>> + Send;
    /// Removes a finished staged deletion, header and parts; returns whether it existed.
    fn delete_job(&mut self, job: &JobHeader) -> impl Future<Output = Result<bool>> + Send;

    /// The transaction's clock, so every document written by one transaction shares a timestamp.
    fn now(&self) -> DateTime;

    /// Inserts a new document; a taken email is `CONFLICT`.
    fn insert<D: Doc>(&mut self, doc: &D) -> impl Future<Output = Result<()>> + Send {
        self.insert_doc(doc.as_doc())
    }
    /// Replaces an existing document (read earlier in this transaction) with `doc`.
    fn replace<D: Doc>(&mut self, doc: &D) -> impl Future<Output = Result<()>> + Send {
        self.replace_doc(doc.as_doc())
    }
    /// Appends `post` to `user`'s `posts`; false if there is no such user.
    fn push_user_post(&mut self, user: UserId, post: PostId) -> impl Future<Output = Result<bool>> + Send {
        self.list_user_post(user, post, ListChange::Add)
    }
    /// Removes `post` from `user`'s `posts`; false if there is no such user.
    fn pull_user_post(&mut self, user: UserId, post: PostId) -> impl Future<Output = Result<bool>> + Send {
        self.list_user_post(user, post, ListChange::Remove)
    }
    /// Deletes the documents with these ids; returns the ids of those that existed.
    fn delete<D: Doc>(&mut self, ids: &[Id<D>]) -> impl Future<Output = Result<Vec<Id<D>>>> + Send {
        async move { Ok(Id::from_oids(self.delete_ids(D::KIND, &Id::oids(ids)).await?)) }
    }
    /// Deletes one document; returns whether it existed.
    fn delete_one<D: Doc>(&mut self, id: Id<D>) -> impl Future<Output = Result<bool>> + Send {
        async move { Ok(!self.delete_ids(D::KIND, &[id.oid()]).await?.is_empty()) }
    }
    /// Pulls `user` out of every post's `likedBy`; returns the posts that
    /// changed. One find and one update on every backend.
    fn pull_liker_everywhere(&mut self, user: UserId) -> impl Future<Output = Result<Vec<PostId>>> + Send {
        async move {
            let posts = self.ids(IdsOf::PostsLikedBy(user)).await?;
            self.pull_refs(user, HeldIn::Likes, &posts).await?;
            Ok(Id::from_oids(posts))
        }
    }
    /// Pulls `user` out of every user's `followers` and `following`; returns
    /// the users that changed. One find and one update.
    fn pull_follow_refs_everywhere(&mut self, user: UserId) -> impl Future<Output = Result<Vec<UserId>>> + Send {
        async move {
            let users = self.ids(IdsOf::UsersFollowingOrFollowedBy(user)).await?;
            self.pull_refs(user, HeldIn::Follows, &users).await?;
            Ok(Id::from_oids(users))
        }
    }
}
