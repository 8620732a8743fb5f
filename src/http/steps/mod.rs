//! The steps a GraphQL request goes through before and after the schema
//! runs it, in order, one file each with its tests beside it (the shape of
//! Apollo Router's `services/layers/`). `http::graphql` calls them in turn.
//!
//! 1. [`apq`]: which document the request names (its text, or an APQ hash);
//!    then [`trusted`]: whether it is a trusted document (found by id,
//!    hash or text, already parsed), and whether an untrusted one may run.
//! 2. [`parse`]: the lexical pass, the parse, and the checks that must see
//!    the document before anything expands it (fields, previews,
//!    introspection cost). A document from the cache has passed them.
//! 3. [`operation`]: what the chosen operation is (a mutation over GET is
//!    refused), its mutation fields and label, introspection and
//!    `_entities` bounds.
//!    Then [`cost`]: the operation's cost by the published cost model,
//!    against `--max-query-complexity`.
//! 4. `http::idempotency`: claim an `Idempotency-Key`, settle it after.
//! 5. [`outcome`]: codes on errors raised before execution, the capped
//!    error list.
//! 6. [`respond`]: encode within the size limit and the answer budget (a
//!    mutation's answer cut down rather than dropped), in the media type asked for.

pub mod apq;
pub mod cost;
pub mod operation;
pub mod outcome;
pub mod parse;
pub mod respond;
pub mod trusted;

use std::borrow::Cow;

use crate::code::Code;

/// Why a step refused a request before the schema ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `extensions.code`.
    pub code: Code,
    /// What the client is told.
    pub message: Cow<'static, str>,
}

impl Refusal {
    pub(super) fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Refusal { code, message: message.into() }
    }

    /// The refusal as a GraphQL response with no `data`.
    pub(super) fn into_response(self) -> async_graphql::Response {
        outcome::request_error(self.code, self.message.into_owned())
    }
}
