//! What an introspection selection can answer, costed before it runs.
//!
//! async-graphql costs every introspection field 1 and never multiplies a
//! list, so 66 aliases of a depth-15 `__schema` walk (10 KB) passed the
//! complexity limit and cost 420 ms of CPU and a 2.8 MB answer. Here each
//! introspection list field is multiplied by the most entries it can have
//! *in this schema* (its types, the most fields on one type, the most
//! arguments on one field, ...), read once from the schema's SDL, and the
//! selection is costed in leaves: the values it can answer at most.
//! GraphiQL's own introspection query is about 10⁵ leaves here; the bound is
//! set from the complexity limit, whose unit is about a kilobyte of answer,
//! at [`BYTES_PER_LEAF`] each.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet, TypeKind, TypeSystemDefinition};

/// What one introspection leaf (a name, a kind, a flag) is reckoned to answer, in bytes.
pub const BYTES_PER_LEAF: usize = 32;

/// The longest each introspection list can be in one schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    types: u64,
    fields: u64,
    input_fields: u64,
    args: u64,
    enum_values: u64,
    interfaces: u64,
    possible_types: u64,
    directives: u64,
}

/// Introspection's own types and built-in scalars, which `types` lists beside the SDL's.
const BUILT_IN_TYPES: u64 = 8 + 5;
/// The most fields an introspection type has (`__Type`).
const BUILT_IN_FIELDS: u64 = 12;
/// `__DirectiveLocation`'s values, the longest built-in enum.
const BUILT_IN_ENUM_VALUES: u64 = 19;
/// `@skip`, `@include`, `@deprecated`, `@specifiedBy`, `@oneOf`.
const BUILT_IN_DIRECTIVES: u64 = 5;

impl Shape {
    /// The shape of the schema `sdl` describes (with introspection's built-ins).
    /// An SDL that does not parse gives a generous fixed shape.
    pub fn of_sdl(sdl: &str) -> Shape {
        let mut shape = Shape {
            types: BUILT_IN_TYPES,
            fields: BUILT_IN_FIELDS,
            input_fields: 1,
            args: 2,
            enum_values: BUILT_IN_ENUM_VALUES,
            interfaces: 1,
            possible_types: 1,
            directives: BUILT_IN_DIRECTIVES,
        };
        let Ok(doc) = async_graphql::parser::parse_schema(sdl) else {
            return Shape { types: 1000, fields: 100, input_fields: 100, args: 20, ..shape };
        };
        let mut implementors: HashMap<String, u64> = HashMap::new();
        let max = |slot: &mut u64, n: usize| *slot = (*slot).max(n as u64);
        for definition in &doc.definitions {
            match definition {
                TypeSystemDefinition::Type(ty) => {
                    shape.types += 1;
                    match &ty.node.kind {
                        TypeKind::Object(o) => {
                            max(&mut shape.fields, o.fields.len());
                            max(&mut shape.interfaces, o.implements.len());
                            for f in &o.fields {
                                max(&mut shape.args, f.node.arguments.len());
                            }
                            for i in &o.implements {
                                *implementors.entry(i.node.to_string()).or_default() += 1;
                            }
                        }
                        TypeKind::Interface(i) => {
                            max(&mut shape.fields, i.fields.len());
                            for f in &i.fields {
                                max(&mut shape.args, f.node.arguments.len());
                            }
                        }
                        TypeKind::Union(u) => max(&mut shape.possible_types, u.members.len()),
                        TypeKind::Enum(e) => max(&mut shape.enum_values, e.values.len()),
                        TypeKind::InputObject(i) => max(&mut shape.input_fields, i.fields.len()),
                        TypeKind::Scalar => {}
                    }
                }
                TypeSystemDefinition::Directive(d) => {
                    shape.directives += 1;
                    max(&mut shape.args, d.node.arguments.len());
                }
                TypeSystemDefinition::Schema(_) => {}
            }
        }
        for n in implementors.into_values() {
            shape.possible_types = shape.possible_types.max(n);
        }
        shape
    }

    /// How many entries the introspection field `name` can list (1 for a non-list field).
    fn multiplier(&self, name: &str) -> u64 {
        match name {
            "types" => self.types,
            "fields" => self.fields,
            "inputFields" => self.input_fields,
            "args" => self.args,
            "enumValues" => self.enum_values,
            "interfaces" => self.interfaces,
            "possibleTypes" => self.possible_types,
            "directives" => self.directives,
            "locations" => BUILT_IN_ENUM_VALUES,
            _ => 1,
        }
    }
}

/// Whether the introspection field `name` is one of the lists this module
/// multiplies (the schema-wide list-bound test checks every introspection
/// list against it).
pub fn is_costed_list(name: &str) -> bool {
    matches!(
        name,
        "types"
            | "fields"
            | "inputFields"
            | "args"
            | "enumValues"
            | "interfaces"
            | "possibleTypes"
            | "directives"
            | "locations"
    )
}

