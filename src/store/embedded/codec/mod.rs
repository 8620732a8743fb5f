//! Encoding and decoding stored documents straight to and from BSON bytes.
//!
//! serde's path through the `bson` crate decodes every `DateTime` through its
//! extended-JSON model (a map, then a string parse), which made decoding a
//! third of a list query's CPU; and it encodes every `ObjectId` through a hex
//! string, which made rewriting an author with 10,000 posts cost four times
//! a small one. The documents this store writes have one layout, so
//! [`encode`] and [`decode`], the store's only way between documents and
//! bytes, go direct:
//! - [`encode_fast`] writes exactly the bytes `bson::serialize_to_vec` would
//!   (the tests compare them byte for byte), except that a user record holds
//!   its post count instead of its post list (see `UserDoc`'s `FastEncode`);
//! - [`decode_fast`] reads the elements in place (see [`elements`]).
//!   Anything it does not expect (another integer width, a missing or
//!   unknown field: a document written by other code) returns `None`, and the
//!   caller decodes it with serde instead, which is the reference: the tests
//!   check that both agree on every document.

use bson::oid::ObjectId;

use elements::{Elements, Value};

use crate::error::Result;
use crate::model::{CommentDoc, Id, PostDoc, UserDoc};

/// Encodes a document for storage: directly, through serde only for a
/// document too large for BSON, to get serde's error.
pub(super) fn encode<D: FastEncode + serde::Serialize>(doc: &D) -> Result<Vec<u8>> {
    match encode_fast(doc) {
        Some(bytes) => Ok(bytes),
        None => Ok(bson::serialize_to_vec(doc)?),
    }
}

/// Decodes a stored document: directly when it has the layout this store
/// writes, through serde otherwise.
pub(super) fn decode<D: FastDecode + serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<D> {
    match decode_fast(bytes) {
        Some(doc) => Ok(doc),
        None => Ok(bson::deserialize_from_slice(bytes)?),
    }
}

/// A document with a direct encoder for the layout this store writes.
pub(super) trait FastEncode {
    /// Appends the document's elements, in serde's field order.
    fn encode_fields(&self, doc: &mut Writer<'_>);
}

/// The document's BSON bytes, as `bson::serialize_to_vec` would write them;
/// `None` only if a length does not fit BSON's 32 bits.
fn encode_fast<D: FastEncode>(doc: &D) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut writer = Writer::begin(&mut out);
    doc.encode_fields(&mut writer);
    writer.end()?;
    Some(out)
}

/// Appends one BSON document to a buffer: its elements, then its length.
pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
    /// Set when a string is too long for BSON's 32-bit lengths.
    overflow: bool,
}

impl<'a> Writer<'a> {
    fn begin(out: &'a mut Vec<u8>) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        Writer { out, start, overflow: false }
    }

    fn key(&mut self, kind: u8, key: &[u8]) {
        self.out.push(kind);
        self.out.extend_from_slice(key);
        self.out.push(0);
    }

    fn oid(&mut self, key: &str, id: impl RawId) {
        self.key(0x07, key.as_bytes());
        self.out.extend_from_slice(&id.raw().bytes());
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(0x02, key.as_bytes());
        match i32::try_from(value.len() + 1) {
            Ok(len) => self.out.extend_from_slice(&len.to_le_bytes()),
            Err(_) => self.overflow = true,
        }
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(0);
    }

    fn datetime(&mut self, key: &str, value: bson::DateTime) {
        self.key(0x09, key.as_bytes());
        self.out.extend_from_slice(&value.timestamp_millis().to_le_bytes());
    }

