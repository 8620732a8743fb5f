//! The MongoDB transaction handle, and how a command runs in a session transaction.
//!
//! A command runs through the driver's callback API
//! ([`StartTransaction::and_run2`]), which re-runs the callback on
//! `TransientTransactionError` and retries the commit on
//! `UnknownTransactionCommitResult`. For that to work the callback must hand
//! back the driver's own error, labels intact, so `MongoTx` remembers the
//! last one; the command's error (ours) travels as the driver's custom
//! payload and comes back out unchanged.
//!
//! [`StartTransaction::and_run2`]: mongodb::action::StartTransaction::and_run2

use std::sync::Arc;

use bson::oid::ObjectId;
use bson::{DateTime, Document, doc};
use futures::TryStreamExt;
use mongodb::{ClientSession, Database};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{COMMENTS, DELETION_JOB_PARTS, DELETION_JOBS, MongoStore, POSTS, USERS, outbox, tx_options};
use crate::error::{Error, Result};
use crate::model::{DeletionJobDoc, Id, JobHeader, JobPart, PostId, UserId};
use crate::store::Command;
use crate::store::events::Event;
use crate::store::hidden::stage::Staging;
use crate::store::{AnyDoc, CommentRef, CommentsOf, DocRef, HeldIn, IdsOf, Kind, ListChange, Reads, Tx};

/// Runs `cmd` in one session transaction; see the module docs for retries.
pub(super) async fn run<C: Command>(store: &MongoStore, cmd: C) -> Result<C::Output> {
    let mut session = store.client.start_session().await?;
    let (db, cmd) = (store.db.clone(), Arc::new(cmd));
    let (retries, attempts) = (Arc::clone(&store.retries), Arc::new(std::sync::atomic::AtomicU64::new(0)));
    let attempts_seen = Arc::clone(&attempts);
    // Staged deletions are published before the commit and retired if it
    // fails or the callback runs again (see `hidden::stage`).
    let staging = Arc::new(Staging::new(&store.hidden));
    let staging_in = Arc::clone(&staging);
    let outcome = session
        .start_transaction()
        .with_options(tx_options())
        .and_run2(async move |session| {
            // Owned handles per attempt: the callback captures no borrow, which
            // keeps its future `Send` for every lifetime the driver picks.
            let (db, cmd, staging) = (db.clone(), Arc::clone(&cmd), Arc::clone(&staging_in));
            staging.begin_attempt();
            if attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let mut tx = MongoTx { session, db: &db, now: DateTime::now(), driver_error: None, staged: Vec::new() };
            let done = match cmd.apply(&mut tx).await {
                // The events go in the outbox, in this transaction (see `outbox`).
                Ok(out) => match cmd.events(&out) {
                    events if events.is_empty() => Ok(out),
                    events => tx.record_events(&events).await.map(|()| out),
                },
                Err(err) => Err(err),
            };
            match done {
                Ok(out) => {
                    // The driver commits after this callback returns.
                    staging.publish(&tx.staged);
                    Ok(out)
                }
                Err(err) => Err(tx.driver_error.take().unwrap_or_else(|| mongodb::error::Error::custom(err))),
            }
        })
        .await;
    staging.finish(outcome.is_ok());
    tracing::Span::current().record("attempts", attempts_seen.load(std::sync::atomic::Ordering::Relaxed));
    // No publishing here: every process, this one too, publishes from its
    // tail of the outbox, in commit order (see `outbox`).
    Ok(outcome?)
}

/// The MongoDB transaction handle. It borrows the session for the length of
/// the transaction and every call passes it; there is no session-less call.
struct MongoTx<'s> {
    session: &'s mut ClientSession,
    db: &'s Database,
    now: DateTime,
    /// The last driver error, kept with its labels for the callback API.
    driver_error: Option<mongodb::error::Error>,
    /// Staged deletions recorded by this attempt, published before the commit.
    staged: Vec<DeletionJobDoc>,
}

