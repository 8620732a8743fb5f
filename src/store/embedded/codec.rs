//! Decoding stored documents straight from their BSON bytes.
//!
//! serde's path through the `bson` crate decodes every `DateTime` through its
//! extended-JSON model (a map, then a string parse), which made decoding a
//! third of a list query's CPU. The documents this store writes have one
//! layout, so [`decode_fast`] reads their elements directly with
//! [`RawDocument`]. Anything it does not expect (another integer width, a
//! missing or unknown field: a document written by other code) returns
//! `None`, and the caller decodes it with serde instead, which is the
//! reference: the test below checks that both agree on every document.

use crate::model::{CommentDoc, PostDoc, UserDoc};
use bson::oid::ObjectId;
use bson::raw::{RawArray, RawBsonRef, RawDocument};

/// A document with a direct decoder for the layout this store writes.
pub(super) trait FastDecode: Sized {
    /// The document in `bytes`, or `None` if they are not in the expected layout.
    fn decode_fast(raw: &RawDocument) -> Option<Self>;
}

/// The bytes as a document, then [`FastDecode::decode_fast`].
pub(super) fn decode_fast<D: FastDecode>(bytes: &[u8]) -> Option<D> {
    D::decode_fast(RawDocument::from_bytes(bytes).ok()?)
}

fn ids(array: &RawArray) -> Option<Vec<ObjectId>> {
    array
        .into_iter()
        .map(|item| match item {
            Ok(RawBsonRef::ObjectId(id)) => Some(id),
            _ => None,
        })
        .collect()
}

/// Assigns each element of `raw` to the field its key names, with the type
/// that field must have; any other key or type makes the whole decode `None`.
macro_rules! fields {
    ($raw:expr, { $($key:literal => $var:ident : $variant:ident $(($conv:expr))?),* $(,)? }) => {{
        $(let mut $var = None;)*
        for element in $raw.iter() {
            let (key, value) = element.ok()?;
            match (key.as_str(), value) {
                $(($key, RawBsonRef::$variant(v)) => $var = Some(fields!(@conv v $(, $conv)?)),)*
                _ => return None,
            }
        }
        ($($var),*)
    }};
    (@conv $v:ident) => { $v };
    (@conv $v:ident, $conv:expr) => { $conv($v)? };
}

impl FastDecode for UserDoc {
    fn decode_fast(raw: &RawDocument) -> Option<Self> {
        let (id, name, email, password_hash, created_at, posts, followers, following, rev) = fields!(raw, {
            "_id" => id: ObjectId,
            "name" => name: String,
            "email" => email: String,
            "passwordHash" => password_hash: String,
            "createdAt" => created_at: DateTime,
            "posts" => posts: Array(ids),
            "followers" => followers: Array(ids),
            "following" => following: Array(ids),
            "rev" => rev: Int64,
        });
        Some(UserDoc {
            id: id?,
            name: name?.to_owned(),
            email: email?.to_owned(),
            password_hash: password_hash?.to_owned(),
            created_at: created_at?,
            posts: posts?,
            followers: followers?,
            following: following?,
            rev: rev.unwrap_or(0),
        })
    }
}

impl FastDecode for PostDoc {
    fn decode_fast(raw: &RawDocument) -> Option<Self> {
        let (id, title, body, author, liked_by, comment_count, created_at, updated_at) = fields!(raw, {
            "_id" => id: ObjectId,
            "title" => title: String,
            "body" => body: String,
            "author" => author: ObjectId,
            "likedBy" => liked_by: Array(ids),
            "commentCount" => comment_count: Int64,
            "createdAt" => created_at: DateTime,
            "updatedAt" => updated_at: DateTime,
        });
        Some(PostDoc {
            id: id?,
            title: title?.to_owned(),
            body: body?.to_owned(),
            author: author?,
            liked_by: liked_by?,
            comment_count: comment_count?,
            created_at: created_at?,
            updated_at: updated_at?,
        })
    }
}

impl FastDecode for CommentDoc {
    fn decode_fast(raw: &RawDocument) -> Option<Self> {
        let (id, body, post, author, created_at) = fields!(raw, {
            "_id" => id: ObjectId,
            "body" => body: String,
            "post" => post: ObjectId,
            "author" => author: ObjectId,
            "createdAt" => created_at: DateTime,
        });
        Some(CommentDoc { id: id?, body: body?.to_owned(), post: post?, author: author?, created_at: created_at? })
    }
}

