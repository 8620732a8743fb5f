//! The MongoDB backend, on the official driver.
//!
//! - `connect`: client options, the start-up probe, indexes.
//! - `read`: the per-request snapshot pin and the batched queries.
//! - `tx`: the transaction handle and the callback-API transaction.
//! - `kept`: `Idempotency-Key` records, one document per key, TTL-expired.
//! - `errors`: driver errors as [`crate::error::Error`], cause and labels kept.
//!
//! Transactions use read concern `snapshot` and write concern `majority`.
//! Each [`crate::store::Tx`] method is one command (a `deleteMany` with
//! `$in`, an `updateMany` with `$pull`, one multi-statement `update` for
//! counters), so a cascade costs the same number of commands whatever the fan-out.

mod connect;
mod errors;
mod kept;
mod outbox;
mod read;
mod tx;

use std::sync::Arc;

use bson::oid::ObjectId;
use bson::{DateTime, doc};
use mongodb::options::{ReadConcern, TransactionOptions, WriteConcern};
use mongodb::{Client, Database};

pub use self::connect::{ConnectOptions, DEFAULT_DATABASE, NEEDS_REPLICA_SET};
use self::read::{PageLookup, Pin};
use super::events::Hub;
use super::hidden::Hidden;
use super::idempotency::{Claim, Fingerprint, IdemKey, Lease};
use super::{Backend, Collection, CommentsOf, CountOf, Pages, PostsOf, Snapshot, UsersOf};
use crate::domain::Page;
use crate::error::Result;
use crate::model::{CommentDoc, CommentId, DeletionJobDoc, JobHeader, JobPart, PostDoc, PostId, UserDoc, UserId};
use crate::store::{Command, ReadCommand, ReadInTx};

const USERS: &str = "users";
const POSTS: &str = "posts";
const COMMENTS: &str = "comments";
/// Staged deletions in progress (`JobHeader`).
const DELETION_JOBS: &str = "deletionJobs";
/// Their lists (`JobPart`, keyed `<job hex>:<seq>`).
const DELETION_JOB_PARTS: &str = "deletionJobParts";

/// The MongoDB backend. Cheap to clone: clones share the client's pool.
#[derive(Clone)]
pub struct MongoStore {
    client: Client,
    db: Database,
    /// Set on a view (one per request, or one per whole-store snapshot): the
    /// snapshot its reads share.
    pin: Option<Arc<tokio::sync::Mutex<Pin>>>,
    /// Transaction attempts beyond the first (transient conflicts), shared by every view.
    retries: Arc<std::sync::atomic::AtomicU64>,
    /// What staged deletions hide, shared by every view; loaded at connect
    /// and refreshed by the reaper's poll (jobs staged by other processes).
    hidden: Arc<Hidden>,
    /// Where committed writes' events go.
    hub: Arc<Hub>,
}

fn tx_options() -> TransactionOptions {
    TransactionOptions::builder().read_concern(ReadConcern::snapshot()).write_concern(WriteConcern::majority()).build()
}

impl MongoStore {
    /// Connects, proves the deployment runs transactions, and creates the indexes.
    /// An unreachable server fails within the server-selection timeout.
    pub async fn connect(uri: &str, options: ConnectOptions) -> Result<Self> {
        let (client, db) = connect::connect(uri, options).await?;
        let store =
            MongoStore { client, db, pin: None, retries: Arc::default(), hidden: Arc::default(), hub: Arc::default() };
        // Latest data, not a view's snapshot: every job in progress, with its lists.
        let jobs = store.fresh().jobs().await?;
        store.hidden.reset(&jobs);
        outbox::start_tail(&store.db, &store.hub).await?;
        Ok(store)
    }

    /// The database this store uses.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// This store without a view's snapshot: reads see the latest data.
    fn fresh(&self) -> MongoStore {
        MongoStore { pin: None, ..self.clone() }
    }

    /// Every job, header and parts, read through this view.
    async fn jobs(&self) -> Result<Vec<DeletionJobDoc>> {
        let headers: Vec<JobHeader> = self.all(DELETION_JOBS).await?;
        let mut jobs = Vec::with_capacity(headers.len());
        for header in headers {
            jobs.push(self.job(header).await?);
        }
        Ok(jobs)
    }

    /// The job `header` heads, with its parts, read through this view.
    async fn job(&self, header: JobHeader) -> Result<DeletionJobDoc> {
        let keys: Vec<String> = (0..header.parts).map(|seq| JobPart::key(&header.id, seq)).collect();
        let filter = doc! { "_id": { "$in": &keys } };
        let found = self
            .read(async |s| self.db.collection::<JobPart>(DELETION_JOB_PARTS).find(filter).session(s).await)
            .await?;
        let mut parts: std::collections::HashMap<String, JobPart> =
            found.into_iter().map(|p| (p.key.clone(), p)).collect();
        let lists = keys.iter().filter_map(|k| parts.remove(k)).collect();
        Ok(DeletionJobDoc::from_records(header, lists))
    }

    /// A view whose reads share one snapshot (see `read`).
    fn pinned_view(&self) -> MongoStore {
        MongoStore {
            client: self.client.clone(),
            db: self.db.clone(),
            pin: Some(Arc::new(tokio::sync::Mutex::new(Pin::Unset))),
            retries: Arc::clone(&self.retries),
            hidden: Arc::clone(&self.hidden),
            hub: Arc::clone(&self.hub),
        }
    }
}

