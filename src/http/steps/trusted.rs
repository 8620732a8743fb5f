//! Step 1b: whether the document is trusted (see [`crate::http::trusted`]).
//!
//! A request names a trusted document by `documentId` or Relay's `id` /
//! `doc_id`, by an APQ hash, or by sending its text; each is a look-up, so
//! a trusted document is neither parsed nor checked again. With
//! `--require-trusted-documents`, any other document is refused here, before
//! it is parsed, with `UNTRUSTED_DOCUMENT`; with
//! `--trusted-documents-log-only` it is served, counted and logged instead.
//! APQ cannot register new documents while documents are required.
//! Introspection follows `--introspection` as it always did: with it on, a
//! document whose root fields are all introspection (`__schema`, `__type`,
//! `__typename`) passes, so GraphiQL and codegen keep working; with it off,
//! the introspection check refuses such a document anyway.

use std::sync::Arc;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use super::Refusal;
use super::apq::Named;
use crate::code::Code;
use crate::http::trusted::{TrustedDocument, TrustedDocuments};
use crate::limits::lexical;
use crate::settings::GraphqlSettings;

/// What the allowlist makes of a request.
pub(in crate::http) enum Admitted {
    /// A document from the manifest, parsed and checked at load.
    Trusted(Arc<TrustedDocument>),
    /// Not in the manifest, and allowed to run as any document does.
    Free,
    /// Not in the manifest, served only because the allowlist logs instead
    /// of refusing (the caller counts it).
    LoggedOnly,
}

/// Judges a request naming `document_id` (by id), or `named` (by hash or text).
pub(in crate::http) fn admit(
    docs: Option<&TrustedDocuments>,
    graphql: &GraphqlSettings,
    document_id: Option<&str>,
    named: &Named,
    query: &str,
) -> Result<Admitted, Refusal> {
    let Some(docs) = docs else {
        return match document_id {
            Some(_) => Err(Refusal::new(
                Code::PersistedQueryNotSupported,
                "this server has no trusted documents: send the document's text",
            )),
            None => Ok(Admitted::Free),
        };
    };
    if let Some(id) = document_id {
        return docs
            .by_id(id)
            .map(Admitted::Trusted)
            .ok_or_else(|| Refusal::new(Code::PersistedQueryNotFound, "no trusted document has this id"));
    }
    if let Some(doc) = docs.by_hash(&named.hash) {
        return Ok(Admitted::Trusted(doc));
    }
    if !graphql.require_trusted_documents {
        return Ok(Admitted::Free);
    }
    if graphql.trusted_documents_log_only {
        return Ok(Admitted::LoggedOnly);
    }
    if graphql.introspection && !named.hash_only && introspection_only(query, graphql) {
        return Ok(Admitted::Free);
    }
    Err(Refusal::new(Code::UntrustedDocument, "this server runs only its trusted documents, and this is not one"))
}

/// Whether `query` asks only for introspection. It is parsed only when its
/// text mentions `__schema` or `__type`, so other untrusted documents are
/// refused without a parse, and only after the lexical pass that bounds
/// what the parser may be given (nesting and tokens).
fn introspection_only(query: &str, graphql: &GraphqlSettings) -> bool {
    if !(query.contains("__schema") || query.contains("__type")) {
        return false;
    }
    let bounds = lexical::Bounds { max_depth: graphql.max_query_nesting, max_tokens: graphql.max_query_tokens };
    if lexical::scan(query, bounds).is_err() {
        return false;
    }
    let Ok(doc) = async_graphql::parser::parse_query(query) else { return false };
    doc.operations.iter().all(|(_, op)| root_is_introspection(&doc, &op.node.selection_set.node, 0))
}

fn root_is_introspection(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> bool {
    depth <= 8
        && set.items.iter().all(|item| match &item.node {
            Selection::Field(field) => matches!(field.node.name.node.as_str(), "__schema" | "__type" | "__typename"),
            Selection::InlineFragment(fragment) => {
                root_is_introspection(doc, &fragment.node.selection_set.node, depth + 1)
            }
            Selection::FragmentSpread(spread) => doc
                .fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|f| root_is_introspection(doc, &f.node.selection_set.node, depth + 1)),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root selections of only `__schema`, `__type` and `__typename` (through fragments) are introspection; any data field is not.
    #[test]
    fn introspection_only_documents_are_recognised() {
        let only = |q: &str| introspection_only(q, &GraphqlSettings::default());
        assert!(only("{ __schema { types { name } } }"));
        assert!(only("query { ...F } fragment F on Query { __type(name: \"Post\") { name } __typename }"));
        assert!(!only("{ __schema { types { name } } posts { totalCount } }"));
        assert!(!only("{ posts { totalCount } }"));
        assert!(!only("{ __schema { "));
        let deep = format!("{{ __schema {}{} }}", "{ a ".repeat(500), "}".repeat(500));
        assert!(!only(&deep), "refused by the lexical pass before any parse");
    }
}
