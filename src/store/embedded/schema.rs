//! The embedded store's tables, and the index entries each document implies.
//!
//! One table per collection (`ObjectId` bytes → BSON document) and one per
//! secondary index (key bytes → `()`). [`Stored::index_entries`] is the one
//! place that says which index keys a document has; the writer keeps them in
//! step on every put and remove, the way a database maintains its own indexes.

use bson::oid::ObjectId;
use redb::TableDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{FastDecode, FastEncode};
use super::keys::{concat, desc_key};
use crate::model::{Chronological, CommentDoc, PostDoc, UserDoc};

/// A collection: document id bytes → BSON.
pub(super) type DocTable = TableDefinition<'static, &'static [u8], &'static [u8]>;
/// A secondary index: key bytes → nothing.
pub(super) type IndexTable = TableDefinition<'static, &'static [u8], ()>;

pub(super) const USERS: DocTable = TableDefinition::new("users");
pub(super) const POSTS: DocTable = TableDefinition::new("posts");
pub(super) const COMMENTS: DocTable = TableDefinition::new("comments");
/// Staged deletions in progress: job id bytes → BSON `JobHeader`.
pub(super) const DELETION_JOBS: DocTable = TableDefinition::new("deletion_jobs");
/// Their lists: part key (`<job hex>:<seq>`) → BSON `JobPart`.
pub(super) const DELETION_JOB_PARTS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("deletion_job_parts");
/// `Idempotency-Key` records: key bytes → BSON `KeptDoc`.
pub(super) const KEPT_ANSWERS: DocTable = TableDefinition::new("kept_answers");
/// Their expiry order: big-endian expiry millis, then key bytes → nothing.
pub(super) const KEPT_BY_EXPIRY: IndexTable = TableDefinition::new("kept_answers_by_expiry");
/// The unique email index: normalised email → user id.
pub(super) const USERS_BY_EMAIL: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("users_by_email");
pub(super) const USERS_BY_CREATED: IndexTable = TableDefinition::new("users_by_created");
pub(super) const USERS_BY_FOLLOWER: IndexTable = TableDefinition::new("users_by_follower");
pub(super) const USERS_BY_FOLLOWING: IndexTable = TableDefinition::new("users_by_following");
pub(super) const POSTS_BY_CREATED: IndexTable = TableDefinition::new("posts_by_created");
pub(super) const POSTS_BY_AUTHOR: IndexTable = TableDefinition::new("posts_by_author");
/// Every post newest first with its author in the key (`desc ++ author`), so
/// the feed can walk the global order and pick its authors' posts from the
/// keys alone, without reading a post it does not show.
pub(super) const POSTS_BY_CREATED_AUTHOR: IndexTable = TableDefinition::new("posts_by_created_author");
pub(super) const POSTS_BY_LIKER: IndexTable = TableDefinition::new("posts_by_liker");
pub(super) const COMMENTS_BY_POST: IndexTable = TableDefinition::new("comments_by_post");
pub(super) const COMMENTS_BY_AUTHOR: IndexTable = TableDefinition::new("comments_by_author");

/// Every collection.
pub(super) const ALL_COLLECTIONS: [DocTable; 3] = [USERS, POSTS, COMMENTS];

/// Every secondary index but the email one.
pub(super) const ALL_INDEXES: [IndexTable; 9] = [
    USERS_BY_CREATED,
    USERS_BY_FOLLOWER,
    USERS_BY_FOLLOWING,
    POSTS_BY_CREATED,
    POSTS_BY_AUTHOR,
    POSTS_BY_CREATED_AUTHOR,
    POSTS_BY_LIKER,
    COMMENTS_BY_POST,
    COMMENTS_BY_AUTHOR,
];

/// A document type the embedded store can hold, with the index entries it implies.
pub(super) trait Stored: Serialize + DeserializeOwned + FastEncode + FastDecode + Send + 'static {
    /// The collection it lives in.
    const TABLE: DocTable;
    /// Its primary key.
    fn id(&self) -> ObjectId;
    /// Every `(index, key)` entry this document must have.
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)>;
}

impl Stored for UserDoc {
    const TABLE: DocTable = USERS;
    fn id(&self) -> ObjectId {
        self.id.oid()
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
        self.id.oid()
    }
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)> {
        let desc = desc_key(&self.cursor_key());
        let mut out = vec![
            (POSTS_BY_CREATED, desc.to_vec()),
            (POSTS_BY_AUTHOR, concat(&self.author.bytes(), &desc)),
            (POSTS_BY_CREATED_AUTHOR, concat(&desc, &self.author.bytes())),
        ];
        out.extend(self.liked_by.iter().map(|u| (POSTS_BY_LIKER, concat(&u.bytes(), &self.id.bytes()))));
        out
    }
}

impl Stored for CommentDoc {
    const TABLE: DocTable = COMMENTS;
    fn id(&self) -> ObjectId {
        self.id.oid()
    }
    fn index_entries(&self) -> Vec<(IndexTable, Vec<u8>)> {
        let desc = desc_key(&self.cursor_key());
        vec![
            (COMMENTS_BY_POST, concat(&self.post.bytes(), &desc)),
            (COMMENTS_BY_AUTHOR, concat(&self.author.bytes(), &desc)),
        ]
    }
}
