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
//! fields as null. Fragments (inline and named, as Apollo and Relay clients
//! write them) are expanded in place where their type condition holds, as
//! the executor expands them, and a leaf key selected again keeps its first
//! place and value, as the executor's merge keeps it. Anything else makes it
//! answer `None`, and the list goes through the executor as before:
//! - a directive (`@skip` and `@include` are applied by async-graphql
//!   before execution, so it never sees those; the schema declares no other);
//! - a key with a sub-selection selected twice (the executor merges those);
//! - a field a type does not answer plainly ([`Plain::plain`]): one that
//!   needs the viewer or would load something. The one field with
//!   arguments answered plainly is a post's `comments` page when the posts
//!   list loaded exactly that page ahead.
//!
//! The schema has no extensions (see `build_schema`), so no per-field hook
//! is skipped, and the plain fields cannot fail, so no error is lost. The
//! differential test in `tests/api/plain.rs` holds the two paths equal.

use std::collections::HashMap;

use async_graphql::indexmap::{IndexMap, IndexSet};
use async_graphql::parser::types::{Field, FragmentDefinition, Selection, SelectionSet};
use async_graphql::{Name, OutputType, Positioned, Value, Variables};

/// An object some of whose fields are answered from memory.
pub trait Plain: OutputType {
    /// The value of `field` (no directives; its alias is the caller's), or
    /// `None` if this object does not answer it plainly. `env` holds the
    /// request's variables, for a field whose arguments use them.
    fn plain(&self, field: &Field, env: &Env<'_>) -> Option<Value>;
}

/// What the plain path reads of a request besides the selection: its
/// variables, its named fragments, and which interfaces each type
/// implements (for a fragment's type condition).
pub struct Env<'a> {
    /// The request's variables, as sent.
    pub vars: &'a Variables,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    implements: &'a HashMap<String, IndexSet<String>>,
}

impl<'a> Env<'a> {
    /// The request `ctx` executes.
    pub fn of<T>(ctx: &async_graphql::context::ContextBase<'a, T>) -> Self {
        Env {
            vars: &ctx.query_env.variables,
            fragments: &ctx.query_env.fragments,
            implements: &ctx.schema_env.registry.implements,
        }
    }

    /// Whether a fragment on `condition` applies to an object of type `ty`:
    /// the executor's test (the type itself, or an interface it implements).
    fn applies(&self, condition: Option<&str>, ty: &str) -> bool {
        condition.is_none_or(|on| on == ty || self.implements.get(ty).is_some_and(|set| set.contains(on)))
    }
}

/// How deep fragments may nest inside one another before the plain path
/// leaves the selection to the executor. Validation already refuses cycles;
/// this only bounds the recursion whatever a document holds.
const MAX_FRAGMENT_NESTING: u8 = 32;

/// `item`'s answer to the selection `set`, exactly as the executor would
/// build it, or `None` if the selection is not plain.
pub fn object<T: Plain + ?Sized>(item: &T, set: &SelectionSet, env: &Env<'_>) -> Option<Value> {
    let mut fields = IndexMap::with_capacity(set.items.len());
    let ty = item.introspection_type_name();
    collect(item, &ty, set, env, &mut fields, 0)?;
    Some(if fields.is_empty() { Value::Null } else { Value::Object(fields) })
}

/// Adds `set`'s fields of `item` (of type `ty`) to `fields`, expanding the
/// fragments that apply in place; `None` if any part is not plain.
fn collect<T: Plain + ?Sized>(
    item: &T,
    ty: &str,
    set: &SelectionSet,
    env: &Env<'_>,
    fields: &mut IndexMap<Name, Value>,
    nesting: u8,
) -> Option<()> {
    for selection in &set.items {
        let (condition, inner) = match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                if !field.directives.is_empty() {
                    return None;
                }
                let key = &field.response_key().node;
                if fields.contains_key(key) {
                    // A leaf keeps its first place and value, as the executor's merge
                    // keeps them; merging two sub-selections is left to the executor.
                    if field.selection_set.node.items.is_empty() {
                        continue;
                    }
                    return None;
                }
                let value = if field.name.node == "__typename" {
                    Value::String(ty.to_owned())
                } else {
                    item.plain(field, env)?
                };
                fields.insert(key.clone(), value);
                continue;
            }
            Selection::InlineFragment(inline) => {
                let inline = &inline.node;
                if !inline.directives.is_empty() {
                    return None;
                }
                (inline.type_condition.as_ref().map(|c| c.node.on.node.as_str()), &inline.selection_set.node)
            }
            Selection::FragmentSpread(spread) => {
                if !spread.node.directives.is_empty() {
                    return None;
                }
                let fragment = &env.fragments.get(&spread.node.fragment_name.node)?.node;
                (Some(fragment.type_condition.node.on.node.as_str()), &fragment.selection_set.node)
            }
        };
        if env.applies(condition, ty) {
            if nesting >= MAX_FRAGMENT_NESTING {
                return None;
            }
            collect(item, ty, inner, env, fields, nesting + 1)?;
        }
    }
    Some(())
}

/// Every item's answer to `set`, as a list, or `None` if any is not plain.
pub fn list<T: Plain>(items: &[T], set: &SelectionSet, env: &Env<'_>) -> Option<Value> {
    items.iter().map(|item| object(item, set, env)).collect::<Option<Vec<_>>>().map(Value::List)
}
