//! The store seam: batched reads, and a transaction handle that is the only way to write.
//!
//! - [`Backend`] is what a backend implements: every read batched (by ids,
//!   by parents, by page), plus [`Backend::run`], which runs one typed
//!   [`Command`] in one ACID transaction. It has no write methods at all.
//! - [`Tx`] is the transaction handle. Every write lives there, and a handle
//!   only exists inside [`Backend::run`], so a cascade step outside the
//!   transaction does not compile.
//! - [`Store`] is the backend this process runs on, chosen at start-up
//!   ([`embedded`] on redb, or [`mongo`] on the MongoDB driver). It
//!   dispatches statically, so commands keep their result types and reads
//!   cost no boxing. It is also where reads leave out what staged deletions
//!   hide ([`hidden`]): one place, so no resolver can forget it.
//!
//! A "round trip" is one call through this seam. On the embedded store it
//! is one read transaction; on MongoDB one `find`, or one `aggregate` per
//! distinct page size in the batch (a batch normally has one), or one
//! session transaction.

pub mod embedded;
pub mod hidden;
pub mod idempotency;
pub mod mongo;

use std::future::Future;
use std::sync::Arc;

use bson::DateTime;
use bson::oid::ObjectId;

use self::hidden::{Hidden, Hideable, Sets};
use self::idempotency::{Claim, Fingerprint, IdemKey, Lease};
use crate::cmd::{Command, ReadCommand};
use crate::domain::{CursorKey, Page};
use crate::error::Result;
use crate::limits::gate::Gate;
use crate::model::{Chronological, CommentDoc, DeletionJobDoc, JobHeader, JobPart, PostDoc, UserDoc};

/// Which comments a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommentsOf {
    /// The comments on a post (`Post.comments`).
    Post,
    /// The comments a user wrote (`User.comments`).
    Author,
}

/// Which users a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsersOf {
    /// The users in a user's `followers` array.
    Followers,
    /// The users in a user's `following` array.
    Following,
    /// The users in a post's `likedBy` array.
    Likers,
}

/// Which posts a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostsOf {
    /// The posts a user wrote (`User.posts`).
    Author,
}

/// A whole collection whose size a root list reports as `totalCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// Every user.
    Users,
    /// Every post.
    Posts,
}

/// A per-parent count read through an index (no stored count exists for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountOf {
    /// The posts whose `author` is the parent (the author index).
    PostsByAuthor,
    /// The comments whose `author` is the parent (the author index).
    CommentsByAuthor,
}

/// A comment a cascade deleted, and the post it was on (whose `commentCount` then drops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedComment {
    /// The deleted comment.
    pub id: ObjectId,
    /// The post it was on.
    pub post: ObjectId,
}

/// A comment's id with the two documents it references; what a staged
/// deletion records about each comment it will delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentRef {
    /// The comment.
    pub id: ObjectId,
    /// The post it is on.
    pub post: ObjectId,
    /// Its writer.
    pub author: ObjectId,
}

/// One page per parent, in the order the parents were asked for.
pub type Pages<D> = Vec<Vec<D>>;

/// A page as [`Store`] lists it: the visible documents, and, when passing
/// over hidden ones took more than one request may spend
/// ([`REFILL_BUDGET`]), the position it stopped at. Such a page is short
/// but not the end: its connection says there is more, and its cursor on
/// that side is `cut`, so the next page goes on from there instead of
/// walking the same hidden documents again.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<D> {
    /// The visible documents, in walk order (up to the page size + 1).
    pub docs: Vec<D>,
    /// Where a refill stopped short, if it did.
    pub cut: Option<CursorKey>,
}

impl<D> Paged<D> {
    /// A page that was read to its end.
    pub fn whole(docs: Vec<D>) -> Self {
        Paged { docs, cut: None }
    }

    /// The same page with each document mapped.
    pub fn map<E>(self, f: impl FnMut(D) -> E) -> Paged<E> {
        Paged { docs: self.docs.into_iter().map(f).collect(), cut: self.cut }
    }
}

