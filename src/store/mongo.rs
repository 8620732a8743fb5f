//! The MongoDB backend, on the official driver.
//!
//! Every [`Tx`] runs inside one session transaction started with the
//! driver's callback API ([`StartTransaction::and_run`]), which retries the
//! callback on `TransientTransactionError` and the commit on
//! `UnknownTransactionCommitResult`. Transactions use read concern
//! `snapshot` and write concern `majority`.
//!
//! `MongoTx` holds the `ClientSession` and offers no call without it, so a
//! cascade step cannot run outside the transaction. Each of its methods is
//! one command (a `deleteMany` with `$in`, an `updateMany` with `$pull`, one
//! multi-statement `update` for counters), so a cascade costs the same
//! number of commands whatever the fan-out.
//!
//! [`StartTransaction::and_run`]: mongodb::action::StartTransaction

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bson::oid::ObjectId;
use bson::{Bson, DateTime, Document, Timestamp, doc};
use futures::{FutureExt, TryStreamExt};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use mongodb::options::{ClientOptions, IndexOptions, ReadConcern, SessionOptions, TransactionOptions, WriteConcern};
use mongodb::{Client, ClientSession, Collection, Database, IndexModel, SessionCursor};
use serde::de::DeserializeOwned;

use super::{CommentsOf, FaultPlan, Pages, Snapshot, Store, StoreStats, Tx, TxWork, UsersOf, WriteCounter};
use crate::error::{Error, Result};
use crate::model::{CommentDoc, PageQuery, PostDoc, UserDoc};

/// The database used when neither the URI path nor the configuration names one.
pub const DEFAULT_DATABASE: &str = "blogql";

/// What the startup probe says when the deployment refuses transactions.
pub const NEEDS_REPLICA_SET: &str = "MongoDB refused a transaction: blogql runs every cascade in a \
multi-document transaction, and MongoDB only allows those on a replica set or sharded cluster. \
For development, run a single-node replica set: start mongod with `--replSet rs0`, then run \
`rs.initiate()` once in mongosh, and connect with `?replicaSet=rs0`.";

const USERS: &str = "users";
const POSTS: &str = "posts";
const COMMENTS: &str = "comments";

/// Counts the commands the driver sends, so tests can prove a cascade's cost.
#[derive(Debug, Default)]
pub struct CommandCounter {
    total: AtomicU64,
    names: std::sync::Mutex<Vec<String>>,
}

impl CommandCounter {
    fn record(&self, name: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut names) = self.names.lock() {
            names.push(name.to_owned());
        }
    }

    /// Commands sent since the store was opened (handshakes and monitoring excluded).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The names of the commands sent since the last call, oldest first.
    pub fn take_names(&self) -> Vec<String> {
        self.names.lock().map(|mut names| std::mem::take(&mut *names)).unwrap_or_default()
    }
}

/// The server's error code, for the kinds of error that carry one.
fn server_code(err: &mongodb::error::Error) -> Option<i32> {
    match &*err.kind {
        ErrorKind::Command(e) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        _ => None,
    }
}

/// Maps a driver error to [`Error`]: our own errors come back out of the
/// transaction callback unchanged; a duplicate key is the email's unique
/// index; a write conflict that outlived the retries is a `CONFLICT`.
fn from_driver(err: mongodb::error::Error) -> Error {
    if let Some(ours) = err.get_custom::<Error>() {
        return ours.clone();
    }
    match server_code(&err) {
        Some(11000) => Error::Conflict("an account with this email already exists".into()),
        Some(112) => Error::Conflict("the data changed concurrently; retry the operation".into()),
        _ => Error::internal(format!("mongodb: {err}")),
    }
}

fn created_filter(page: &PageQuery) -> Document {
    match page.after {
        None => doc! {},
        Some(after) => {
            let at = DateTime::from_millis(after.created_ms);
            doc! { "$or": [ { "createdAt": { "$lt": at } }, { "createdAt": at, "_id": { "$lt": after.id } } ] }
        }
    }
}

