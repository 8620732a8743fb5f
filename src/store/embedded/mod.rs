//! The embedded backend: a single redb file under the data directory.
//!
//! - `schema`: tables, and the index entries each document implies.
//! - `codec`: encoding and decoding stored documents directly to and from BSON bytes.
//! - `keys`: index key encoding (byte order = listing order).
//! - `read`: reads over one read transaction.
//! - `tx`: how a command runs in one transaction.
//! - `group`: the writer thread, which runs writes in groups, one transaction and one fsync per group.
//! - `handle`: the transaction handle (`Reads`, `Tx`) over a write transaction or a snapshot;
//!   `source`: what it reads from.
//! - `kept`: `Idempotency-Key` records, claimed and kept on the writer thread.
//! - `disk`: the open file, refused writes and recovery after an I/O failure (a full disk).
//! - `redo`: the redo log under the file, so a durable commit syncs one sequential
//!   append instead of pages all over the file.
//! - `errors`: redb errors as [`crate::error::Error`], cause kept.
//! - `upgrade`: the one-time upgrade of a blogql 0.1 (redb 2) data directory.
//!
//! Reads run inline in a redb read transaction (an MVCC snapshot); writes
//! queue for redb's single writer, on a thread of their own, and are answered
//! once a durable commit covers them.

mod by_ids;
mod codec;
mod disk;
mod errors;
mod feed;
mod group;
mod handle;
mod kept;
mod keys;
mod read;
mod redo;
mod schema;
mod source;
mod tx;
mod upgrade;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bson::DateTime;
use bson::oid::ObjectId;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};

use self::read::Reader;
use self::schema::{
    ALL_COLLECTIONS, ALL_INDEXES, COMMENTS_BY_AUTHOR, COMMENTS_BY_POST, DELETION_JOB_PARTS, DELETION_JOBS,
    KEPT_ANSWERS, KEPT_BY_EXPIRY, POSTS, POSTS_BY_AUTHOR, POSTS_BY_CREATED, POSTS_BY_CREATED_AUTHOR, Stored, USERS,
    USERS_BY_CREATED, USERS_BY_EMAIL,
};
use super::events::Hub;
use super::hidden::Hidden;
use super::idempotency::{Claim, Fingerprint, IdemKey, Lease};
use super::{Backend, Collection, CommentsOf, CountOf, Pages, PostsOf, Snapshot, UsersOf};
use crate::domain::Page;
use crate::error::{Error, Result};
use crate::model::{CommentDoc, CommentId, DeletionJobDoc, JobHeader, PostDoc, PostId, UserDoc, UserId};
use crate::store::{Command, ReadCommand};

pub use self::group::{DURABLE_COMMITS, GROUPED_JOBS};
pub use self::redo::{REDO_CHECKPOINTS, REDO_REPLAYED_FRAMES};

/// The file name of the database inside the data directory.
pub const DB_FILE: &str = "blogql.redb";

/// The page cache [`EmbeddedStore::open`] gives redb: the server's default
/// (`--store-cache-mib`), not redb's 1 GiB.
pub const DEFAULT_CACHE_BYTES: usize = crate::settings::defaults::STORE_CACHE_MIB * 1024 * 1024;

/// How the store file is opened: the `--store-*` settings it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// redb's page cache, in bytes (`--store-cache-mib`).
    pub cache_bytes: usize,
    /// Each redo log file's size before a checkpoint, in bytes; 0 syncs the
    /// store file itself on every durable commit (`--store-redo-log-mib`).
    pub redo_log_bytes: u64,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            redo_log_bytes: crate::settings::defaults::STORE_REDO_LOG_MIB << 20,
        }
    }
}

/// The embedded redb backend. Cheap to clone: clones share the database.
#[derive(Clone)]
pub struct EmbeddedStore {
    /// The database file, reopened after an I/O failure (see `disk`).
    disk: Arc<disk::Disk>,
    /// The queue of the thread that runs write transactions (see [`group::start_writer`]).
    writer: tokio::sync::mpsc::Sender<group::Job>,
    /// Set on a per-request view: every read of the request shares one MVCC
    /// snapshot, taken at the first read and dropped when the request writes.
    pinned: Option<Arc<Mutex<Option<Arc<ReadTransaction>>>>>,
    /// What staged deletions hide, loaded from the jobs table at open.
    hidden: Arc<Hidden>,
    /// Where committed writes' events go, published on the writer thread in commit order.
    hub: Arc<Hub>,
    /// Twice the commits the writer thread has made (one per group of
    /// writes), odd while one is being made (see [`Backend::version`]).
    commits: Arc<AtomicU64>,
}

