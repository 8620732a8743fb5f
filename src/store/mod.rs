//! The store seam: batched reads and one transaction handle, implemented by
//! [`embedded`] (redb) today and by a MongoDB backend behind the same traits.
//!
//! Two traits split the surface on purpose:
//! - [`Store`] has only *reads* (each one batched: by ids, by parents, by page)
//!   and [`Store::run_tx`]. It has no write methods at all.
//! - [`Tx`] is the transaction handle. Every write lives here, so code that
//!   writes must be handed a `&mut dyn Tx`, which only exists inside
//!   [`transact`]. A cascade step outside the transaction does not compile.

pub mod embedded;
pub mod mongo;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use bson::DateTime;
use bson::oid::ObjectId;
use futures::future::BoxFuture;

use crate::error::{Error, Result};
use crate::model::{CommentDoc, PageQuery, PostDoc, UserDoc};

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

/// One page per parent, in the order the parents were asked for.
pub type Pages<D> = Vec<Vec<D>>;

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
}

/// Counters a backend keeps so tests and operators can see how it is used.
#[derive(Debug, Default)]
pub struct StoreStats {
    round_trips: AtomicU64,
}

impl StoreStats {
    /// Counts one round trip: one batched read, one page query or one transaction.
    pub fn record_round_trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// Round trips since the store was opened.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// A test seam that makes a chosen write of the *next* transaction fail.
///
/// Armed with `n`, the n-th write (1-based) of the next transaction to start
/// returns an internal error, which must roll the whole transaction back. It
/// exists so atomicity is proven, not assumed.
#[derive(Debug, Default)]
pub struct FaultPlan {
    fail_write: AtomicUsize,
}

impl FaultPlan {
    /// Makes write number `n` (1-based) of the next transaction fail; `0` disarms.
    pub fn fail_nth_write(&self, n: usize) {
        self.fail_write.store(n, Ordering::SeqCst);
    }

    /// Claims the armed fault for a transaction that is starting (and disarms it).
    pub fn take(&self) -> Option<usize> {
        match self.fail_write.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }
}

/// Counts a transaction's writes and fires the fault armed for it, if any.
///
/// Backends call [`WriteCounter::step`] at the start of every [`Tx`] write method.
#[derive(Debug, Default)]
pub struct WriteCounter {
    done: usize,
    fail_at: Option<usize>,
}

impl WriteCounter {
    /// A counter for one transaction, with the fault (if any) taken from `faults`.
    pub fn new(faults: &FaultPlan) -> Self {
        WriteCounter { done: 0, fail_at: faults.take() }
    }

    /// A counter that fails write `fail_at` (for backends that re-run a transaction
    /// and must re-arm the same fault on each attempt).
    pub fn failing_at(fail_at: Option<usize>) -> Self {
        WriteCounter { done: 0, fail_at }
    }

    /// Records one write; fails if it is the one the fault plan chose.
    pub fn step(&mut self, what: &str) -> Result<()> {
        self.done += 1;
        if self.fail_at == Some(self.done) {
            return Err(Error::internal(format!("injected fault at write {} ({what})", self.done)));
        }
        Ok(())
    }
}

/// The read side of a backend, plus the door to the write side ([`Store::run_tx`]).
///
/// Every read method is one round trip however many ids or parents it is
/// given; the DataLoaders rely on that to keep round trips proportional to
/// query depth rather than list length.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short backend name for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Answers when the store can serve reads; used by `/readyz`.
    async fn ping(&self) -> Result<()>;

    /// Users with these ids; missing ids are simply absent from the result.
    async fn users_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<UserDoc>>;
    /// Posts with these ids; missing ids are absent.
    async fn posts_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<PostDoc>>;
    /// Comments with these ids; missing ids are absent.
    async fn comments_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<CommentDoc>>;
    /// The user with this (already lowercased) email.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>>;

