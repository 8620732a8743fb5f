//! Plain list selections, answered without a future per field.
//!
//! async-graphql resolves every selected field of every object as a boxed
//! future as large as the type's largest resolver (about 1 KB for `Post`),
//! polled through a `FuturesUnordered`, and every list item as another. For
//! 100 posts with their authors that is some 400 allocations and copies of
//! that size, and most of the executor's share of a list query's CPU.
//!
//! A list's selection rarely needs any of it: every field of a page is
//! already in memory (the documents, and the references `Listed::wrap`
//! loaded for the whole page). [`list`] answers such a selection directly
//! and builds the same `Value` the executor would: the fields in selection
//! order, keyed by alias, `__typename` as the type's name, an object with no
//! fields as null. Anything else makes it answer `None`, and the list goes
//! through the executor as before:
//! - a fragment anywhere in the selection, or a directive (`@skip` and
//!   `@include` are applied by async-graphql before execution, so it never
//!   sees those);
//! - a response key selected twice (the executor merges those);
//! - a field a type does not answer plainly ([`Plain::plain`]): one that
//!   needs the viewer or would load something. The one field with
//!   arguments answered plainly is a post's `comments` page when the posts
//!   list loaded exactly that page ahead.
//!
//! The schema has no extensions (see `build_schema`), so no per-field hook
//! is skipped, and the plain fields cannot fail, so no error is lost. The
//! differential test in `tests/api/plain.rs` holds the two paths equal.

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet};
use async_graphql::{OutputType, Value, Variables};

/// An object some of whose fields are answered from memory.
pub trait Plain: OutputType {
    /// The value of `field` (no directives; its alias is the caller's), or
    /// `None` if this object does not answer it plainly. `vars` are the
    /// request's variables, for a field whose arguments use them.
    fn plain(&self, field: &Field, vars: &Variables) -> Option<Value>;
}

/// `item`'s answer to the selection `set`, exactly as the executor would
/// build it, or `None` if the selection is not plain.
pub fn object<T: Plain + ?Sized>(item: &T, set: &SelectionSet, vars: &Variables) -> Option<Value> {
    let mut fields = IndexMap::with_capacity(set.items.len());
    for selection in &set.items {
        let Selection::Field(field) = &selection.node else { return None };
        let field = &field.node;
        if !field.directives.is_empty() {
            return None;
        }
        let value = if field.name.node == "__typename" {
            Value::String(item.introspection_type_name().into_owned())
        } else {
            item.plain(field, vars)?
        };
        if fields.insert(field.response_key().node.clone(), value).is_some() {
            return None;
        }
    }
    Some(if fields.is_empty() { Value::Null } else { Value::Object(fields) })
}

/// Every item's answer to `set`, as a list, or `None` if any is not plain.
pub fn list<T: Plain>(items: &[T], set: &SelectionSet, vars: &Variables) -> Option<Value> {
    items.iter().map(|item| object(item, set, vars)).collect::<Option<Vec<_>>>().map(Value::List)
}
