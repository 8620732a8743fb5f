//! Step 5: the answer's errors. Errors raised before execution get the code
//! every other error has, and the list is capped, so a document that earns
//! thousands of errors cannot buy an answer several times its own size.

use crate::code::Code;

/// Most errors one answer lists; a document that earns more (a megabyte of
/// unused variables) gets the first ones and a count of the rest, not
/// an answer several times its own size.
pub(in crate::http) const MAX_ERRORS: usize = 100;

/// Cuts the error list to [`MAX_ERRORS`], saying how many were left out.
pub(in crate::http) fn cap_errors(resp: &mut async_graphql::Response) {
    if resp.errors.len() <= MAX_ERRORS {
        return;
    }
    let left_out = resp.errors.len() - (MAX_ERRORS - 1);
    resp.errors.truncate(MAX_ERRORS - 1);
    let code = resp.errors.first().and_then(|e| e.extensions.as_ref()).and_then(|x| x.get("code")).cloned();
    let mut more = async_graphql::ServerError::new(format!("{left_out} more errors were left out"), None);
    if let Some(code) = code {
        more.extensions.get_or_insert_with(Default::default).set("code", code);
    }
    resp.errors.push(more);
}

/// Whether `resp` never started executing: no data, and errors without a path.
pub(in crate::http) fn not_executed(resp: &async_graphql::Response) -> bool {
    resp.data == async_graphql::Value::Null && !resp.errors.is_empty() && resp.errors.iter().all(|e| e.path.is_empty())
}

/// A response for a request refused before execution, with its code.
pub(in crate::http) fn request_error(code: Code, message: String) -> async_graphql::Response {
    let mut err = async_graphql::ServerError::new(message, None);
    err.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    async_graphql::Response::from_errors(vec![err])
}

/// Gives errors raised before execution (syntax, validation, limits) a code,
/// as every other error has: `GRAPHQL_PARSE_FAILED` when the document did not
/// parse (`parses`, from step 2), else `GRAPHQL_VALIDATION_FAILED`.
pub(in crate::http) fn label_request_errors(resp: &mut async_graphql::Response, parses: bool) {
    let code = if parses { Code::GraphqlValidationFailed } else { Code::GraphqlParseFailed };
    for err in resp.errors.iter_mut().filter(|e| e.path.is_empty()) {
        let has_code = err.extensions.as_ref().is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            err.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{PathSegment, ServerError, Value};

    use super::*;

    fn codes(resp: &async_graphql::Response) -> Vec<Option<String>> {
        resp.errors
            .iter()
            .map(|e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
                Some(Value::String(code)) => Some(code.clone()),
                _ => None,
            })
            .collect()
    }

    /// Errors past the cap are counted in one last error with the first error's code.
    #[test]
    fn error_lists_are_capped() {
        let mut resp = async_graphql::Response::from_errors(
            (0..250).map(|i| ServerError::new(format!("e{i}"), None)).collect::<Vec<_>>(),
        );
        label_request_errors(&mut resp, true);
        cap_errors(&mut resp);
        assert_eq!(resp.errors.len(), MAX_ERRORS);
        assert_eq!(resp.errors[MAX_ERRORS - 1].message, "151 more errors were left out");
        assert!(codes(&resp).iter().all(|c| c.as_deref() == Some("GRAPHQL_VALIDATION_FAILED")));
    }

    /// Request errors get the parse or validation code; an error that has a code, or a path, keeps what it has.
    #[test]
    fn request_errors_are_labelled() {
        let mut coded = ServerError::new("coded", None);
        coded.extensions.get_or_insert_with(Default::default).set("code", "RATE_LIMITED");
        let mut field = ServerError::new("field", None);
        field.path = vec![PathSegment::Field("a".into())];
        let mut resp = async_graphql::Response::from_errors(vec![ServerError::new("bare", None), coded, field]);
        label_request_errors(&mut resp, false);
        assert_eq!(codes(&resp), vec![Some("GRAPHQL_PARSE_FAILED".into()), Some("RATE_LIMITED".into()), None]);
    }

    /// Only an answer with no data and no path on any error never executed.
    #[test]
    fn not_executed_means_no_data_and_no_paths() {
        assert!(not_executed(&request_error(Code::BadRequest, "no".into())));
        assert!(!not_executed(&async_graphql::Response::new(Value::Null)), "no errors: it ran");
        let mut ran = request_error(Code::BadRequest, "no".into());
        ran.errors[0].path = vec![PathSegment::Field("a".into())];
        assert!(!not_executed(&ran));
    }
}
