//! The one place a domain [`Error`] becomes a GraphQL error a client sees.
//!
//! Resolvers return [`ApiResult`], whose error is [`ApiError`]. `ApiError`
//! deliberately does not implement `Display`: async-graphql turns any
//! `Display` type into a GraphQL error by its text, which would bypass the
//! code mapping and could leak internal detail. Without it, the only way
//! out is the conversion below, which logs internal errors with their whole
//! cause chain and shows the client a message that says nothing.

use crate::code::Code;
use async_graphql::ErrorExtensions;

use crate::error::Error;

/// The message clients see for every internal error; deliberately says nothing.
pub const INTERNAL_MESSAGE: &str = "internal server error";

/// What clients see when the store cannot do the work now (a full disk):
/// nothing was written, and the same request may succeed later.
pub const UNAVAILABLE_MESSAGE: &str = "the service cannot complete this right now; nothing was changed, retry later";

/// The `retryAfterSeconds` a `SERVICE_UNAVAILABLE` answer suggests.
const UNAVAILABLE_RETRY_SECS: u64 = 2;

/// What resolvers return.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// A domain error on its way to a client. See the module docs for why it has no `Display`.
#[derive(Debug, Clone)]
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError(err)
    }
}

/// The stable machine-readable code clients switch on (`extensions.code`).
pub fn code(err: &Error) -> Code {
    match err {
        Error::BadInput { .. } => Code::BadUserInput,
        Error::Unauthenticated(_) => Code::Unauthenticated,
        Error::Forbidden(_) => Code::Forbidden,
        Error::NotFound(_) => Code::NotFound,
        Error::Conflict(_) | Error::PlanChanged { .. } => Code::Conflict,
        Error::RateLimited { .. } => Code::RateLimited,
        Error::Unavailable { .. } => Code::ServiceUnavailable,
        Error::Internal { .. } => Code::InternalServerError,
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(ApiError(err): ApiError) -> Self {
        let code = code(&err).as_str();
        match err {
            Error::Internal { .. } => {
                tracing::error!(error = %err.chain(), "internal error while serving a request");
                async_graphql::Error::new(INTERNAL_MESSAGE).extend_with(|_, e| e.set("code", code))
            }
            Error::Unavailable { .. } => {
                tracing::warn!(error = %err.chain(), "a request met a store that cannot write now");
                async_graphql::Error::new(UNAVAILABLE_MESSAGE).extend_with(|_, e| {
                    e.set("code", code);
                    e.set("retryAfterSeconds", UNAVAILABLE_RETRY_SECS);
                })
            }
            Error::BadInput { field, message } => async_graphql::Error::new(message).extend_with(|_, e| {
                e.set("code", code);
                e.set("field", field);
            }),
            Error::RateLimited { retry_after_secs } => async_graphql::Error::new("too many attempts; retry later")
                .extend_with(|_, e| {
                    e.set("code", code);
                    e.set("retryAfterSeconds", retry_after_secs);
                }),
            Error::Unauthenticated(message) | Error::Forbidden(message) | Error::Conflict(message) => {
                async_graphql::Error::new(message.into_owned()).extend_with(|_, e| e.set("code", code))
            }
            Error::NotFound(message) => async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code)),
            Error::PlanChanged { posts, comments, detached, ref token } => {
                let token = token.clone();
                async_graphql::Error::new(err.to_string()).extend_with(move |_, e| {
                    e.set("code", code);
                    e.set("reason", "PLAN_CHANGED");
                    e.set("postCount", posts);
                    e.set("commentCount", comments);
                    e.set("detachedReferenceCount", detached);
                    e.set("planToken", token.as_str());
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An internal error reaches the client as the generic message and code, never its detail.
    #[test]
    fn internal_detail_never_reaches_the_client() {
        let err = Error::internal_from("opening /secret/path", std::io::Error::other("disk on fire"));
        let gql = async_graphql::Error::from(ApiError::from(err));
        assert_eq!(gql.message, INTERNAL_MESSAGE);
        let text = format!("{:?}", gql.extensions);
        assert!(text.contains("INTERNAL_SERVER_ERROR") && !text.contains("secret") && !text.contains("fire"), "{text}");
    }

    /// A store that cannot write reaches the client as `SERVICE_UNAVAILABLE`
    /// with a retry hint and the generic message, never its cause.
    #[test]
    fn unavailable_says_retry_and_hides_its_cause() {
        let err = Error::unavailable_from("committing", std::io::Error::other("No space left on /data/secret"));
        let gql = async_graphql::Error::from(ApiError::from(err));
        assert_eq!(gql.message, UNAVAILABLE_MESSAGE);
        let text = format!("{:?}", gql.extensions);
        assert!(text.contains("SERVICE_UNAVAILABLE") && text.contains("retryAfterSeconds"), "{text}");
        assert!(!text.contains("secret") && !gql.message.contains("space"), "{text}");
    }

    /// Bad input names its field next to its code.
    #[test]
    fn bad_input_names_the_field() {
        let gql = async_graphql::Error::from(ApiError::from(Error::bad_input("title", "title must not be blank")));
        let text = format!("{:?}", gql.extensions);
        assert!(text.contains("BAD_USER_INPUT") && text.contains("title"), "{text}");
    }
}
