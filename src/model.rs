//! The stored documents and the paging vocabulary shared by every backend.
//!
//! Documents are serde structs with MongoDB field names, so the embedded store
//! and MongoDB hold the very same BSON. References are `ObjectId`s kept on
//! both sides of a relation (`users.posts` and `posts.author`), exactly as the
//! seeds model them; the cascade rules keep the two sides in step.

use bson::DateTime;
use bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A user account: profile, credentials and the id arrays that point at it from its side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDoc {
    /// Primary key.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Display name, 1–64 characters.
    pub name: String,
    /// Unique, stored lowercased so uniqueness is case-insensitive.
    pub email: String,
    /// argon2id PHC string. Never leaves the server.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: DateTime,
    /// Ids of the posts this user wrote (the seeds' `user.posts`).
    pub posts: Vec<ObjectId>,
    /// Ids of the users following this user.
    pub followers: Vec<ObjectId>,
    /// Ids of the users this user follows.
    pub following: Vec<ObjectId>,
    /// Bumped by every write that creates a reference *to* this user (a like,
    /// a comment), so that write conflicts with a concurrent deletion of the
    /// user instead of leaving an orphan behind.
    #[serde(default)]
    pub rev: i64,
}

/// A blog post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostDoc {
    /// Primary key.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// 1–200 characters.
    pub title: String,
    /// At most 50,000 characters.
    pub body: String,
    /// The writer; mirrored in the author's `posts` array.
    pub author: ObjectId,
    /// Users who like the post, each at most once.
    pub liked_by: Vec<ObjectId>,
    /// Number of comments on the post, kept in the same transaction as every comment write.
    pub comment_count: i64,
    /// When the post was created.
    pub created_at: DateTime,
    /// When the title or body last changed.
    pub updated_at: DateTime,
}

/// A comment on a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentDoc {
    /// Primary key.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// 1–5,000 characters.
    pub body: String,
    /// The post commented on.
    pub post: ObjectId,
    /// The writer.
    pub author: ObjectId,
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
                CursorKey { created_ms: self.created_at.timestamp_millis(), id: self.id }
            }
        }
    )*};
}
chronological!(UserDoc, PostDoc, CommentDoc);

/// A position in a listing: listings are ordered by `(createdAt desc, _id desc)`,
/// so this pair identifies a place that survives inserts and deletes around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorKey {
    /// Creation time in milliseconds since the epoch.
    pub created_ms: i64,
    /// Tie-breaker for documents created in the same millisecond.
    pub id: ObjectId,
}

/// One page request: at most `first` items strictly after `after`.
///
/// Stores return up to `first + 1` items; the extra one only tells the
/// connection whether there is a next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageQuery {
    /// Page size, already validated to be within `0..=MAX_PAGE`.
    pub first: usize,
    /// Exclusive start position; `None` starts at the newest item.
    pub after: Option<CursorKey>,
}

impl PageQuery {
    /// How many items a store should fetch: one more than asked, to see past the page.
    pub fn fetch_limit(&self) -> usize {
        self.first + 1
    }

    /// Whether `key` lies after this page's start, i.e. may appear on this page.
    pub fn admits(&self, key: &CursorKey) -> bool {
        self.after.is_none_or(|after| newest_first(key, &after).is_gt())
    }
}

/// The listing order every connection uses: newest `createdAt` first, then highest id.
pub fn newest_first(a: &CursorKey, b: &CursorKey) -> std::cmp::Ordering {
    b.cmp(a)
}

/// Default page size when a client gives no `first`.
pub const DEFAULT_PAGE: usize = 20;
/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 100;

/// Validation of user-supplied text, in one place so both the GraphQL layer and
/// any future entry point enforce the same limits.
pub mod limits {
    use super::*;

    /// Checks a string's length in characters (not bytes: names are often non-ASCII).
    pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
        let n = value.chars().count();
        if n < min || n > max {
            let msg = if min == 0 {
                format!("{field} must be at most {max} characters")
            } else {
                format!("{field} must be between {min} and {max} characters")
            };
            return Err(Error::bad_input(field, msg));
        }
        if value.contains('\0') {
            return Err(Error::bad_input(field, format!("{field} must not contain NUL characters")));
        }
        Ok(())
    }

    /// A user name: 1–64 characters, not only whitespace.
    pub fn name(value: &str) -> Result<String> {
        let trimmed = value.trim();
        length("name", trimmed, 1, 64)?;
        Ok(trimmed.to_owned())
    }

    /// A plausible email address, returned lowercased (the stored and compared form).
    pub fn email(value: &str) -> Result<String> {
        let email = value.trim().to_lowercase();
        let bad = || Error::bad_input("email", "email must be a valid email address");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(email)
    }

    /// A password: at least 8 characters, and at most 1,024 so hashing stays cheap to refuse.
    pub fn password(value: &str) -> Result<()> {
        length("password", value, 8, 1024)
    }

    /// A post title: 1–200 characters.
    pub fn title(value: &str) -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::bad_input("title", "title must not be blank"));
        }
        length("title", value, 1, 200)
    }

    /// A post body: at most 50,000 characters.
    pub fn post_body(value: &str) -> Result<()> {
        length("body", value, 0, 50_000)
    }

    /// A comment body: 1–5,000 characters.
    pub fn comment_body(value: &str) -> Result<()> {
        if value.trim().is_empty() {
            return Err(Error::bad_input("body", "body must not be blank"));
        }
        length("body", value, 1, 5_000)
    }
}