fn id_filter(page: &PageQuery) -> Document {
    match page.after {
        None => doc! {},
        Some(after) => doc! { "_id": { "$lt": after.id } },
    }
}

fn newest_first() -> Document {
    doc! { "createdAt": -1, "_id": -1 }
}

fn limit(page: &PageQuery) -> i64 {
    i64::try_from(page.fetch_limit()).unwrap_or(i64::MAX)
}

/// A `$limit` stage's argument: pages are at most 101 long, so an Int32 always fits.
fn stage_limit(page: &PageQuery) -> i32 {
    i32::try_from(page.fetch_limit()).unwrap_or(i32::MAX)
}

fn batch(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

/// How a one-to-many page is found: from the parent collection, through
/// `$lookup` on `local` = `foreign` into `from`.
struct PageLookup {
    parent: &'static str,
    local: &'static str,
    from: &'static str,
    foreign: &'static str,
    by_time: bool,
}

/// The MongoDB backend.
pub struct MongoStore {
    client: Client,
    db: Database,
    stats: Arc<StoreStats>,
    faults: Arc<FaultPlan>,
    commands: Arc<CommandCounter>,
    /// Set on a view (one per request, or one per whole-store snapshot): the
    /// snapshot its reads share.
    pin: Option<tokio::sync::Mutex<Pin>>,
}

/// The read snapshot of a per-request view.
///
/// The request's first read runs in a snapshot session, and the server
/// answers with the cluster time it read at; every later read of the request
/// opens a snapshot session at that time. So a page and the authors loaded
/// for it come from the same instant, even when another request deletes an
/// author in between. A write by the request clears the pin, so what it reads
/// next includes its own write.
#[derive(Clone, Copy)]
enum Pin {
    /// No read yet (or the request just wrote).
    Unset,
    /// Reads happen at this cluster time.
    At(Timestamp),
    /// The server gave no snapshot time, so each read sees the latest data.
    Unavailable,
}

/// The session one read runs in. For the request's first read it also holds
/// the pin's lock, so concurrent reads wait to learn the snapshot time.
struct ReadSession<'a> {
    session: ClientSession,
    establishing: Option<tokio::sync::MutexGuard<'a, Pin>>,
}

