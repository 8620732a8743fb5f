//! The event outbox: how a write made through any process reaches the
//! subscribers on every process.
//!
//! A transaction whose command has events takes the next number of one
//! sequence document (`eventSequence`, `$inc`) and inserts its events under
//! that number (`events`), both inside the transaction. Every such
//! transaction writes the sequence document, so two of them conflict and
//! commit one after the other: sequence order is commit order, and the
//! committed events always form a prefix `1..=n`, with no late-committing
//! hole for a reader to skip. The price is that event-producing writes
//! serialize on that one document.
//!
//! Each process tails the outbox once and publishes what it finds into its
//! own hub, in sequence order. It publishes nothing of its own: the tail is
//! the one door, so a process's own writes arrive once, in the same order
//! as everyone else's. Events are kept [`KEEP`] (a TTL index), long enough
//! for any process's next read.
//!
//! - **On a replica set**, the tail is a change stream of the outbox's
//!   inserts. The oplog orders them as they committed, which is sequence
//!   order. The stream is opened before the committed number is read, so
//!   an entry committed in between arrives and is skipped by number, never
//!   lost; a number that jumps ahead is filled from the collection. A
//!   stream that fails resumes from its last token, and one that cannot
//!   resume falls back to polling from the last number it published.
//! - **Without change streams** (mongoeco answers `Unsupported aggregation
//!   stage: $changeStream`; a standalone server refuses them too), the tail
//!   polls every [`POLL`] for the entries after the last number. Since the
//!   numbers leave no hole, a poll can never skip a late commit. While
//!   nobody listens a poll reads only the sequence number.
//!
//! Either way the tail publishes each entry under its number, and a new
//! subscriber reads the committed number when it starts
//! ([`crate::store::Store::listen`]): the entries up to it, which a tail
//! may publish after the subscriber started listening, are skipped, since
//! the subscriber's own reads already see them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bson::{DateTime, Document, doc};
use futures::{StreamExt, TryStreamExt};
use mongodb::Database;
use mongodb::change_stream::ChangeStream;
use mongodb::change_stream::event::{ChangeStreamEvent, ResumeToken};
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{CommentDoc, PostDoc, PostId, UserId};
use crate::store::events::{Event, Hub, Source};

/// The outbox collection.
pub(super) const EVENTS: &str = "events";
/// The collection holding the one sequence document.
pub(super) const SEQUENCE: &str = "eventSequence";
/// The sequence document's id.
const SEQUENCE_ID: &str = "events";
/// How often each process reads the outbox.
pub const POLL: Duration = Duration::from_millis(25);
/// How long events are kept.
const KEEP: Duration = Duration::from_secs(600);
/// Most events one poll publishes; the next poll goes on from there.
const BATCH: i64 = 1000;

/// An event as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Stored {
    CommentAdded { comment: CommentDoc },
    PostChanged { post: PostId },
    PostDeleted { post: PostId },
    PostAdded { post: PostDoc },
    FollowChanged { follower: UserId, followee: UserId, following: bool },
}

impl From<&Event> for Stored {
    fn from(event: &Event) -> Self {
        match event {
            Event::CommentAdded(comment) => Stored::CommentAdded { comment: CommentDoc::clone(comment) },
            Event::PostChanged(post) => Stored::PostChanged { post: *post },
            Event::PostDeleted(post) => Stored::PostDeleted { post: *post },
            Event::PostAdded(post) => Stored::PostAdded { post: PostDoc::clone(post) },
            Event::FollowChanged { follower, followee, following } => {
                Stored::FollowChanged { follower: *follower, followee: *followee, following: *following }
            }
        }
    }
}

impl From<Stored> for Event {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::CommentAdded { comment } => Event::CommentAdded(Arc::new(comment)),
            Stored::PostChanged { post } => Event::PostChanged(post),
            Stored::PostDeleted { post } => Event::PostDeleted(post),
            Stored::PostAdded { post } => Event::PostAdded(Arc::new(post)),
            Stored::FollowChanged { follower, followee, following } => {
                Event::FollowChanged { follower, followee, following }
            }
        }
    }
}

/// One transaction's events, under its sequence number.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "_id")]
    seq: i64,
    events: Vec<Stored>,
    #[serde(rename = "expiresAt")]
    expires_at: DateTime,
}

/// Takes the next sequence number in `session`'s transaction (creating the
/// sequence document on the first event); driver errors come back whole, labels and all.
pub(super) async fn next_number(
    db: &Database,
    session: &mut mongodb::ClientSession,
) -> std::result::Result<Option<Document>, mongodb::error::Error> {
    db.collection::<Document>(SEQUENCE)
        .find_one_and_update(doc! { "_id": SEQUENCE_ID }, doc! { "$inc": { "n": 1_i64 } })
        .upsert(true)
        .return_document(ReturnDocument::After)
        .session(session)
        .await
}

/// The number a sequence document holds.
/// (An upsert's `$inc` may store it as a 32-bit integer: mongoeco does.)
pub(super) fn number_of(doc: &Document) -> Result<i64> {
    match doc.get("n") {
        Some(bson::Bson::Int64(n)) => Ok(*n),
        Some(bson::Bson::Int32(n)) => Ok(i64::from(*n)),
        other => Err(Error::internal(format!("the event sequence document holds {other:?}, not a number"))),
    }
}

