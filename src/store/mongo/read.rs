//! Reads: the per-request snapshot pin, and the queries behind every batched read.
//!
//! A view's first read runs in a snapshot session, and the server answers
//! with the cluster time it read at; every later read of the view opens a
//! snapshot session at that time. So a page and the authors loaded for it
//! come from the same instant, even when another request deletes an author
//! in between. A write by the view clears the pin, so what it reads next
//! includes its own write.

use std::collections::HashMap;

use bson::oid::ObjectId;
use bson::{Bson, DateTime, Document, Timestamp, doc};
use futures::TryStreamExt;
use mongodb::options::SessionOptions;
use mongodb::{ClientSession, SessionCursor};
use serde::de::DeserializeOwned;

use super::MongoStore;
use crate::domain::Page;
use crate::error::{Error, Result};
use crate::model::Id;
use crate::store::Pages;

/// The read snapshot of a per-request view.
#[derive(Clone, Copy)]
pub(super) enum Pin {
    /// No read yet (or the view just wrote).
    Unset,
    /// Reads happen at this cluster time.
    At(Timestamp),
    /// The server gave no snapshot time, so each read sees the latest data.
    Unavailable,
}

/// The session one read runs in. For the view's first read it also holds
/// the pin's lock, so concurrent reads wait to learn the snapshot time.
struct ReadSession<'a> {
    session: ClientSession,
    establishing: Option<tokio::sync::MutexGuard<'a, Pin>>,
}

/// How a one-to-many page is found: from the parent collection, through
/// `$lookup` on `local` = `foreign` into `from`.
pub(super) struct PageLookup {
    /// The parents' collection.
    pub parent: &'static str,
    /// The parent's field holding the join key.
    pub local: &'static str,
    /// The listed documents' collection.
    pub from: &'static str,
    /// The listed documents' field matched against `local`.
    pub foreign: &'static str,
    /// Listed by `(createdAt, _id)` (true) or by `_id` alone (user relations).
    pub by_time: bool,
}

/// Most ids one clause of [`MongoStore::visible`] names; past it the clause
/// is left out and `Store`'s refill skips those documents instead, so a
/// query never carries tens of thousands of ids.
const MAX_FILTERED_IDS: usize = 1000;

/// `filter` and `visible` together (either may be empty).
fn both(filter: Document, visible: Document) -> Document {
    match (filter.is_empty(), visible.is_empty()) {
        (_, true) => filter,
        (true, false) => visible,
        (false, false) => doc! { "$and": [filter, visible] },
    }
}

impl MongoStore {
    /// What leaves out of a page of `coll` the documents staged deletions
    /// hide, matched on the index's own fields (`author`, `post`, `_id`) so
    /// the server skips them before fetching a document: with 2,000 hidden
    /// posts at the head of a list, a page costs one query, not growing
    /// refill steps that each bring hidden documents over the wire. It names
    /// the hidden users and the posts staged on their own (a few ids each;
    /// a deleted user's posts go with the user's id), and for comments every
    /// hidden post while there are at most [`MAX_FILTERED_IDS`]. Whatever it
    /// cannot name cheaply is still left out by `Store`'s refill.
    fn visible(&self, coll: &str) -> Document {
        let Some(sets) = self.hidden.current() else { return Document::new() };
        let users = Id::oids(&sets.users());
        let posts = Id::oids(&sets.posts_of_visible_authors());
        let nin = |ids: &[ObjectId]| (!ids.is_empty() && ids.len() <= MAX_FILTERED_IDS).then(|| doc! { "$nin": ids });
        let mut out = Document::new();
        match coll {
            super::USERS => {
                if let Some(users) = nin(&users) {
                    out.insert("_id", users);
                }
            }
            super::POSTS => {
                if let Some(users) = nin(&users) {
                    out.insert("author", users);
                }
                if let Some(posts) = nin(&posts) {
                    out.insert("_id", posts);
                }
            }
            super::COMMENTS => {
                if let Some(users) = nin(&users) {
                    out.insert("author", users);
                }
                // Comments on a deleted user's posts too, while those are few enough to name.
                let on = sets.posts_up_to(MAX_FILTERED_IDS).map_or(posts, |p| Id::oids(&p));
                if let Some(posts) = nin(&on) {
                    out.insert("post", posts);
                }
            }
            _ => {}
        }
        out
    }
}

/// The filter for "strictly between the page's cursors", newest first by `(createdAt, _id)`.
fn created_filter(page: &Page) -> Document {
    let mut bounds = Vec::new();
    if let Some(after) = page.after() {
        let at = DateTime::from_millis(after.created_ms);
        bounds
            .push(doc! { "$or": [ { "createdAt": { "$lt": at } }, { "createdAt": at, "_id": { "$lt": after.id } } ] });
    }
    if let Some(before) = page.before() {
        let at = DateTime::from_millis(before.created_ms);
        bounds
            .push(doc! { "$or": [ { "createdAt": { "$gt": at } }, { "createdAt": at, "_id": { "$gt": before.id } } ] });
    }
    match bounds.len() {
        0 => doc! {},
        1 => bounds.remove(0),
        _ => doc! { "$and": bounds },
    }
}

/// The filter for "strictly between the page's cursors" in an id-ordered relation.
fn id_filter(page: &Page) -> Document {
    let mut range = Document::new();
    if let Some(after) = page.after() {
        range.insert("$lt", after.id);
    }
    if let Some(before) = page.before() {
        range.insert("$gt", before.id);
    }
    if range.is_empty() {
        doc! {}
    } else {
        doc! { "_id": range }
    }
}