/// Builds `posts_by_created_author` for a store written before it existed
/// (the index is empty while posts are not); once, at open, in the opening
/// transaction, so no reader ever sees it half built.
fn backfill_feed_index(wtx: &redb::WriteTransaction) -> Result<()> {
    let mut index = wtx.open_table(POSTS_BY_CREATED_AUTHOR)?;
    let posts = wtx.open_table(POSTS)?;
    if !index.is_empty()? || posts.is_empty()? {
        return Ok(());
    }
    for entry in posts.iter()? {
        let (_, bytes) = entry?;
        let post: PostDoc = codec::decode(bytes.value())?;
        for (table, key) in post.index_entries() {
            if table.name() == POSTS_BY_CREATED_AUTHOR.name() {
                index.insert(key.as_slice(), ())?;
            }
        }
    }
    tracing::info!(posts = posts.len()?, "built the feed's time-and-author index");
    Ok(())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory and
    /// every table so later read transactions never meet a missing table.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, FileOptions::default())
    }

    /// Opens the store with `options` (the `--store-*` settings) instead of the defaults.
    pub fn open_with(data_dir: &Path, options: FileOptions) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::internal_from("creating the data directory", e))?;
        let path = data_dir.join(DB_FILE);
        let db = upgrade::open_or_upgrade(&path, options)?;
        let wtx = db.begin_write()?;
        {
            for table in ALL_COLLECTIONS {
                wtx.open_table(table)?;
            }
            wtx.open_table(USERS_BY_EMAIL)?;
            wtx.open_table(DELETION_JOBS)?;
            wtx.open_table(DELETION_JOB_PARTS)?;
            wtx.open_table(KEPT_ANSWERS)?;
            wtx.open_table(KEPT_BY_EXPIRY)?;
            for index in ALL_INDEXES {
                wtx.open_table(index)?;
            }
            backfill_feed_index(&wtx)?;
        }
        wtx.commit()?;
        let disk = Arc::new(disk::Disk::new(path, options, db));
        let hidden: Arc<Hidden> = Arc::default();
        let commits = Arc::new(AtomicU64::new(0));
        let store = EmbeddedStore {
            writer: group::start_writer(&disk, Arc::clone(&hidden), Arc::clone(&commits))?,
            commits,
            disk,
            pinned: None,
            hidden,
            hub: Arc::default(),
        };
        // Jobs a previous run left unfinished hide their documents from the first read on.
        let jobs = store.read(|r| r.jobs())?;
        store.hidden.reset(&jobs);
        Ok(store)
    }

    /// Runs `f` against the view's snapshot (or a fresh one), on the calling
    /// thread: a batched read is a handful of B-tree lookups in redb's page
    /// cache, far cheaper than a hop to the blocking pool and back.
    fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Reader<'_>) -> Result<T>,
    {
        let rtx = self.read_snapshot()?;
        let hidden = self.hidden.current();
        f(Reader(&rtx, hidden.as_deref()))
    }

    /// The snapshot a read uses: the request's pinned one on a view, a fresh one otherwise.
    fn read_snapshot(&self) -> Result<Arc<ReadTransaction>> {
        let Some(pinned) = &self.pinned else {
            return Ok(Arc::new(self.disk.db()?.begin_read()?));
        };
        let mut pinned = pinned.lock().map_err(|_| Error::internal("snapshot lock poisoned"))?;
        match &*pinned {
            Some(rtx) => Ok(Arc::clone(rtx)),
            None => {
                let rtx = Arc::new(self.disk.db()?.begin_read()?);
                *pinned = Some(Arc::clone(&rtx));
                Ok(rtx)
            }
        }
    }
}

impl Backend for EmbeddedStore {
    async fn ping(&self) -> Result<()> {
        // Ready means writes can succeed: a store refusing them after an I/O
        // failure gets a recovery attempt on the writer thread here, and
        // stays not ready until a probe write commits.
        if self.disk.failing() {
            tx::recover(&self.writer).await?;
        }
        let db = self.disk.db()?;
        tokio::task::spawn_blocking(move || {
            db.begin_read()?.open_table(USERS)?;
            Ok(())
        })
        .await?
    }

    async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<UserDoc>> {
        self.read(|r| r.docs(ids))
    }

    async fn posts_by_ids(&self, ids: &[PostId]) -> Result<Vec<PostDoc>> {
        self.read(|r| r.docs(ids))
    }

    async fn comments_by_ids(&self, ids: &[CommentId]) -> Result<Vec<CommentDoc>> {
        self.read(|r| r.docs(ids))
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        self.read(|r| r.user_by_email(email))
    }

    async fn users_page(&self, page: &Page) -> Result<Vec<UserDoc>> {
        self.read(|r| r.page(USERS_BY_CREATED, &[], page))
    }

    async fn posts_page(&self, page: &Page) -> Result<Vec<PostDoc>> {
        self.read(|r| r.page(POSTS_BY_CREATED, &[], page))
    }

    async fn feed_page(&self, authors: &[UserId], page: &Page) -> Result<Vec<PostDoc>> {
        self.read(|r| r.feed(authors, page))
    }

    async fn posts_of(&self, of: PostsOf, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        let index = match of {
            PostsOf::Author => POSTS_BY_AUTHOR,
        };
        self.read(|r| r.pages(index, keys))
    }

