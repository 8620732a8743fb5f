use async_graphql::parser::parse_query;
use async_graphql::{EmptyMutation, EmptySubscription, ID, InputObject, Object, Request, Schema, Variables};
use proptest::prelude::*;
use serde_json::json;

use super::*;

/// An input object with a variable inside it in one of the documents.
#[derive(InputObject)]
struct In {
    id: ID,
    n: Option<i32>,
}

struct Q;

#[Object]
impl Q {
    /// Echoes its arguments, so two executions answer alike only if they saw the same values.
    async fn f(&self, id: ID, s: Option<String>, b: bool, i: Option<i32>, input: Option<In>) -> String {
        format!("{}|{s:?}|{b}|{i:?}|{:?}", id.0, input.map(|v| (v.id.0, v.n)))
    }
}

fn schema(mode: ValidationMode) -> Schema<Q, EmptyMutation, EmptySubscription> {
    Schema::build(Q, EmptyMutation, EmptySubscription).validation_mode(mode).finish()
}

/// Documents that pass the full validation with some variables: plain
/// scalars, a variable inside an input object, a directive's argument, and
/// the shapes that must always take the full validation (an input object
/// variable, a default) or need an operation name.
const DOCS: [&str; 7] = [
    "query($id: ID!) { f(id: $id, b: true) }",
    "query($s: String, $id: ID!) { f(id: $id, s: $s, b: false) }",
    "query($b: Boolean!) { f(id: \"x\", b: $b) @include(if: $b) }",
    "query($i: Int, $id: ID!) { f(id: $id, b: true, i: $i, input: {id: $id, n: $i}) }",
    "query($in: In) { f(id: \"x\", b: true, input: $in) }",
    "query($id: ID! = \"d\") { f(id: $id, b: true) }",
    "query A($id: ID!) { f(id: $id, b: true) } query B($s: String!) { f(id: \"y\", s: $s, b: true) }",
];

/// The variables `DOCS` mention.
const NAMES: [&str; 5] = ["id", "s", "b", "i", "in"];

fn vars(value: serde_json::Value) -> Variables {
    Variables::from_json(value)
}

fn fits(doc: &str, op: Option<&str>, value: serde_json::Value) -> bool {
    variables_fit(&parse_query(doc).expect("parses"), op, &vars(value))
}

/// A value of every kind a client can send, including ones no scalar accepts.
fn any_value() -> impl Strategy<Value = Option<serde_json::Value>> {
    prop_oneof![
        Just(None),
        Just(Some(serde_json::Value::Null)),
        "[a-z0-9]{0,6}".prop_map(|s| Some(json!(s))),
        any::<i64>().prop_map(|n| Some(json!(n))),
        (-3i64..3).prop_map(|n| Some(json!(n))),
        any::<u64>().prop_map(|n| Some(json!(n))),
        (-1.0e3f64..1.0e3).prop_map(|x| Some(json!(x))),
        any::<bool>().prop_map(|b| Some(json!(b))),
        Just(Some(json!(["x"]))),
        Just(Some(json!({"id": "z", "n": 1}))),
        Just(Some(json!({"n": "bad"}))),
    ]
}

/// Plain built-in scalars given values of their kind fit; a null, a missing
/// value or one of another kind does not.
#[test]
fn plain_scalars_with_values_of_their_kind_fit() {
    assert!(fits(DOCS[0], None, json!({"id": "abc"})));
    assert!(fits(DOCS[0], None, json!({"id": 7})));
    assert!(fits(DOCS[1], None, json!({"id": "abc", "s": "t"})));
    assert!(fits(DOCS[2], None, json!({"b": false})));
    assert!(fits(DOCS[3], None, json!({"id": "a", "i": -4})));
    assert!(!fits(DOCS[0], None, json!({})), "missing");
    assert!(!fits(DOCS[0], None, json!({"id": null})), "null");
    assert!(!fits(DOCS[0], None, json!({"id": true})), "a Boolean for an ID");
    assert!(!fits(DOCS[0], None, json!({"id": 1.5})), "a fraction for an ID");
    assert!(!fits(DOCS[1], None, json!({"id": "a", "s": 3})), "a number for a String");
    assert!(!fits(DOCS[2], None, json!({"b": "true"})), "a String for a Boolean");
    assert!(!fits(DOCS[3], None, json!({"id": "a", "i": u64::MAX})), "an Int beyond i64");
}

