//! The manifest formats clients' build tools write, read into one list.
//!
//! - Apollo's persisted-query manifest (`generate-persisted-query-manifest`):
//!   `{"format": "apollo-persisted-query-manifest", "version": 1,
//!   "operations": [{"id", "body", "name", "type"}]}`.
//! - Relay's `persisted_queries.json` and graphql-codegen's client-preset
//!   `persisted-documents.json`: one object, `{id: document text}`.
//!
//! An id is kept as the manifest spells it (Relay's are MD5 by default,
//! Apollo's and codegen's SHA-256 hex); every document is also found by the
//! SHA-256 of its text, which is what `documentId: "sha256:…"` and APQ send.

use serde::Deserialize;

/// One operation the manifest trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id, as the manifest spells it.
    pub id: String,
    /// The document's text.
    pub body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Apollo {
    format: String,
    version: u32,
    operations: Vec<ApolloOperation>,
}

#[derive(Deserialize)]
struct ApolloOperation {
    id: String,
    body: String,
    // `name` and `type` are informational; the document itself says both.
}

/// Reads a manifest in any of the formats above. Its errors name what is
/// wrong and, for an entry, which one.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(object) = value.as_object() else {
        return Err("a manifest is a JSON object".into());
    };
    if object.contains_key("format") {
        let apollo: Apollo = serde_json::from_value(value).map_err(|e| format!("not an Apollo manifest: {e}"))?;
        if apollo.format != "apollo-persisted-query-manifest" {
            return Err(format!("unknown manifest format {:?}", apollo.format));
        }
        if apollo.version != 1 {
            return Err(format!("Apollo manifest version {} (only 1 is known)", apollo.version));
        }
        return Ok(apollo.operations.into_iter().map(|op| Entry { id: op.id, body: op.body }).collect());
    }
    object
        .iter()
        .map(|(id, body)| match body.as_str() {
            Some(body) => Ok(Entry { id: id.clone(), body: body.to_owned() }),
            None => Err(format!("entry {id:?}: its value is not a document's text")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apollo's manifest yields its operations' ids and bodies.
    #[test]
    fn apollo_manifests_are_read() {
        let text = r#"{"format":"apollo-persisted-query-manifest","version":1,"operations":[
            {"id":"abc","body":"query A { viewer { id } }","name":"A","type":"query"}]}"#;
        assert_eq!(parse(text), Ok(vec![Entry { id: "abc".into(), body: "query A { viewer { id } }".into() }]));
    }

    /// Relay's and codegen's flat maps yield one entry per key.
    #[test]
    fn flat_maps_are_read() {
        let entries = parse(r#"{"d41d8cd9": "query B { posts { totalCount } }", "x": "{ __typename }"}"#)
            .expect("a flat manifest");
        assert_eq!(entries.len(), 2);
        assert!(entries.iter().any(|e| e.id == "x" && e.body == "{ __typename }"));
    }

    /// A wrong format, a wrong version, a non-string entry and non-JSON are refused, naming the problem.
    #[test]
    fn bad_manifests_say_what_is_wrong() {
        assert!(parse("[1]").is_err());
        assert!(parse("{").is_err_and(|e| e.contains("JSON")));
        assert!(parse(r#"{"format":"other","version":1,"operations":[]}"#).is_err_and(|e| e.contains("other")));
        let v2 = r#"{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}"#;
        assert!(parse(v2).is_err_and(|e| e.contains("version 2")));
        assert!(parse(r#"{"q1": 7}"#).is_err_and(|e| e.contains("q1")));
    }
}
