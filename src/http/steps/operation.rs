//! Step 3: what the chosen operation is. A mutation over GET is refused
//! (a GET must be safe to repeat); the mutation fields are counted against
//! their cap; introspection (when off) and `_entities` (when federating)
//! are bounded; a required variable the request leaves out is refused; and
//! the operation gets its metrics label.

use crate::code::Code;
use async_graphql::Variables;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};

use super::Refusal;
use crate::limits::{mentions_introspection, mutation_field_names};
use crate::settings::GraphqlSettings;

/// Why the operation may not run.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Refused with a GraphQL error.
    Refused(Refusal),
    /// A mutation sent over GET: `405` with `Allow: POST`.
    MutationOverGet,
}

/// What the checks learned about the operation that will run.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    /// It is a mutation (so it may commit).
    pub mutation: bool,
    /// Its root mutation fields, one per use.
    pub mutation_fields: usize,
    /// An `Idempotency-Key` may apply to it (see `http::idempotency`).
    pub keyed: bool,
}

/// Checks the operation `operation_name` picks from `doc`, sent over GET when `get`.
pub fn check(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    get: bool,
    graphql: &GraphqlSettings,
) -> Result<Checked, Stop> {
    let invalid = |why: String| Stop::Refused(Refusal::new(Code::GraphqlValidationFailed, why));
    if !graphql.introspection && mentions_introspection(doc) {
        return Err(invalid("introspection is turned off on this server".into()));
    }
    let mutation = is_mutation(doc, operation_name);
    if get && mutation {
        return Err(Stop::MutationOverGet);
    }
    let fields = mutation_field_names(doc, operation_name);
    if fields.len() > graphql.max_mutation_fields {
        return Err(invalid(format!("a request may run at most {} mutation fields", graphql.max_mutation_fields)));
    }
    if let Some(why) = missing_variable(doc, operation_name, variables) {
        return Err(invalid(why));
    }
    if graphql.federation {
        crate::graphql::federation::check_entities(doc, operation_name, variables, graphql.max_query_complexity)
            .map_err(invalid)?;
    }
    Ok(Checked { mutation, mutation_fields: fields.len(), keyed: crate::http::idempotency::applies_to(&fields) })
}

/// Why the request cannot run, when the operation declares a variable of a
/// non-null type with no default and the request leaves it out or gives it
/// `null`. GraphQL coerces variables before executing, so that is a request
/// error; async-graphql's validation checks only the variables it is given,
/// and would fail just the fields that use a missing one, after earlier
/// mutation fields of the same request had run.
fn missing_variable(doc: &ExecutableDocument, operation_name: Option<&str>, variables: &Variables) -> Option<String> {
    let operation = crate::graphql::selected_operation(doc, operation_name)?;
    operation.variable_definitions.iter().find_map(|def| {
        let def = &def.node;
        let given = variables.get(&def.name.node).filter(|v| !matches!(v, async_graphql::Value::Null));
        (!def.var_type.node.nullable && def.default_value.is_none() && given.is_none()).then(|| {
            format!("variable \"${}\" of required type \"{}\" was not provided", def.name.node, def.var_type.node)
        })
    })
}

/// Whether the operation the request would run is a mutation.
fn is_mutation(doc: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    kind(doc, operation_name) == Some(OperationType::Mutation)
}

/// The type of the operation the request would run; `None` when the
/// request names none of the document's operations (the schema says so).
pub(in crate::http) fn kind(doc: &ExecutableDocument, operation_name: Option<&str>) -> Option<OperationType> {
    match (operation_name, &doc.operations) {
        (_, DocumentOperations::Single(op)) => Some(op.node.ty),
        (Some(name), DocumentOperations::Multiple(ops)) => ops.get(name).map(|op| op.node.ty),
        (None, DocumentOperations::Multiple(ops)) => {
            ops.values().next().filter(|_| ops.len() == 1).map(|op| op.node.ty)
        }
    }
}

