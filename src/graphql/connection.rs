//! Relay connections: the one way every list in the API is built.
//!
//! Every list is ordered newest first, with opaque cursors (see
//! [`crate::domain::Page`]), and pages both ways: `first`/`after` forward and
//! `last`/`before` backward. [`related`] is the whole path of a list field
//! (validate the page, load it through the request's batched loader, build
//! the connection); [`build`] is the last step on its own, for root lists.
//!
//! The types are written here rather than taken from async-graphql so that
//! every one of them carries `totalCount` and client-facing descriptions.

use std::borrow::Cow;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    Context, ContextSelectionSet, Lookahead, Object, OutputType, Positioned, ServerResult, SimpleObject, TypeName,
    Value,
};
use bson::oid::ObjectId;
use futures::future::BoxFuture;

use super::CtxExt;
use super::error::ApiResult;
use super::loader::Loaded;
use super::plain::{self, Env, Plain};
use super::to_int;
use crate::app::AppState;
use crate::domain::{CursorKey, Page};
use crate::error::Result;
use crate::model::UserId;
use crate::store::{Collection, CountOf, Paged};

mod args;

pub use args::{PageArgs, page_ahead, page_of};

/// A node type that is listed in connections: names its connection and edge
/// types, and wraps a page of its documents.
pub trait Listed: OutputType + Plain + Sized {
    /// GraphQL name of the connection type, e.g. `PostConnection`.
    const CONNECTION: &'static str;
    /// GraphQL name of the edge type, e.g. `PostEdge`.
    const EDGE: &'static str;
    /// The stored document behind a node.
    type Doc: Send + Sync + 'static;

    /// Wraps one page of documents, in order. `node` is the selection on one
    /// item: a reference it asks for may be loaded here for the whole page in
    /// one batch, which is the level's round trip anyway.
    fn wrap(
        ctx: &Context<'_>,
        docs: Vec<Arc<Self::Doc>>,
        node: Lookahead<'_>,
    ) -> impl Future<Output = Result<Vec<Self>>> + Send;
}

/// Where a connection's `totalCount` comes from. Counts are read only when
/// the client selects `totalCount`, and never by reading the list itself.
#[derive(Debug, Clone)]
pub enum Total {
    /// A count stored on the parent document (`postCount`, `commentCount`, an id array's length).
    Known(usize),
    /// Counted with an index, batched with the other parents of the same level.
    Of(CountOf, UserId),
    /// A whole collection's size.
    All(Collection),
    /// The sum of these users' stored post counts (the feed's authors),
    /// read in one batch; users that are gone or being deleted count nothing.
    PostsBy(Arc<[UserId]>),
}

impl Total {
    async fn resolve(self, ctx: &Context<'_>) -> Result<u64> {
        match self {
            Total::Known(n) => Ok(n as u64),
            Total::Of(of, parent) => Ok(ctx.request()?.counts.load_one((of, parent)).await?.map_or(0, |n| *n)),
            Total::All(collection) => ctx.store()?.count_all(collection).await,
            Total::PostsBy(authors) => {
                let users = ctx.request()?.users.load_many(authors.to_vec()).await?;
                Ok(users.values().map(|u| u.post_count).sum())
            }
        }
    }
}

/// One page of a list, in the list's order (newest first), with the cursors
/// to move through it and the list's total size.
pub struct Connection<T> {
    edges: Vec<Edge<T>>,
    page_info: PageInfo,
    total: Total,
}

impl<T: Listed> TypeName for Connection<T> {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed(T::CONNECTION)
    }
}

/// One page of a list, newest first, with the cursors to move through it and
/// the list's total size. Page forward with `first`/`after` and backward with
/// `last`/`before`.
#[Object(name_type)]
impl<T: Listed> Connection<T> {
    /// The items on this page, each with its cursor, newest first.
    async fn edges(&self) -> Edges<'_, T> {
        Edges(&self.edges)
    }

    /// Where this page sits in the list, and the cursors to continue.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }

    /// How many items the whole list holds (not just this page). Read from a
    /// stored count or an index, never by walking the list.
    async fn total_count(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        // Boxed, so that a count's store read does not make every field
        // future of every connection that large (see `batch::Batcher::answer`).
        Ok(to_int(Box::pin(self.total.clone().resolve(ctx)).await?))
    }
}

/// One item of a connection and its position. The cursor is encoded only
/// when a client selects it.
pub struct Edge<T> {
    key: CursorKey,
    node: T,
}

impl<T: Listed> TypeName for Edge<T> {
    fn type_name() -> Cow<'static, str> {
        Cow::Borrowed(T::EDGE)
    }
}

/// One item of a list and the cursor of its position.
#[Object(name_type)]
impl<T: Listed> Edge<T> {
    /// The item.
    async fn node(&self) -> &T {
        &self.node
    }

    /// An opaque position: pass it as `after` for the items after this one,
    /// or as `before` for the items before it.
    async fn cursor(&self) -> String {
        self.key.encode()
    }
}

