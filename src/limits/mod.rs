//! Guards for a public endpoint that async-graphql and tower do not provide:
//! the document checks (query size with aliases, fragment uses and spreads
//! counted, in linear time; mutation fields; previews; `__typename`), and
//! in [`rate`] the rate limiters behind the log-in, sign-up and write
//! limits. Their settings live in [`crate::settings`]. [`lexical`] is the pass that
//! bounds a document's nesting and tokens before anything parses it;
//! [`introspection`] costs introspection selections by what they can answer;
//! [`gate`] bounds how much expensive work runs and waits at once.

pub mod gate;
pub mod introspection;
pub mod lexical;
pub mod rate;

use std::collections::HashMap;

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};

pub use self::rate::{FailureBackoff, PER_IP_FACTOR, RateLimiter, WriteBudget};
use crate::error::Result;

/// Why a document was refused before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySizeError {
    /// The document selects more than the cap, counting every alias, fragment use and spread.
    TooLarge {
        /// The cap that was exceeded.
        cap: usize,
    },
    /// A fragment spreads itself, directly or through others.
    FragmentCycle(String),
}

impl std::fmt::Display for QuerySizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuerySizeError::TooLarge { cap } => write!(f, "the query selects more than {cap} fields"),
            QuerySizeError::FragmentCycle(name) => write!(f, "fragment {name} spreads itself"),
        }
    }
}

/// The size of `doc` as it would execute: every field, inline fragment and
/// fragment spread counts as one node, and a spread also costs the whole
/// fragment it expands to. Refused above `cap`.
///
/// Each fragment's cost is computed once (bottom up, memoised, with
/// saturating arithmetic), so the check is linear in the document's length
/// even when fragments spread each other exponentially, which is what lets
/// it run before anything that expands spreads (async-graphql's recursion
/// check, its depth and complexity rules).
pub fn check_query_size(doc: &ExecutableDocument, cap: usize) -> Result<usize, QuerySizeError> {
    let mut walk = SizeWalk { doc, memo: HashMap::new(), weight: |_| 1, fragment_weight: 1 };
    let mut total = 0usize;
    for (_, operation) in doc.operations.iter() {
        total = total.saturating_add(walk.set(&operation.node.selection_set.node)?);
    }
    if total > cap {
        return Err(QuerySizeError::TooLarge { cap });
    }
    Ok(total)
}

/// The size of one selection set of `doc` as [`check_query_size`] counts
/// it, but with each field counting `weight(field name)` instead of one
/// (spreads and inline fragments still count one). Fragment cycles cost
/// nothing here: the size check refuses them first.
pub fn selection_cost(doc: &ExecutableDocument, set: &SelectionSet, weight: fn(&str) -> usize) -> usize {
    SizeWalk { doc, memo: HashMap::new(), weight, fragment_weight: 1 }.set(set).unwrap_or(usize::MAX)
}

#[derive(Clone, Copy)]
enum Memo {
    Visiting,
    Done(usize),
}

/// The memoised walk behind [`check_query_size`] and [`selection_cost`]:
/// each fragment's cost is computed once, so it is linear in the document.
struct SizeWalk<'a> {
    doc: &'a ExecutableDocument,
    memo: HashMap<&'a str, Memo>,
    /// What a field costs, by name.
    weight: fn(&str) -> usize,
    /// What an inline fragment or a spread costs itself.
    fragment_weight: usize,
}

