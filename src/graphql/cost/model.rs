//! The cost of an operation, by the IBM GraphQL Cost Directive rules that
//! Apollo Router's demand control and Grafbase apply, over the weights and
//! list sizes [`super`] lists. The same model is enforced here
//! (`--max-query-complexity`) and published in the subgraph SDL as `@cost`
//! and `@listSize` ([`super::publish`]), so a gateway's static estimate of
//! an operation is the number blogql itself computes.
//!
//! The rules: a field costs its weight (its `@cost`, else 1 for an object
//! or interface and 0 for a scalar or enum; blogql publishes `@cost(weight:
//! 1)` on its sized lists of scalars) plus its selection's cost; a
//! list field multiplies that by its size: the size its parent's
//! `@listSize(sizedFields:)` passes down (a connection's `edges` get the
//! connection's `first`/`last`), else the largest of its own slicing
//! arguments, else its assumed size. Fragments add up. A field skipped by
//! `@skip`/`@include` costs nothing, and a mutation costs 10 on top.

use std::collections::HashMap;

use async_graphql::Variables;
use async_graphql::parser::types::{
    BaseType, ExecutableDocument, Field, OperationType, Selection, SelectionSet, TypeKind, TypeSystemDefinition,
};
use async_graphql_value::{ConstValue, Value};

use super::{FIELD_WEIGHTS, ListBound, list_bound};
use crate::domain::DEFAULT_PAGE;

/// What a mutation costs before its fields (Apollo Router's rule).
pub const MUTATION_BASE: u64 = 10;

/// Deepest selection nesting walked: past it a document is refused by the
/// depth limit anyway, and the walk must end even on cyclic fragments,
/// which validation only refuses after this runs.
const MAX_WALK_DEPTH: usize = 64;

/// A field's `@listSize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSize {
    /// Integer arguments whose largest given value is the size.
    pub slicing: Vec<&'static str>,
    /// Child fields that get this size instead of this field (a connection's `edges`).
    pub sized_fields: Vec<&'static str>,
    /// The size when no slicing argument is given.
    pub assumed: u64,
}

/// One field's place in the model.
#[derive(Debug, Clone)]
pub struct FieldCost {
    /// The named type it answers.
    pub named_type: String,
    /// Whether it answers a list.
    pub list: bool,
    /// Its `@cost` weight, when it has one.
    pub weight: Option<u64>,
    /// Whether it answers an object or interface (a weight of 1 when it has no `@cost`).
    pub composite: bool,
    /// Its `@listSize`, when it has one.
    pub list_size: Option<ListSize>,
    /// The SDL line (1-based) that holds its type, where [`super::publish`]
    /// appends its directives.
    pub type_line: usize,
}

/// Every field of a schema with its cost inputs, by type, then field (so a
/// look-up borrows the names it is given: the walk allocates nothing).
#[derive(Debug, Default)]
pub struct CostModel {
    fields: HashMap<String, HashMap<String, FieldCost>>,
}