/// A sequence number as the hub numbers commits (they start at 1).
fn number(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// The outbox entry for `events` under `seq`.
pub(super) fn entry(seq: i64, events: &[Event]) -> Result<Document> {
    let expires_at = DateTime::from_millis(DateTime::now().timestamp_millis() + KEEP.as_millis() as i64);
    let entry = Entry { seq, events: events.iter().map(Stored::from).collect(), expires_at };
    Ok(bson::serialize_to_document(&entry)?)
}

/// The last sequence number committed (0 before the first event).
pub(super) async fn committed(db: &Database) -> Result<i64> {
    match db.collection::<Document>(SEQUENCE).find_one(doc! { "_id": SEQUENCE_ID }).await? {
        Some(doc) => number_of(&doc),
        None => Ok(0),
    }
}

/// How often a change-stream tail that hears nothing checks that its store still exists.
const ALIVE: Duration = Duration::from_secs(1);

/// The outbox's inserts, as a change stream (from `resume` when given).
async fn watch(
    db: &Database,
    resume: Option<ResumeToken>,
) -> mongodb::error::Result<ChangeStream<ChangeStreamEvent<Entry>>> {
    db.collection::<Entry>(EVENTS)
        .watch()
        .pipeline([doc! { "$match": { "operationType": "insert" } }])
        .resume_after(resume)
        .await
}

/// Starts this process's tail of the outbox, from what is committed now: a
/// change stream where the server has them, polls otherwise. It stops when
/// `hub` is dropped (the store is gone).
pub(super) async fn start_tail(db: &Database, hub: &Arc<Hub>) -> Result<()> {
    match watch(db, None).await {
        Ok(stream) => {
            let from = committed(db).await?;
            hub.set_source(Source::ChangeStream);
            tokio::spawn(stream_tail(db.clone(), Arc::downgrade(hub), stream, from));
        }
        Err(err) => {
            tracing::info!(error = %err, "no change streams on this server: the event outbox is polled every 25 ms");
            let from = committed(db).await?;
            hub.set_source(Source::Poll);
            tokio::spawn(tail(db.clone(), Arc::downgrade(hub), from));
        }
    }
    Ok(())
}

/// Publishes what the change stream brings, in sequence order (see the
/// module's doc); falls back to [`tail`] when the stream cannot go on.
async fn stream_tail(db: Database, hub: Weak<Hub>, mut stream: ChangeStream<ChangeStreamEvent<Entry>>, mut from: i64) {
    loop {
        let next = tokio::time::timeout(ALIVE, stream.next()).await;
        let Some(live) = hub.upgrade() else { return };
        match next {
            // Nothing for a while: the store still exists, so listen on.
            Err(_) => {}
            Ok(Some(Ok(change))) => {
                let Some(entry) = change.full_document else { continue };
                if entry.seq <= from {
                    continue;
                }
                if entry.seq == from + 1 {
                    from = entry.seq;
                    live.publish_numbered(number(entry.seq), entry.events.into_iter().map(Event::from).collect());
                } else {
                    // Entries before this one are missing from the stream: read them all, in order.
                    match publish_after(&db, &live, from).await {
                        Ok(last) => from = from.max(last),
                        Err(err) => tracing::warn!(error = %err, "reading the event outbox failed"),
                    }
                }
            }
            Ok(Some(Err(_)) | None) => {
                let resumed = watch(&db, stream.resume_token()).await;
                match resumed {
                    Ok(again) => stream = again,
                    Err(err) => {
                        tracing::warn!(error = %err, "the event outbox's change stream could not resume: polling it");
                        live.set_source(Source::Poll);
                        drop(live);
                        return tail(db, hub, from).await;
                    }
                }
            }
        }
    }
}

async fn tail(db: Database, hub: Weak<Hub>, mut from: i64) {
    let mut failing = false;
    loop {
        tokio::time::sleep(POLL).await;
        let Some(hub) = hub.upgrade() else { return };
        let polled = if hub.is_heard() { publish_after(&db, &hub, from).await } else { committed(&db).await };
        match polled {
            Ok(last) => {
                from = from.max(last);
                failing = false;
            }
            // Logged once per outage, and retried at the next poll.
            Err(err) if !failing => {
                tracing::warn!(error = %err, "reading the event outbox failed; retrying");
                failing = true;
            }
            Err(_) => {}
        }
    }
}

/// Publishes the entries after `from`, in order; returns the last one's number.
async fn publish_after(db: &Database, hub: &Hub, from: i64) -> Result<i64> {
    let found = db
        .collection::<Entry>(EVENTS)
        .find(doc! { "_id": { "$gt": from } })
        .sort(doc! { "_id": 1 })
        .limit(BATCH)
        .await?;
    let entries: Vec<Entry> = found.try_collect().await?;
    let mut last = from;
    for entry in entries {
        // A gap means the entry expired before this process read it (it
        // was stopped longer than `KEEP`): go on from what exists.
        last = entry.seq;
        hub.publish_numbered(number(entry.seq), entry.events.into_iter().map(Event::from).collect());
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CommentId;

    /// Every event survives its outbox entry's BSON, in order.
    #[test]
    fn events_round_trip_through_the_outbox() {
        let now = DateTime::from_millis(1_700_000_000_000);
        let post = PostDoc {
            id: PostId::new(),
            title: "t".into(),
            body: "b".into(),
            author: UserId::new(),
            liked_by: vec![UserId::new()],
            comment_count: 1,
            created_at: now,
            updated_at: now,
            deleting: None,
        };
        let comment =
            CommentDoc { id: CommentId::new(), body: "c".into(), post: post.id, author: post.author, created_at: now };
        let events = vec![
            Event::CommentAdded(Arc::new(comment)),
            Event::PostChanged(post.id),
            Event::PostDeleted(post.id),
            Event::PostAdded(Arc::new(post)),
            Event::FollowChanged { follower: UserId::new(), followee: UserId::new(), following: false },
        ];
        let doc = entry(7, &events).expect("entry");
        let back: Entry = bson::deserialize_from_document(doc).expect("decode");
        assert_eq!(back.seq, 7);
        assert_eq!(back.events.into_iter().map(Event::from).collect::<Vec<_>>(), events);
    }
}