impl MongoStore {
    /// Connects, proves the deployment runs transactions, and creates the indexes.
    ///
    /// The database is `database` if given, else the URI's path, else `blogql`.
    /// An unreachable server fails within the server-selection timeout.
    pub async fn connect(uri: &str, database: Option<&str>) -> Result<Self> {
        let mut options =
            ClientOptions::parse(uri).await.map_err(|e| Error::internal(format!("invalid MongoDB URI: {e}")))?;
        options.app_name.get_or_insert_with(|| "blogql".to_owned());
        options.server_selection_timeout.get_or_insert(Duration::from_secs(10));
        let commands = Arc::new(CommandCounter::default());
        let counter = Arc::clone(&commands);
        options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
            if let CommandEvent::Started(started) = event {
                counter.record(&started.command_name);
            }
        }));
        let name = database
            .map(str::to_owned)
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        let client = Client::with_options(options).map_err(|e| Error::internal(format!("MongoDB client: {e}")))?;
        let store = MongoStore {
            db: client.database(&name),
            client,
            stats: Arc::default(),
            faults: Arc::default(),
            commands,
            pin: None,
        };
        store.probe().await?;
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// The driver's command counter.
    pub fn commands(&self) -> &CommandCounter {
        &self.commands
    }

    /// The database this store uses.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn coll<T: Send + Sync>(&self, name: &str) -> Collection<T> {
        self.db.collection(name)
    }

    /// Ping, then start, read in and commit a transaction. Refuses to go on
    /// (rather than silently writing without transactions) when the
    /// deployment cannot run them.
    async fn probe(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map_err(|e| {
            Error::internal(format!("cannot reach MongoDB (gave up after the server-selection timeout): {e}"))
        })?;
        let refused = |e: mongodb::error::Error| {
            let text = e.to_string();
            if server_code(&e) == Some(20)
                || text.contains("Transaction numbers are only allowed")
                || text.contains("not supported by this deployment")
            {
                Error::internal(format!("{NEEDS_REPLICA_SET} (server said: {text})"))
            } else {
                Error::internal(format!("MongoDB transaction probe failed: {text}"))
            }
        };
        let mut session = self.client.start_session().await.map_err(refused)?;
        session.start_transaction().with_options(tx_options()).await.map_err(refused)?;
        self.coll::<Document>(USERS).find_one(doc! {}).session(&mut session).await.map_err(refused)?;
        session.commit_transaction().await.map_err(refused)?;
        Ok(())
    }

    /// Creates the indexes the reads and cascades need; idempotent.
    async fn ensure_indexes(&self) -> Result<()> {
        let unique = IndexOptions::builder().unique(true).build();
        let specs: [(&str, Document, Option<IndexOptions>); 10] = [
            (USERS, doc! { "email": 1 }, Some(unique)),
            (USERS, doc! { "createdAt": -1, "_id": -1 }, None),
            (USERS, doc! { "followers": 1 }, None),
            (USERS, doc! { "following": 1 }, None),
            (POSTS, doc! { "createdAt": -1, "_id": -1 }, None),
            (POSTS, doc! { "author": 1, "createdAt": -1, "_id": -1 }, None),
            (POSTS, doc! { "likedBy": 1 }, None),
            (COMMENTS, doc! { "post": 1, "createdAt": -1, "_id": -1 }, None),
            (COMMENTS, doc! { "author": 1, "createdAt": -1, "_id": -1 }, None),
            (COMMENTS, doc! { "createdAt": -1, "_id": -1 }, None),
        ];
        for (coll, keys, options) in specs {
            let model = IndexModel::builder().keys(keys).options(options).build();
            self.coll::<Document>(coll)
                .create_index(model)
                .await
                .map_err(|e| Error::internal(format!("creating an index on {coll}: {e}")))?;
        }
        Ok(())
    }

    /// The session a read runs in: on a view, a snapshot session at the
    /// request's pinned time (or the one that pins it); otherwise a plain one.
    async fn read_session(&self) -> Result<ReadSession<'_>> {
        let snapshot = || SessionOptions::builder().snapshot(true);
        let (options, establishing) = match &self.pin {
            None => (None, None),
            Some(pin) => {
                let guard = pin.lock().await;
                match *guard {
                    Pin::At(time) => (Some(snapshot().snapshot_time(time).build()), None),
                    Pin::Unset => (Some(snapshot().build()), Some(guard)),
                    Pin::Unavailable => (None, None),
                }
            }
        };
        let session = self.client.start_session().with_options(options).await.map_err(from_driver)?;
        Ok(ReadSession { session, establishing })
    }

    /// Runs one read: `find` or `aggregate` in the read's session, collected.
    /// The first read of a view pins the cluster time the server read at.
    async fn read<T, F>(&self, op: F) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
        F: AsyncFnOnce(&mut ClientSession) -> mongodb::error::Result<SessionCursor<T>>,
    {
        self.stats.record_round_trip();
        let mut read = self.read_session().await?;
        let mut cursor = op(&mut read.session).await.map_err(from_driver)?;
        let docs: Vec<T> = cursor.stream(&mut read.session).try_collect().await.map_err(from_driver)?;
        if let Some(mut pin) = read.establishing {
            *pin = read.session.snapshot_time().map_or(Pin::Unavailable, Pin::At);
        }
        Ok(docs)
    }

    async fn by_ids<T>(&self, coll: &str, ids: &[ObjectId]) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        if ids.is_empty() {
            self.stats.record_round_trip();
            return Ok(Vec::new());
        }
        let filter = doc! { "_id": { "$in": ids } };
        self.read(async |s| self.coll::<T>(coll).find(filter).batch_size(batch(ids.len())).session(s).await).await
    }

    async fn page<T>(&self, coll: &str, filter: Document, page: &PageQuery) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        let mut filter = filter;
        filter.extend(created_filter(page));
        self.read(async |s| {
            self.coll::<T>(coll)
                .find(filter)
                .sort(newest_first())
                .limit(limit(page))
                .batch_size(batch(page.fetch_limit()))
                .session(s)
                .await
        })
        .await
    }

    /// One page per parent in one `aggregate` per distinct page request:
    /// `$match` the parents, then `$lookup` with a sorted, limited pipeline.
    async fn lookup_pages<T>(&self, how: PageLookup, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<T>>
    where
        T: DeserializeOwned,
    {
        let mut groups: HashMap<PageQuery, Vec<ObjectId>> = HashMap::new();
        for (parent, page) in keys {
            groups.entry(*page).or_default().push(*parent);
        }
        let mut found: HashMap<(ObjectId, PageQuery), Vec<T>> = HashMap::new();
        for (page, parents) in groups {
            let (filter, sort) = if how.by_time {
                (created_filter(&page), newest_first())
            } else {
                (id_filter(&page), doc! { "_id": -1 })
            };
            let pipeline = vec![
                doc! { "$match": { "_id": { "$in": &parents } } },
                doc! { "$lookup": {
                    "from": how.from,
                    "localField": how.local,
                    "foreignField": how.foreign,
                    "pipeline": [ { "$match": filter }, { "$sort": sort }, { "$limit": stage_limit(&page) } ],
                    "as": "page",
                } },
                doc! { "$project": { "page": 1 } },
            ];
            let rows: Vec<Document> = self
                .read(async |s| {
                    self.coll::<Document>(how.parent)
                        .aggregate(pipeline)
                        .batch_size(batch(parents.len()))
                        .session(s)
                        .await
                })
                .await?;
            for row in rows {
                let parent = row.get_object_id("_id").map_err(Error::internal)?;
                let docs = row
                    .get_array("page")
                    .map_err(Error::internal)?
                    .iter()
                    .map(|d| bson::from_bson::<T>(d.clone()).map_err(Error::from))
                    .collect::<Result<Vec<T>>>()?;
                found.insert((parent, page), docs);
            }
        }
        Ok(keys.iter().map(|(parent, page)| found.remove(&(*parent, *page)).unwrap_or_default()).collect())
    }

    async fn all<T>(&self, coll: &str) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        self.read(async |s| self.coll::<T>(coll).find(doc! {}).sort(doc! { "_id": 1 }).session(s).await).await
    }

    /// A handle whose reads share one snapshot (see [`Pin`]).
    fn pinned_view(&self) -> MongoStore {
        MongoStore {
            client: self.client.clone(),
            db: self.db.clone(),
            stats: Arc::clone(&self.stats),
            faults: Arc::clone(&self.faults),
            commands: Arc::clone(&self.commands),
            pin: Some(tokio::sync::Mutex::new(Pin::Unset)),
        }
    }
}