impl MongoTx<'_> {
    /// Puts `events` in the outbox under the next sequence number, in this transaction.
    async fn record_events(&mut self, events: &[Event]) -> Result<()> {
        let next = outbox::next_number(self.db, self.session).await;
        let sequence = next.map_err(|e| self.fail(e))?;
        let sequence = sequence.ok_or_else(|| Error::internal("the event sequence upsert returned nothing"))?;
        let entry = outbox::entry(outbox::number_of(&sequence)?, events)?;
        let done = self.db.collection::<Document>(outbox::EVENTS).insert_one(entry).session(&mut *self.session).await;
        done.map(drop).map_err(|e| self.fail(e))
    }

    /// Records a driver error for the retry logic and converts it for the command.
    fn fail(&mut self, err: mongodb::error::Error) -> Error {
        let mapped = Error::from(err.clone());
        self.driver_error = Some(err);
        mapped
    }

    async fn find_one<T>(&mut self, coll: &str, id: impl Into<bson::Bson>) -> Result<Option<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        let id = id.into();
        let found = self.db.collection::<T>(coll).find_one(doc! { "_id": id }).session(&mut *self.session).await;
        found.map_err(|e| self.fail(e))
    }

    async fn aggregate(&mut self, coll: &str, pipeline: Vec<Document>) -> Result<Vec<Document>> {
        let cursor = self.db.collection::<Document>(coll).aggregate(pipeline).session(&mut *self.session).await;
        let mut cursor = cursor.map_err(|e| self.fail(e))?;
        let rows: std::result::Result<Vec<Document>, _> = cursor.stream(&mut *self.session).try_collect().await;
        rows.map_err(|e| self.fail(e))
    }

    /// The ids of the documents in `coll` matching `filter`, in id order.
    async fn ids_where(&mut self, coll: &str, filter: Document) -> Result<Vec<ObjectId>> {
        let pipeline =
            vec![doc! { "$match": filter }, doc! { "$project": { "_id": 1 } }, doc! { "$sort": { "_id": 1 } }];
        let rows = self.aggregate(coll, pipeline).await?;
        rows.iter().map(|r| r.get_object_id("_id").map_err(|e| Error::internal_from("an id", e))).collect()
    }

    async fn insert<T>(&mut self, coll: &str, doc: &T) -> Result<()>
    where
        T: Serialize + Send + Sync,
    {
        let done = self.db.collection::<T>(coll).insert_one(doc).session(&mut *self.session).await;
        done.map(|_| ()).map_err(|e| self.fail(e))
    }

    async fn replace<T>(&mut self, coll: &str, id: ObjectId, doc: &T) -> Result<()>
    where
        T: Serialize + Send + Sync,
    {
        let done = self.db.collection::<T>(coll).replace_one(doc! { "_id": id }, doc).session(&mut *self.session).await;
        if done.map_err(|e| self.fail(e))?.matched_count != 1 {
            return Err(Error::internal(format!("replacing {id} in {coll}: it vanished inside its transaction")));
        }
        Ok(())
    }

    /// Deletes what matches `filter` in `coll` and returns the ids it
    /// deleted: the ids first, then one `deleteMany` with the same filter,
    /// both in the transaction's snapshot, so the ids are exactly what goes.
    async fn delete_listed(&mut self, coll: &str, filter: Document) -> Result<Vec<ObjectId>> {
        let ids = self.ids_where(coll, filter.clone()).await?;
        self.delete_many(coll, filter).await?;
        Ok(ids)
    }

    async fn delete_many(&mut self, coll: &str, filter: Document) -> Result<u64> {
        let done = self.db.collection::<Document>(coll).delete_many(filter).session(&mut *self.session).await;
        done.map(|r| r.deleted_count).map_err(|e| self.fail(e))
    }

    /// Applies `update` to the user `id` in place (no read, no whole-document
    /// rewrite); false if there is no such user, or its deletion is staged
    /// (a tombstoned account takes no new references).
    async fn update_user(&mut self, id: UserId, update: Document) -> Result<bool> {
        let done = self
            .db
            .collection::<Document>(USERS)
            .update_one(doc! { "_id": id, "deleting": { "$exists": false } }, update)
            .session(&mut *self.session)
            .await;
        Ok(done.map_err(|e| self.fail(e))?.matched_count == 1)
    }

    async fn update_many(&mut self, coll: &str, filter: Document, update: Document) -> Result<u64> {
        let done = self.db.collection::<Document>(coll).update_many(filter, update).session(&mut *self.session).await;
        done.map(|r| r.modified_count).map_err(|e| self.fail(e))
    }
}

