//! Step 2: the lexical pass, the parse, and the checks that must see a
//! fresh document before anything expands its fragments. A document the
//! cache holds has passed all of them.

use crate::code::Code;
use async_graphql::parser::types::ExecutableDocument;

use super::Refusal;
use crate::limits::{check_query_size, check_typename, introspection, lexical, preview_fields};
use crate::settings::GraphqlSettings;

/// A document that parsed and passed the checks.
pub struct Parsed {
    /// The document.
    pub doc: ExecutableDocument,
    /// Its lexical tokens: what the document cache charges it by.
    pub tokens: usize,
}

/// Parses `query` under `graphql`'s bounds. `Ok(None)` when the parser
/// rejects it: the schema reports that syntax error itself, with positions.
pub fn parse(query: &str, graphql: &GraphqlSettings, shape: &introspection::Shape) -> Result<Option<Parsed>, Refusal> {
    let bounds = lexical::Bounds { max_depth: graphql.max_query_nesting, max_tokens: graphql.max_query_tokens };
    let scanned =
        lexical::scan(query, bounds).map_err(|err| Refusal::new(Code::GraphqlParseFailed, err.to_string()))?;
    let Ok(doc) = async_graphql::parser::parse_query(query) else { return Ok(None) };
    let invalid = |why: String| Refusal::new(Code::GraphqlValidationFailed, why);
    check_query_size(&doc, graphql.max_query_fields).map_err(|err| invalid(err.to_string()))?;
    check_typename(&doc).map_err(invalid)?;
    // A preview reads an account's whole fan-out: one a request.
    if preview_fields(&doc) > 1 {
        return Err(invalid("a request may run at most one deletion preview".into()));
    }
    // The complexity limit's unit is about a kilobyte of answer.
    let max_leaves = (graphql.max_query_complexity as u64).saturating_mul(1000) / introspection::BYTES_PER_LEAF as u64;
    if introspection::leaves(&doc, shape) > max_leaves {
        return Err(invalid("the introspection selections could answer more than the complexity limit allows".into()));
    }
    Ok(Some(Parsed { doc, tokens: scanned.tokens }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> introspection::Shape {
        introspection::Shape::of_sdl(&crate::graphql::sdl())
    }

    /// A plain query parses, with its tokens counted; a syntax error is left to the schema.
    #[test]
    fn queries_parse_and_syntax_errors_are_left_to_the_schema() {
        let parsed = parse("{ posts { totalCount } }", &GraphqlSettings::default(), &shape()).expect("no refusal");
        assert!(parsed.is_some_and(|p| p.tokens > 3));
        assert!(matches!(parse("{ posts { ", &GraphqlSettings::default(), &shape()), Ok(None)));
    }

    /// Deep nesting is refused before parsing; two previews and too many fields after, each with its code.
    #[test]
    fn costly_documents_are_refused_with_their_codes() {
        let graphql = GraphqlSettings::default();
        let deep = format!("{{ __typename(a: {}{}) }}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(&deep, &graphql, &shape()).err().map(|r| r.code), Some(Code::GraphqlParseFailed));
        let previews = "{ a: deleteUserPreview(id: \"x\") { token } b: deleteUserPreview(id: \"y\") { token } }";
        assert_eq!(parse(previews, &graphql, &shape()).err().map(|r| r.code), Some(Code::GraphqlValidationFailed));
        let narrow = GraphqlSettings { max_query_fields: 2, ..GraphqlSettings::default() };
        let wide = "{ a: __typename b: __typename c: __typename }";
        assert_eq!(parse(wide, &narrow, &shape()).err().map(|r| r.code), Some(Code::GraphqlValidationFailed));
    }
}
