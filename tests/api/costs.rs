//! The costs a gateway reads: a router's static estimate of an operation,
//! computed from the `@cost` and `@listSize` directives of the published
//! subgraph SDL alone, equals the cost blogql itself enforces.
//!
//! The estimate below is written from Apollo Router's documented demand
//! control rules (the IBM cost spec): a field costs its `@cost` weight, else
//! 1 for an object or interface and 0 for a scalar or enum, plus its
//! selections; a list multiplies by the size its parent's `sizedFields`
//! passes down, else its largest slicing argument, else `assumedSize`;
//! fragments add up; `@skip`/`@include` drop a selection; a mutation costs
//! 10. It reads nothing of blogql's but the SDL text.

use std::collections::HashMap;

use async_graphql::parser::types::{
    BaseType, ConstDirective, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet, TypeKind,
    TypeSystemDefinition,
};
use async_graphql_value::{ConstValue, Value as Ast};
use serde_json::{Value, json};

use crate::helpers::{TestApp, str_at};

/// One field as the SDL declares it: (named type, is a list, weight, listSize).
type Declared = (String, bool, f64, Option<Sizing>);

#[derive(Clone, Default)]
struct Sizing {
    assumed: Option<u64>,
    slicing: Vec<String>,
    sized: Vec<String>,
}

fn declared_fields(sdl: &str) -> HashMap<(String, String), Declared> {
    let doc = async_graphql::parser::parse_schema(sdl).expect("the published SDL parses");
    let mut composite = std::collections::HashSet::new();
    for def in &doc.definitions {
        if let TypeSystemDefinition::Type(t) = def
            && !matches!(t.node.kind, TypeKind::Scalar | TypeKind::Enum(_) | TypeKind::InputObject(_))
        {
            composite.insert(t.node.name.node.to_string());
        }
    }
    let mut out = HashMap::new();
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else { continue };
        let fields = match &t.node.kind {
            TypeKind::Object(o) => &o.fields,
            TypeKind::Interface(i) => &i.fields,
            _ => continue,
        };
        for f in fields {
            let (mut base, mut list) = (&f.node.ty.node.base, false);
            let name = loop {
                match base {
                    BaseType::Named(n) => break n.to_string(),
                    BaseType::List(inner) => {
                        list = true;
                        base = &inner.base;
                    }
                }
            };
            let directive = |wanted: &str| f.node.directives.iter().find(|d| d.node.name.node == wanted);
            let weight = directive("cost").and_then(|d| int_arg(&d.node, "weight")).map(|w| w as f64);
            let weight = weight.unwrap_or(if composite.contains(&name) { 1.0 } else { 0.0 });
            let sizing = directive("listSize").map(|d| Sizing {
                assumed: int_arg(&d.node, "assumedSize"),
                slicing: string_list(&d.node, "slicingArguments"),
                sized: string_list(&d.node, "sizedFields"),
            });
            out.insert((t.node.name.node.to_string(), f.node.name.node.to_string()), (name, list, weight, sizing));
        }
    }
    out
}

fn int_arg(d: &ConstDirective, name: &str) -> Option<u64> {
    match d.get_argument(name).map(|v| &v.node) {
        Some(ConstValue::Number(n)) => n.as_u64(),
        _ => None,
    }
}

fn string_list(d: &ConstDirective, name: &str) -> Vec<String> {
    match d.get_argument(name).map(|v| &v.node) {
        Some(ConstValue::List(items)) => {
            items.iter().filter_map(|i| if let ConstValue::String(s) = i { Some(s.clone()) } else { None }).collect()
        }
        _ => Vec::new(),
    }
}

struct Router<'a> {
    fields: &'a HashMap<(String, String), Declared>,
    doc: &'a ExecutableDocument,
    vars: &'a Value,
}