/// Input objects, defaults and a request whose operation cannot be selected
/// always take the full validation.
#[test]
fn anything_else_takes_the_full_validation() {
    assert!(!fits(DOCS[4], None, json!({"in": {"id": "z"}})), "an input object variable");
    assert!(!fits(DOCS[5], None, json!({"id": "a"})), "a default value");
    assert!(!fits("query($l: [ID!]!) { f(id: \"x\", b: true) }", None, json!({"l": ["a"]})), "a list");
    assert!(!fits(DOCS[6], None, json!({"id": "a", "s": "b"})), "two operations, none named");
    assert!(!fits(DOCS[6], Some("C"), json!({"id": "a"})), "an unknown operation");
    assert!(fits(DOCS[6], Some("A"), json!({"id": "a"})), "the named one's variables only");
    assert!(!fits(DOCS[6], Some("B"), json!({"id": "a"})), "B's variable is missing");
    assert!(!fits(DOCS[0], Some("A"), json!({"id": "a"})), "a name for an anonymous operation");
}

/// The answer under each validation mode, as JSON.
fn answers(doc: &str, op: Option<&str>, variables: &Variables) -> (serde_json::Value, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let run = |mode| {
        let mut request = Request::new(doc).variables(variables.clone());
        if let Some(op) = op {
            request = request.operation_name(op);
        }
        serde_json::to_value(runtime.block_on(schema(mode).execute(request))).expect("serialises")
    };
    (run(ValidationMode::Strict), run(ValidationMode::Fast))
}

/// No error without a path: validation passed (an error with one is a field's).
fn no_request_error(answer: &serde_json::Value) -> bool {
    answer.get("errors").and_then(|e| e.as_array()).is_none_or(|e| e.iter().all(|e| e.get("path").is_some()))
}

/// Fitting variables for every document that has them answer alike in both
/// modes, with no request error (the proptest below draws such cases only now and then).
#[test]
fn fitting_cases_answer_alike() {
    let cases = [
        (DOCS[0], None, json!({"id": "abc"})),
        (DOCS[0], None, json!({"id": -9})),
        (DOCS[1], None, json!({"id": "abc", "s": "t"})),
        (DOCS[2], None, json!({"b": true})),
        (DOCS[2], None, json!({"b": false})),
        (DOCS[3], None, json!({"id": "a", "i": 5_000_000_000_i64})),
        (DOCS[3], None, json!({"id": "a", "i": 3})),
        (DOCS[6], Some("B"), json!({"s": "q", "id": true})),
    ];
    for (doc, op, value) in cases {
        let variables = vars(value);
        assert!(variables_fit(&parse_query(doc).expect("parses"), op, &variables), "{doc} {variables:?}");
        let (strict, fast) = answers(doc, op, &variables);
        assert_eq!(strict, fast, "{doc}");
        assert!(no_request_error(&strict), "{strict}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For any variables that fit, the fast schema answers exactly what the
    /// full validation and execution answer, and that answer has no request
    /// error: skipping the rules changed nothing.
    #[test]
    fn fitting_variables_answer_as_the_full_validation_does(
        doc in 0..DOCS.len(),
        op in prop_oneof![3 => Just(None), 1 => Just(Some("A")), 1 => Just(Some("B"))],
        values in proptest::collection::vec(any_value(), NAMES.len()),
    ) {
        let mut map = serde_json::Map::new();
        for (name, value) in NAMES.iter().zip(values) {
            if let Some(value) = value {
                map.insert((*name).to_owned(), value);
            }
        }
        let variables = vars(serde_json::Value::Object(map));
        if variables_fit(&parse_query(DOCS[doc]).expect("parses"), op, &variables) {
            let (strict, fast) = answers(DOCS[doc], op, &variables);
            prop_assert!(no_request_error(&strict), "fitting variables failed the full validation: {strict}");
            prop_assert_eq!(&strict, &fast);
        }
    }
}
