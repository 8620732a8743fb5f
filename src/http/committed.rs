//! What a mutation's answer says when it is too large to send.
//!
//! A mutation has committed by the time its answer is encoded. Refusing the
//! answer then (over `--max-response-bytes`, or the process's answer budget
//! full) would tell the client nothing was done, and a client that retries
//! writes everything twice. So the answer is cut down instead, never
//! dropped: `data` keeps what identifies each written document (`id`,
//! `__typename`, fields named `…Id`/`…Ids`, numbers and booleans such as
//! counts and `staged`) and loses the texts that made it large, and a
//! `RESPONSE_TOO_LARGE` error with `committed: true` says so. The client
//! reads the rest back by id.

use crate::code::Code;
use async_graphql::indexmap::IndexMap;
use async_graphql::{Name, ServerError, Value};

/// The error a cut-down mutation answer carries.
pub(super) const MESSAGE: &str = "the mutation committed, but its answer was too large to send: data keeps only the ids, counts and flags; read the rest back by id";

/// `resp` cut down to what identifies what it wrote, with the error saying
/// so. `limit` is named in the error.
pub(super) fn cut_down(resp: &async_graphql::Response, limit: usize) -> async_graphql::Response {
    let mut out = async_graphql::Response::new(ids_only(&resp.data).unwrap_or(Value::Null));
    let mut err = ServerError::new(MESSAGE, None);
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", Code::ResponseTooLarge.as_str());
    ext.set("committed", true);
    ext.set("maxResponseBytes", limit as u64);
    out.errors.push(err);
    // The mutation's own errors (a refused field among several) still count.
    out.errors.extend(resp.errors.iter().take(super::steps::outcome::MAX_ERRORS - 1).cloned());
    out
}

/// Whether a field named `key` identifies documents.
fn names_ids(key: &str) -> bool {
    key == "id" || key == "__typename" || key.ends_with("Id") || key.ends_with("Ids")
}

/// `value` with only identifying fields, numbers and booleans kept; `None`
/// when nothing in it is kept (except that `null` stays `null`: a field that
/// answered nothing still says so).
fn ids_only(value: &Value) -> Option<Value> {
    match value {
        Value::Null => Some(Value::Null),
        Value::Number(_) | Value::Boolean(_) => Some(value.clone()),
        Value::Object(fields) => {
            let kept: IndexMap<Name, Value> = fields
                .iter()
                .filter_map(|(key, v)| {
                    let kept = if names_ids(key.as_str()) { Some(v.clone()) } else { ids_only(v) };
                    kept.map(|v| (key.clone(), v))
                })
                .collect();
            Some(Value::Object(kept))
        }
        Value::List(items) => {
            let kept: Vec<Value> = items.iter().filter_map(ids_only).collect();
            (!kept.is_empty() || items.is_empty()).then_some(Value::List(kept))
        }
        Value::String(_) | Value::Enum(_) | Value::Binary(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::value;

    use super::*;

    /// Bodies and titles go; ids, typenames, id lists, counts and flags stay,
    /// at every depth, and every root field is still there.
    #[test]
    fn keeps_what_identifies_the_writes() {
        let data = value!({
            "a": { "id": "p1", "title": "t", "body": "big", "author": { "id": "u1", "name": "Ann" } },
            "b": { "__typename": "Post", "id": "p2", "body": "big", "likeCount": 3, "comments": [ { "id": "c1", "body": "x" } ] },
            "d": { "staged": true, "deletedPostIds": ["p3", "p4"], "deletionJobId": null, "affectedPosts": [ { "body": "x" } ] },
            "e": null,
        });
        let cut = ids_only(&data).expect("kept");
        assert_eq!(
            cut,
            value!({
                "a": { "id": "p1", "author": { "id": "u1" } },
                "b": { "__typename": "Post", "id": "p2", "likeCount": 3, "comments": [ { "id": "c1" } ] },
                "d": { "staged": true, "deletedPostIds": ["p3", "p4"], "deletionJobId": null, "affectedPosts": [ {} ] },
                "e": null,
            })
        );
    }

    /// The cut-down answer says the mutation committed, with a code, and
    /// keeps the mutation's own errors after its own.
    #[test]
    fn the_error_says_it_committed() {
        let mut resp = async_graphql::Response::new(value!({ "a": { "id": "p1", "body": "big" } }));
        resp.errors.push(ServerError::new("refused", None));
        let cut = cut_down(&resp, 1024);
        let first = cut.errors.first().and_then(|e| e.extensions.as_ref()).expect("extensions");
        assert_eq!(first.get("code"), Some(&value!("RESPONSE_TOO_LARGE")));
        assert_eq!(first.get("committed"), Some(&value!(true)));
        assert_eq!(cut.errors.len(), 2);
        assert_eq!(cut.data, value!({ "a": { "id": "p1" } }));
    }
}