/// The sort that walks a page: newest first forward, oldest first backward.
fn walk_by_time(page: &Page) -> Document {
    let dir = if page.backward() { 1 } else { -1 };
    doc! { "createdAt": dir, "_id": dir }
}

/// The sort that walks an id-ordered relation page.
fn walk_by_id(page: &Page) -> Document {
    doc! { "_id": if page.backward() { 1 } else { -1 } }
}

/// A `$limit` stage's argument: pages are at most 101 long, so an Int32 always fits
/// (and some servers refuse an Int64 there).
fn stage_limit(page: &Page) -> i32 {
    i32::try_from(page.fetch_limit()).unwrap_or(i32::MAX)
}

fn batch(n: usize) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

impl MongoStore {
    /// The session a read runs in: on a view, a snapshot session at the
    /// pinned time (or the one that pins it); otherwise a plain one.
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
        let session = self.client.start_session().with_options(options).await?;
        Ok(ReadSession { session, establishing })
    }

    /// Runs one read (`find` or `aggregate`) in the read's session, collected.
    /// The first read of a view pins the cluster time the server read at.
    pub(super) async fn read<T, F>(&self, op: F) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
        F: AsyncFnOnce(&mut ClientSession) -> mongodb::error::Result<SessionCursor<T>>,
    {
        let mut read = self.read_session().await?;
        let mut cursor = op(&mut read.session).await?;
        let docs: Vec<T> = cursor.stream(&mut read.session).try_collect().await?;
        if let Some(mut pin) = read.establishing {
            *pin = read.session.snapshot_time().map_or(Pin::Unavailable, Pin::At);
        }
        Ok(docs)
    }

    /// The documents of `coll` with these ids, in one `find`.
    pub(super) async fn by_ids<T>(&self, coll: &str, ids: &[impl Copy + Into<Bson> + Send + Sync]) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = doc! { "_id": { "$in": ids } };
        self.read(async |s| self.db.collection::<T>(coll).find(filter).batch_size(batch(ids.len())).session(s).await)
            .await
    }

    /// One page of `coll` under `filter`, in walk order (see [`Page`]), in one `find`.
    pub(super) async fn page<T>(&self, coll: &str, mut filter: Document, page: &Page) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        filter.extend(created_filter(page));
        let filter = both(filter, self.visible(coll));
        let limit = i64::from(stage_limit(page));
        self.read(async |s| {
            self.db
                .collection::<T>(coll)
                .find(filter)
                .sort(walk_by_time(page))
                .limit(limit)
                .batch_size(batch(page.fetch_limit()))
                .session(s)
                .await
        })
        .await
    }

    /// One page per parent: one `aggregate` per distinct page request in the
    /// batch (`$match` the parents, then `$lookup` with a sorted, limited
    /// pipeline). A batch from one query level normally has one.
    pub(super) async fn lookup_pages<T>(&self, how: PageLookup, keys: &[(ObjectId, Page)]) -> Result<Pages<T>>
    where
        T: DeserializeOwned,
    {
        let mut groups: HashMap<Page, Vec<ObjectId>> = HashMap::new();
        for (parent, page) in keys {
            groups.entry(*page).or_default().push(*parent);
        }
        let mut found: HashMap<(ObjectId, Page), Vec<T>> = HashMap::new();
        let visible = self.visible(how.from);
        for (page, parents) in groups {
            let (filter, sort) = if how.by_time {
                (created_filter(&page), walk_by_time(&page))
            } else {
                (id_filter(&page), walk_by_id(&page))
            };
            let filter = both(filter, visible.clone());
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
                    self.db
                        .collection::<Document>(how.parent)
                        .aggregate(pipeline)
                        .batch_size(batch(parents.len()))
                        .session(s)
                        .await
                })
                .await?;
            for row in rows {
                let parent = row.get_object_id("_id").map_err(|e| Error::internal_from("a page row's _id", e))?;
                let docs = row
                    .get_array("page")
                    .map_err(|e| Error::internal_from("a page row's documents", e))?
                    .iter()
                    .map(|d| bson::deserialize_from_bson::<T>(d.clone()).map_err(Error::from))
                    .collect::<Result<Vec<T>>>()?;
                found.insert((parent, page), docs);
            }
        }
        Ok(keys.iter().map(|(parent, page)| found.remove(&(*parent, *page)).unwrap_or_default()).collect())
    }

    /// Counts the documents of `coll` matching `filter`, grouped by the
    /// ObjectId field `by` (or all together when `None`, keyed `None`), in one `aggregate`.
    pub(super) async fn count_groups(
        &self,
        coll: &str,
        filter: Document,
        by: Option<&str>,
    ) -> Result<HashMap<Option<ObjectId>, u64>> {
        let group = by.map_or(Bson::Null, |field| Bson::String(field.to_owned()));
        let pipeline = vec![doc! { "$match": filter }, doc! { "$group": { "_id": group, "n": { "$sum": 1 } } }];
        let rows: Vec<Document> =
            self.read(async |s| self.db.collection::<Document>(coll).aggregate(pipeline).session(s).await).await?;
        let mut counts = HashMap::with_capacity(rows.len());
        for row in rows {
            let key = row.get_object_id("_id").ok();
            let n = match row.get("n") {
                Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
                Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
                other => return Err(Error::internal(format!("a count came back as {other:?}"))),
            };
            counts.insert(key, n);
        }
        Ok(counts)
    }

    /// Every document of `coll`, by id.
    pub(super) async fn all<T>(&self, coll: &str) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + Sync,
    {
        self.read(async |s| self.db.collection::<T>(coll).find(doc! {}).sort(doc! { "_id": 1 }).session(s).await).await
    }
}