impl CostModel {
    /// The model of the schema `sdl` prints, with the weights and bounds of [`super`].
    pub fn of_sdl(sdl: &str) -> CostModel {
        let Ok(doc) = async_graphql::parser::parse_schema(sdl) else { return CostModel::default() };
        let mut composite = std::collections::HashSet::new();
        for def in &doc.definitions {
            if let TypeSystemDefinition::Type(ty) = def
                && matches!(ty.node.kind, TypeKind::Object(_) | TypeKind::Interface(_) | TypeKind::Union(_))
            {
                composite.insert(ty.node.name.node.to_string());
            }
        }
        let mut fields = HashMap::new();
        for def in &doc.definitions {
            let TypeSystemDefinition::Type(ty) = def else { continue };
            let type_fields = match &ty.node.kind {
                TypeKind::Object(o) => &o.fields,
                TypeKind::Interface(i) => &i.fields,
                _ => continue,
            };
            let type_name = ty.node.name.node.as_str();
            for field in type_fields {
                let field = &field.node;
                let name = field.name.node.as_str();
                let (named_type, list) = named(&field.ty.node.base);
                let int_argument = |arg: &str| {
                    field.arguments.iter().any(|a| {
                        a.node.name.node == arg && matches!(&a.node.ty.node.base, BaseType::Named(n) if n == "Int")
                    })
                };
                let list_size = match list_bound(type_name, name) {
                    _ if named_type.ends_with("Connection") && composite.contains(&named_type) => Some(ListSize {
                        slicing: vec!["first", "last"],
                        sized_fields: vec!["edges"],
                        assumed: DEFAULT_PAGE as u64,
                    }),
                    Some(ListBound::Argument { name: arg, max }) => Some(ListSize {
                        slicing: if int_argument(arg) { vec![arg] } else { Vec::new() },
                        sized_fields: Vec::new(),
                        assumed: max as u64,
                    }),
                    _ => None,
                };
                let weight = FIELD_WEIGHTS.iter().find(|(t, f, _)| *t == type_name && *f == name).map(|(_, _, w)| *w);
                // A sized list of scalars (a payload's ids) costs one per entry,
                // where a scalar alone costs nothing: otherwise aliasing a
                // thousand-id list would be free.
                let weight = weight.or((list && list_size.is_some() && !composite.contains(&named_type)).then_some(1));
                let cost = FieldCost {
                    composite: composite.contains(&named_type),
                    named_type,
                    list,
                    weight,
                    list_size,
                    type_line: field.ty.pos.line,
                };
                fields.entry(type_name.to_owned()).or_insert_with(HashMap::new).insert(name.to_owned(), cost);
            }
        }
        CostModel { fields }
    }

    /// The field `type_name.field`, if the schema has it.
    pub fn field(&self, type_name: &str, field: &str) -> Option<&FieldCost> {
        self.fields.get(type_name)?.get(field)
    }

    /// Every field of every object and interface type.
    pub fn fields(&self) -> impl Iterator<Item = &FieldCost> {
        self.fields.values().flat_map(HashMap::values)
    }

    /// The cost of the operation `operation_name` picks from `doc`, with `variables`.
    pub fn estimate(&self, doc: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> u64 {
        let Some(op) = crate::limits::operation(doc, operation_name) else { return 0 };
        let walk = Walk { model: self, doc, variables };
        let (root, base) = match op.node.ty {
            OperationType::Query => ("Query", 0),
            OperationType::Mutation => ("Mutation", MUTATION_BASE),
            OperationType::Subscription => ("Subscription", 0),
        };
        base.saturating_add(walk.selection_set(root, &op.node.selection_set.node, None, 0))
    }
}

/// The named type under any list and non-null wrappers, and whether a list wraps it.
fn named(base: &BaseType) -> (String, bool) {
    match base {
        BaseType::Named(name) => (name.to_string(), false),
        BaseType::List(inner) => (named(&inner.base).0, true),
    }
}

struct Walk<'a> {
    model: &'a CostModel,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
}

