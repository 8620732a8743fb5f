//! The embedded backend: a single redb file under the data directory.
//!
//! redb gives ACID transactions with one writer at a time, so every
//! [`Tx`] here is serializable and a crash at any point leaves
//! either the whole transaction or none of it on disk.
//!
//! Layout: one table per collection (`ObjectId` bytes → BSON document) and
//! one table per secondary index (key bytes → `()`), maintained by
//! `Writer::put` and `Writer::remove` on every document write, the way a
//! database maintains its own indexes. Index keys that list newest first are
//! `parent ++ desc(createdAt, _id)`, so a page is one range scan from the
//! cursor and never a table scan.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bson::DateTime;
use bson::oid::ObjectId;
use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CommentsOf, FaultPlan, Pages, Snapshot, Store, StoreStats, Tx, TxWork, UsersOf, WriteCounter};
use crate::error::{Error, Result};
use crate::model::{Chronological, CommentDoc, CursorKey, PageQuery, PostDoc, UserDoc};

type DocTable = TableDefinition<'static, &'static [u8], &'static [u8]>;
type IndexTable = TableDefinition<'static, &'static [u8], ()>;

const USERS: DocTable = TableDefinition::new("users");
const POSTS: DocTable = TableDefinition::new("posts");
const COMMENTS: DocTable = TableDefinition::new("comments");
const USERS_BY_EMAIL: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("users_by_email");
const USERS_BY_CREATED: IndexTable = TableDefinition::new("users_by_created");
const USERS_BY_FOLLOWER: IndexTable = TableDefinition::new("users_by_follower");
const USERS_BY_FOLLOWING: IndexTable = TableDefinition::new("users_by_following");
const POSTS_BY_CREATED: IndexTable = TableDefinition::new("posts_by_created");
const POSTS_BY_AUTHOR: IndexTable = TableDefinition::new("posts_by_author");
const POSTS_BY_LIKER: IndexTable = TableDefinition::new("posts_by_liker");
const COMMENTS_BY_POST: IndexTable = TableDefinition::new("comments_by_post");
const COMMENTS_BY_AUTHOR: IndexTable = TableDefinition::new("comments_by_author");

const ALL_INDEXES: [IndexTable; 8] = [
    USERS_BY_CREATED,
    USERS_BY_FOLLOWER,
    USERS_BY_FOLLOWING,
    POSTS_BY_CREATED,
    POSTS_BY_AUTHOR,
    POSTS_BY_LIKER,
    COMMENTS_BY_POST,
    COMMENTS_BY_AUTHOR,
];

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "blogql.redb";

/// Index key ordering newest first: ascending byte order of this key is
/// descending `(createdAt, _id)` order.
fn desc_key(key: &CursorKey) -> [u8; 20] {
    let mut out = [0u8; 20];
    let ms = !((key.created_ms as u64) ^ (1 << 63));
    out[..8].copy_from_slice(&ms.to_be_bytes());
    for (o, b) in out[8..].iter_mut().zip(key.id.bytes()) {
        *o = !b;
    }
    out
}

/// Recovers the document id from the tail of a [`desc_key`]-ordered index key.
fn id_from_desc_tail(key: &[u8]) -> Result<ObjectId> {
    let tail =
        key.len().checked_sub(12).map(|start| &key[start..]).ok_or_else(|| Error::internal("index key too short"))?;
    let mut bytes = [0u8; 12];
    for (o, b) in bytes.iter_mut().zip(tail) {
        *o = !b;
    }
    Ok(ObjectId::from_bytes(bytes))
}

/// Recovers the document id from the tail of a `parent ++ id` index key.
fn id_from_plain_tail(key: &[u8]) -> Result<ObjectId> {
    let tail: [u8; 12] = key
        .len()
        .checked_sub(12)
        .and_then(|start| key[start..].try_into().ok())
        .ok_or_else(|| Error::internal("index key too short"))?;
    Ok(ObjectId::from_bytes(tail))
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

/// A document type the embedded store can hold, with the index entries it implies.
trait Stored: Serialize + DeserializeOwned + Send + 'static {
    const TABLE: DocTable;
    fn id(&self) -> ObjectId;
    /// Every `(index, key)` entry this document must have.
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)>;
}

impl Stored for UserDoc {
    const TABLE: DocTable = USERS;
    fn id(&self) -> ObjectId {
        self.id
    }
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)> {
        let me = self.id.bytes();
        let mut out = vec![(USERS_BY_CREATED, desc_key(&self.cursor_key()).to_vec())];
        out.extend(self.followers.iter().map(|f| (USERS_BY_FOLLOWER, concat(&f.bytes(), &me))));
        out.extend(self.following.iter().map(|f| (USERS_BY_FOLLOWING, concat(&f.bytes(), &me))));
        out
    }
}

