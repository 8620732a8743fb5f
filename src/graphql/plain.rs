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

use async_graphql::indexmap::map::Entry;
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
        if !selection.node.directives().is_empty() {
            return None;
        }
        let (condition, inner) = match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                match fields.entry(field.response_key().node.clone()) {
                    // A leaf keeps its first place and value, as the executor's merge
                    // keeps them; merging two sub-selections is left to the executor.
                    Entry::Occupied(_) if field.selection_set.node.items.is_empty() => {}
                    Entry::Occupied(_) => return None,
                    Entry::Vacant(slot) => {
                        slot.insert(if field.name.node == "__typename" {
                            Value::String(ty.to_owned())
                        } else {
                            item.plain(field, env)?
                        });
                    }
                }
                continue;
            }
            Selection::InlineFragment(inline) => {
                let inline = &inline.node;
                (inline.type_condition.as_ref().map(|c| c.node.on.node.as_str()), &inline.selection_set.node)
            }
            Selection::FragmentSpread(spread) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::SimpleObject;
    use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};

    /// A type whose `a` and `b` are plain and whose `slow` is not.
    #[derive(SimpleObject)]
    struct Thing {
        a: i32,
        b: i32,
        slow: i32,
    }

    impl Plain for Thing {
        fn plain(&self, field: &Field, _env: &Env<'_>) -> Option<Value> {
            match field.name.node.as_str() {
                "a" => Some(Value::from(self.a)),
                "b" => Some(Value::from(self.b)),
                _ => None,
            }
        }
    }

    /// `query`'s answer for a `Thing` that implements the interface `Named`,
    /// as the plain path builds it, written as a GraphQL value (in order).
    fn answer(query: &str) -> Option<String> {
        let doc: ExecutableDocument = async_graphql::parser::parse_query(query).expect("parses");
        let DocumentOperations::Single(op) = &doc.operations else { panic!("one operation") };
        let implements = HashMap::from([("Thing".to_string(), IndexSet::from(["Named".to_string()]))]);
        let vars = Variables::default();
        let env = Env { vars: &vars, fragments: &doc.fragments, implements: &implements };
        let value = object(&Thing { a: 1, b: 2, slow: 3 }, &op.node.selection_set.node, &env)?;
        Some(value.to_string())
    }

    /// Fragments apply by the executor's test (no condition, the type, an
    /// interface it implements) and are skipped otherwise; a repeated leaf
    /// keeps its first place; an aliased `__typename` names the type.
    #[test]
    fn fragments_expand_where_the_executor_expands_them() {
        assert_eq!(answer("{ b ... on Thing { a b } }").as_deref(), Some("{b: 2, a: 1}"));
        assert_eq!(answer("{ ... { a } ... on Named { b } }").as_deref(), Some("{a: 1, b: 2}"));
        assert_eq!(answer("{ a ... on Other { b } }").as_deref(), Some("{a: 1}"));
        let named = "{ ...F t: __typename } fragment F on Named { b ...G } fragment G on Thing { a }";
        assert_eq!(answer(named).as_deref(), Some("{b: 2, a: 1, t: \"Thing\"}"));
        assert_eq!(answer("{ ... on Other { a } }").as_deref(), Some("null"));
    }

    /// What is not plain makes the whole object not plain, in a fragment or
    /// not, and so does a fragment nested deeper than the bound.
    #[test]
    fn what_is_not_plain_is_left_to_the_executor() {
        assert_eq!(answer("{ a slow }"), None);
        assert_eq!(answer("{ a ... on Named { slow } }"), None);
        assert_eq!(answer("{ ...Missing }"), None);
        let nested = format!("{{ {}a{} }}", "... { ".repeat(40), " }".repeat(40));
        assert_eq!(answer(&nested), None);
        let shallow = format!("{{ {}a{} }}", "... { ".repeat(8), " }".repeat(8));
        assert_eq!(answer(&shallow).as_deref(), Some("{a: 1}"));
    }
}