impl<D> Default for Paged<D> {
    fn default() -> Self {
        Paged::whole(Vec::new())
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
    fn users_by_ids(&self, ids: &[ObjectId]) -> impl Future<Output = Result<Vec<UserDoc>>> + Send;
    /// Posts with these ids; missing ids are absent.
    fn posts_by_ids(&self, ids: &[ObjectId]) -> impl Future<Output = Result<Vec<PostDoc>>> + Send;
    /// Comments with these ids; missing ids are absent.
    fn comments_by_ids(&self, ids: &[ObjectId]) -> impl Future<Output = Result<Vec<CommentDoc>>> + Send;
    /// The user with this (normalised) email.
    fn user_by_email(&self, email: &str) -> impl Future<Output = Result<Option<UserDoc>>> + Send;

    /// A page of all users, newest first.
    fn users_page(&self, page: &Page) -> impl Future<Output = Result<Vec<UserDoc>>> + Send;
    /// A page of all posts, newest first.
    fn posts_page(&self, page: &Page) -> impl Future<Output = Result<Vec<PostDoc>>> + Send;
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
    fn count_of(&self, of: CountOf, parents: &[ObjectId]) -> impl Future<Output = Result<Vec<u64>>> + Send;

    /// How many times a transaction was re-run after a transient conflict, since start-up.
    fn transaction_retries(&self) -> u64;

    /// A view for one request. Every read of the view sees one snapshot (so a
    /// page and the authors loaded for it never disagree about a concurrent
    /// delete), renewed after the view's own writes.
    fn per_request(&self) -> Self;

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

    /// Every staged deletion in progress, with its lists (start-up).
    fn deletion_jobs(&self) -> impl Future<Output = Result<Vec<DeletionJobDoc>>> + Send;
    /// The headers of every staged deletion in progress (the reaper's poll: a few bytes each).
    fn deletion_job_headers(&self) -> impl Future<Output = Result<Vec<JobHeader>>> + Send;
    /// A staged deletion with its lists, read from its header's parts.
    fn deletion_job(&self, header: JobHeader) -> impl Future<Output = Result<DeletionJobDoc>> + Send;

    /// Claims `key` for a mutation sent with an `Idempotency-Key` (see
    /// [`idempotency`]), or says why not: one atomic step, against every
    /// process on the store, decided by [`idempotency::KeptDoc::verdict`].
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
}

/// The reads a command makes, over one consistent view: a write
/// transaction (seeing its own writes), or for a [`ReadCommand`] such as a
/// deletion preview, a read snapshot that never waits for or holds a writer.
///
/// Methods mirror single MongoDB commands, like [`Tx`]'s.
pub trait Reads: Send {
    /// Reads a user's record. Its `posts` may be empty with the count in
    /// [`UserDoc::stored_post_count`] (the embedded store, whose list is the
    /// author index, so an account with 20,000 posts costs one small read
    /// here); [`Reads::user_with_posts`] when the list itself is needed.
    fn user(&mut self, id: ObjectId) -> impl Future<Output = Result<Option<UserDoc>>> + Send;
    /// Reads a post.
    fn post(&mut self, id: ObjectId) -> impl Future<Output = Result<Option<PostDoc>>> + Send;
    /// Reads a comment.
    fn comment(&mut self, id: ObjectId) -> impl Future<Output = Result<Option<CommentDoc>>> + Send;
    /// Ids of the posts whose `author` is `author` (the author index, not the user's array).
    fn post_ids_by_author(&mut self, author: ObjectId) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Ids of the comments on any of `posts`.
    fn comment_ids_on_posts(&mut self, posts: &[ObjectId]) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Ids of the comments written by `author`.
    fn comment_ids_by_author(&mut self, author: ObjectId) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Ids of the posts whose `likedBy` holds `user`.
    fn post_ids_liked_by(&mut self, user: ObjectId) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Ids of the users whose `followers` or `following` holds `user`.
    fn user_ids_following_or_followed_by(
        &mut self,
        user: ObjectId,
    ) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// The comments on any of `parents` (posts) or by any of them (authors), with what they reference.
    fn comment_refs(
        &mut self,
        of: CommentsOf,
        parents: &[ObjectId],
    ) -> impl Future<Output = Result<Vec<CommentRef>>> + Send;