impl Walk<'_> {
    /// The cost of `set` on `parent`; `sized` is the parent field's `@listSize` and its size.
    fn selection_set(&self, parent: &str, set: &SelectionSet, sized: Option<(&ListSize, u64)>, depth: usize) -> u64 {
        if depth > MAX_WALK_DEPTH {
            return 0;
        }
        let mut cost = 0u64;
        for item in &set.items {
            let item_cost = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if self.skipped(&field.directives) {
                        continue;
                    }
                    let from_parent =
                        sized.filter(|(size, _)| size.sized_fields.contains(&field.name.node.as_str())).map(|(_, n)| n);
                    self.field(parent, field, from_parent, depth)
                }
                Selection::InlineFragment(fragment) => {
                    if self.skipped(&fragment.node.directives) {
                        continue;
                    }
                    let on = fragment.node.type_condition.as_ref().map_or(parent, |c| c.node.on.node.as_str());
                    self.selection_set(on, &fragment.node.selection_set.node, sized, depth + 1)
                }
                Selection::FragmentSpread(spread) => {
                    if self.skipped(&spread.node.directives) {
                        continue;
                    }
                    let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node) else { continue };
                    let on = fragment.node.type_condition.node.on.node.as_str();
                    self.selection_set(on, &fragment.node.selection_set.node, sized, depth + 1)
                }
            };
            cost = cost.saturating_add(item_cost);
        }
        cost
    }

    fn field(&self, parent: &str, field: &Field, from_parent: Option<u64>, depth: usize) -> u64 {
        let Some(info) = self.model.field(parent, field.name.node.as_str()) else {
            // `__typename`, introspection (costed by `limits::introspection`),
            // or a field validation will refuse.
            return 0;
        };
        let own = info.list_size.as_ref().map(|size| (size, self.expected(size, field)));
        let instances = match (info.list, from_parent, &own) {
            (false, _, _) => 1,
            (true, Some(n), _) => n,
            (true, None, Some((_, n))) => *n,
            (true, None, None) => 1,
        };
        let weight = info.weight.unwrap_or(u64::from(info.composite));
        let children = self.selection_set(&info.named_type, &field.selection_set.node, own, depth + 1);
        instances.saturating_mul(weight.saturating_add(children))
    }

    /// The largest slicing argument given (a literal or a variable), else the assumed size.
    fn expected(&self, size: &ListSize, field: &Field) -> u64 {
        let given = size.slicing.iter().filter_map(|name| {
            let value = field.get_argument(name)?;
            let n = match &value.node {
                Value::Number(n) => n.as_i64(),
                Value::Variable(var) => match self.variables.get(var) {
                    Some(ConstValue::Number(n)) => n.as_i64(),
                    _ => None,
                },
                _ => None,
            }?;
            Some(u64::try_from(n).unwrap_or(0))
        });
        given.max().unwrap_or(size.assumed)
    }

    /// Whether `@skip(if: true)` or `@include(if: false)` drops the selection.
    fn skipped(&self, directives: &[async_graphql::Positioned<async_graphql::parser::types::Directive>]) -> bool {
        directives.iter().any(|d| {
            let truth = |name: &str| match d.node.get_argument(name).map(|v| &v.node) {
                Some(Value::Boolean(b)) => Some(*b),
                Some(Value::Variable(var)) => match self.variables.get(var) {
                    Some(ConstValue::Boolean(b)) => Some(*b),
                    _ => None,
                },
                _ => None,
            };
            match d.node.name.node.as_str() {
                "skip" => truth("if") == Some(true),
                "include" => truth("if") == Some(false),
                _ => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(query: &str, variables: serde_json::Value) -> u64 {
        let model = CostModel::of_sdl(&crate::graphql::sdl());
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        model.estimate(&doc, None, &Variables::from_json(variables))
    }

    /// A connection costs 1 plus `first` times its edges; scalars cost nothing and `Post.body` 200.
    #[test]
    fn connections_multiply_their_edges_by_first() {
        assert_eq!(cost("{ posts(first: 10) { totalCount edges { node { id title } } } }", serde_json::json!({})), 21);
        assert_eq!(cost("{ posts(first: 10) { edges { node { body } } } }", serde_json::json!({})), 1 + 10 * 202);
        assert_eq!(cost("query($n: Int) { posts(first: $n) { edges { cursor } } }", serde_json::json!({"n": 3})), 4);
        assert_eq!(cost("{ posts { edges { cursor } } }", serde_json::json!({})), 1 + DEFAULT_PAGE as u64);
        assert_eq!(cost("{ posts(last: 5) { pageInfo { hasNextPage } } }", serde_json::json!({})), 2);
    }

    /// Fragments add up, skipped selections cost nothing, and a mutation costs 10 on top.
    #[test]
    fn fragments_directives_and_mutations_follow_the_rules() {
        let spread = "{ posts(first: 2) { edges { node { ...P } } } } fragment P on Post { author { name } }";
        assert_eq!(cost(spread, serde_json::json!({})), 1 + 2 * (1 + 1 + 1));
        let skipped = "query($s: Boolean!) { posts(first: 2) @skip(if: $s) { totalCount } viewer { id } }";
        assert_eq!(cost(skipped, serde_json::json!({"s": true})), 1);
        assert_eq!(cost("mutation { logOut }", serde_json::json!({})), MUTATION_BASE);
    }

    /// A cyclic fragment (refused later by validation) still ends the walk.
    #[test]
    fn cyclic_fragments_end_the_walk() {
        let cyclic = "{ viewer { ...A } } fragment A on User { followers { edges { node { ...A } } } }";
        assert!(cost(cyclic, serde_json::json!({})) > 0);
    }
}
