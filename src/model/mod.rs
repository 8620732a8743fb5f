//! The stored documents, exactly as both backends hold them.
//!
//! Documents are serde structs with MongoDB field names, so the embedded store
//! and MongoDB hold the very same BSON. References are `ObjectId`s kept on
//! both sides of a relation (`users.posts` and `posts.author`), exactly as the
//! seeds model them; the cascade rules keep the two sides in step. The
//! records of a staged deletion in progress are in `job`.

use bson::DateTime;
use bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use crate::domain::CursorKey;

mod id;
mod job;

pub use self::id::{CommentId, Id, PostId, UserId};

pub use self::job::{CommentRef, DeletionJobDoc, DeletionKind, JOB_PART_LEN, JobHeader, JobPart, PackedIds};

/// A user account: profile, credentials and the id arrays that point at it from its side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "UserRecord")]
pub struct UserDoc {
    /// Primary key.
    #[serde(rename = "_id")]
    pub id: UserId,
    /// Display name, 1–64 characters.
    pub name: String,
    /// Unique, stored lowercased so uniqueness is case-insensitive.
    pub email: String,
    /// argon2id PHC string. Never leaves the server.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: DateTime,
    /// Ids of the posts this user wrote (the seeds' `user.posts`), as
    /// MongoDB keeps them. Complete in a snapshot and from
    /// [`crate::store::Reads::user_with_posts`]; the embedded store's record
    /// leaves it empty, because its list is the author index, so a post by
    /// an author with 10,000 posts does not rewrite a 10,000-id array. Read
    /// the number through [`UserDoc::post_count`], never this list's length.
    pub posts: Vec<PostId>,
    /// Ids of the users following this user.
    pub followers: Vec<UserId>,
    /// Ids of the users this user follows.
    pub following: Vec<UserId>,
    /// Bumped by every write that creates a reference *to* this user (a like,
    /// a comment), so that write conflicts with a concurrent deletion of the
    /// user instead of leaving an orphan behind.
    #[serde(default)]
    pub rev: i64,
    /// How many posts the user wrote. Both backends fill it the same way,
    /// when a record is decoded (see `UserRecord`): the record's `postCount`
    /// where it keeps one (the embedded store), else the length of `posts`
    /// (MongoDB, where `$push` and `$pull` keep the array and so the count).
    /// Never written by serde, so no MongoDB document holds a count that a
    /// `$push` would leave stale.
    #[serde(skip_serializing)]
    pub post_count: u64,
    /// Set by the first transaction of a staged deletion: the job deleting
    /// this account. From that commit on the account is gone for every read
    /// and write; a background reaper removes what hangs off it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<ObjectId>,
    /// A short text about the user, at most 1,000 characters; absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio: Option<String>,
    /// The version of the user's sessions: every token carries the version
    /// it was issued under, and only tokens of the current one are accepted.
    /// A password change or `logOutEverywhere` increments it, which ends
    /// every earlier token at once, with no clock comparison (a token's `iat`
    /// is in whole seconds, so a cut-off by time would be off by up to one).
    #[serde(default)]
    pub session_version: i64,
    /// The ids of this user's tokens ended one by one (`logOut`). A token id
    /// is an ObjectId whose time part is the token's expiry, so an entry is
    /// dropped once its token would be refused anyway: the list holds only
    /// tokens still unexpired, and a token check needs no other read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_tokens: Vec<ObjectId>,
}

/// A user record as stored, before its post count is settled: the one
/// place that says how `UserDoc::post_count` is filled from a document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRecord {
    #[serde(rename = "_id")]
    id: UserId,
    name: String,
    email: String,
    password_hash: String,
    created_at: DateTime,
    posts: Vec<PostId>,
    followers: Vec<UserId>,
    following: Vec<UserId>,
    #[serde(default)]
    rev: i64,
    post_count: Option<u64>,
    deleting: Option<ObjectId>,
    bio: Option<String>,
    #[serde(default)]
    session_version: i64,
    #[serde(default)]
    revoked_tokens: Vec<ObjectId>,
}

impl From<UserRecord> for UserDoc {
    fn from(r: UserRecord) -> Self {
        let post_count = r.post_count.unwrap_or(r.posts.len() as u64);
        UserDoc {
            id: r.id,
            name: r.name,
            email: r.email,
            password_hash: r.password_hash,
            created_at: r.created_at,
            posts: r.posts,
            followers: r.followers,
            following: r.following,
            rev: r.rev,
            post_count,
            deleting: r.deleting,
            bio: r.bio,
            session_version: r.session_version,
            revoked_tokens: r.revoked_tokens,
        }
    }
}

impl UserDoc {
    /// A new account with no posts and no follows.
    pub fn new(id: UserId, name: String, email: String, password_hash: String, created_at: DateTime) -> Self {
        UserDoc {
            id,
            name,
            email,
            password_hash,
            created_at,
            posts: Vec::new(),
            followers: Vec::new(),
            following: Vec::new(),
            rev: 0,
            post_count: 0,
            deleting: None,
            bio: None,
            session_version: 0,
            revoked_tokens: Vec::new(),
        }
    }

    /// Replaces the whole `posts` list, and the count with it, so a record
    /// written after it (seeding, repair) never keeps a stale count.
    pub fn set_posts(&mut self, posts: Vec<PostId>) {
        self.post_count = posts.len() as u64;
        self.posts = posts;
    }

