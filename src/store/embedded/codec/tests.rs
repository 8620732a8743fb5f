//! The codec's proptests and cases: the fast encoder writes serde's exact
//! bytes, and the fast decoder reads what serde writes.

use bson::DateTime;
use proptest::prelude::*;

use super::*;

fn oid() -> impl Strategy<Value = ObjectId> {
    any::<[u8; 12]>().prop_map(ObjectId::from_bytes)
}

fn id<D>() -> impl Strategy<Value = Id<D>> {
    oid().prop_map(Id::from_oid)
}

fn time() -> impl Strategy<Value = DateTime> {
    any::<i64>().prop_map(DateTime::from_millis)
}

fn user() -> impl Strategy<Value = UserDoc> {
    (
        (id::<UserDoc>(), ".{0,20}", ".{0,20}", ".{0,20}", time()),
        (prop::collection::vec(id::<PostDoc>(), 0..30), prop::collection::vec(id::<UserDoc>(), 0..5)),
        (prop::collection::vec(id::<UserDoc>(), 0..12), any::<i64>(), prop::option::of(oid())),
        (prop::option::of(".{0,40}"), any::<i64>(), prop::collection::vec(oid(), 0..4)),
    )
        .prop_map(
            |(
                (id, name, email, password_hash, created_at),
                (posts, followers),
                (following, rev, deleting),
                (bio, session_version, revoked_tokens),
            )| {
                let mut user = UserDoc {
                    followers,
                    following,
                    rev,
                    deleting,
                    bio,
                    session_version,
                    revoked_tokens,
                    ..UserDoc::new(id, name, email, password_hash, created_at)
                };
                user.set_posts(posts);
                user
            },
        )
}

fn post() -> impl Strategy<Value = PostDoc> {
    (
        (id::<PostDoc>(), ".{0,20}", ".{0,40}", id::<UserDoc>(), prop::collection::vec(id::<UserDoc>(), 0..5)),
        (any::<i64>(), time(), time(), prop::option::of(oid())),
    )
        .prop_map(|((id, title, body, author, liked_by), (comment_count, created_at, updated_at, deleting))| {
            PostDoc { id, title, body, author, liked_by, comment_count, created_at, updated_at, deleting }
        })
}

fn comment() -> impl Strategy<Value = CommentDoc> {
    (id::<CommentDoc>(), ".{0,40}", id::<PostDoc>(), id::<UserDoc>(), time())
        .prop_map(|(id, body, post, author, created_at)| CommentDoc { id, body, post, author, created_at })
}

fn both<D: FastDecode + FastEncode + serde::Serialize + serde::de::DeserializeOwned>(doc: &D) -> (Option<D>, D) {
    let bytes = bson::serialize_to_vec(doc).expect("encode");
    assert_eq!(encode_fast(doc).as_deref(), Some(bytes.as_slice()), "the direct encoder writes serde's bytes");
    (decode_fast(&bytes), bson::deserialize_from_slice(&bytes).expect("serde decode"))
}

proptest! {
    /// Every post and comment is encoded directly to exactly serde's bytes
    /// and decodes directly to exactly what serde decodes; a user record
    /// is serde's layout with the count in place of the list.
    #[test]
    fn the_direct_decoder_agrees_with_serde(u in user(), p in post(), c in comment()) {
        // A user written in the serde layout (MongoDB's, and this store's
        // before it kept counts) decodes directly too, its count the list's length.
        let serde_bytes = bson::serialize_to_vec(&u).expect("encode");
        let fast: Option<UserDoc> = decode_fast(&serde_bytes);
        prop_assert_eq!(fast.as_ref(), Some(&u));
        prop_assert_eq!(fast.map(|f| f.post_count), Some(u.posts.len() as u64));
        // A user record keeps the count and not the list, and serde reads
        // every other field of it the same.
        let record = encode_fast(&u).expect("encode");
        let fast: UserDoc = decode_fast(&record).expect("a record decodes directly");
        let slow: UserDoc = bson::deserialize_from_slice(&record).expect("serde decode");
        prop_assert_eq!(fast.post_count, u.posts.len() as u64);
        prop_assert!(fast.posts.is_empty());
        prop_assert_eq!(&slow, &fast);
        prop_assert_eq!(&UserDoc { posts: u.posts.clone(), ..fast }, &u);
        let (fast, slow) = both(&p);
        prop_assert_eq!(fast.as_ref(), Some(&slow));
        prop_assert_eq!(&slow, &p);
        let (fast, slow) = both(&c);
        prop_assert_eq!(fast.as_ref(), Some(&slow));
        prop_assert_eq!(&slow, &c);
    }
}

/// `bytes` with one change: a byte set to `value` at `at`, or the bytes cut
/// at `at`, or `value` inserted at `at`.
fn corrupt(mut bytes: Vec<u8>, how: u8, at: usize, value: u8) -> Vec<u8> {
    let at = at % (bytes.len() + 1);
    match how % 3 {
        0 if at < bytes.len() => bytes[at] = value,
        1 => bytes.truncate(at),
        _ => bytes.insert(at, value),
    }
    bytes
}

/// What the direct decoder makes of `bytes`, if anything, is what serde makes of them.
fn agrees<D: FastDecode + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    bytes: &[u8],
) -> Result<(), TestCaseError> {
    if let Some(fast) = decode_fast::<D>(bytes) {
        let slow: Option<D> = bson::deserialize_from_slice(bytes).ok();
        prop_assert_eq!(slow, Some(fast), "accepted what serde reads otherwise");
    }
    Ok(())
}

proptest! {
    /// A corrupted document (a byte changed, added or cut) is either left
    /// to serde or decoded exactly as serde decodes it: the in-place reader
    /// is never laxer than `bson`.
    #[test]
    fn corrupted_documents_are_never_misread(
        u in user(), p in post(), c in comment(), how in any::<u8>(), at in any::<usize>(), value in any::<u8>()
    ) {
        let user = encode_fast(&u).expect("encode");
        agrees::<UserDoc>(&corrupt(user, how, at, value))?;
        let post = encode_fast(&p).expect("encode");
        agrees::<PostDoc>(&corrupt(post, how, at, value))?;
        let comment = encode_fast(&c).expect("encode");
        agrees::<CommentDoc>(&corrupt(comment, how, at, value))?;
    }

    /// Arbitrary bytes never panic the reader, and whatever it decodes, serde decodes the same.
    #[test]
    fn arbitrary_bytes_are_never_misread(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        agrees::<UserDoc>(&bytes)?;
        agrees::<PostDoc>(&bytes)?;
        agrees::<CommentDoc>(&bytes)?;
    }
}

/// Array keys are decimal positions, past one digit too.
#[test]
fn decimal_positions() {
    let mut buf = [0u8; 20];
    for n in [0usize, 7, 10, 99, 100, 12_345, usize::MAX] {
        assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
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
