//! Apollo Federation v2: blogql as a subgraph that owns `User`, `Post` and `Comment`.
//!
//! Federation is a setting (`--federation`), off by default, because its root
//! fields (`_service`, `_entities`) and types (`_Any`, `_Entity`) mean nothing
//! to a client talking to blogql directly. With it on, the three types carry
//! `@key(fields: "id")`, `_service { sdl }` answers the subgraph SDL that
//! `blogql print-schema --federation` prints, and `_entities` resolves
//! references through the request's loaders: one batch per type, however
//! many representations a router sends.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Context, ID, MergedObject, Object, Variables};
use async_graphql_value::{ConstValue, Value};

use super::comment::Comment;
use super::error::ApiResult;
use super::post::Post;
use super::user::{User, load_user};
use super::{CtxExt, Query, parse_id};

/// The entity resolvers a router calls through `_entities`.
#[derive(Default)]
pub struct EntityQuery;

#[Object]
impl EntityQuery {
    /// Resolves a `User` reference by id.
    #[graphql(entity)]
    async fn user_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<User>> {
        Ok(load_user(ctx, parse_id("id", &id)?).await?.map(User))
    }

    /// Resolves a `Post` reference by id.
    #[graphql(entity)]
    async fn post_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Post>> {
        Ok(ctx.request()?.posts.load_one(parse_id("id", &id)?).await?.map(Post::from))
    }

    /// Resolves a `Comment` reference by id.
    #[graphql(entity)]
    async fn comment_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Comment>> {
        Ok(ctx.request()?.comments.load_one(parse_id("id", &id)?).await?.map(Comment::from))
    }
}

/// The root query of the subgraph: every client query plus the entity resolvers.
#[derive(MergedObject, Default)]
pub struct FederatedQuery(Query, EntityQuery);

/// Most representations one request's `_entities` fields may ask for in all.
/// A router asks for one per item of a list it resolves through blogql, so
/// this is ten of the largest pages.
pub const MAX_REPRESENTATIONS: usize = 1_000;

/// What one field of an entity's selection is reckoned to cost: `body` the
/// most either type's body may answer (`Post.body`, 200), anything else 1.
fn entity_field_weight(name: &str) -> usize {
    if name == "body" { 200 } else { 1 }
}

/// Refuses a request whose `_entities` fields ask for more than
/// [`MAX_REPRESENTATIONS`] representations, or whose representations times
/// their selection's cost pass `max_complexity`.
///
/// async-graphql generates `_entities` and costs it once, whatever the
/// number of representations, so 5,000 representations selecting `body`
/// passed the complexity limit. The representations are counted here from
/// the argument (a literal list, or the variable it names), before anything
/// runs; the selection is costed conservatively (every `body` as a post's).
pub fn check_entities(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    max_complexity: usize,
) -> std::result::Result<(), String> {
    let Some(operation) = crate::limits::operation(doc, operation_name) else {
        // The schema refuses a request naming no operation it can run.
        return Ok(());
    };
    let mut asked = (0usize, 0usize);
    root_entities(doc, &operation.node.selection_set.node, variables, &mut asked, 0);
    let (representations, cost) = asked;
    if representations > MAX_REPRESENTATIONS {
        return Err(format!("_entities may ask for at most {MAX_REPRESENTATIONS} representations"));
    }
    if cost > max_complexity {
        return Err(format!(
            "_entities asks for {representations} representations, which with their selection passes the complexity limit of {max_complexity}"
        ));
    }
    Ok(())
}

/// Adds up the `_entities` fields among the root selections (through root
/// fragments, to a bounded depth): (representations, representations × selection cost).
fn root_entities(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    variables: &Variables,
    asked: &mut (usize, usize),
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) if field.node.name.node == "_entities" => {
                let n = field.node.get_argument("representations").map_or(0, |value| match &value.node {
                    Value::List(items) => items.len(),
                    Value::Variable(name) => match variables.get(name) {
                        Some(ConstValue::List(items)) => items.len(),
                        Some(_) => 1,
                        None => 0,
                    },
                    _ => 1,
                });
                let each = 1 + crate::limits::selection_cost(doc, &field.node.selection_set.node, entity_field_weight);
                asked.0 = asked.0.saturating_add(n);
                asked.1 = asked.1.saturating_add(n.saturating_mul(each));
            }
            Selection::Field(_) => {}
            Selection::InlineFragment(fragment) => {
                root_entities(doc, &fragment.node.selection_set.node, variables, asked, depth + 1);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    root_entities(doc, &fragment.node.selection_set.node, variables, asked, depth + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(q: &str, variables: serde_json::Value) -> std::result::Result<(), String> {
        let doc = async_graphql::parser::parse_query(q).map_err(|e| e.to_string())?;
        check_entities(&doc, None, &Variables::from_json(variables), 25_000)
    }

    const Q: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Post { id title } } }";

    /// Representations are counted from the variable and multiplied by the selection.
    #[test]
    fn representations_are_counted_and_multiplied() {
        let reps = |n: usize| serde_json::json!({ "r": vec![serde_json::json!({"__typename": "Post", "id": "x"}); n] });
        assert!(check(Q, reps(100)).is_ok());
        assert!(check(Q, reps(MAX_REPRESENTATIONS + 1)).is_err_and(|e| e.contains("at most")));
        let body = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Post { body } } }";
        assert!(check(body, reps(100)).is_ok());
        assert!(check(body, reps(200)).is_err_and(|e| e.contains("complexity")));
        let literal = format!(
            "{{ _entities(representations: [{}]) {{ ... on Post {{ body }} }} }}",
            "{__typename: \"Post\", id: \"x\"} ".repeat(200)
        );
        assert!(check(&literal, serde_json::json!({})).is_err());
        let fragment =
            "query($r: [_Any!]!) { ...F } fragment F on Query { _entities(representations: $r) { __typename } }";
        assert!(check(fragment, reps(MAX_REPRESENTATIONS + 1)).is_err());
        assert!(check("{ __typename }", serde_json::json!({})).is_ok());
    }
}