impl<'a> SizeWalk<'a> {
    fn set(&mut self, set: &'a SelectionSet) -> Result<usize, QuerySizeError> {
        let mut total = 0usize;
        for item in &set.items {
            let (own, inner) = match &item.node {
                Selection::Field(field) => {
                    ((self.weight)(field.node.name.node.as_str()), self.set(&field.node.selection_set.node)?)
                }
                Selection::InlineFragment(fragment) => {
                    (self.fragment_weight, self.set(&fragment.node.selection_set.node)?)
                }
                Selection::FragmentSpread(spread) => {
                    (self.fragment_weight, self.fragment(spread.node.fragment_name.node.as_str())?)
                }
            };
            total = total.saturating_add(own).saturating_add(inner);
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str) -> Result<usize, QuerySizeError> {
        match self.memo.get(name) {
            Some(Memo::Done(cost)) => return Ok(*cost),
            Some(Memo::Visiting) => return Err(QuerySizeError::FragmentCycle(name.to_owned())),
            None => {}
        }
        // An unknown fragment costs nothing here; validation reports it.
        let Some((key, fragment)) = self.doc.fragments.get_key_value(name) else {
            return Ok(0);
        };
        self.memo.insert(key.as_str(), Memo::Visiting);
        let cost = self.set(&fragment.node.selection_set.node)?;
        self.memo.insert(key.as_str(), Memo::Done(cost));
        Ok(cost)
    }
}

/// Whether any selection in `doc` (an operation or any fragment) names an
/// introspection field (`__schema` or `__type`). Each selection set is
/// visited once, without expanding spreads, so this is linear in the
/// document. Used to refuse introspection when it is turned off: the
/// fields are reachable below the root too, through the payloads' `query`.
pub fn mentions_introspection(doc: &ExecutableDocument) -> bool {
    fn set(selections: &SelectionSet) -> bool {
        selections.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                name == "__schema" || name == "__type" || set(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => set(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    doc.operations.iter().any(|(_, op)| set(&op.node.selection_set.node))
        || doc.fragments.values().any(|f| set(&f.node.selection_set.node))
}

/// The operation a request runs: the one named, or the only one. `None`
/// when the name is unknown or several operations are unnamed-for (the
/// schema refuses those requests itself).
pub fn operation<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        _ => None,
    }
}

/// How many mutation fields the request would run: the root fields of its
/// operation when that is a mutation, counting aliases and root fragments'
/// fields at every use (0 for a query). Each runs its own transaction, so
/// this is how many writes one request can buy.
pub fn mutation_fields(doc: &ExecutableDocument, operation_name: Option<&str>) -> usize {
    mutation_field_names(doc, operation_name).len()
}

/// The names of the mutation fields the request would run, one per use
/// (see [`mutation_fields`]); empty for a query.
pub fn mutation_field_names<'a>(doc: &'a ExecutableDocument, operation_name: Option<&str>) -> Vec<&'a str> {
    fn walk<'a>(doc: &'a ExecutableDocument, set: &'a SelectionSet, depth: usize, out: &mut Vec<&'a str>) {
        if depth > 16 {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(field) if field.node.name.node != "__typename" => out.push(&field.node.name.node),
                Selection::Field(_) => {}
                Selection::InlineFragment(fragment) => walk(doc, &fragment.node.selection_set.node, depth + 1, out),
                Selection::FragmentSpread(spread) => {
                    if let Some(f) = doc.fragments.get(&spread.node.fragment_name.node) {
                        walk(doc, &f.node.selection_set.node, depth + 1, out);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(op) = operation(doc, operation_name).filter(|op| op.node.ty == OperationType::Mutation) {
        walk(doc, &op.node.selection_set.node, 0, &mut out);
    }
    out
}

/// The root fields that plan a deletion, which read an account's whole
/// fan-out: a request may run one.
const PREVIEWS: [&str; 2] = ["deleteUserPreview", "deletePostPreview"];

/// How many deletion previews `doc` would run at most: every use, through
/// aliases and fragments, anywhere (payloads' `query` reaches them too).
pub fn preview_fields(doc: &ExecutableDocument) -> usize {
    let mut walk = SizeWalk {
        doc,
        memo: HashMap::new(),
        weight: |name| usize::from(PREVIEWS.contains(&name)),
        fragment_weight: 0,
    };
    doc.operations
        .iter()
        .fold(0usize, |n, (_, op)| n.saturating_add(walk.set(&op.node.selection_set.node).unwrap_or(usize::MAX)))
}

/// Refuses what async-graphql's validation lets through on `__typename`:
/// arguments (it has none) and directives other than `@skip`/`@include`
/// (with their one `if` argument). Validation checks both on every other
/// field; it skips `__typename`. Visits each selection set once, linear in
/// the document.
pub fn check_typename(doc: &ExecutableDocument) -> Result<(), String> {
    fn set(selections: &SelectionSet) -> Result<(), String> {
        for item in &selections.items {
            match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if field.name.node == "__typename" {
                        if let Some((name, _)) = field.arguments.first() {
                            return Err(format!("unknown argument \"{}\" on field \"__typename\"", name.node));
                        }
                        for directive in &field.directives {
                            let directive = &directive.node;
                            let name = directive.name.node.as_str();
                            if name != "skip" && name != "include" {
                                return Err(format!("directive \"{name}\" may not be used on \"__typename\""));
                            }
                            if let Some((arg, _)) = directive.arguments.iter().find(|(arg, _)| arg.node != "if") {
                                return Err(format!("unknown argument \"{}\" on directive \"{name}\"", arg.node));
                            }
                        }
                    }
                    set(&field.selection_set.node)?;
                }
                Selection::InlineFragment(fragment) => set(&fragment.node.selection_set.node)?,
                Selection::FragmentSpread(_) => {}
            }
        }
        Ok(())
    }
    for (_, op) in doc.operations.iter() {
        set(&op.node.selection_set.node)?;
    }
    for fragment in doc.fragments.values() {
        set(&fragment.node.selection_set.node)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Previews are counted through aliases, fragments and payloads' `query`.
    #[test]
    fn previews_are_counted() {
        let count = |q: &str| async_graphql::parser::parse_query(q).map(|d| preview_fields(&d)).unwrap_or(usize::MAX);
        assert_eq!(count("{ deleteUserPreview(id: 1) { postCount } }"), 1);
        assert_eq!(count("{ a: deleteUserPreview(id: 1) { postCount } b: deletePostPreview(id: 2) { postCount } }"), 2);
        assert_eq!(count("{ ...F ...F } fragment F on Query { deleteUserPreview(id: 1) { postCount } }"), 2);
        assert_eq!(count("mutation { likePost(postId: 1) { query { deletePostPreview(id: 2) { postCount } } } }"), 1);
        assert_eq!(count("{ posts { totalCount } }"), 0);
    }

    /// Mutation fields are counted through aliases and root fragments; queries count none.
    #[test]
    fn mutation_fields_are_counted() {
        let count = |q: &str, name: Option<&str>| {
            async_graphql::parser::parse_query(q).map(|d| mutation_fields(&d, name)).unwrap_or(usize::MAX)
        };
        assert_eq!(count("mutation { a: likePost(postId: 1) { id } b: likePost(postId: 2) { id } }", None), 2);
        assert_eq!(count("mutation { ...F ...F __typename } fragment F on Mutation { a: x b: y }", None), 4);
        assert_eq!(count("{ a b c }", None), 0);
        assert_eq!(count("query Q { a } mutation M { a b }", Some("M")), 2);
        assert_eq!(count("query Q { a } mutation M { a b }", Some("Q")), 0);
    }

    /// `__typename` with an argument or a foreign directive is refused, at any
    /// depth and in fragments; `@skip`/`@include` and other fields' arguments are not its business.
    #[test]
    fn typename_takes_no_arguments() {
        let check = |q: &str| async_graphql::parser::parse_query(q).map(|d| check_typename(&d).is_ok()).ok();
        assert_eq!(check("{ __typename(a: 1) }"), Some(false));
        assert_eq!(check("{ posts { __typename @deprecated } }"), Some(false));
        assert_eq!(check("{ ...F } fragment F on Query { __typename(x: [1]) }"), Some(false));
        assert_eq!(check("{ __typename @skip(if: false, x: 1) }"), Some(false));
        assert_eq!(
            check("{ __typename @skip(if: false) @include(if: true) posts(first: 1) { __typename } }"),
            Some(true)
        );
    }

    /// Nodes are counted through aliases and every use of a fragment; a spread is a node too.
    #[test]
    fn counts_aliases_and_fragment_uses() {
        let q = "query { a: viewer { id } b: viewer { ...F } c: viewer { ...F } } fragment F on User { id name }";
        let doc = async_graphql::parser::parse_query(q).expect("parses");
        // 3 viewers + 1 id + 2 spreads + 2 × (id name).
        assert_eq!(check_query_size(&doc, 1000), Ok(3 + 1 + 2 + 2 * 2));
        assert_eq!(check_query_size(&doc, 9), Err(QuerySizeError::TooLarge { cap: 9 }));
    }

    /// Fragments that spread the next one twice, 64 levels deep, are measured
    /// without expanding them (2^64 nodes) and refused.
    #[test]
    fn exponential_fragments_are_measured_in_linear_time() {
        let doc = async_graphql::parser::parse_query(fan_out(64)).expect("parses");
        let started = Instant::now();
        assert_eq!(check_query_size(&doc, 1000), Err(QuerySizeError::TooLarge { cap: 1000 }));
        assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
    }

    /// A fragment cycle is refused, not followed forever.
    #[test]
    fn fragment_cycles_are_refused() {
        let doc =
            async_graphql::parser::parse_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
                .expect("parses");
        assert!(matches!(check_query_size(&doc, 1000), Err(QuerySizeError::FragmentCycle(_))));
    }

    /// Introspection is found at the root, nested under a payload's `query`,
    /// and inside fragments; `__typename` is not introspection.
    #[test]
    fn introspection_is_found_anywhere() {
        let finds = |q: &str| async_graphql::parser::parse_query(q).map(|d| mentions_introspection(&d)).ok();
        assert_eq!(finds("{ __schema { types { name } } }"), Some(true));
        assert_eq!(
            finds("mutation { deletePost(id: \"x\") { query { __type(name: \"User\") { name } } } }"),
            Some(true)
        );
        assert_eq!(
            finds("{ ...F } fragment F on Query { ... on Query { __schema { queryType { name } } } }"),
            Some(true)
        );
        assert_eq!(finds("{ __typename posts { __typename } }"), Some(false));
    }

    /// `query{...F0} fragment F0 on Query{...F1 ...F1} ... fragment Fk on Query{...Missing}`.
    fn fan_out(levels: usize) -> String {
        let mut q = String::from("query { ...F0 }");
        for i in 0..levels {
            q.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
        }
        q.push_str(&format!(" fragment F{levels} on Query {{ ...Missing }}"));
        q
    }
}