    fn int64(&mut self, key: &str, value: i64) {
        self.key(0x12, key.as_bytes());
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// An array of ids: a document keyed "0", "1", ….
    fn ids<I: RawId>(&mut self, key: &str, ids: &[I]) {
        self.key(0x04, key.as_bytes());
        let mut array = Writer::begin(self.out);
        let mut digits = [0u8; 20];
        for (i, id) in ids.iter().enumerate() {
            array.key(0x07, decimal(i, &mut digits));
            array.out.extend_from_slice(&id.raw().bytes());
        }
        if array.end().is_none() {
            self.overflow = true;
        }
    }

    /// Closes the document: the terminating zero, then its length up front.
    fn end(self) -> Option<()> {
        self.out.push(0);
        let len = i32::try_from(self.out.len() - self.start).ok().filter(|_| !self.overflow)?;
        self.out[self.start..self.start + 4].copy_from_slice(&len.to_le_bytes());
        Some(())
    }
}

/// `n` in decimal, written into `buf` without going through `fmt`.
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// A user's record keeps the post count, not the list: the list is the
/// `posts_by_author` index, so a new post is one index entry and a small
/// rewrite of this record, whatever the author's post count. `posts` is
/// written empty (records from before this layout have the full list and no
/// count, and still decode: their count is the list's length).
impl FastEncode for UserDoc {
    fn encode_fields(&self, doc: &mut Writer<'_>) {
        doc.oid("_id", self.id);
        doc.string("name", &self.name);
        doc.string("email", &self.email);
        doc.string("passwordHash", &self.password_hash);
        doc.datetime("createdAt", self.created_at);
        doc.ids::<ObjectId>("posts", &[]);
        doc.ids("followers", &self.followers);
        doc.ids("following", &self.following);
        doc.int64("rev", self.rev);
        doc.int64("postCount", i64::try_from(self.post_count).unwrap_or(i64::MAX));
        if let Some(job) = &self.deleting {
            doc.oid("deleting", *job);
        }
        if let Some(bio) = &self.bio {
            doc.string("bio", bio);
        }
        doc.int64("sessionVersion", self.session_version);
        if !self.revoked_tokens.is_empty() {
            doc.ids("revokedTokens", &self.revoked_tokens);
        }
    }
}

impl FastEncode for PostDoc {
    fn encode_fields(&self, doc: &mut Writer<'_>) {
        doc.oid("_id", self.id);
        doc.string("title", &self.title);
        doc.string("body", &self.body);
        doc.oid("author", self.author);
        doc.ids("likedBy", &self.liked_by);
        doc.int64("commentCount", self.comment_count);
        doc.datetime("createdAt", self.created_at);
        doc.datetime("updatedAt", self.updated_at);
        if let Some(job) = &self.deleting {
            doc.oid("deleting", *job);
        }
    }
}

impl FastEncode for CommentDoc {
    fn encode_fields(&self, doc: &mut Writer<'_>) {
        doc.oid("_id", self.id);
        doc.string("body", &self.body);
        doc.oid("post", self.post);
        doc.oid("author", self.author);
        doc.datetime("createdAt", self.created_at);
    }
}

/// A document with a direct decoder for the layout this store writes.
pub(super) trait FastDecode: Sized {
    /// The document whose elements these are, or `None` if they are not in the expected layout.
    fn decode_fast(raw: Elements<'_>) -> Option<Self>;
}

/// The bytes as a document, then [`FastDecode::decode_fast`].
fn decode_fast<D: FastDecode>(bytes: &[u8]) -> Option<D> {
    D::decode_fast(Elements::of(bytes)?)
}

/// An id as the codec reads and writes it: a bare `ObjectId`, or a typed
/// [`Id`] (the same 12 bytes).
trait RawId: Copy {
    fn raw(self) -> ObjectId;
    fn from_raw(id: ObjectId) -> Self;
}

impl RawId for ObjectId {
    fn raw(self) -> ObjectId {
        self
    }
    fn from_raw(id: ObjectId) -> Self {
        id
    }
}

impl<D> RawId for Id<D> {
    fn raw(self) -> ObjectId {
        self.oid()
    }
    fn from_raw(id: ObjectId) -> Self {
        Id::from_oid(id)
    }
}

/// Assigns each element of `raw` to the field its key names, with the type
/// that field must have; any other key or type, or a key seen twice, makes
/// the whole decode `None`.
macro_rules! fields {
    ($raw:expr, { $($key:literal => $var:ident : $variant:ident $(($conv:expr))?),* $(,)? }) => {{
        $(let mut $var = None;)*
        let mut raw = $raw;
        while let Some((key, value)) = raw.next_element()? {
            $(
                if key == $key.as_bytes() {
                    match value {
                        Value::$variant(v) if $var.is_none() => $var = Some(fields!(@conv v $(, $conv)?)),
                        _ => return None,
                    }
                    continue;
                }
            )*
            return None;
        }
        ($($var),*)
    }};
    (@conv $v:ident) => { $v };
    (@conv $v:ident, $conv:expr) => { $conv($v)? };
}

impl FastDecode for UserDoc {
    fn decode_fast(raw: Elements<'_>) -> Option<Self> {
        let (
            id,
            name,
            email,
            password_hash,
            created_at,
            posts,
            followers,
            following,
            rev,
            post_count,
            deleting,
            bio,
            session_version,
            revoked_tokens,
        ) = fields!(raw, {
            "_id" => id: ObjectId,
            "name" => name: String,
            "email" => email: String,
            "passwordHash" => password_hash: String,
            "createdAt" => created_at: DateTime,
            "posts" => posts: Array(Elements::ids),
            "followers" => followers: Array(Elements::ids),
            "following" => following: Array(Elements::ids),
            "rev" => rev: Int64,
            "postCount" => post_count: Int64,
            "deleting" => deleting: ObjectId,
            "bio" => bio: String,
            "sessionVersion" => session_version: Int64,
            "revokedTokens" => revoked_tokens: Array(Elements::ids),
        });
        let posts = posts?;
        // The one rule `UserDoc::post_count` states: the kept count, else the list's length.
        let posts_len = posts.len() as u64;
        Some(UserDoc {
            id: Id::from_oid(id?),
            name: name?.to_owned(),
            email: email?.to_owned(),
            password_hash: password_hash?.to_owned(),
            created_at: created_at?,
            posts,
            followers: followers?,
            following: following?,
            rev: rev.unwrap_or(0),
            post_count: match post_count {
                // Negative is not a count (serde refuses it too).
                Some(n) => u64::try_from(n).ok()?,
                None => posts_len,
            },
            deleting,
            bio: bio.map(str::to_owned),
            session_version: session_version.unwrap_or(0),
            revoked_tokens: revoked_tokens.unwrap_or_default(),
        })
    }
}

impl FastDecode for PostDoc {
    fn decode_fast(raw: Elements<'_>) -> Option<Self> {
        let (id, title, body, author, liked_by, comment_count, created_at, updated_at, deleting) = fields!(raw, {
            "_id" => id: ObjectId,
            "title" => title: String,
            "body" => body: String,
            "author" => author: ObjectId,
            "likedBy" => liked_by: Array(Elements::ids),
            "commentCount" => comment_count: Int64,
            "createdAt" => created_at: DateTime,
            "updatedAt" => updated_at: DateTime,
            "deleting" => deleting: ObjectId,
        });
        Some(PostDoc {
            id: Id::from_oid(id?),
            title: title?.to_owned(),
            body: body?.to_owned(),
            author: Id::from_oid(author?),
            liked_by: liked_by?,
            comment_count: comment_count?,
            created_at: created_at?,
            updated_at: updated_at?,
            deleting,
        })
    }
}

impl FastDecode for CommentDoc {
    fn decode_fast(raw: Elements<'_>) -> Option<Self> {
        let (id, body, post, author, created_at) = fields!(raw, {
            "_id" => id: ObjectId,
            "body" => body: String,
            "post" => post: ObjectId,
            "author" => author: ObjectId,
            "createdAt" => created_at: DateTime,
        });
        Some(CommentDoc {
            id: Id::from_oid(id?),
            body: body?.to_owned(),
            post: Id::from_oid(post?),
            author: Id::from_oid(author?),
            created_at: created_at?,
        })
    }
}

mod elements;
#[cfg(test)]
mod tests;