/// The label an operation is counted under: the name the *document* gives
/// the operation that will run, `anonymous`, or `unknown` when the request
/// names an operation the document lacks. The request's `operationName` is
/// only used to choose; it is never the label itself, so a client cannot
/// make up label values beyond the names in documents it sends (which
/// [`crate::metrics`] further bounds in length and count).
/// (`unparsed` and `refused` label requests that never got this far.)
pub(in crate::http) fn label(doc: &ExecutableDocument, operation_name: Option<&str>) -> String {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(_), None) => "anonymous".to_owned(),
        (DocumentOperations::Single(_), Some(_)) => "unknown".to_owned(),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get_key_value(name).map_or_else(|| "unknown".to_owned(), |(key, _)| key.to_string())
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.keys().next().map_or_else(|| "anonymous".to_owned(), |n| n.to_string())
        }
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(text).expect("parses")
    }

    fn run(text: &str, name: Option<&str>, get: bool, graphql: &GraphqlSettings) -> Result<Checked, Stop> {
        check(&doc(text), name, &Variables::default(), get, graphql)
    }

    /// A mutation over GET stops; over POST it is counted and may use a key; a query never is a mutation.
    #[test]
    fn mutations_are_found_and_kept_off_get() {
        let graphql = GraphqlSettings::default();
        let m = "mutation { a: likePost(postId: \"1\") { id } b: likePost(postId: \"2\") { id } }";
        assert_eq!(run(m, None, true, &graphql), Err(Stop::MutationOverGet));
        assert_eq!(run(m, None, false, &graphql), Ok(Checked { mutation: true, mutation_fields: 2, keyed: true }));
        let login = "mutation { logIn(input: { email: \"a@b.c\", password: \"p\" }) { token } }";
        assert_eq!(run(login, None, false, &graphql).map(|c| c.keyed), Ok(false), "token-minting: no key");
        assert_eq!(run("{ posts { totalCount } }", None, true, &graphql).map(|c| c.mutation), Ok(false));
        let two = "query Q { posts { totalCount } } mutation M { likePost(postId: \"1\") { id } }";
        assert_eq!(run(two, Some("M"), true, &graphql), Err(Stop::MutationOverGet));
        assert_eq!(run(two, Some("Q"), true, &graphql).map(|c| c.mutation), Ok(false));
    }

    /// Mutation fields past the cap, and introspection when it is off, are refused as validation errors.
    #[test]
    fn caps_are_validation_errors() {
        let capped = GraphqlSettings { max_mutation_fields: 1, ..GraphqlSettings::default() };
        let m = "mutation { a: likePost(postId: \"1\") { id } b: likePost(postId: \"2\") { id } }";
        assert!(
            matches!(run(m, None, false, &capped), Err(Stop::Refused(r)) if r.code == Code::GraphqlValidationFailed)
        );
        let closed = GraphqlSettings { introspection: false, ..GraphqlSettings::default() };
        assert!(matches!(run("{ __schema { queryType { name } } }", None, false, &closed), Err(Stop::Refused(_))));
        assert!(run("{ __typename }", None, false, &closed).is_ok(), "__typename is not introspection");
    }

    /// A required variable left out or null is refused with its name and type;
    /// a nullable one, one with a default, or one of an operation not chosen is not.
    #[test]
    fn required_variables_must_be_given() {
        let vars = |v: serde_json::Value| Variables::from_json(v);
        let missing =
            |text: &str, name: Option<&str>, v: serde_json::Value| missing_variable(&doc(text), name, &vars(v));
        let one = "mutation($p: ID!, $q: String) { likePost(postId: $p) { id } }";
        assert_eq!(
            missing(one, None, serde_json::json!({})).as_deref(),
            Some("variable \"$p\" of required type \"ID!\" was not provided")
        );
        assert!(missing(one, None, serde_json::json!({"p": null})).is_some(), "null is not a value for ID!");
        assert_eq!(missing(one, None, serde_json::json!({"p": "1"})), None, "$q may be left out");
        assert_eq!(missing("query($n: Int! = 3) { a }", None, serde_json::json!({})), None, "a default");
        let two = "query A($a: ID!) { a } query B { b }";
        assert_eq!(missing(two, Some("B"), serde_json::json!({})), None, "A is not the one running");
        assert!(missing(two, Some("A"), serde_json::json!({})).is_some());
        let refused = check(&doc(one), None, &vars(serde_json::json!({})), false, &GraphqlSettings::default());
        assert!(matches!(refused, Err(Stop::Refused(r)) if r.code == Code::GraphqlValidationFailed));
    }

    /// The label is the document's own operation name, never the request's text.
    #[test]
    fn labels_come_from_the_document() {
        assert_eq!(label(&doc("{ a }"), None), "anonymous");
        assert_eq!(label(&doc("{ a }"), Some("Made Up")), "unknown");
        assert_eq!(label(&doc("query Feed { a }"), None), "Feed");
        assert_eq!(label(&doc("query A { a } query B { b }"), Some("B")), "B");
        assert_eq!(label(&doc("query A { a } query B { b }"), Some("C")), "unknown");
        assert_eq!(label(&doc("query A { a } query B { b }"), None), "unknown");
    }
}
