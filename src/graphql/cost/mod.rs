//! The cost model: what each field weighs and what bounds each list.
//!
//! [`model`] computes an operation's cost from these tables by the IBM
//! GraphQL Cost Directive rules, and [`publish`] writes them into the
//! subgraph SDL as `@cost` and `@listSize`, so a gateway estimates exactly
//! what blogql enforces.
//!
//! A list whose items cost nothing to name but much to answer is how one
//! cheap request used to buy gigabytes (`affectedPosts` with 300 aliases of
//! `body`; `_entities` with 5,000 representations). So every list-typed
//! field of the served schema is listed here with what bounds its length
//! and how its complexity is multiplied by that bound, and a schema-wide
//! test (`tests/api/schema.rs`) walks the introspected schema and fails on
//! any list field missing from [`LIST_FIELDS`], so the next one cannot slip
//! through unbounded.

use crate::domain::MAX_PAGE;

pub mod model;
pub mod publish;

pub use model::CostModel;

/// Fields that weigh more than their type's default (1 for an object, 0 for
/// a scalar), by `(type, field, weight)`: one unit per 1,000 bytes a field
/// may answer, a character being up to 4 bytes. `Post.body` holds 50,000
/// characters, `Comment.body` 5,000.
pub const FIELD_WEIGHTS: &[(&str, &str, u64)] = &[("Post", "body", 200), ("Comment", "body", 20)];

/// What bounds a list field's length, and so multiplies its complexity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListBound {
    /// An argument bounds it at `max` (the assumed size when it is not
    /// given); it costs the argument's value × one entry. A list argument
    /// (`nodes(ids:)`) is not an IBM slicing argument: the list is assumed at `max`.
    Argument {
        /// The argument.
        name: &'static str,
        /// Its largest accepted value (or length).
        max: usize,
    },
    /// A connection's `edges`: every field answering the connection takes
    /// `first`/`last` (at most [`MAX_PAGE`]) and costs 1 plus `first` ×
    /// one edge (the connection field's `@listSize` sizes its `edges`, see [`model`]).
    ConnectionPage,
    /// Introspection's lists, multiplied by their longest length in this
    /// schema (`limits::introspection`).
    Introspection,
    /// Federation's `_entities`, capped and multiplied by its
    /// representations before it runs (`federation::check_entities`).
    Representations {
        /// The cap.
        max: usize,
    },
}

/// Every list-typed field of the client and subgraph schemas, by `(type, field)`.
pub const LIST_FIELDS: &[(&str, &str, ListBound)] = &[
    ("Query", "nodes", ListBound::Argument { name: "ids", max: MAX_PAGE }),
    ("Query", "_entities", ListBound::Representations { max: super::federation::MAX_REPRESENTATIONS }),
    ("UserConnection", "edges", ListBound::ConnectionPage),
    ("PostConnection", "edges", ListBound::ConnectionPage),
    ("CommentConnection", "edges", ListBound::ConnectionPage),
    ("DeletePostPayload", "deletedCommentIds", PAYLOAD_LIST),
    ("DeleteUserPayload", "deletedPostIds", PAYLOAD_LIST),
    ("DeleteUserPayload", "deletedCommentIds", PAYLOAD_LIST),
    ("DeleteUserPayload", "affectedUsers", PAYLOAD_LIST),
    ("DeleteUserPayload", "affectedPosts", PAYLOAD_LIST),
    ("__Schema", "types", ListBound::Introspection),
    ("__Schema", "directives", ListBound::Introspection),
    ("__Type", "fields", ListBound::Introspection),
    ("__Type", "interfaces", ListBound::Introspection),
    ("__Type", "possibleTypes", ListBound::Introspection),
    ("__Type", "enumValues", ListBound::Introspection),
    ("__Type", "inputFields", ListBound::Introspection),
    ("__Field", "args", ListBound::Introspection),
    ("__Directive", "locations", ListBound::Introspection),
    ("__Directive", "args", ListBound::Introspection),
];

/// The bound of every deletion payload list (`first`, default and at most 1,000).
const PAYLOAD_LIST: ListBound = ListBound::Argument { name: "first", max: super::deletion::MAX_PAYLOAD_LIST };

/// The bound of `type_name.field`, if it is a listed list field.
pub fn list_bound(type_name: &str, field: &str) -> Option<ListBound> {
    LIST_FIELDS.iter().find(|(t, f, _)| *t == type_name && *f == field).map(|(_, _, bound)| *bound)
}