    /// Reads a user with the whole `posts` list: where the record keeps a
    /// count instead, the list is read from the author index. Only for the
    /// commands that rewrite the list (seeding, repair).
    fn user_with_posts(&mut self, id: ObjectId) -> impl Future<Output = Result<Option<UserDoc>>> + Send {
        async move {
            let Some(mut user) = self.user(id).await? else { return Ok(None) };
            if user.stored_post_count.take().is_some() {
                user.posts = self.post_ids_by_author(id).await?;
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
    fn touch_user(&mut self, id: ObjectId) -> impl Future<Output = Result<bool>> + Send;

    /// Appends `post` to `user`'s `posts` (one `$push` on MongoDB, not a
    /// rewrite of the whole, possibly large, document; on the embedded store,
    /// whose list is its author index, one bump of the count the user's
    /// record keeps); false if there is no such user.
    fn push_user_post(&mut self, user: ObjectId, post: ObjectId) -> impl Future<Output = Result<bool>> + Send;
    /// Removes `post` from `user`'s `posts` (one `$pull` on MongoDB; a
    /// decrement of the kept count on the embedded store, called once the
    /// post itself is deleted); false if there is no such user.
    fn pull_user_post(&mut self, user: ObjectId, post: ObjectId) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts a new user; a taken email is `CONFLICT`.
    fn insert_user(&mut self, user: &UserDoc) -> impl Future<Output = Result<()>> + Send;
    /// Inserts a new post.
    fn insert_post(&mut self, post: &PostDoc) -> impl Future<Output = Result<()>> + Send;
    /// Inserts a new comment.
    fn insert_comment(&mut self, comment: &CommentDoc) -> impl Future<Output = Result<()>> + Send;
    /// Replaces an existing user (read earlier in this transaction) with `user`.
    fn replace_user(&mut self, user: &UserDoc) -> impl Future<Output = Result<()>> + Send;
    /// Replaces an existing post (read earlier in this transaction) with `post`.
    fn replace_post(&mut self, post: &PostDoc) -> impl Future<Output = Result<()>> + Send;

    /// Deletes the comments on any of `posts`; returns the ids of those that went.
    fn delete_comments_on_posts(&mut self, posts: &[ObjectId]) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Deletes every comment written by `author`; returns each one removed with its post.
    fn delete_comments_by_author(
        &mut self,
        author: ObjectId,
    ) -> impl Future<Output = Result<Vec<RemovedComment>>> + Send;
    /// Deletes one comment; returns whether it existed.
    fn delete_comment(&mut self, id: ObjectId) -> impl Future<Output = Result<bool>> + Send;
    /// Adds each delta to its post's `commentCount` (missing posts are skipped).
    fn add_comment_counts(&mut self, deltas: &[(ObjectId, i64)]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the posts with these ids; returns the ids of those that existed.
    fn delete_posts(&mut self, ids: &[ObjectId]) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Pulls `user` out of every post's `likedBy`; returns the posts that changed.
    fn pull_liker_everywhere(&mut self, user: ObjectId) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Pulls `user` out of every user's `followers` and `following`; returns the users that changed.
    fn pull_follow_refs_everywhere(&mut self, user: ObjectId) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Deletes a user document; returns whether it existed.
    fn delete_user(&mut self, id: ObjectId) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes the comments with these ids; returns the ids of those that existed.
    fn delete_comments(&mut self, ids: &[ObjectId]) -> impl Future<Output = Result<Vec<ObjectId>>> + Send;
    /// Pulls `user` out of these posts' `likedBy` (a staged deletion's bounded step).
    fn pull_liker(&mut self, user: ObjectId, posts: &[ObjectId]) -> impl Future<Output = Result<()>> + Send;
    /// Pulls `user` out of these users' `followers` and `following` (a staged deletion's bounded step).
    fn pull_follow_refs(&mut self, user: ObjectId, users: &[ObjectId]) -> impl Future<Output = Result<()>> + Send;
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
}

/// Read-only commands that may run at once: one, so a preview flood costs
/// at most one core, whatever it looks like.
const HEAVY_READ_SLOTS: usize = 1;
/// Read-only commands that may wait for the slot before the next is refused.
const HEAVY_READ_QUEUE: usize = 16;

/// A read-only command with the slot it runs in.
struct Slotted<C> {
    cmd: C,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<C: ReadCommand> ReadCommand for Slotted<C> {
    type Output = C::Output;
    const NAME: &'static str = C::NAME;

    async fn read<R: Reads>(&self, view: &mut R) -> Result<C::Output> {
        self.cmd.read(view).await
    }
}

/// Write transactions since start-up, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxCounts {
    /// Commands that committed.
    pub committed: u64,
    /// Commands that rolled back (refused, failed or conflicting).
    pub rolled_back: u64,
    /// Re-runs after transient conflicts (MongoDB only).
    pub retried: u64,
}

/// Committed and rolled-back transactions, shared by a store and its views.
#[derive(Debug, Default)]
struct TxTally {
    committed: std::sync::atomic::AtomicU64,
    rolled_back: std::sync::atomic::AtomicU64,
}

/// The backend this process runs on.
///
/// Cheap to clone. [`Store::per_request`] gives each request its own
/// snapshot view; everything else is shared.
#[derive(Clone)]
pub struct Store {
    backend: Kind,
    tally: std::sync::Arc<TxTally>,
    /// Bounds the read-only commands running and waiting at once: each may
    /// read an account's whole fan-out.
    heavy_reads: Arc<Gate>,
    /// Round trips through this store and every view of it. Compiled only
    /// for the test crate (the `test-hooks` feature), never in the server.
    #[cfg(feature = "test-hooks")]
    round_trips: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
enum Kind {
    Embedded(embedded::EmbeddedStore),
    Mongo(mongo::MongoStore),
}

/// Calls the same [`Backend`] method on whichever backend `$store` holds,
/// counting the round trip when the test hooks are compiled in.
macro_rules! on_backend {
    ($store:expr, $b:ident => $call:expr) => {{
        $store.count_round_trip();
        match &$store.backend {
            Kind::Embedded($b) => $call,
            Kind::Mongo($b) => $call,
        }
    }};
}

impl From<embedded::EmbeddedStore> for Store {
    fn from(store: embedded::EmbeddedStore) -> Self {
        Store::new(Kind::Embedded(store))
    }
}

impl From<mongo::MongoStore> for Store {
    fn from(store: mongo::MongoStore) -> Self {
        Store::new(Kind::Mongo(store))
    }
}

impl Store {
    fn new(backend: Kind) -> Self {
        Store {
            backend,
            tally: std::sync::Arc::default(),
            heavy_reads: Arc::new(Gate::new(HEAVY_READ_SLOTS, HEAVY_READ_QUEUE)),
            #[cfg(feature = "test-hooks")]
            round_trips: std::sync::Arc::default(),
        }
    }

    #[inline]
    fn count_round_trip(&self) {
        #[cfg(feature = "test-hooks")]
        self.round_trips.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Round trips made through this store and its views since it was opened.
    #[cfg(feature = "test-hooks")]
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// See [`Backend::ping`].
    pub async fn ping(&self) -> Result<()> {
        match &self.backend {
            Kind::Embedded(b) => b.ping().await,
            Kind::Mongo(b) => b.ping().await,
        }
    }

    /// See [`Backend::claim_key`].
    pub async fn claim_key(&self, key: &IdemKey, fingerprint: &Fingerprint, until: DateTime) -> Result<Claim> {
        on_backend!(self, b => b.claim_key(key, fingerprint, until).await)
    }

    /// See [`Backend::keep_answer`].
    pub async fn keep_answer(&self, key: &IdemKey, lease: Lease, answer: Vec<u8>, until: DateTime) -> Result<()> {
        on_backend!(self, b => b.keep_answer(key, lease, answer, until).await)
    }

    /// See [`Backend::release_key`].
    pub async fn release_key(&self, key: &IdemKey, lease: Lease) -> Result<()> {
        on_backend!(self, b => b.release_key(key, lease).await)
    }

    /// The documents staged deletions hide right now, if any job is in progress.
    fn hidden_now(&self) -> Option<Arc<Sets>> {
        match &self.backend {
            Kind::Embedded(b) => b.hidden().current(),
            Kind::Mongo(b) => b.hidden().current(),
        }
    }

    /// The registry of staged deletions this process knows of.
    pub fn hidden(&self) -> &Arc<Hidden> {
        match &self.backend {
            Kind::Embedded(b) => b.hidden(),
            Kind::Mongo(b) => b.hidden(),
        }
    }

    /// See [`Backend::users_by_ids`]; staged deletions' users are left out.
    pub async fn users_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<UserDoc>> {
        let mut users = on_backend!(self, b => b.users_by_ids(ids).await)?;
        match self.hidden_now() {
            Some(sets) => {
                users.retain(|u| !sets.hides_user(u));
                users.iter_mut().for_each(|u| sets.scrub_user(u));
            }
            None => users.retain(|u| u.deleting.is_none()),
        }
        Ok(users)
    }

    /// See [`Backend::posts_by_ids`]; staged deletions' posts are left out.
    pub async fn posts_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<PostDoc>> {
        let mut posts = on_backend!(self, b => b.posts_by_ids(ids).await)?;
        match self.hidden_now() {
            Some(sets) => {
                posts.retain(|p| !sets.hides_post(p));
                self.scrub_posts(&sets, posts.iter_mut()).await?;
            }
            None => posts.retain(|p| p.deleting.is_none()),
        }
        Ok(posts)
    }

    /// See [`Backend::comments_by_ids`]; staged deletions' comments are left out.
    pub async fn comments_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<CommentDoc>> {
        let mut comments = on_backend!(self, b => b.comments_by_ids(ids).await)?;
        if let Some(sets) = self.hidden_now() {
            comments.retain(|c| !sets.hides_comment(c));
        }
        Ok(comments)
    }

    /// See [`Backend::user_by_email`]; a staged deletion's user is not found.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        let user = on_backend!(self, b => b.user_by_email(email).await)?;
        Ok(match self.hidden_now() {
            Some(sets) => user.filter(|u| !sets.hides_user(u)).map(|mut u| {
                sets.scrub_user(&mut u);
                u
            }),
            None => user.filter(|u| u.deleting.is_none()),
        })
    }

    /// See [`Backend::users_page`]; pages skip staged deletions' users.
    pub async fn users_page(&self, page: &Page) -> Result<Paged<UserDoc>> {
        let got = on_backend!(self, b => b.users_page(page).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(Paged::whole(got)) };
        let mut users = self.one_page(&RootUsers, &sets, page, got).await?;
        users.docs.iter_mut().for_each(|u| sets.scrub_user(u));
        Ok(users)
    }

    /// See [`Backend::posts_page`]; pages skip staged deletions' posts.
    pub async fn posts_page(&self, page: &Page) -> Result<Paged<PostDoc>> {
        let got = on_backend!(self, b => b.posts_page(page).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(Paged::whole(got)) };
        let mut posts = self.one_page(&RootPosts, &sets, page, got).await?;
        self.scrub_posts(&sets, posts.docs.iter_mut()).await?;
        Ok(posts)
    }

    /// See [`Backend::posts_of`]; pages skip staged deletions' posts.
    pub async fn posts_of(&self, of: PostsOf, keys: &[(ObjectId, Page)]) -> Result<Vec<Paged<PostDoc>>> {
        let got = on_backend!(self, b => b.posts_of(of, keys).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(got.into_iter().map(Paged::whole).collect()) };
        let mut pages = self.refill(&of, &sets, keys, got).await?;
        self.scrub_posts(&sets, pages.iter_mut().flat_map(|p| p.docs.iter_mut())).await?;
        Ok(pages)
    }

    /// See [`Backend::comments_of`]; pages skip staged deletions' comments.
    pub async fn comments_of(&self, of: CommentsOf, keys: &[(ObjectId, Page)]) -> Result<Vec<Paged<CommentDoc>>> {
        let got = on_backend!(self, b => b.comments_of(of, keys).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(got.into_iter().map(Paged::whole).collect()) };
        self.refill(&of, &sets, keys, got).await
    }

    /// See [`Backend::users_of`]; pages skip staged deletions' users.
    pub async fn users_of(&self, of: UsersOf, keys: &[(ObjectId, Page)]) -> Result<Vec<Paged<UserDoc>>> {
        let got = on_backend!(self, b => b.users_of(of, keys).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(got.into_iter().map(Paged::whole).collect()) };
        let mut pages = self.refill(&of, &sets, keys, got).await?;
        pages.iter_mut().flat_map(|p| p.docs.iter_mut()).for_each(|u| sets.scrub_user(u));
        Ok(pages)
    }

    /// Leaves hidden users out of surviving posts' `likedBy`, and the hidden
    /// comments that still exist out of their `commentCount` (read in the
    /// view's snapshot, in one round trip, only for posts that have some).
    async fn scrub_posts<'a>(&self, sets: &Sets, posts: impl Iterator<Item = &'a mut PostDoc>) -> Result<()> {
        let mut posts: Vec<&mut PostDoc> = posts.collect();
        let mut candidates = Vec::new();
        for post in &mut posts {
            sets.scrub_post(post);
            candidates.extend_from_slice(sets.comments_on(&post.id));
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let existing = on_backend!(self, b => b.comments_by_ids(&candidates).await)?;
        for post in posts {
            let hidden = existing.iter().filter(|c| c.post == post.id).count() as i64;
            post.comment_count = (post.comment_count - hidden).max(0);
        }
        Ok(())
    }

    /// See [`Backend::count_all`]; staged deletions' documents are not counted.
    ///
    /// While a job is in progress this reads which of its documents still
    /// exist, in the view's snapshot, so the count is exact at every step
    /// of the reaper.
    pub async fn count_all(&self, collection: Collection) -> Result<u64> {
        let raw = on_backend!(self, b => b.count_all(collection).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(raw) };
        let users = sets.users();
        let hidden = match collection {
            Collection::Users => on_backend!(self, b => b.users_by_ids(&users).await)?.len() as u64,
            Collection::Posts => {
                let by_hidden_authors: u64 = if users.is_empty() {
                    0
                } else {
                    on_backend!(self, b => b.count_of(CountOf::PostsByAuthor, &users).await)?.iter().sum()
                };
                let others = sets.posts_of_visible_authors();
                let others =
                    if others.is_empty() { 0 } else { on_backend!(self, b => b.posts_by_ids(&others).await)?.len() };
                by_hidden_authors + others as u64
            }
        };
        Ok(raw.saturating_sub(hidden))
    }

    /// See [`Backend::count_of`]; staged deletions' documents are not counted.
    pub async fn count_of(&self, of: CountOf, parents: &[ObjectId]) -> Result<Vec<u64>> {
        let mut counts = on_backend!(self, b => b.count_of(of, parents).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(counts) };
        let hidden_of = |p: &ObjectId| match of {
            CountOf::PostsByAuthor => sets.posts_by(p),
            CountOf::CommentsByAuthor => sets.comments_by(p),
        };
        let candidates: Vec<ObjectId> = parents.iter().flat_map(|p| hidden_of(p).iter().copied()).collect();
        if candidates.is_empty() {
            return Ok(counts);
        }
        // Which of them still exist, with their authors: the reaper may have taken some already.
        let existing: Vec<ObjectId> = match of {
            CountOf::PostsByAuthor => {
                on_backend!(self, b => b.posts_by_ids(&candidates).await)?.iter().map(|p| p.author).collect()
            }
            CountOf::CommentsByAuthor => {
                on_backend!(self, b => b.comments_by_ids(&candidates).await)?.iter().map(|c| c.author).collect()
            }
        };
        for (parent, count) in parents.iter().zip(counts.iter_mut()) {
            let gone = existing.iter().filter(|a| *a == parent).count() as u64;
            *count = count.saturating_sub(gone);
        }
        Ok(counts)
    }

    /// `got` (one page read with `page`) without hidden documents, refilled
    /// from beyond it when it lost some.
    async fn one_page<L: Listing>(
        &self,
        listing: &L,
        sets: &Sets,
        page: &Page,
        got: Vec<L::Doc>,
    ) -> Result<Paged<L::Doc>> {
        let keys = [(ObjectId::from_bytes([0; 12]), *page)];
        Ok(self.refill(listing, sets, &keys, vec![got]).await?.pop().unwrap_or_default())
    }

    /// Leaves hidden documents out of `pages` (read with `keys`) and tops up
    /// every page that lost some by reading on past its last item, so a page
    /// is as full as it would be without them. Costs nothing with no job in
    /// progress. Otherwise both backends already pass over most hidden
    /// documents on the index; what is left is read in growing steps, at
    /// most [`REFILL_BUDGET`] documents a call, after which each page still
    /// short ends where its reading stopped ([`Paged::cut`]).
    async fn refill<L: Listing>(
        &self,
        listing: &L,
        sets: &Sets,
        keys: &[(ObjectId, Page)],
        pages: Pages<L::Doc>,
    ) -> Result<Vec<Paged<L::Doc>>> {
        let mut out: Vec<Paged<L::Doc>> = Vec::with_capacity(keys.len());
        let mut pending: Vec<(usize, Page, CursorKey)> = Vec::new();
        let mut budget = REFILL_BUDGET;
        for (i, ((_, page), got)) in keys.iter().zip(pages).enumerate() {
            out.push(Paged::default());
            if let Some((next, last)) = thin::<L>(sets, &mut out[i].docs, page, page, got) {
                pending.push((i, next, last));
            }
        }
        while !pending.is_empty() {
            let asked_docs: usize = pending.iter().map(|(_, page, _)| page.fetch_limit()).sum();
            if asked_docs > budget {
                for (i, _, last) in pending {
                    out[i].cut = Some(last);
                }
                break;
            }
            budget -= asked_docs;
            let asked: Vec<(ObjectId, Page)> = pending.iter().map(|(i, page, _)| (keys[*i].0, *page)).collect();
            let got = listing.fetch(self, &asked).await?;
            let mut next_round = Vec::new();
            for ((i, asked, _), got) in pending.into_iter().zip(got) {
                if let Some((next, last)) = thin::<L>(sets, &mut out[i].docs, &keys[i].1, &asked, got) {
                    next_round.push((i, next, last));
                }
            }
            pending = next_round;
        }
        Ok(out)
    }

    /// See [`Backend::per_request`].
    pub fn per_request(&self) -> Store {
        let backend = match &self.backend {
            Kind::Embedded(b) => Kind::Embedded(b.per_request()),
            Kind::Mongo(b) => Kind::Mongo(b.per_request()),
        };
        Store {
            backend,
            tally: std::sync::Arc::clone(&self.tally),
            heavy_reads: Arc::clone(&self.heavy_reads),
            #[cfg(feature = "test-hooks")]
            round_trips: std::sync::Arc::clone(&self.round_trips),
        }
    }

    /// Runs one command in one transaction; see [`Backend::run`].
    pub async fn run<C: Command>(&self, cmd: C) -> Result<C::Output> {
        let outcome = on_backend!(self, b => b.run(cmd).await);
        let counter = if outcome.is_ok() { &self.tally.committed } else { &self.tally.rolled_back };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        outcome
    }

    /// Runs a read-only command in a slot of the process's bounded pool
    /// (`RATE_LIMITED` when its queue is full); see [`Backend::read_only`].
    /// The slot goes with the command, so it is freed when the reads are
    /// really done, not when a client that gave up stops waiting.
    pub async fn read_only<C: ReadCommand>(&self, cmd: C) -> Result<C::Output> {
        let slot = self.heavy_reads.enter().await?;
        on_backend!(self, b => b.read_only(Slotted { cmd, _slot: slot }).await)
    }

    /// Transactions since start-up, across this store and all its views.
    pub fn transactions(&self) -> TxCounts {
        let retried = match &self.backend {
            Kind::Embedded(b) => b.transaction_retries(),
            Kind::Mongo(b) => b.transaction_retries(),
        };
        TxCounts {
            committed: self.tally.committed.load(std::sync::atomic::Ordering::Relaxed),
            rolled_back: self.tally.rolled_back.load(std::sync::atomic::Ordering::Relaxed),
            retried,
        }
    }

    /// See [`Backend::snapshot`]: everything, hidden documents included.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        match &self.backend {
            Kind::Embedded(b) => b.snapshot().await,
            Kind::Mongo(b) => b.snapshot().await,
        }
    }

    /// See [`Backend::deletion_job_headers`].
    pub async fn deletion_job_headers(&self) -> Result<Vec<JobHeader>> {
        match &self.backend {
            Kind::Embedded(b) => b.deletion_job_headers().await,
            Kind::Mongo(b) => b.deletion_job_headers().await,
        }
    }

    /// See [`Backend::deletion_job`].
    pub async fn deletion_job(&self, header: JobHeader) -> Result<DeletionJobDoc> {
        match &self.backend {
            Kind::Embedded(b) => b.deletion_job(header).await,
            Kind::Mongo(b) => b.deletion_job(header).await,
        }
    }
}

/// Most items one refill step reads past hidden documents.
const REFILL_STEP_MAX: usize = 1000;

/// Most documents one [`Store::refill`] call reads past hidden ones, over
/// all its pages and steps: the pages of one batch of one request never
/// cost more than this, however many hidden documents lie in their way.
pub const REFILL_BUDGET: usize = 2000;

/// Adds the visible part of `got` (read with `asked`, part of `original`) to
/// `kept`; returns the next step's page, with the position read up to, if
/// `kept` is still short and the range goes on.
fn thin<L: Listing>(
    sets: &Sets,
    kept: &mut Vec<L::Doc>,
    original: &Page,
    asked: &Page,
    got: Vec<L::Doc>,
) -> Option<(Page, CursorKey)> {
    let want = original.size() + 1;
    let exhausted = got.len() <= asked.size();
    let last = got.last().map(L::key);
    kept.extend(got.into_iter().filter(|d| !d.hidden_by(sets)));
    if kept.len() >= want {
        kept.truncate(want);
        return None;
    }
    let step = (asked.size() * 2).clamp(16, REFILL_STEP_MAX);
    last.filter(|_| !exhausted).map(|last| (original.resume(last, step), last))
}

/// A paged read whose pages [`Store::refill`] can top up.
trait Listing: Sync {
    /// The listed documents.
    type Doc: Hideable + Chronological + Send + Sync;
    /// Reads one page per key, straight from the backend.
    fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> impl Future<Output = Result<Pages<Self::Doc>>> + Send;
    /// The document's place in the listing: by time, unless the listing says otherwise.
    fn key(doc: &Self::Doc) -> CursorKey {
        doc.cursor_key()
    }
}

/// `Query.users`.
struct RootUsers;
/// `Query.posts`.
struct RootPosts;

impl Listing for RootUsers {
    type Doc = UserDoc;
    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<UserDoc>> {
        let mut pages = Vec::with_capacity(keys.len());
        for (_, page) in keys {
            pages.push(on_backend!(store, b => b.users_page(page).await)?);
        }
        Ok(pages)
    }
}

impl Listing for RootPosts {
    type Doc = PostDoc;
    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        let mut pages = Vec::with_capacity(keys.len());
        for (_, page) in keys {
            pages.push(on_backend!(store, b => b.posts_page(page).await)?);
        }
        Ok(pages)
    }
}

impl Listing for PostsOf {
    type Doc = PostDoc;
    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        on_backend!(store, b => b.posts_of(*self, keys).await)
    }
}

impl Listing for CommentsOf {
    type Doc = CommentDoc;
    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<CommentDoc>> {
        on_backend!(store, b => b.comments_of(*self, keys).await)
    }
}

impl Listing for UsersOf {
    type Doc = UserDoc;
    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<UserDoc>> {
        on_backend!(store, b => b.users_of(*self, keys).await)
    }
    fn key(doc: &UserDoc) -> CursorKey {
        // User relations are listed by id alone.
        CursorKey { created_ms: 0, id: doc.id }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A listing over fixed posts, counting the documents it hands out.
    struct Fixed {
        posts: Vec<PostDoc>,
        read: AtomicUsize,
    }

    impl Listing for Fixed {
        type Doc = PostDoc;
        async fn fetch(&self, _: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
            let pages: Pages<PostDoc> = keys
                .iter()
                .map(|(_, page)| page.select(self.posts.iter(), |p| p.cursor_key()).into_iter().cloned().collect())
                .collect();
            self.read.fetch_add(pages.iter().map(Vec::len).sum(), Ordering::Relaxed);
            Ok(pages)
        }
    }

    /// `hidden` posts (staged for deletion) newest, then `visible` older ones, newest first.
    fn listing(hidden: usize, visible: usize) -> Fixed {
        let n = hidden + visible;
        let posts = (0..n)
            .map(|i| PostDoc {
                id: ObjectId::new(),
                title: format!("p{i}"),
                body: String::new(),
                author: ObjectId::new(),
                liked_by: Vec::new(),
                comment_count: 0,
                created_at: DateTime::from_millis((n - i) as i64),
                updated_at: DateTime::from_millis(0),
                deleting: (i < hidden).then(ObjectId::new),
            })
            .collect();
        Fixed { posts, read: AtomicUsize::new(0) }
    }

    /// Lists one page through `refill` the way `Store` does: the first read, then the refill.
    async fn list(store: &Store, fixed: &Fixed, page: Page) -> Paged<PostDoc> {
        let sets = Sets::default();
        let got = fixed.fetch(store, &[(ObjectId::from_bytes([0; 12]), page)]).await.expect("fetch");
        store.one_page(fixed, &sets, &page, got.into_iter().next().unwrap_or_default()).await.expect("refill")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::from(embedded::EmbeddedStore::open(dir.path()).expect("open"));
        (dir, store)
    }

    /// A few hidden documents are passed over in full: the page is whole, with no cut.
    #[tokio::test]
    async fn a_refill_within_budget_fills_the_page() {
        let (_dir, store) = store();
        let fixed = listing(300, 20);
        let got = list(&store, &fixed, Page::newest(10)).await;
        assert_eq!(got.cut, None);
        assert_eq!(got.docs.len(), 11, "the page and one more");
        assert!(got.docs.iter().all(|p| p.deleting.is_none()));
    }

    /// However many hidden documents lie ahead, one refill reads at most its
    /// budget, and the short page is cut where reading stopped; paging on from
    /// the cut makes progress and reaches the visible documents, each once.
    #[tokio::test]
    async fn a_refill_stops_at_its_budget_and_resumes_from_the_cut() {
        let (_dir, store) = store();
        let fixed = listing(20_000, 15);
        let mut page = Page::newest(10);
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 100, "paging from the cut makes progress");
            let before = fixed.read.load(Ordering::Relaxed);
            let got = list(&store, &fixed, page).await;
            let read = fixed.read.load(Ordering::Relaxed) - before;
            assert!(read <= page.fetch_limit() + REFILL_BUDGET, "one call read {read} documents");
            let shown: Vec<_> = got.docs.iter().take(page.size()).cloned().collect();
            assert!(shown.iter().all(|p| p.deleting.is_none()), "no hidden document is shown");
            seen.extend(shown.iter().map(|p| p.id));
            let next = match (got.cut, got.docs.len() > page.size()) {
                (Some(cut), _) => {
                    assert!(got.docs.len() <= page.size(), "a cut page is short");
                    cut
                }
                (None, true) => shown.last().expect("a full page").cursor_key(),
                (None, false) => break,
            };
            page = Page::newest(10).resume(next, 10);
        }
        assert!(calls > 2, "20,000 hidden documents took several cut pages ({calls} calls)");
        let visible: Vec<ObjectId> = fixed.posts.iter().filter(|p| p.deleting.is_none()).map(|p| p.id).collect();
        assert_eq!(seen, visible, "every visible post once, in order");
    }
}