    async fn comments_of(&self, of: CommentsOf, keys: &[(ObjectId, Page)]) -> Result<Pages<CommentDoc>> {
        let index = match of {
            CommentsOf::Post => COMMENTS_BY_POST,
            CommentsOf::Author => COMMENTS_BY_AUTHOR,
        };
        self.read(|r| r.pages(index, keys))
    }

    async fn users_of(&self, of: UsersOf, keys: &[(ObjectId, Page)]) -> Result<Pages<UserDoc>> {
        self.read(|r| r.related_users(of, keys))
    }

    async fn count_all(&self, collection: Collection) -> Result<u64> {
        let table = match collection {
            Collection::Users => USERS,
            Collection::Posts => POSTS,
        };
        self.read(|r| r.len(table))
    }

    async fn count_of(&self, of: CountOf, parents: &[UserId]) -> Result<Vec<u64>> {
        let index = match of {
            CountOf::PostsByAuthor => POSTS_BY_AUTHOR,
            CountOf::CommentsByAuthor => COMMENTS_BY_AUTHOR,
        };
        self.read(|r| parents.iter().map(|p| r.count_prefix(index, &p.bytes())).collect())
    }

    fn transaction_retries(&self) -> u64 {
        // redb has one writer at a time: a transaction never conflicts, so never re-runs.
        0
    }

    fn per_request(&self) -> Self {
        EmbeddedStore {
            disk: Arc::clone(&self.disk),
            writer: self.writer.clone(),
            pinned: Some(Arc::new(Mutex::new(None))),
            hidden: Arc::clone(&self.hidden),
            hub: Arc::clone(&self.hub),
            commits: Arc::clone(&self.commits),
        }
    }

    fn version(&self) -> Option<u64> {
        Some(self.commits.load(Ordering::Acquire)).filter(|n| n % 2 == 0)
    }

    async fn renew(&self) {
        if let Some(pinned) = &self.pinned
            && let Ok(mut pinned) = pinned.lock()
        {
            *pinned = None;
        }
    }

    async fn run<C: Command>(&self, cmd: C) -> Result<C::Output> {
        // Reads after this write must see it: drop the request's snapshot.
        self.renew().await;
        tx::run(&self.writer, &self.hub, cmd).await
    }

    async fn read_only<C: ReadCommand>(&self, cmd: C) -> Result<C::Output> {
        tx::read_only(self.disk.db()?, cmd).await
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.read(|r| Ok(Snapshot { users: r.all_users()?, posts: r.all()?, comments: r.all()?, jobs: r.jobs()? }))
    }

    async fn deletion_job_headers(&self) -> Result<Vec<JobHeader>> {
        self.read(|r| r.job_headers())
    }

    async fn deletion_job(&self, header: JobHeader) -> Result<DeletionJobDoc> {
        self.read(|r| r.job(header))
    }

    async fn claim_key(&self, key: &IdemKey, fingerprint: &Fingerprint, until: DateTime) -> Result<Claim> {
        let (key, fingerprint) = (*key, *fingerprint);
        group::on_writer(&self.writer, move |group| kept::claim(group, &key, &fingerprint, until), |_| {}).await
    }

    async fn keep_answer(&self, key: &IdemKey, lease: Lease, answer: Vec<u8>, until: DateTime) -> Result<()> {
        let key = *key;
        group::on_writer(&self.writer, move |group| kept::keep(group, &key, lease, &answer, until), |_| {}).await
    }

    async fn release_key(&self, key: &IdemKey, lease: Lease) -> Result<()> {
        let key = *key;
        group::on_writer(&self.writer, move |group| kept::release(group, &key, lease), |_| {}).await
    }

    fn hidden(&self) -> &Arc<Hidden> {
        &self.hidden
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.hub
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
        let id = UserId::new();
        let old = UserDoc {
            posts: vec![PostId::new(), PostId::new()],
            post_count: 2,
            ..UserDoc::new(id, "Old".into(), "old@example.com".into(), String::new(), DateTime::now())
        };
        let wtx = embedded.disk.db().expect("db").begin_write().expect("write");
        wtx.open_table(USERS)
            .expect("users")
            .insert(id.bytes().as_slice(), bson::serialize_to_vec(&old).expect("encode").as_slice())
            .expect("insert");
        wtx.commit().expect("commit");
        let store: Store = embedded.clone().into();
        let read = |store: Store| async move { store.users_by_ids(&[id]).await.expect("read").pop().expect("user") };
        assert_eq!(read(store.clone()).await.post_count, 2);

        let cmd = CreatePost {
            author: id,
            title: Title::parse("New").expect("title"),
            body: PostBody::parse("Body").expect("body"),
        };
        store.run(cmd).await.expect("create post");
        let user = read(store.clone()).await;
        assert_eq!((user.post_count, user.posts.len()), (3, 0), "counted, not listed");
        let raw = embedded.disk.db().expect("db").begin_read().expect("read").open_table(USERS).expect("users");
        let bytes = raw.get(id.bytes().as_slice()).expect("get").expect("present");
        let record = bson::RawDocument::from_bytes(bytes.value()).expect("bson");
        assert_eq!(record.get_i64("postCount").ok(), Some(3));
    }
}
