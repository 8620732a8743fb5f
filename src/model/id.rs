//! Typed ids: an [`Id<D>`] names a document of collection `D`, so a post's
//! id cannot be handed where a user's is wanted. On disk and on the wire it
//! is the bare `ObjectId` (serde-transparent), so the stored BSON and the
//! GraphQL `ID`s are what they were before the type existed.
//!
//! One generic type, not three hand-written newtypes, so [`Reads::get`]
//! infers the collection from the id it is given, and the derives are
//! written once. Raw `ObjectId`s remain only where the collection is a
//! value rather than a type: a backend's primitives (which dispatch on
//! [`super::Kind`]), index keys and cursors.
//!
//! [`Reads::get`]: crate::store::Reads::get

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use bson::Bson;
use bson::oid::ObjectId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{CommentDoc, PostDoc, UserDoc};

/// The id of a document of collection `D`.
#[repr(transparent)]
pub struct Id<D> {
    oid: ObjectId,
    /// `fn() -> D` so the id is `Send`, `Sync` and `Copy` whatever `D` is.
    of: PhantomData<fn() -> D>,
}

/// A user's id.
pub type UserId = Id<UserDoc>;
/// A post's id.
pub type PostId = Id<PostDoc>;
/// A comment's id.
pub type CommentId = Id<CommentDoc>;

impl<D> Id<D> {
    /// A fresh id (a new `ObjectId`: its first four bytes are the creation second).
    pub fn new() -> Self {
        Self::from_oid(ObjectId::new())
    }

    /// Names an `ObjectId` read from a place that holds ids of `D` only (an
    /// index key, a typed field, a stored list): the one way in.
    pub const fn from_oid(oid: ObjectId) -> Self {
        Id { oid, of: PhantomData }
    }

    /// The bare `ObjectId`, for a backend primitive or a key.
    pub const fn oid(self) -> ObjectId {
        self.oid
    }

    /// The id's 12 bytes, as index keys hold it.
    pub const fn bytes(self) -> [u8; 12] {
        self.oid.bytes()
    }

    /// Parses 24 hexadecimal digits; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        ObjectId::parse_str(text).ok().map(Self::from_oid)
    }

    /// The 24 hexadecimal digits.
    pub fn to_hex(self) -> String {
        self.oid.to_hex()
    }

    /// The bare ids of a list, for a backend primitive.
    pub fn oids(ids: &[Self]) -> Vec<ObjectId> {
        ids.iter().map(|id| id.oid).collect()
    }

    /// A list of bare ids, each read from a place that holds ids of `D` only.
    pub fn from_oids(oids: impl IntoIterator<Item = ObjectId>) -> Vec<Self> {
        oids.into_iter().map(Self::from_oid).collect()
    }
}

impl<D> Default for Id<D> {
    /// A fresh id, as [`Id::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<D> Clone for Id<D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D> Copy for Id<D> {}

impl<D> PartialEq for Id<D> {
    fn eq(&self, other: &Self) -> bool {
        self.oid == other.oid
    }
}

impl<D> Eq for Id<D> {}

impl<D> PartialOrd for Id<D> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<D> Ord for Id<D> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.oid.cmp(&other.oid)
    }
}

impl<D> Hash for Id<D> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.oid.hash(state);
    }
}

impl<D> fmt::Display for Id<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.oid, f)
    }
}

impl<D> fmt::Debug for Id<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.oid, f)
    }
}

impl<D> From<Id<D>> for ObjectId {
    fn from(id: Id<D>) -> ObjectId {
        id.oid
    }
}

impl<D> From<Id<D>> for Bson {
    fn from(id: Id<D>) -> Bson {
        Bson::ObjectId(id.oid)
    }
}

impl<D> Serialize for Id<D> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.oid.serialize(serializer)
    }
}

impl<'de, D> Deserialize<'de> for Id<D> {
    fn deserialize<De: Deserializer<'de>>(deserializer: De) -> Result<Self, De::Error> {
        ObjectId::deserialize(deserializer).map(Self::from_oid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id is stored as the bare ObjectId (so existing documents read back
    /// unchanged), parses only 24 hex digits, and prints as its hex.
    #[test]
    fn an_id_is_its_object_id_on_disk_and_in_text() {
        let id = PostId::new();
        let doc = bson::doc! { "id": id };
        assert_eq!(doc.get("id"), Some(&Bson::ObjectId(id.oid())));
        let back: bson::Document = bson::serialize_to_document(&bson::doc! { "x": id }).expect("encode");
        #[derive(Deserialize)]
        struct Holder {
            x: UserId,
        }
        let held: Holder = bson::deserialize_from_document(back).expect("decode");
        assert_eq!(held.x.oid(), id.oid());
        assert_eq!(PostId::parse(&id.to_hex()), Some(id));
        assert_eq!(id.to_string(), id.to_hex());
        assert_eq!(UserId::parse("not-an-id"), None);
        assert_eq!(UserId::parse(&"f".repeat(25)), None);
    }
}
