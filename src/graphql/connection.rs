//! Relay-style connections with opaque cursors.
//!
//! Every list in the API is a connection ordered newest first. A cursor is
//! the listing position `(createdAt, _id)` of its edge, base64url encoded
//! with a version byte, so pages stay stable while documents are inserted or
//! deleted around them. Clients must treat cursors as opaque.

use async_graphql::OutputType;
use async_graphql::connection::{self, DefaultConnectionName, DefaultEdgeName, DisableNodesField, EmptyFields};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::oid::ObjectId;

use crate::error::{Error, Result};
use crate::model::{CursorKey, DEFAULT_PAGE, MAX_PAGE, PageQuery};

const CURSOR_VERSION: u8 = 1;

/// Encodes a listing position as an opaque cursor string.
pub fn encode_cursor(key: &CursorKey) -> String {
    let mut bytes = Vec::with_capacity(21);
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(&key.created_ms.to_be_bytes());
    bytes.extend_from_slice(&key.id.bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor produced by [`encode_cursor`]; anything else is `BAD_USER_INPUT` on `after`.
pub fn decode_cursor(cursor: &str) -> Result<CursorKey> {
    let bad = || Error::bad_input("after", "after is not a valid cursor");
    let bytes = URL_SAFE_NO_PAD.decode(cursor.as_bytes()).map_err(|_| bad())?;
    let [version, rest @ ..] = bytes.as_slice() else {
        return Err(bad());
    };
    if *version != CURSOR_VERSION || rest.len() != 20 {
        return Err(bad());
    }
    let (ms, id) = rest.split_at(8);
    let ms: [u8; 8] = ms.try_into().map_err(|_| bad())?;
    let id: [u8; 12] = id.try_into().map_err(|_| bad())?;
    Ok(CursorKey { created_ms: i64::from_be_bytes(ms), id: ObjectId::from_bytes(id) })
}

/// Validates `first` and `after` into a page request.
///
/// `first` defaults to 20 and must be within `0..=100`.
pub fn page_query(first: Option<i32>, after: Option<String>) -> Result<PageQuery> {
    let first = match first {
        None => DEFAULT_PAGE,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_PAGE)
            .ok_or_else(|| Error::bad_input("first", format!("first must be between 0 and {MAX_PAGE}")))?,
    };
    let after = after.as_deref().map(decode_cursor).transpose()?;
    Ok(PageQuery { first, after })
}

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
    page: &PageQuery,
    key: impl Fn(&D) -> CursorKey,
    node: impl Fn(D) -> T,
) -> Connection<T> {
    let has_next_page = docs.len() > page.first;
    docs.truncate(page.first);
    let mut conn = Connection::new(page.after.is_some(), has_next_page);
    conn.edges.extend(docs.into_iter().map(|d| connection::Edge::new(encode_cursor(&key(&d)), node(d))));
    conn
}

/// Complexity of a connection field: its page size times the cost of one
/// node, so `1,500 aliases × first: 100` is refused before it runs. Out-of-range
/// sizes are clamped here and refused by the resolver.
pub fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let first = usize::try_from(first.map_or(DEFAULT_PAGE as i32, |n| n.clamp(0, MAX_PAGE as i32))).unwrap_or(MAX_PAGE);
    1 + first.max(1).saturating_mul(child_complexity)
}
