//! The two loader shapes every reference field uses: by id, and one page per parent.
//!
//! Each `load` call is exactly one store call (one round trip), however many
//! keys the batch holds, which is what keeps round trips proportional to
//! query depth instead of list length.

use std::collections::HashMap;

use std::marker::PhantomData;
use std::sync::Arc;
use tracing::Instrument as _;

use async_graphql::dataloader::Loader;
use bson::oid::ObjectId;

use super::RequestCtx;
use super::batch::Batcher;
use crate::domain::Page;
use crate::error::{Error, Result};
use crate::model::{CommentDoc, CommentId, Doc, Id, PostDoc, PostId, UserDoc, UserId};
use crate::store::{CommentsOf, CountOf, Paged, PostsOf, Relation, Store, UsersOf};

/// A document the by-id loader can fetch in one batched store call.
pub trait Entity: Doc + Clone {
    /// Fetches the documents with these ids in one round trip.
    fn fetch(store: &Store, ids: &[Id<Self>]) -> impl Future<Output = Result<Vec<Self>>> + Send;
}

impl Entity for UserDoc {
    async fn fetch(store: &Store, ids: &[UserId]) -> Result<Vec<Self>> {
        store.users_by_ids(ids).await
    }
}

impl Entity for PostDoc {
    async fn fetch(store: &Store, ids: &[PostId]) -> Result<Vec<Self>> {
        store.posts_by_ids(ids).await
    }
}

impl Entity for CommentDoc {
    async fn fetch(store: &Store, ids: &[CommentId]) -> Result<Vec<Self>> {
        store.comments_by_ids(ids).await
    }
}

/// Loads documents of type `D` by id.
pub struct ById<D> {
    store: Arc<Store>,
    _doc: PhantomData<fn() -> D>,
}

impl<D> ById<D> {
    /// A loader over `store`.
    pub fn new(store: &Arc<Store>) -> Self {
        ById { store: Arc::clone(store), _doc: PhantomData }
    }
}

impl<D: Entity> Loader<Id<D>> for ById<D> {
    type Value = D;
    type Error = Error;

    async fn load(&self, keys: &[Id<D>]) -> Result<HashMap<Id<D>, D>> {
        // One span per batch (a store round trip), never one per key.
        let span = tracing::info_span!("load", entity = ?D::KIND, keys = keys.len());
        let docs = D::fetch(&self.store, keys).instrument(span).await?;
        Ok(docs.into_iter().map(|d| (d.id(), d)).collect())
    }
}

/// A store [`Relation`] with its loader in the request: the only thing the
/// GraphQL layer adds to a relation.
pub trait Loaded: Relation {
    /// The request's loader for this relation.
    fn loader(request: &RequestCtx) -> &Batcher<PageKey<Self>, PageLoader<Self>>;
}

impl Loaded for UsersOf {
    fn loader(request: &RequestCtx) -> &Batcher<PageKey<Self>, PageLoader<Self>> {
        &request.user_pages
    }
}

impl Loaded for PostsOf {
    fn loader(request: &RequestCtx) -> &Batcher<PageKey<Self>, PageLoader<Self>> {
        &request.post_pages
    }
}

impl Loaded for CommentsOf {
    fn loader(request: &RequestCtx) -> &Batcher<PageKey<Self>, PageLoader<Self>> {
        &request.comment_pages
    }
}

/// The key of a page load: which relation, whose, which page.
pub type PageKey<R> = (R, ObjectId, Page);

/// Loads one page per parent for relation kind `R`, one store call per relation in the batch.
pub struct PageLoader<R> {
    store: Arc<Store>,
    _rel: PhantomData<fn() -> R>,
}

impl<R> PageLoader<R> {
    /// A loader over `store`.
    pub fn new(store: &Arc<Store>) -> Self {
        PageLoader { store: Arc::clone(store), _rel: PhantomData }
    }
}

impl<R: Relation> Loader<PageKey<R>> for PageLoader<R> {
    type Value = Paged<Arc<R::Doc>>;
    type Error = Error;

    async fn load(&self, keys: &[PageKey<R>]) -> Result<HashMap<PageKey<R>, Paged<Arc<R::Doc>>>> {
        let relation = std::any::type_name::<R>().rsplit("::").next().unwrap_or("relation");
        // One span per batch of pages, never one per key.
        let span = tracing::info_span!("load", relation, keys = keys.len());
        self.pages(keys).instrument(span).await
    }
}

impl<R: Relation> PageLoader<R> {
    async fn pages(&self, keys: &[PageKey<R>]) -> Result<HashMap<PageKey<R>, Paged<Arc<R::Doc>>>> {
        let mut by_rel: HashMap<R, Vec<(ObjectId, Page)>> = HashMap::new();
        for (rel, parent, page) in keys {
            by_rel.entry(*rel).or_default().push((*parent, *page));
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (rel, wanted) in by_rel {
            let pages = self.store.pages_of(rel, &wanted).await?;
            if pages.len() != wanted.len() {
                return Err(Error::internal("the store returned a page count that does not match the keys"));
            }
            for ((parent, page), docs) in wanted.into_iter().zip(pages) {
                out.insert((rel, parent, page), docs.map(Arc::new));
            }
        }
        Ok(out)
    }
}

/// The key of a count load: which count, whose.
pub type CountKey = (CountOf, UserId);

/// Loads per-parent counts (`totalCount` without a stored count), one store call per kind in the batch.
pub struct Counts {
    store: Arc<Store>,
}

impl Counts {
    /// A loader over `store`.
    pub fn new(store: &Arc<Store>) -> Self {
        Counts { store: Arc::clone(store) }
    }
}

impl Loader<CountKey> for Counts {
    type Value = u64;
    type Error = Error;

    async fn load(&self, keys: &[CountKey]) -> Result<HashMap<CountKey, u64>> {
        let mut by_kind: HashMap<CountOf, Vec<UserId>> = HashMap::new();
        for (of, parent) in keys {
            by_kind.entry(*of).or_default().push(*parent);
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (of, parents) in by_kind {
            let counts = self.store.count_of(of, &parents).await?;
            if counts.len() != parents.len() {
                return Err(Error::internal("the store returned a count list that does not match the keys"));
            }
            out.extend(parents.into_iter().zip(counts).map(|(parent, n)| ((of, parent), n)));
        }
        Ok(out)
    }
}