#[cfg(test)]
mod tests {
    use bson::DateTime;
    use proptest::prelude::*;

    use super::*;

    fn oid() -> impl Strategy<Value = ObjectId> {
        any::<[u8; 12]>().prop_map(ObjectId::from_bytes)
    }

    fn time() -> impl Strategy<Value = DateTime> {
        any::<i64>().prop_map(DateTime::from_millis)
    }

    fn user() -> impl Strategy<Value = UserDoc> {
        (
            (oid(), ".{0,20}", ".{0,20}", ".{0,20}", time()),
            (prop::collection::vec(oid(), 0..5), prop::collection::vec(oid(), 0..5)),
            (prop::collection::vec(oid(), 0..5), any::<i64>()),
        )
            .prop_map(
                |((id, name, email, password_hash, created_at), (posts, followers), (following, rev))| UserDoc {
                    id,
                    name,
                    email,
                    password_hash,
                    created_at,
                    posts,
                    followers,
                    following,
                    rev,
                },
            )
    }

    fn post() -> impl Strategy<Value = PostDoc> {
        (oid(), ".{0,20}", ".{0,40}", oid(), prop::collection::vec(oid(), 0..5), any::<i64>(), time(), time()).prop_map(
            |(id, title, body, author, liked_by, comment_count, created_at, updated_at)| PostDoc {
                id,
                title,
                body,
                author,
                liked_by,
                comment_count,
                created_at,
                updated_at,
            },
        )
    }

    fn comment() -> impl Strategy<Value = CommentDoc> {
        (oid(), ".{0,40}", oid(), oid(), time()).prop_map(|(id, body, post, author, created_at)| CommentDoc {
            id,
            body,
            post,
            author,
            created_at,
        })
    }

    fn both<D: FastDecode + serde::Serialize + serde::de::DeserializeOwned>(doc: &D) -> (Option<D>, D) {
        let bytes = bson::serialize_to_vec(doc).expect("encode");
        (decode_fast(&bytes), bson::deserialize_from_slice(&bytes).expect("serde decode"))
    }

    proptest! {
        /// Every document this store writes decodes directly, to exactly what serde decodes.
        #[test]
        fn the_direct_decoder_agrees_with_serde(u in user(), p in post(), c in comment()) {
            let (fast, slow) = both(&u);
            prop_assert_eq!(fast.as_ref(), Some(&slow));
            prop_assert_eq!(&slow, &u);
            let (fast, slow) = both(&p);
            prop_assert_eq!(fast.as_ref(), Some(&slow));
            prop_assert_eq!(&slow, &p);
            let (fast, slow) = both(&c);
            prop_assert_eq!(fast.as_ref(), Some(&slow));
            prop_assert_eq!(&slow, &c);
        }
    }

    /// A layout the direct decoder does not know (an `Int32` count, an extra
    /// field, a missing one) is left to serde rather than misread.
    #[test]
    fn other_layouts_fall_back() {
        let id = ObjectId::new();
        let now = DateTime::now();
        let int32_count = bson::doc! {
            "_id": id, "title": "t", "body": "b", "author": id, "likedBy": [], "commentCount": 3_i32,
            "createdAt": now, "updatedAt": now,
        };
        let bytes = bson::serialize_to_vec(&int32_count).expect("encode");
        assert!(decode_fast::<PostDoc>(&bytes).is_none());
        let slow: PostDoc = bson::deserialize_from_slice(&bytes).expect("serde accepts it");
        assert_eq!(slow.comment_count, 3);

        let extra = bson::doc! { "_id": id, "body": "b", "post": id, "author": id, "createdAt": now, "x": 1 };
        assert!(decode_fast::<CommentDoc>(&bson::serialize_to_vec(&extra).expect("encode")).is_none());
        let missing = bson::doc! { "_id": id, "body": "b", "post": id, "createdAt": now };
        assert!(decode_fast::<CommentDoc>(&bson::serialize_to_vec(&missing).expect("encode")).is_none());

        let no_rev = bson::doc! {
            "_id": id, "name": "n", "email": "e", "passwordHash": "h", "createdAt": now,
            "posts": [], "followers": [], "following": [],
        };
        let user = decode_fast::<UserDoc>(&bson::serialize_to_vec(&no_rev).expect("encode")).expect("rev is optional");
        assert_eq!(user.rev, 0);
    }
}