fn tx_options() -> TransactionOptions {
    TransactionOptions::builder().read_concern(ReadConcern::snapshot()).write_concern(WriteConcern::majority()).build()
}

#[async_trait]
impl Store for MongoStore {
    fn backend(&self) -> &'static str {
        "mongodb"
    }

    async fn ping(&self) -> Result<()> {
        self.db.run_command(doc! { "ping": 1 }).await.map(|_| ()).map_err(from_driver)
    }

    async fn users_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<UserDoc>> {
        self.by_ids(USERS, ids).await
    }

    async fn posts_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<PostDoc>> {
        self.by_ids(POSTS, ids).await
    }

    async fn comments_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<CommentDoc>> {
        self.by_ids(COMMENTS, ids).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        let filter = doc! { "email": email };
        let found = self.read(async |s| self.coll::<UserDoc>(USERS).find(filter).limit(1).session(s).await).await?;
        Ok(found.into_iter().next())
    }

    async fn users_page(&self, page: &PageQuery) -> Result<Vec<UserDoc>> {
        self.page(USERS, doc! {}, page).await
    }

    async fn posts_page(&self, page: &PageQuery) -> Result<Vec<PostDoc>> {
        self.page(POSTS, doc! {}, page).await
    }

    async fn posts_by_authors(&self, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<PostDoc>> {
        if let [(author, page)] = keys {
            // One author (the `posts(authorId:)` query): a plain indexed find.
            return Ok(vec![self.page(POSTS, doc! { "author": author }, page).await?]);
        }
        let how = PageLookup { parent: USERS, local: "_id", from: POSTS, foreign: "author", by_time: true };
        self.lookup_pages(how, keys).await
    }

    async fn comments_of(&self, of: CommentsOf, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<CommentDoc>> {
        let (parent, foreign) = match of {
            CommentsOf::Post => (POSTS, "post"),
            CommentsOf::Author => (USERS, "author"),
        };
        self.lookup_pages(PageLookup { parent, local: "_id", from: COMMENTS, foreign, by_time: true }, keys).await
    }

    async fn users_of(&self, of: UsersOf, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<UserDoc>> {
        let (parent, local) = match of {
            UsersOf::Followers => (USERS, "followers"),
            UsersOf::Following => (USERS, "following"),
            UsersOf::Likers => (POSTS, "likedBy"),
        };
        self.lookup_pages(PageLookup { parent, local, from: USERS, foreign: "_id", by_time: false }, keys).await
    }

    fn per_request(self: Arc<Self>) -> super::DynStore {
        Arc::new(self.pinned_view())
    }

    async fn run_tx(&self, work: TxWork) -> Result<Box<dyn Any + Send>> {
        self.stats.record_round_trip();
        let mut session = self.client.start_session().await.map_err(from_driver)?;
        let context = TxContext { work, db: self.db.clone(), fail_at: self.faults.take() };
        let outcome = session
            .start_transaction()
            .with_options(tx_options())
            .and_run(context, |session, context| {
                async move {
                    let TxContext { work, db, fail_at } = context;
                    let mut tx = MongoTx {
                        session,
                        db: db.clone(),
                        counter: WriteCounter::failing_at(*fail_at),
                        now: DateTime::now(),
                        driver_error: None,
                    };
                    match work(&mut tx).await {
                        Ok(out) => Ok(out),
                        // A driver error goes back with its labels, so the callback
                        // API can retry transient ones; ours travel as a payload.
                        Err(err) => Err(tx.driver_error.take().unwrap_or_else(|| mongodb::error::Error::custom(err))),
                    }
                }
                .boxed()
            })
            .await
            .map_err(from_driver);
        // Whatever the outcome, the request's next read takes a new snapshot,
        // so it sees this write.
        if let Some(pin) = &self.pin {
            *pin.lock().await = Pin::Unset;
        }
        outcome
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        // The three collections at one cluster time, so the checker never
        // reports a violation that is only a write landing between two reads.
        let view = self.pinned_view();
        Ok(Snapshot {
            users: view.all(USERS).await?,
            posts: view.all(POSTS).await?,
            comments: view.all(COMMENTS).await?,
        })
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn faults(&self) -> &FaultPlan {
        &self.faults
    }
}

struct TxContext {
    work: TxWork,
    db: Database,
    fail_at: Option<usize>,
}

/// The MongoDB transaction handle. It owns the session for the length of
/// the transaction and every call passes it; there is no session-less call.
struct MongoTx<'s> {
    session: &'s mut ClientSession,
    db: Database,
    counter: WriteCounter,
    now: DateTime,
    /// The last driver error, kept with its labels for the callback API.
    driver_error: Option<mongodb::error::Error>,
}

impl MongoTx<'_> {
    /// Records a driver error for the retry logic and converts it for the caller.
    fn fail(&mut self, err: mongodb::error::Error) -> Error {
        let mapped = from_driver(err.clone());
        self.driver_error = Some(err);
        mapped
    }

    async fn find_one<T>(&mut self, coll: &str, id: ObjectId) -> Result<Option<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        let found = self.db.collection::<T>(coll).find_one(doc! { "_id": id }).session(&mut *self.session).await;
        found.map_err(|e| self.fail(e))
    }

    async fn find_docs(&mut self, coll: &str, pipeline: Vec<Document>) -> Result<Vec<Document>> {
        let cursor = self.db.collection::<Document>(coll).aggregate(pipeline).session(&mut *self.session).await;
        let mut cursor = cursor.map_err(|e| self.fail(e))?;
        let rows: std::result::Result<Vec<Document>, _> = cursor.stream(&mut *self.session).try_collect().await;
        rows.map_err(|e| self.fail(e))
    }

    async fn insert<T>(&mut self, coll: &str, doc: &T, what: &str) -> Result<()>
    where
        T: serde::Serialize + Send + Sync,
    {
        self.counter.step(what)?;
        let done = self.db.collection::<T>(coll).insert_one(doc).session(&mut *self.session).await;
        done.map(|_| ()).map_err(|e| self.fail(e))
    }

    async fn replace<T>(&mut self, coll: &str, id: ObjectId, doc: &T, what: &str) -> Result<()>
    where
        T: serde::Serialize + Send + Sync,
    {
        self.counter.step(what)?;
        let done = self.db.collection::<T>(coll).replace_one(doc! { "_id": id }, doc).session(&mut *self.session).await;
        if done.map_err(|e| self.fail(e))?.matched_count != 1 {
            return Err(Error::internal(format!("{what}: document {id} vanished inside its transaction")));
        }
        Ok(())
    }

    async fn delete_many(&mut self, coll: &str, filter: Document, what: &str) -> Result<u64> {
        self.counter.step(what)?;
        let done = self.db.collection::<Document>(coll).delete_many(filter).session(&mut *self.session).await;
        done.map(|r| r.deleted_count).map_err(|e| self.fail(e))
    }

    async fn update_many(&mut self, coll: &str, filter: Document, update: Document, what: &str) -> Result<u64> {
        self.counter.step(what)?;
        let done = self.db.collection::<Document>(coll).update_many(filter, update).session(&mut *self.session).await;
        done.map(|r| r.modified_count).map_err(|e| self.fail(e))
    }
}