impl Backend for MongoStore {
    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await?;
        Ok(())
    }

    async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<UserDoc>> {
        self.by_ids(USERS, ids).await
    }

    async fn posts_by_ids(&self, ids: &[PostId]) -> Result<Vec<PostDoc>> {
        self.by_ids(POSTS, ids).await
    }

    async fn comments_by_ids(&self, ids: &[CommentId]) -> Result<Vec<CommentDoc>> {
        self.by_ids(COMMENTS, ids).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        let filter = doc! { "email": email };
        let found =
            self.read(async |s| self.db.collection::<UserDoc>(USERS).find(filter).limit(1).session(s).await).await?;
        Ok(found.into_iter().next())
    }

    async fn users_page(&self, page: &Page) -> Result<Vec<UserDoc>> {
        self.page(USERS, doc! {}, page).await
    }

    async fn posts_page(&self, page: &Page) -> Result<Vec<PostDoc>> {
        self.page(POSTS, doc! {}, page).await
    }

    async fn feed_page(&self, authors: &[UserId], page: &Page) -> Result<Vec<PostDoc>> {
        if authors.is_empty() {
            return Ok(Vec::new());
        }
        // Served by the `(author, createdAt desc, _id desc)` index: one
        // bounded scan per author, merged by the server (a SORT_MERGE plan).
        self.page(POSTS, doc! { "author": { "$in": authors } }, page).await
    }

    async fn posts_of(&self, of: PostsOf, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        let PostsOf::Author = of;
        if let [(author, page)] = keys {
            // One author (the `posts(authorId:)` query): a plain indexed find.
            return Ok(vec![self.page(POSTS, doc! { "author": author }, page).await?]);
        }
        let how = PageLookup { parent: USERS, local: "_id", from: POSTS, foreign: "author", by_time: true };
        self.lookup_pages(how, keys).await
    }

    async fn comments_of(&self, of: CommentsOf, keys: &[(ObjectId, Page)]) -> Result<Pages<CommentDoc>> {
        let (parent, foreign) = match of {
            CommentsOf::Post => (POSTS, "post"),
            CommentsOf::Author => (USERS, "author"),
        };
        self.lookup_pages(PageLookup { parent, local: "_id", from: COMMENTS, foreign, by_time: true }, keys).await
    }

    async fn users_of(&self, of: UsersOf, keys: &[(ObjectId, Page)]) -> Result<Pages<UserDoc>> {
        let (parent, local) = match of {
            UsersOf::Followers => (USERS, "followers"),
            UsersOf::Following => (USERS, "following"),
            UsersOf::Likers => (POSTS, "likedBy"),
        };
        self.lookup_pages(PageLookup { parent, local, from: USERS, foreign: "_id", by_time: false }, keys).await
    }

    async fn count_all(&self, collection: Collection) -> Result<u64> {
        let coll = match collection {
            Collection::Users => USERS,
            Collection::Posts => POSTS,
        };
        let counted = self.count_groups(coll, doc! {}, None).await?;
        Ok(counted.get(&None).copied().unwrap_or(0))
    }

    async fn count_of(&self, of: CountOf, parents: &[UserId]) -> Result<Vec<u64>> {
        // Both counts group the `author` index of their collection.
        let coll = match of {
            CountOf::PostsByAuthor => POSTS,
            CountOf::CommentsByAuthor => COMMENTS,
        };
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let counted = self.count_groups(coll, doc! { "author": { "$in": parents } }, Some("$author")).await?;
        Ok(parents.iter().map(|p| counted.get(&Some(p.oid())).copied().unwrap_or(0)).collect())
    }

    fn transaction_retries(&self) -> u64 {
        self.retries.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn per_request(&self) -> Self {
        self.pinned_view()
    }

    async fn renew(&self) {
        if let Some(pin) = &self.pin {
            *pin.lock().await = Pin::Unset;
        }
    }

    async fn run<C: Command>(&self, cmd: C) -> Result<C::Output> {
        let outcome = tx::run(self, cmd).await;
        // Whatever the outcome, the view's next read takes a new snapshot, so it sees this write.
        self.renew().await;
        outcome
    }

    async fn read_only<C: ReadCommand>(&self, cmd: C) -> Result<C::Output> {
        // No single writer to keep free here: a transaction that only reads.
        tx::run(self, ReadInTx(cmd)).await
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        // The three collections at one cluster time, so the checker never
        // reports a violation that is only a write landing between two reads.
        let view = self.pinned_view();
        Ok(Snapshot {
            users: view.all(USERS).await?,
            posts: view.all(POSTS).await?,
            comments: view.all(COMMENTS).await?,
            jobs: view.jobs().await?,
        })
    }

    async fn deletion_job_headers(&self) -> Result<Vec<JobHeader>> {
        self.fresh().all(DELETION_JOBS).await
    }

    async fn deletion_job(&self, header: JobHeader) -> Result<DeletionJobDoc> {
        self.fresh().job(header).await
    }

    async fn claim_key(&self, key: &IdemKey, fingerprint: &Fingerprint, until: DateTime) -> Result<Claim> {
        self.claim(key, fingerprint, until).await
    }

    async fn keep_answer(&self, key: &IdemKey, lease: Lease, answer: Vec<u8>, until: DateTime) -> Result<()> {
        self.keep(key, lease, answer, until).await
    }

    async fn release_key(&self, key: &IdemKey, lease: Lease) -> Result<()> {
        self.release(key, lease).await
    }

    fn hidden(&self) -> &Arc<Hidden> {
        &self.hidden
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The outbox's committed number: the tail may not have published up
    /// to it yet, and a subscriber must not get those commits as new.
    async fn event_horizon(&self) -> Result<u64> {
        Ok(u64::try_from(outbox::committed(&self.db).await?).unwrap_or(0))
    }
}