    /// A page of all users, newest first.
    async fn users_page(&self, page: &PageQuery) -> Result<Vec<UserDoc>>;
    /// A page of all posts, newest first.
    async fn posts_page(&self, page: &PageQuery) -> Result<Vec<PostDoc>>;
    /// One page of posts per author, newest first.
    async fn posts_by_authors(&self, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<PostDoc>>;
    /// One page of comments per parent (post or author), newest first.
    async fn comments_of(&self, of: CommentsOf, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<CommentDoc>>;
    /// One page of related users per parent, newest account first.
    async fn users_of(&self, of: UsersOf, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<UserDoc>>;

    /// A handle for one request. Every read of the request sees one snapshot
    /// (so a page and the authors loaded for it never disagree about a
    /// concurrent delete), renewed after the request's own writes: a redb
    /// read transaction on the embedded store, snapshot reads at one cluster
    /// time on MongoDB (where the server offers them; see `store::mongo`).
    fn per_request(self: Arc<Self>) -> DynStore;

    /// Runs `work` in one ACID transaction: it commits if `work` returns `Ok`
    /// and rolls back otherwise. Backends with optimistic concurrency retry
    /// `work` on transient conflicts, so it must be safe to run again.
    ///
    /// Call it through [`transact`], which keeps the result typed.
    async fn run_tx(&self, work: TxWork) -> Result<Box<dyn Any + Send>>;

    /// Reads the whole store in one snapshot (tests, `check`, small deployments only).
    async fn snapshot(&self) -> Result<Snapshot>;

    /// Round-trip counters.
    fn stats(&self) -> &StoreStats;

    /// The fault-injection seam for atomicity tests.
    fn faults(&self) -> &FaultPlan;
}

/// Shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// A unit of transactional work, type-erased so [`Store`] stays object safe.
pub type TxWork = Box<dyn for<'t> FnMut(&'t mut dyn Tx) -> BoxFuture<'t, Result<Box<dyn Any + Send>>> + Send>;

/// Runs `work` in one store transaction and returns its typed result.
///
/// `work` may run more than once (retries on transient conflicts), so it
/// must build all its effects through the handle it is given.
pub async fn transact<T, F>(store: &dyn Store, mut work: F) -> Result<T>
where
    T: Send + 'static,
    F: for<'t> FnMut(&'t mut dyn Tx) -> BoxFuture<'t, Result<T>> + Send + 'static,
{
    let erased: TxWork = Box::new(move |tx| {
        let fut = work(tx);
        Box::pin(async move { fut.await.map(|v| Box::new(v) as Box<dyn Any + Send>) })
    });
    let out = store.run_tx(erased).await?;
    out.downcast::<T>().map(|v| *v).map_err(|_| Error::internal("transaction result had an unexpected type"))
}

/// The transaction handle: the only way to write.
///
/// Methods mirror single MongoDB commands (a `find`, a `deleteMany` with
/// `$in`, an `updateMany` with `$pull`), so a cascade costs the same, small,
/// constant number of operations on every backend, whatever its fan-out.
/// Reads here see the transaction's own writes.
#[async_trait]
pub trait Tx: Send {
    /// Reads a user inside the transaction.
    async fn user(&mut self, id: ObjectId) -> Result<Option<UserDoc>>;
    /// Reads a post inside the transaction.
    async fn post(&mut self, id: ObjectId) -> Result<Option<PostDoc>>;
    /// Reads a comment inside the transaction.
    async fn comment(&mut self, id: ObjectId) -> Result<Option<CommentDoc>>;
    /// Ids of the posts whose `author` is `author` (the author index, not the user's array).
    async fn post_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>>;

    /// Inserts a new user; a taken email is [`Error::Conflict`].
    async fn insert_user(&mut self, user: &UserDoc) -> Result<()>;
    /// Inserts a new post.
    async fn insert_post(&mut self, post: &PostDoc) -> Result<()>;
    /// Inserts a new comment.
    async fn insert_comment(&mut self, comment: &CommentDoc) -> Result<()>;
    /// Replaces an existing user (read earlier in this transaction) with `user`.
    async fn replace_user(&mut self, user: &UserDoc) -> Result<()>;
    /// Replaces an existing post (read earlier in this transaction) with `post`.
    async fn replace_post(&mut self, post: &PostDoc) -> Result<()>;

    /// Deletes the comments on any of `posts`; returns how many went.
    async fn delete_comments_on_posts(&mut self, posts: &[ObjectId]) -> Result<u64>;
    /// Deletes every comment written by `author`; returns `(post, comments removed from it)`.
    async fn delete_comments_by_author(&mut self, author: ObjectId) -> Result<Vec<(ObjectId, i64)>>;
    /// Deletes one comment; returns whether it existed.
    async fn delete_comment(&mut self, id: ObjectId) -> Result<bool>;
    /// Adds each delta to its post's `commentCount` (missing posts are skipped).
    async fn add_comment_counts(&mut self, deltas: &[(ObjectId, i64)]) -> Result<()>;
    /// Deletes the posts with these ids; returns how many existed.
    async fn delete_posts(&mut self, ids: &[ObjectId]) -> Result<u64>;
    /// Pulls `user` out of every post's `likedBy`; returns how many posts changed.
    async fn pull_liker_everywhere(&mut self, user: ObjectId) -> Result<u64>;
    /// Pulls `user` out of every user's `followers` and `following`; returns how many users changed.
    async fn pull_follow_refs_everywhere(&mut self, user: ObjectId) -> Result<u64>;
    /// Deletes a user document; returns whether it existed.
    async fn delete_user(&mut self, id: ObjectId) -> Result<bool>;

    /// The transaction's clock, so every document written by one transaction shares a timestamp.
    fn now(&self) -> DateTime;
}