impl Router<'_> {
    fn int(&self, v: &Ast) -> Option<u64> {
        match v {
            Ast::Number(n) => n.as_u64(),
            Ast::Variable(name) => self.vars.get(name.as_str()).and_then(Value::as_u64),
            _ => None,
        }
    }

    fn dropped(&self, directives: &[async_graphql::Positioned<async_graphql::parser::types::Directive>]) -> bool {
        directives.iter().any(|d| {
            let cond = match d.node.get_argument("if").map(|v| &v.node) {
                Some(Ast::Boolean(b)) => Some(*b),
                Some(Ast::Variable(name)) => self.vars.get(name.as_str()).and_then(Value::as_bool),
                _ => None,
            };
            (d.node.name.node == "skip" && cond == Some(true)) || (d.node.name.node == "include" && cond == Some(false))
        })
    }

    fn set(&self, on: &str, set: &SelectionSet, passed: Option<(&Sizing, u64)>) -> f64 {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(f) if self.dropped(&f.node.directives) => 0.0,
                Selection::Field(f) => {
                    let Some((ty, list, weight, sizing)) =
                        self.fields.get(&(on.to_owned(), f.node.name.node.to_string()))
                    else {
                        return 0.0;
                    };
                    let own = sizing.as_ref().map(|s| {
                        let given =
                            s.slicing.iter().filter_map(|a| f.node.get_argument(a)).filter_map(|v| self.int(&v.node));
                        (s, given.max().or(s.assumed).unwrap_or(1))
                    });
                    let from_parent = passed.filter(|(s, _)| s.sized.iter().any(|n| *n == f.node.name.node.as_str()));
                    let count = match (list, from_parent, own) {
                        (false, _, _) => 1,
                        (true, Some((_, n)), _) | (true, None, Some((_, n))) => n,
                        (true, None, None) => 1,
                    };
                    count as f64 * (weight + self.set(ty, &f.node.selection_set.node, own))
                }
                Selection::InlineFragment(i) if self.dropped(&i.node.directives) => 0.0,
                Selection::InlineFragment(i) => {
                    let on = i.node.type_condition.as_ref().map_or(on, |c| c.node.on.node.as_str());
                    self.set(on, &i.node.selection_set.node, passed)
                }
                Selection::FragmentSpread(s) => {
                    let fragment = &self.doc.fragments[&s.node.fragment_name.node];
                    self.set(
                        fragment.node.type_condition.node.on.node.as_str(),
                        &fragment.node.selection_set.node,
                        passed,
                    )
                }
            })
            .sum()
    }

    fn operation(&self) -> f64 {
        let DocumentOperations::Single(op) = &self.doc.operations else { panic!("one anonymous operation") };
        let (root, base) = match op.node.ty {
            OperationType::Query => ("Query", 0.0),
            OperationType::Mutation => ("Mutation", 10.0),
            OperationType::Subscription => ("Subscription", 0.0),
        };
        base + self.set(root, &op.node.selection_set.node, None)
    }
}

/// For a fixed set of operations (connections nested three deep, variables, fragments, `@skip`, a payload list, `nodes`, a mutation), the router's estimate from the published directives equals the cost the server reports when it refuses them.
#[tokio::test]
async fn a_routers_estimate_from_the_sdl_equals_blogqls_own_cost() {
    let sdl = blogql::graphql::subgraph_sdl();
    let fields = declared_fields(&sdl);
    assert!(sdl.contains("@listSize(") && sdl.contains("@cost(weight: 200)"), "the SDL publishes the directives");
    let operations: [(&str, Value); 7] = [
        (
            "{ posts(first: 10) { totalCount edges { cursor node { id title body author { name } } } pageInfo { hasNextPage } } }",
            json!({}),
        ),
        (
            "query($n: Int) { users(last: $n) { edges { node { name posts(first: 5) { edges { node { title comments(first: 3) { edges { node { body } } } } } } } } } }",
            json!({ "n": 7 }),
        ),
        (
            "{ feed(first: 20) { edges { node { ...P } } } } fragment P on Post { title likedBy(first: 2) { totalCount edges { node { id } } } }",
            json!({}),
        ),
        (
            "query($skip: Boolean!) { posts { edges { node { id } } } users(first: 2) @skip(if: $skip) { totalCount } }",
            json!({ "skip": true }),
        ),
        ("{ nodes(ids: [\"a\", \"b\"]) { id ... on Post { body } ... on Comment { body } } }", json!({})),
        (
            "{ post(id: \"x\") { comments { edges { node { author { followers(first: 4) { edges { node { name } } } } } } } } }",
            json!({}),
        ),
        (
            "mutation($id: ID!) { deletePost(id: $id) { deletedPostId deletedCommentIds(first: 5) author { postCount } } }",
            json!({ "id": "x" }),
        ),
    ];
    // With a limit of 0 every operation is refused, and the refusal states blogql's own cost.
    let app = TestApp::spawn_with(|s| s.graphql.max_query_complexity = 0).await;
    for (query, vars) in operations {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let router = Router { fields: &fields, doc: &doc, vars: &vars }.operation();
        let resp = app.graphql(query, vars.clone()).await;
        let message = str_at(&resp, "/errors/0/message");
        let own: f64 = message
            .split("estimated at ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no cost in {message:?}"));
        assert!(router > 0.0, "{query} costs something");
        assert_eq!(router, own, "{query}: the router estimates {router}, blogql enforces {own}");
    }
}