/// The most leaves the introspection selections of `doc` can answer, over
/// every operation and wherever `__schema` or `__type` appears (payloads'
/// `query` fields reach them below the root). Linear in the document:
/// each fragment is costed once per mode. Saturates instead of overflowing.
pub fn leaves(doc: &ExecutableDocument, shape: &Shape) -> u64 {
    let mut walk = Walk { doc, shape, memo: HashMap::new() };
    doc.operations
        .iter()
        .fold(0u64, |total, (_, op)| total.saturating_add(walk.set(&op.node.selection_set.node, false)))
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    shape: &'a Shape,
    /// Fragment costs by (name, inside introspection); `None` while being costed.
    memo: HashMap<(&'a str, bool), Option<u64>>,
}

impl<'a> Walk<'a> {
    fn set(&mut self, set: &'a SelectionSet, inside: bool) -> u64 {
        let mut total = 0u64;
        for item in &set.items {
            let cost = match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    let children = &field.node.selection_set.node;
                    if inside {
                        let each = 1u64.saturating_add(self.set(children, true));
                        self.shape.multiplier(name).saturating_mul(each)
                    } else if name == "__schema" || name == "__type" {
                        1u64.saturating_add(self.set(children, true))
                    } else {
                        self.set(children, false)
                    }
                }
                Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set.node, inside),
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str(), inside),
            };
            total = total.saturating_add(cost);
        }
        total
    }

    fn fragment(&mut self, name: &'a str, inside: bool) -> u64 {
        let Some((key, fragment)) = self.doc.fragments.get_key_value(name) else {
            return 0;
        };
        match self.memo.get(&(key.as_str(), inside)) {
            Some(Some(cost)) => return *cost,
            // A cycle: the size check refuses it; cost nothing here.
            Some(None) => return 0,
            None => {}
        }
        self.memo.insert((key.as_str(), inside), None);
        let cost = self.set(&fragment.node.selection_set.node, inside);
        self.memo.insert((key.as_str(), inside), Some(cost));
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDL: &str = "type Query { a(x: Int, y: Int): Int b: [T] } type T implements N { id: ID c: Int } \
                       interface N { id: ID } enum E { P Q R } input I { f: Int g: Int h: Int }";

    fn doc(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    /// The shape counts the schema's types, fields, arguments and values, with the built-ins.
    #[test]
    fn shape_of_a_schema() {
        let shape = Shape::of_sdl(SDL);
        assert_eq!(shape.types, BUILT_IN_TYPES + 5);
        assert_eq!(shape.fields, BUILT_IN_FIELDS);
        assert_eq!(shape.args, 2);
        assert_eq!(shape.input_fields, 3);
        assert_eq!(shape.enum_values, BUILT_IN_ENUM_VALUES);
        assert_eq!(shape.possible_types, 1);
    }

    /// Lists multiply their children; aliases and fragment uses add up;
    /// fields outside introspection cost nothing here.
    #[test]
    fn lists_multiply() {
        let shape = Shape::of_sdl(SDL);
        let t = shape.types;
        assert_eq!(leaves(&doc("{ a }"), &shape), 0);
        assert_eq!(leaves(&doc("{ __schema { queryType { name } } }"), &shape), 1 + 2);
        assert_eq!(leaves(&doc("{ __schema { types { name } } }"), &shape), 1 + t * 2);
        let nested = leaves(&doc("{ __schema { types { fields { name } } } }"), &shape);
        assert_eq!(nested, 1 + t * (1 + shape.fields * 2));
        let aliased = "{ x: __schema { types { name } } y: __schema { types { name } } }";
        assert_eq!(leaves(&doc(aliased), &shape), 2 * (1 + t * 2));
        let fragments = "{ __schema { ...S } p: __schema { ...S } } fragment S on __Schema { types { name } }";
        assert_eq!(leaves(&doc(fragments), &shape), 2 * (1 + t * 2));
        let below = "mutation { m { query { __type(name: \"T\") { fields { name } } } } }";
        assert_eq!(leaves(&doc(below), &shape), 1 + shape.fields * 2);
    }

    /// Fragments that double at each level are costed without expanding them, saturating.
    #[test]
    fn exponential_fragments_saturate() {
        let mut q = String::from("{ __schema { ...F0 } }");
        for i in 0..64 {
            q.push_str(&format!(" fragment F{i} on __Schema {{ types {{ name }} ...F{n} ...F{n} }}", n = i + 1));
        }
        q.push_str(" fragment F64 on __Schema { types { name } }");
        assert_eq!(leaves(&doc(&q), &Shape::of_sdl(SDL)), u64::MAX);
    }
}