#[async_trait]
impl Tx for MongoTx<'_> {
    async fn user(&mut self, id: ObjectId) -> Result<Option<UserDoc>> {
        self.find_one(USERS, id).await
    }

    async fn post(&mut self, id: ObjectId) -> Result<Option<PostDoc>> {
        self.find_one(POSTS, id).await
    }

    async fn comment(&mut self, id: ObjectId) -> Result<Option<CommentDoc>> {
        self.find_one(COMMENTS, id).await
    }

    async fn post_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>> {
        let rows = self
            .find_docs(POSTS, vec![doc! { "$match": { "author": author } }, doc! { "$project": { "_id": 1 } }])
            .await?;
        rows.iter().map(|r| r.get_object_id("_id").map_err(Error::internal)).collect()
    }

    async fn insert_user(&mut self, user: &UserDoc) -> Result<()> {
        self.insert(USERS, user, "insert user").await
    }

    async fn insert_post(&mut self, post: &PostDoc) -> Result<()> {
        self.insert(POSTS, post, "insert post").await
    }

    async fn insert_comment(&mut self, comment: &CommentDoc) -> Result<()> {
        self.insert(COMMENTS, comment, "insert comment").await
    }

    async fn replace_user(&mut self, user: &UserDoc) -> Result<()> {
        self.replace(USERS, user.id, user, "replace user").await
    }

    async fn replace_post(&mut self, post: &PostDoc) -> Result<()> {
        self.replace(POSTS, post.id, post, "replace post").await
    }

    async fn delete_comments_on_posts(&mut self, posts: &[ObjectId]) -> Result<u64> {
        if posts.is_empty() {
            // Nothing can match an empty `$in`: count the write, skip the command.
            self.counter.step("delete comments on posts")?;
            return Ok(0);
        }
        self.delete_many(COMMENTS, doc! { "post": { "$in": posts } }, "delete comments on posts").await
    }

    async fn delete_comments_by_author(&mut self, author: ObjectId) -> Result<Vec<(ObjectId, i64)>> {
        // Group first (one aggregate), then delete (one deleteMany): both read
        // the transaction's snapshot, so the counts match what is deleted.
        let groups = self
            .find_docs(
                COMMENTS,
                vec![
                    doc! { "$match": { "author": author } },
                    doc! { "$group": { "_id": "$post", "n": { "$sum": 1 } } },
                ],
            )
            .await?;
        let mut per_post = BTreeMap::new();
        for group in &groups {
            let post = group.get_object_id("_id").map_err(Error::internal)?;
            let n = match group.get("n") {
                Some(Bson::Int32(n)) => i64::from(*n),
                Some(Bson::Int64(n)) => *n,
                other => return Err(Error::internal(format!("comment group count was {other:?}"))),
            };
            per_post.insert(post, n);
        }
        self.delete_many(COMMENTS, doc! { "author": author }, "delete comments by author").await?;
        Ok(per_post.into_iter().collect())
    }

    async fn delete_comment(&mut self, id: ObjectId) -> Result<bool> {
        Ok(self.delete_many(COMMENTS, doc! { "_id": id }, "delete comment").await? == 1)
    }

    async fn add_comment_counts(&mut self, deltas: &[(ObjectId, i64)]) -> Result<()> {
        self.counter.step("add comment counts")?;
        if deltas.is_empty() {
            return Ok(());
        }
        // One `update` command carrying one statement per post.
        let updates: Vec<Document> = deltas
            .iter()
            .map(|(post, delta)| doc! { "q": { "_id": post }, "u": { "$inc": { "commentCount": delta } } })
            .collect();
        let command = doc! { "update": POSTS, "updates": updates, "ordered": true };
        let reply = self.db.run_command(command).session(&mut *self.session).await;
        let reply = reply.map_err(|e| self.fail(e))?;
        if let Ok(errors) = reply.get_array("writeErrors")
            && !errors.is_empty()
        {
            return Err(Error::internal(format!("commentCount update failed: {errors:?}")));
        }
        Ok(())
    }

    async fn delete_posts(&mut self, ids: &[ObjectId]) -> Result<u64> {
        self.delete_many(POSTS, doc! { "_id": { "$in": ids } }, "delete posts").await
    }

    async fn pull_liker_everywhere(&mut self, user: ObjectId) -> Result<u64> {
        self.update_many(POSTS, doc! { "likedBy": user }, doc! { "$pull": { "likedBy": user } }, "pull liker").await
    }

    async fn pull_follow_refs_everywhere(&mut self, user: ObjectId) -> Result<u64> {
        self.update_many(
            USERS,
            doc! { "$or": [ { "followers": user }, { "following": user } ] },
            doc! { "$pull": { "followers": user, "following": user } },
            "pull follow refs",
        )
        .await
    }

    async fn delete_user(&mut self, id: ObjectId) -> Result<bool> {
        Ok(self.delete_many(USERS, doc! { "_id": id }, "delete user").await? == 1)
    }

    fn now(&self) -> DateTime {
        self.now
    }
}