impl Stored for PostDoc {
    const TABLE: DocTable = POSTS;
    fn id(&self) -> ObjectId {
        self.id
    }
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)> {
        let desc = desc_key(&self.cursor_key());
        let mut out = vec![(POSTS_BY_CREATED, desc.to_vec()), (POSTS_BY_AUTHOR, concat(&self.author.bytes(), &desc))];
        out.extend(self.liked_by.iter().map(|u| (POSTS_BY_LIKER, concat(&u.bytes(), &self.id.bytes()))));
        out
    }
}

impl Stored for CommentDoc {
    const TABLE: DocTable = COMMENTS;
    fn id(&self) -> ObjectId {
        self.id
    }
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)> {
        let desc = desc_key(&self.cursor_key());
        vec![
            (COMMENTS_BY_POST, concat(&self.post.bytes(), &desc)),
            (COMMENTS_BY_AUTHOR, concat(&self.author.bytes(), &desc)),
        ]
    }
}

fn decode<D: Stored>(bytes: &[u8]) -> Result<D> {
    Ok(bson::from_slice(bytes)?)
}

fn get_doc<D: Stored>(table: &impl ReadableTable<&'static [u8], &'static [u8]>, id: &ObjectId) -> Result<Option<D>> {
    match table.get(id.bytes().as_slice())? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// Up to `limit` index keys under `prefix`, strictly after `start` (a key
/// suffix), in index order.
fn scan_prefix(
    index: &impl ReadableTable<&'static [u8], ()>,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Vec<u8>>> {
    let lower = match after {
        Some(suffix) => Bound::Excluded(concat(prefix, suffix)),
        None => Bound::Included(prefix.to_vec()),
    };
    let lower_ref = match &lower {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    };
    let mut out = Vec::new();
    for entry in index.range::<&[u8]>((lower_ref, Bound::Unbounded))? {
        if out.len() >= limit {
            break;
        }
        let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
        let key = key.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push(key.to_vec());
    }
    Ok(out)
}

/// The read helpers shared by the read-only paths, over one read transaction.
struct Reader<'a>(&'a ReadTransaction);

impl Reader<'_> {
    fn docs<D: Stored>(&self, ids: &[ObjectId]) -> Result<Vec<D>> {
        let table = self.0.open_table(D::TABLE)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(doc) = get_doc(&table, id)? {
                out.push(doc);
            }
        }
        Ok(out)
    }

    /// One newest-first page of documents from `index` under `prefix`.
    fn page<D: Stored>(&self, index: IndexTable, prefix: &[u8], page: &PageQuery) -> Result<Vec<D>> {
        let table = self.0.open_table(index)?;
        let after = page.after.map(|c| desc_key(&c));
        let keys = scan_prefix(&table, prefix, after.as_ref().map(|a| a.as_slice()), page.fetch_limit())?;
        let ids = keys.iter().map(|k| id_from_desc_tail(k)).collect::<Result<Vec<_>>>()?;
        self.docs(&ids)
    }

    fn all<D: Stored>(&self) -> Result<Vec<D>> {
        let table = self.0.open_table(D::TABLE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            out.push(decode(value.value())?);
        }
        Ok(out)
    }
}