impl<T: Listed> Plain for Edge<T> {
    fn plain(&self, field: &Field, env: &Env<'_>) -> Option<Value> {
        match field.name.node.as_str() {
            "node" => plain::object(&self.node, &field.selection_set.node, env),
            "cursor" => Some(Value::String(self.key.encode())),
            _ => None,
        }
    }
}

/// A page's edges as `Connection.edges` answers them: directly when the
/// selection is plain (see [`plain`]), through the executor otherwise. The
/// schema sees the list of edges it always did.
pub struct Edges<'a, T>(&'a [Edge<T>]);

impl<T: Listed> OutputType for Edges<'_, T> {
    fn type_name() -> Cow<'static, str> {
        <&[Edge<T>]>::type_name()
    }

    fn qualified_type_name() -> String {
        <&[Edge<T>]>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <&[Edge<T>]>::create_type_info(registry)
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        if self.0.is_empty() {
            // What the executor answers too; neither path is counted.
            return Ok(Value::List(Vec::new()));
        }
        let answer = plain::list(self.0, &ctx.item.node, &Env::of(ctx));
        if let Ok(AppState { metrics: Some(metrics), .. }) = ctx.data::<AppState>() {
            metrics.edge_lists[usize::from(answer.is_none())].fetch_add(1, Ordering::Relaxed);
        }
        match answer {
            Some(answer) => Ok(answer),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// Where a page sits in its list (Relay's `PageInfo`).
#[derive(SimpleObject, Debug, Clone, Default)]
pub struct PageInfo {
    /// Whether items exist before this page. Exact when paging backward
    /// (`last`); when paging forward it is true whenever `after` was given.
    pub has_previous_page: bool,
    /// Whether items exist after this page. Exact when paging forward
    /// (`first`); when paging backward it is true whenever `before` was given.
    pub has_next_page: bool,
    /// The cursor of the first item on this page; null when the page is empty.
    pub start_cursor: Option<String>,
    /// The cursor of the last item on this page; null when the page is empty.
    pub end_cursor: Option<String>,
}

/// Builds a connection from what a store returned for `page`: up to
/// `size + 1` documents in walk order (newest first forward, oldest first
/// backward), the extra one only signalling more beyond the page; or a
/// short page cut where passing over hidden documents stopped (see
/// [`Paged::cut`]), which also has more beyond it, and whose cursor on that
/// side is the cut, so the next page starts past what was already passed.
pub async fn build<T: Listed>(
    ctx: &Context<'_>,
    docs: Paged<Arc<T::Doc>>,
    page: &Page,
    total: Total,
    key: impl Fn(&T::Doc) -> CursorKey,
) -> Result<Connection<T>> {
    let node = ctx.look_ahead().field("edges").field("node");
    assemble(docs, page, total, key, |docs| T::wrap(ctx, docs, node)).await
}

/// [`build`] with the nodes made by `wrap` from the page's documents, for a
/// page whose references were already loaded by the parent list.
pub async fn assemble<D, T, F, Fut>(
    paged: Paged<Arc<D>>,
    page: &Page,
    total: Total,
    key: impl Fn(&D) -> CursorKey,
    wrap: F,
) -> Result<Connection<T>>
where
    F: FnOnce(Vec<Arc<D>>) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
{
    let (docs, keys, page_info) = shape(paged, page, key);
    let nodes = if docs.is_empty() { Vec::new() } else { wrap(docs).await? };
    Ok(Connection::of(keys, nodes, page_info, total))
}

/// [`assemble`] with nodes that need nothing loaded: made at once.
pub fn assemble_now<D, T>(
    paged: Paged<Arc<D>>,
    page: &Page,
    total: Total,
    key: impl Fn(&D) -> CursorKey,
    wrap: impl FnOnce(Vec<Arc<D>>) -> Vec<T>,
) -> Connection<T> {
    let (docs, keys, page_info) = shape(paged, page, key);
    Connection::of(keys, wrap(docs), page_info, total)
}

/// A page's documents in answer order, their cursors, and where the page sits.
fn shape<D>(
    paged: Paged<Arc<D>>,
    page: &Page,
    key: impl Fn(&D) -> CursorKey,
) -> (Vec<Arc<D>>, Vec<CursorKey>, PageInfo) {
    let Paged { mut docs, cut } = paged;
    let more = docs.len() > page.size() || cut.is_some();
    docs.truncate(page.size());
    if page.backward() {
        docs.reverse();
    }
    let keys: Vec<CursorKey> = docs.iter().map(|d| key(d)).collect();
    let (has_previous_page, has_next_page) =
        if page.backward() { (more, page.before().is_some()) } else { (page.after().is_some(), more) };
    let (mut start, mut end) = (keys.first().copied(), keys.last().copied());
    // The far side of a cut page is where its reading stopped.
    if cut.is_some() {
        if page.backward() {
            start = cut;
        } else {
            end = cut;
        }
    }
    let page_info = PageInfo {
        has_previous_page,
        has_next_page,
        start_cursor: start.as_ref().map(CursorKey::encode),
        end_cursor: end.as_ref().map(CursorKey::encode),
    };
    (docs, keys, page_info)
}

impl<T> Connection<T> {
    fn of(keys: Vec<CursorKey>, nodes: Vec<T>, page_info: PageInfo, total: Total) -> Self {
        let edges = keys.into_iter().zip(nodes).map(|(key, node)| Edge { key, node }).collect();
        Connection { edges, page_info, total }
    }
}

/// A connection built from a page loaded ahead (see [`Plain`]): its edges,
/// its `pageInfo`, and a `totalCount` already known.
impl<T: Listed> Plain for Connection<T> {
    fn plain(&self, field: &Field, env: &Env<'_>) -> Option<Value> {
        match field.name.node.as_str() {
            "edges" => plain::list(&self.edges, &field.selection_set.node, env),
            "pageInfo" => plain::object(&self.page_info, &field.selection_set.node, env),
            "totalCount" => match self.total {
                Total::Known(n) => Some(Value::from(to_int(n))),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Plain for PageInfo {
    fn plain(&self, field: &Field, _env: &Env<'_>) -> Option<Value> {
        let cursor = |c: &Option<String>| c.clone().map_or(Value::Null, Value::String);
        Some(match field.name.node.as_str() {
            "hasPreviousPage" => Value::Boolean(self.has_previous_page),
            "hasNextPage" => Value::Boolean(self.has_next_page),
            "startCursor" => cursor(&self.start_cursor),
            "endCursor" => cursor(&self.end_cursor),
            _ => return None,
        })
    }
}

/// One page of `relation` under `parent`, loaded through the request's
/// batched loader and wrapped by `node`.
///
/// Returned boxed: a resolver's future is as large as its largest await, and
/// async-graphql allocates and copies one future of the object's largest
/// resolver for every field it resolves. Inline, this path made every field
/// of every `Post` (even `title`) a 1,240-byte allocation and copy.
pub fn related<'a, R: Loaded, T: Listed<Doc = R::Doc>>(
    ctx: &'a Context<'_>,
    relation: R,
    parent: impl Into<ObjectId>,
    args: PageArgs,
    total: Total,
) -> BoxFuture<'a, ApiResult<Connection<T>>> {
    let parent = parent.into();
    Box::pin(async move {
        let page = args.page()?;
        let wanted = ctx.look_ahead();
        let docs = if wanted.field("edges").exists() || wanted.field("pageInfo").exists() {
            R::loader(ctx.request()?)
                .load_one((relation, parent, page))
                .await?
                .map(|paged| Paged::clone(&paged))
                .unwrap_or_default()
        } else {
            // Only `totalCount` (or `__typename`) was asked for: the page is not read at all.
            Paged::default()
        };
        Ok(build(ctx, docs, &page, total, R::key).await?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64) -> CursorKey {
        CursorKey { created_ms: n, id: ObjectId::from_bytes([n as u8; 12]) }
    }

    async fn page_info(docs: Vec<i64>, cut: Option<i64>, page: Page) -> PageInfo {
        let paged = Paged { docs: docs.into_iter().map(Arc::new).collect(), cut: cut.map(key) };
        let wrap = |docs: Vec<Arc<i64>>| async move { Ok(docs.iter().map(|d| **d as i32).collect::<Vec<i32>>()) };
        let conn: Connection<i32> =
            assemble(paged, &page, Total::Known(0), |d: &i64| key(*d), wrap).await.expect("assembled");
        conn.page_info
    }

    /// A cut page says there is more and puts its far cursor at the cut, both ways; a whole short page does not.
    #[tokio::test]
    async fn a_cut_page_has_more_and_ends_at_the_cut() {
        let forward = page_info(vec![9, 8], Some(3), Page::newest(10)).await;
        assert!(forward.has_next_page);
        assert_eq!(forward.start_cursor, Some(key(9).encode()));
        assert_eq!(forward.end_cursor, Some(key(3).encode()));

        let whole = page_info(vec![9, 8], None, Page::newest(10)).await;
        assert!(!whole.has_next_page);
        assert_eq!(whole.end_cursor, Some(key(8).encode()));

        let backward = Page::parse(None, None, Some(10), None).expect("a backward page");
        let back = page_info(vec![1, 2], Some(7), backward).await;
        assert!(back.has_previous_page);
        assert_eq!(back.start_cursor, Some(key(7).encode()));
        assert_eq!(back.end_cursor, Some(key(1).encode()), "walk order reversed: oldest last");

        let empty = page_info(vec![], Some(5), Page::newest(10)).await;
        assert!(empty.has_next_page, "even an empty cut page goes on");
        assert_eq!(empty.end_cursor, Some(key(5).encode()));
    }
}
