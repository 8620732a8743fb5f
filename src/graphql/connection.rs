//! Relay-style connections: the one way every list in the API is built.
//!
//! Every list is a connection ordered newest first, with opaque cursors (see
//! [`crate::domain::Page`]). [`related`] is the whole path of a list field
//! (validate the page, load it through the request's batched loader, build
//! the connection); [`build`] is the last step on its own, for root lists.

use async_graphql::connection::{self, DefaultConnectionName, DefaultEdgeName, DisableNodesField, EmptyFields};
use async_graphql::{Context, OutputType};
use bson::oid::ObjectId;

use super::CtxExt;
use super::error::ApiResult;
use super::loader::Relation;
use crate::domain::{CursorKey, DEFAULT_PAGE, MAX_PAGE, Page};

/// A Relay connection of `T` with string cursors; GraphQL names it
/// `{T}Connection` with `{T}Edge` edges and the standard `PageInfo`.
pub type Connection<T> = connection::Connection<
    String,
    T,
    EmptyFields,
    EmptyFields,
    DefaultConnectionName,
    DefaultEdgeName,
    DisableNodesField,
>;

/// Builds a page from up to `first + 1` fetched documents: the extra one
/// only signals that a next page exists.
pub fn build<D, T: OutputType>(
    mut docs: Vec<D>,
    page: &Page,
    key: impl Fn(&D) -> CursorKey,
    node: impl Fn(D) -> T,
) -> Connection<T> {
    let has_next_page = docs.len() > page.first();
    docs.truncate(page.first());
    let mut conn = Connection::new(page.after().is_some(), has_next_page);
    conn.edges.extend(docs.into_iter().map(|d| connection::Edge::new(key(&d).encode(), node(d))));
    conn
}

/// One page of `relation` under `parent`, loaded through the request's
/// batched loader and wrapped by `node`.
pub async fn related<R: Relation, T: OutputType>(
    ctx: &Context<'_>,
    relation: R,
    parent: ObjectId,
    first: Option<i32>,
    after: Option<String>,
    node: impl Fn(R::Doc) -> T,
) -> ApiResult<Connection<T>> {
    let page = Page::parse(first, after.as_deref())?;
    let docs = R::loader(ctx.request()?).load_one((relation, parent, page)).await?.unwrap_or_default();
    Ok(build(docs, &page, R::cursor_key, node))
}

/// Complexity of a connection field: its page size times the cost of one
/// node, so `1,500 aliases × first: 100` is refused before it runs. Out-of-range
/// sizes are clamped here and refused by the resolver.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let first = usize::try_from(first.map_or(DEFAULT_PAGE as i32, |n| n.clamp(0, MAX_PAGE as i32))).unwrap_or(MAX_PAGE);
    1 + first.max(1).saturating_mul(child_complexity)
}