/// The embedded redb backend.
///
/// Cheap to share: reads run on the blocking pool in their own read
/// transaction; writes queue for redb's single writer.
pub struct EmbeddedStore {
    db: Arc<Database>,
    stats: Arc<StoreStats>,
    faults: Arc<FaultPlan>,
    /// Set on a per-request view: every read of the request shares one MVCC
    /// snapshot, taken at the first read and dropped when the request writes.
    pinned: Option<std::sync::Mutex<Option<Arc<ReadTransaction>>>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory and
    /// every table so later read transactions never meet a missing table.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::internal(format!("creating data dir {}: {e}", data_dir.display())))?;
        let db = Database::create(data_dir.join(DB_FILE))?;
        let wtx = db.begin_write()?;
        {
            for table in [USERS, POSTS, COMMENTS] {
                wtx.open_table(table)?;
            }
            wtx.open_table(USERS_BY_EMAIL)?;
            for index in ALL_INDEXES {
                wtx.open_table(index)?;
            }
        }
        wtx.commit()?;
        Ok(EmbeddedStore { db: Arc::new(db), stats: Arc::default(), faults: Arc::default(), pinned: None })
    }

    /// Runs `f` against a fresh read transaction on the blocking pool, as one round trip.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Reader<'_>) -> Result<T> + Send + 'static,
    {
        self.stats.record_round_trip();
        let rtx = self.read_snapshot()?;
        tokio::task::spawn_blocking(move || f(Reader(&rtx))).await?
    }

    /// The snapshot a read uses: the request's pinned one on a view, a fresh one otherwise.
    fn read_snapshot(&self) -> Result<Arc<ReadTransaction>> {
        let Some(pinned) = &self.pinned else {
            return Ok(Arc::new(self.db.begin_read()?));
        };
        let mut pinned = pinned.lock().map_err(|_| Error::internal("snapshot lock poisoned"))?;
        match &*pinned {
            Some(rtx) => Ok(Arc::clone(rtx)),
            None => {
                let rtx = Arc::new(self.db.begin_read()?);
                *pinned = Some(Arc::clone(&rtx));
                Ok(rtx)
            }
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<()> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let rtx = db.begin_read()?;
            rtx.open_table(USERS)?;
            Ok(())
        })
        .await?
    }

    async fn users_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<UserDoc>> {
        let ids = ids.to_vec();
        self.read(move |r| r.docs(&ids)).await
    }

    async fn posts_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<PostDoc>> {
        let ids = ids.to_vec();
        self.read(move |r| r.docs(&ids)).await
    }

    async fn comments_by_ids(&self, ids: &[ObjectId]) -> Result<Vec<CommentDoc>> {
        let ids = ids.to_vec();
        self.read(move |r| r.docs(&ids)).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        let email = email.to_owned();
        self.read(move |r| {
            let emails = r.0.open_table(USERS_BY_EMAIL)?;
            let Some(id) = emails.get(email.as_str())? else {
                return Ok(None);
            };
            let id = id_from_plain_tail(id.value())?;
            Ok(r.docs::<UserDoc>(&[id])?.pop())
        })
        .await
    }

    async fn users_page(&self, page: &PageQuery) -> Result<Vec<UserDoc>> {
        let page = *page;
        self.read(move |r| r.page(USERS_BY_CREATED, &[], &page)).await
    }

    async fn posts_page(&self, page: &PageQuery) -> Result<Vec<PostDoc>> {
        let page = *page;
        self.read(move |r| r.page(POSTS_BY_CREATED, &[], &page)).await
    }

    async fn posts_by_authors(&self, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<PostDoc>> {
        let keys = keys.to_vec();
        self.read(move |r| keys.iter().map(|(a, p)| r.page(POSTS_BY_AUTHOR, &a.bytes(), p)).collect()).await
    }

    async fn comments_of(&self, of: CommentsOf, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<CommentDoc>> {
        let index = match of {
            CommentsOf::Post => COMMENTS_BY_POST,
            CommentsOf::Author => COMMENTS_BY_AUTHOR,
        };
        let keys = keys.to_vec();
        self.read(move |r| keys.iter().map(|(p, q)| r.page(index, &p.bytes(), q)).collect()).await
    }

    async fn users_of(&self, of: UsersOf, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<UserDoc>> {
        let keys = keys.to_vec();
        self.read(move |r| {
            keys.iter()
                .map(|(parent, page)| {
                    let ids = match of {
                        UsersOf::Followers => r.docs::<UserDoc>(&[*parent])?.pop().map(|u| u.followers),
                        UsersOf::Following => r.docs::<UserDoc>(&[*parent])?.pop().map(|u| u.following),
                        UsersOf::Likers => r.docs::<PostDoc>(&[*parent])?.pop().map(|p| p.liked_by),
                    };
                    let ids = related_page_ids(ids.unwrap_or_default(), page);
                    r.docs(&ids)
                })
                .collect()
        })
        .await
    }

    fn per_request(self: Arc<Self>) -> super::DynStore {
        Arc::new(EmbeddedStore {
            db: Arc::clone(&self.db),
            stats: Arc::clone(&self.stats),
            faults: Arc::clone(&self.faults),
            pinned: Some(std::sync::Mutex::new(None)),
        })
    }

    async fn run_tx(&self, mut work: TxWork) -> Result<Box<dyn Any + Send>> {
        self.stats.record_round_trip();
        // Reads after this write must see it: drop the request's snapshot.
        if let Some(pinned) = &self.pinned
            && let Ok(mut pinned) = pinned.lock()
        {
            *pinned = None;
        }
        let db = Arc::clone(&self.db);
        let counter = WriteCounter::new(&self.faults);
        tokio::task::spawn_blocking(move || {
            let mut tx = EmbeddedTx { writer: Writer(db.begin_write()?), counter, now: DateTime::now() };
            // Every method of EmbeddedTx completes without yielding, so driving
            // the work on this blocking thread never parks a runtime worker.
            match futures::executor::block_on(work(&mut tx)) {
                Ok(out) => {
                    tx.writer.0.commit()?;
                    Ok(out)
                }
                Err(err) => {
                    tx.writer.0.abort()?;
                    Err(err)
                }
            }
        })
        .await?
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.read(|r| Ok(Snapshot { users: r.all()?, posts: r.all()?, comments: r.all()? })).await
    }

    fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn faults(&self) -> &FaultPlan {
        &self.faults
    }
}

/// The page of ids, newest account first, from an id array stored on a parent document.
///
/// User relations are ordered by id (an ObjectId starts with its creation
/// second), so the cursor's `created_ms` is unused and always 0.
pub fn related_page_ids(mut ids: Vec<ObjectId>, page: &PageQuery) -> Vec<ObjectId> {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.into_iter().filter(|id| page.after.is_none_or(|c| *id < c.id)).take(page.fetch_limit()).collect()
}

/// Document writes with index maintenance, over one write transaction.
struct Writer(WriteTransaction);

impl Writer {
    fn get<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>> {
        let table = self.0.open_table(D::TABLE)?;
        get_doc(&table, id)
    }

    fn index_ids(&self, index: IndexTable, prefix: &[u8], plain_tail: bool) -> Result<Vec<ObjectId>> {
        let table = self.0.open_table(index)?;
        scan_prefix(&table, prefix, None, usize::MAX)?
            .iter()
            .map(|k| if plain_tail { id_from_plain_tail(k) } else { id_from_desc_tail(k) })
            .collect()
    }

    /// Writes `doc`, replacing any previous version and its index entries.
    fn put<D: Stored>(&self, doc: &D) -> Result<()> {
        if let Some(old) = self.get::<D>(&doc.id())? {
            for (index, key) in old.index_entries() {
                self.0.open_table(index)?.remove(key.as_slice())?;
            }
        }
        for (index, key) in doc.index_entries() {
            self.0.open_table(index)?.insert(key.as_slice(), ())?;
        }
        let bytes = bson::to_vec(doc)?;
        self.0.open_table(D::TABLE)?.insert(doc.id().bytes().as_slice(), bytes.as_slice())?;
        Ok(())
    }

    /// Deletes the document with `id` and its index entries; returns it if it existed.
    fn remove<D: Stored>(&self, id: &ObjectId) -> Result<Option<D>> {
        let Some(old) = self.get::<D>(id)? else {
            return Ok(None);
        };
        for (index, key) in old.index_entries() {
            self.0.open_table(index)?.remove(key.as_slice())?;
        }
        self.0.open_table(D::TABLE)?.remove(id.bytes().as_slice())?;
        Ok(Some(old))
    }
}

/// The embedded transaction handle.
struct EmbeddedTx {
    writer: Writer,
    counter: WriteCounter,
    now: DateTime,
}

impl EmbeddedTx {
    fn insert<D: Stored>(&mut self, doc: &D, what: &str) -> Result<()> {
        self.counter.step(what)?;
        if self.writer.get::<D>(&doc.id())?.is_some() {
            return Err(Error::Conflict(format!("{what}: id {} already exists", doc.id())));
        }
        self.writer.put(doc)
    }

    fn replace<D: Stored>(&mut self, doc: &D, what: &str) -> Result<()> {
        self.counter.step(what)?;
        if self.writer.get::<D>(&doc.id())?.is_none() {
            return Err(Error::internal(format!("{what}: document {} vanished inside its transaction", doc.id())));
        }
        self.writer.put(doc)
    }

    fn delete_comments(&mut self, ids: &[ObjectId]) -> Result<Vec<CommentDoc>> {
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            gone.extend(self.writer.remove::<CommentDoc>(id)?);
        }
        Ok(gone)
    }
}

#[async_trait]
impl Tx for EmbeddedTx {
    async fn user(&mut self, id: ObjectId) -> Result<Option<UserDoc>> {
        self.writer.get(&id)
    }

    async fn post(&mut self, id: ObjectId) -> Result<Option<PostDoc>> {
        self.writer.get(&id)
    }

    async fn comment(&mut self, id: ObjectId) -> Result<Option<CommentDoc>> {
        self.writer.get(&id)
    }

    async fn post_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>> {
        self.writer.index_ids(POSTS_BY_AUTHOR, &author.bytes(), false)
    }

    async fn insert_user(&mut self, user: &UserDoc) -> Result<()> {
        self.counter.step("insert user")?;
        {
            let mut emails = self.writer.0.open_table(USERS_BY_EMAIL)?;
            if emails.get(user.email.as_str())?.is_some() {
                return Err(Error::Conflict("an account with this email already exists".into()));
            }
            emails.insert(user.email.as_str(), user.id.bytes().as_slice())?;
        }
        self.writer.put(user)
    }

    async fn insert_post(&mut self, post: &PostDoc) -> Result<()> {
        self.insert(post, "insert post")
    }

    async fn insert_comment(&mut self, comment: &CommentDoc) -> Result<()> {
        self.insert(comment, "insert comment")
    }

    async fn replace_user(&mut self, user: &UserDoc) -> Result<()> {
        self.replace(user, "replace user")
    }

    async fn replace_post(&mut self, post: &PostDoc) -> Result<()> {
        self.replace(post, "replace post")
    }

    async fn delete_comments_on_posts(&mut self, posts: &[ObjectId]) -> Result<u64> {
        self.counter.step("delete comments on posts")?;
        let mut n = 0;
        for post in posts {
            let ids = self.writer.index_ids(COMMENTS_BY_POST, &post.bytes(), false)?;
            n += self.delete_comments(&ids)?.len() as u64;
        }
        Ok(n)
    }

    async fn delete_comments_by_author(&mut self, author: ObjectId) -> Result<Vec<(ObjectId, i64)>> {
        self.counter.step("delete comments by author")?;
        let ids = self.writer.index_ids(COMMENTS_BY_AUTHOR, &author.bytes(), false)?;
        let mut per_post: BTreeMap<ObjectId, i64> = BTreeMap::new();
        for comment in self.delete_comments(&ids)? {
            *per_post.entry(comment.post).or_default() += 1;
        }
        Ok(per_post.into_iter().collect())
    }

    async fn delete_comment(&mut self, id: ObjectId) -> Result<bool> {
        self.counter.step("delete comment")?;
        Ok(!self.delete_comments(&[id])?.is_empty())
    }

    async fn add_comment_counts(&mut self, deltas: &[(ObjectId, i64)]) -> Result<()> {
        self.counter.step("add comment counts")?;
        for (id, delta) in deltas {
            if let Some(mut post) = self.writer.get::<PostDoc>(id)? {
                post.comment_count += delta;
                self.writer.put(&post)?;
            }
        }
        Ok(())
    }

    async fn delete_posts(&mut self, ids: &[ObjectId]) -> Result<u64> {
        self.counter.step("delete posts")?;
        let mut n = 0;
        for id in ids {
            n += u64::from(self.writer.remove::<PostDoc>(id)?.is_some());
        }
        Ok(n)
    }

    async fn pull_liker_everywhere(&mut self, user: ObjectId) -> Result<u64> {
        self.counter.step("pull liker")?;
        let posts = self.writer.index_ids(POSTS_BY_LIKER, &user.bytes(), true)?;
        let mut n = 0;
        for id in posts {
            if let Some(mut post) = self.writer.get::<PostDoc>(&id)? {
                post.liked_by.retain(|u| *u != user);
                self.writer.put(&post)?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn pull_follow_refs_everywhere(&mut self, user: ObjectId) -> Result<u64> {
        self.counter.step("pull follow refs")?;
        let mut ids: BTreeSet<ObjectId> =
            self.writer.index_ids(USERS_BY_FOLLOWER, &user.bytes(), true)?.into_iter().collect();
        ids.extend(self.writer.index_ids(USERS_BY_FOLLOWING, &user.bytes(), true)?);
        let mut n = 0;
        for id in ids {
            if let Some(mut other) = self.writer.get::<UserDoc>(&id)? {
                other.followers.retain(|u| *u != user);
                other.following.retain(|u| *u != user);
                self.writer.put(&other)?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_user(&mut self, id: ObjectId) -> Result<bool> {
        self.counter.step("delete user")?;
        let Some(user) = self.writer.remove::<UserDoc>(&id)? else {
            return Ok(false);
        };
        self.writer.0.open_table(USERS_BY_EMAIL)?.remove(user.email.as_str())?;
        Ok(true)
    }

    fn now(&self) -> DateTime {
        self.now
    }
}