/// The collection documents of `kind` live in.
fn collection(kind: Kind) -> &'static str {
    match kind {
        Kind::User => USERS,
        Kind::Post => POSTS,
        Kind::Comment => COMMENTS,
    }
}

/// The comment field that names `of`'s parent.
fn parent_field(of: CommentsOf) -> &'static str {
    match of {
        CommentsOf::Post => "post",
        CommentsOf::Author => "author",
    }
}

/// A comment's references out of a projected row.
fn comment_ref(row: &Document) -> Result<CommentRef> {
    let get = |k: &str| row.get_object_id(k).map_err(|e| Error::internal_from("a comment reference", e));
    Ok(CommentRef {
        id: Id::from_oid(get("_id")?),
        post: Id::from_oid(get("post")?),
        author: Id::from_oid(get("author")?),
    })
}

impl Reads for MongoTx<'_> {
    async fn find(&mut self, kind: Kind, id: ObjectId) -> Result<Option<AnyDoc>> {
        Ok(match kind {
            Kind::User => self.find_one(USERS, id).await?.map(AnyDoc::User),
            Kind::Post => self.find_one(POSTS, id).await?.map(AnyDoc::Post),
            Kind::Comment => self.find_one(COMMENTS, id).await?.map(AnyDoc::Comment),
        })
    }

    async fn ids(&mut self, question: IdsOf<'_>) -> Result<Vec<ObjectId>> {
        let (coll, filter) = match question {
            IdsOf::PostsBy(author) => (POSTS, doc! { "author": author }),
            IdsOf::PostsLikedBy(user) => (POSTS, doc! { "likedBy": user }),
            // Nothing can match an empty `$in`: skip the command.
            IdsOf::CommentsOn([]) => return Ok(Vec::new()),
            IdsOf::CommentsOn(posts) => (COMMENTS, doc! { "post": { "$in": posts } }),
            IdsOf::CommentsBy(author) => (COMMENTS, doc! { "author": author }),
            IdsOf::UsersFollowingOrFollowedBy(user) => {
                (USERS, doc! { "$or": [ { "followers": user }, { "following": user } ] })
            }
        };
        self.ids_where(coll, filter).await
    }

    async fn comment_refs(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = vec![
            doc! { "$match": { parent_field(of): { "$in": parents } } },
            doc! { "$project": { "_id": 1, "post": 1, "author": 1 } },
        ];
        let rows = self.aggregate(COMMENTS, pipeline).await?;
        rows.iter().map(comment_ref).collect()
    }
}