    /// Whether `posts` holds the whole list (MongoDB, a snapshot, or
    /// [`crate::store::Reads::user_with_posts`]), rather than only the count.
    pub fn lists_all_posts(&self) -> bool {
        self.posts.len() as u64 == self.post_count
    }

    /// Whether deleting `post`, written by this user, changes this record's
    /// posts entry: a record holding its list changes if it lists the post;
    /// one holding only its count counts every post it wrote.
    pub fn lists_post(&self, post: &PostDoc) -> bool {
        post.author == self.id && (!self.lists_all_posts() || self.posts.contains(&post.id))
    }
}

/// A blog post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostDoc {
    /// Primary key.
    #[serde(rename = "_id")]
    pub id: PostId,
    /// 1–200 characters.
    pub title: String,
    /// At most 50,000 characters.
    pub body: String,
    /// The writer; mirrored in the author's `posts` array.
    pub author: UserId,
    /// Users who like the post, each at most once.
    pub liked_by: Vec<UserId>,
    /// Number of comments on the post, kept in the same transaction as every comment write.
    pub comment_count: i64,
    /// When the post was created.
    pub created_at: DateTime,
    /// When the title or body last changed.
    pub updated_at: DateTime,
    /// Set by the first transaction of a staged deletion of this post (see
    /// [`UserDoc::deleting`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleting: Option<ObjectId>,
}

/// A comment on a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentDoc {
    /// Primary key.
    #[serde(rename = "_id")]
    pub id: CommentId,
    /// 1–5,000 characters.
    pub body: String,
    /// The post commented on.
    pub post: PostId,
    /// The writer.
    pub author: UserId,
    /// When the comment was created.
    pub created_at: DateTime,
}

/// Something that sorts newest first in a connection.
pub trait Chronological {
    /// The document's position in a newest-first listing.
    fn cursor_key(&self) -> CursorKey;
}

macro_rules! chronological {
    ($($t:ty),*) => {$(
        impl Chronological for $t {
            fn cursor_key(&self) -> CursorKey {
                CursorKey { created_ms: self.created_at.timestamp_millis(), id: self.id.oid() }
            }
        }
    )*};
}
chronological!(UserDoc, PostDoc, CommentDoc);

/// Which collection a document lives in: what a store's generic document
/// primitives ([`crate::store::Tx::insert`], [`crate::store::Reads::get`],
/// [`crate::store::Tx::delete`]) dispatch on, once, in each backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `users`
    User,
    /// `posts`
    Post,
    /// `comments`
    Comment,
}

/// A borrowed document of any collection, as a backend's write primitive takes it.
#[derive(Debug, Clone, Copy)]
pub enum DocRef<'a> {
    /// A user.
    User(&'a UserDoc),
    /// A post.
    Post(&'a PostDoc),
    /// A comment.
    Comment(&'a CommentDoc),
}

/// An owned document of any collection, as a backend's read primitive returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyDoc {
    /// A user.
    User(UserDoc),
    /// A post.
    Post(PostDoc),
    /// A comment.
    Comment(CommentDoc),
}

/// A stored document type. Commands read and write through the generic
/// methods over this trait, so a backend writes each primitive once, with
/// one `match` over [`Kind`], instead of once per collection.
pub trait Doc: Sized + Send + Sync + 'static {
    /// Its collection.
    const KIND: Kind;
    /// Its primary key.
    fn id(&self) -> Id<Self>;
    /// The document, borrowed as the write primitives take it.
    fn as_doc(&self) -> DocRef<'_>;
    /// The document back out of a read primitive's answer; `None` if the
    /// answer is of another collection (a backend bug, reported as internal).
    fn from_doc(doc: AnyDoc) -> Option<Self>;
}

macro_rules! doc_kind {
    ($($t:ty => $kind:ident),*) => {$(
        impl Doc for $t {
            const KIND: Kind = Kind::$kind;
            fn id(&self) -> Id<Self> {
                self.id
            }
            fn as_doc(&self) -> DocRef<'_> {
                DocRef::$kind(self)
            }
            fn from_doc(doc: AnyDoc) -> Option<Self> {
                match doc {
                    AnyDoc::$kind(d) => Some(d),
                    _ => None,
                }
            }
        }
    )*};
}
doc_kind!(UserDoc => User, PostDoc => Post, CommentDoc => Comment);

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding fills `post_count` by one rule on every path: the record's
    /// `postCount` where it keeps one, else the length of `posts`; and serde
    /// never writes the count, so a MongoDB document cannot hold a stale one.
    #[test]
    fn post_count_is_the_kept_count_else_the_list_length() {
        let mut user = UserDoc::new(UserId::new(), "u".into(), "u@x.io".into(), String::new(), DateTime::now());
        user.set_posts(vec![PostId::new(), PostId::new()]);
        let mut doc = bson::serialize_to_document(&user).expect("encode");
        assert!(!doc.contains_key("postCount"), "{doc:?}");
        let listed: UserDoc = bson::deserialize_from_document(doc.clone()).expect("decode");
        assert_eq!((listed.post_count, listed.lists_all_posts()), (2, true));
        doc.insert("posts", bson::Bson::Array(Vec::new()));
        doc.insert("postCount", 7_i64);
        let counted: UserDoc = bson::deserialize_from_document(doc).expect("decode");
        assert_eq!((counted.post_count, counted.lists_all_posts()), (7, false));
    }
}
