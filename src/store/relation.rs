//! What a list reads, and the one-to-many relations among them: the one
//! trait pair that the GraphQL page loaders, the hidden-document refill and
//! the connections' cursors all speak, so a new relation is an enum variant
//! and a backend index, not a method at every layer.

use std::hash::Hash;

use bson::oid::ObjectId;

use super::hidden::Hideable;
use super::hidden::visible::Scrub;
use crate::domain::{CursorKey, Page};
use crate::error::Result;
use crate::model::{Chronological, CommentDoc, PostDoc, UserDoc};
use crate::store::{Backend, CommentsOf, Pages, PostsOf, Store, UsersOf};

/// A paged read: what it lists, in which order, and how to read one page
/// per key straight from the backend (which [`Store`] then filters and tops
/// up past what staged deletions hide).
pub trait Listing: Sync {
    /// The listed documents.
    type Doc: Hideable + Chronological + Scrub + Send + Sync;

    /// The document's place in the listing: by time, unless the listing says otherwise.
    fn key(doc: &Self::Doc) -> CursorKey {
        doc.cursor_key()
    }

    /// Reads one page per `(parent, page)` key, aligned with `keys`, in one round trip.
    fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> impl Future<Output = Result<Pages<Self::Doc>>> + Send;
}

/// A one-to-many relation of a parent document (a user's followers, a
/// user's posts, a post's comments): a [`Listing`] small enough to key a
/// loader's batch by, read through [`Store::pages_of`].
pub trait Relation: Listing<Doc: Clone + 'static> + Copy + Eq + Hash + Send + 'static {}

impl Listing for PostsOf {
    type Doc = PostDoc;

    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        on_backend!(store, b => b.posts_of(*self, keys).await)
    }
}

impl Relation for PostsOf {}

impl Listing for CommentsOf {
    type Doc = CommentDoc;

    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<CommentDoc>> {
        on_backend!(store, b => b.comments_of(*self, keys).await)
    }
}

impl Relation for CommentsOf {}

impl Listing for UsersOf {
    type Doc = UserDoc;

    /// User relations are listed by id alone, newest account first (an
    /// ObjectId starts with its creation second), so the time part is unused.
    fn key(doc: &UserDoc) -> CursorKey {
        CursorKey { created_ms: 0, id: doc.id.oid() }
    }

    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<UserDoc>> {
        on_backend!(store, b => b.users_of(*self, keys).await)
    }
}

impl Relation for UsersOf {}