impl Tx for MongoTx<'_> {
    async fn touch_user(&mut self, id: UserId) -> Result<bool> {
        self.update_user(id, doc! { "$inc": { "rev": 1_i64 } }).await
    }

    async fn list_user_post(&mut self, user: UserId, post: PostId, change: ListChange) -> Result<bool> {
        let update = match change {
            ListChange::Add => doc! { "$push": { "posts": post } },
            ListChange::Remove => doc! { "$pull": { "posts": post } },
        };
        self.update_user(user, update).await
    }

    async fn insert_doc(&mut self, doc: DocRef<'_>) -> Result<()> {
        match doc {
            DocRef::User(user) => self.insert(USERS, user).await,
            DocRef::Post(post) => self.insert(POSTS, post).await,
            DocRef::Comment(comment) => self.insert(COMMENTS, comment).await,
        }
    }

    async fn replace_doc(&mut self, doc: DocRef<'_>) -> Result<()> {
        match doc {
            DocRef::User(user) => self.replace(USERS, user.id.oid(), user).await,
            DocRef::Post(post) => self.replace(POSTS, post.id.oid(), post).await,
            DocRef::Comment(comment) => self.replace(COMMENTS, comment.id.oid(), comment).await,
        }
    }

    async fn delete_ids(&mut self, kind: Kind, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let coll = collection(kind);
        match ids {
            [] => Ok(Vec::new()),
            // One id: the deleted count says whether it existed, in one command.
            [id] => Ok(if self.delete_many(coll, doc! { "_id": id }).await? == 1 { vec![*id] } else { Vec::new() }),
            _ => self.delete_listed(coll, doc! { "_id": { "$in": ids } }).await,
        }
    }

    async fn delete_comments_of(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        if parents.is_empty() {
            // Nothing can match an empty `$in`: skip the commands.
            return Ok(Vec::new());
        }
        // What goes, then one `deleteMany` with the same filter, both in the
        // transaction's snapshot, so the list is exactly what went.
        let filter = doc! { parent_field(of): { "$in": parents } };
        let pipeline =
            vec![doc! { "$match": filter.clone() }, doc! { "$project": { "_id": 1, "post": 1, "author": 1 } }];
        let rows = self.aggregate(COMMENTS, pipeline).await?;
        let removed = rows.iter().map(comment_ref).collect::<Result<Vec<_>>>()?;
        self.delete_many(COMMENTS, filter).await?;
        Ok(removed)
    }

    async fn add_comment_counts(&mut self, deltas: &[(PostId, i64)]) -> Result<()> {
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
            return Err(Error::internal(format!("the commentCount update failed: {errors:?}")));
        }
        Ok(())
    }

    async fn pull_refs(&mut self, user: UserId, held: HeldIn, ids: &[ObjectId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let (coll, filter, update) = match held {
            HeldIn::Likes => {
                (POSTS, doc! { "_id": { "$in": ids }, "likedBy": user }, doc! { "$pull": { "likedBy": user } })
            }
            HeldIn::Follows => {
                (USERS, doc! { "_id": { "$in": ids } }, doc! { "$pull": { "followers": user, "following": user } })
            }
        };
        self.update_many(coll, filter, update).await.map(drop)
    }

    async fn insert_job(&mut self, job: &DeletionJobDoc) -> Result<()> {
        let (header, parts) = job.to_records();
        self.insert(DELETION_JOBS, &header).await?;
        let done =
            self.db.collection::<JobPart>(DELETION_JOB_PARTS).insert_many(&parts).session(&mut *self.session).await;
        done.map_err(|e| self.fail(e))?;
        self.staged.push(job.clone());
        Ok(())
    }

    async fn job(&mut self, id: ObjectId) -> Result<Option<JobHeader>> {
        self.find_one(DELETION_JOBS, id).await
    }

    async fn job_part(&mut self, job: ObjectId, seq: i64) -> Result<Option<JobPart>> {
        self.find_one(DELETION_JOB_PARTS, JobPart::key(&job, seq)).await
    }

    async fn replace_job(&mut self, job: &JobHeader) -> Result<()> {
        self.replace(DELETION_JOBS, job.id, job).await
    }

    async fn delete_job(&mut self, job: &JobHeader) -> Result<bool> {
        let keys: Vec<String> = (0..job.parts).map(|seq| JobPart::key(&job.id, seq)).collect();
        self.delete_many(DELETION_JOB_PARTS, doc! { "_id": { "$in": keys } }).await?;
        Ok(self.delete_many(DELETION_JOBS, doc! { "_id": job.id }).await? == 1)
    }

    fn now(&self) -> DateTime {
        self.now
    }
}
