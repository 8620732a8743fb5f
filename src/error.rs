//! The domain error: what went wrong, classified by what the caller should do,
//! with the underlying cause kept for operators.
//!
//! Every layer below GraphQL (domain parsing, commands, stores, auth) returns
//! [`Error`]. It implements `Display` and `std::error::Error`, so `main` and
//! the CLI can add context with `anyhow` and print the whole chain. Turning it
//! into a client-facing GraphQL error happens in exactly one place,
//! `graphql::error`, which decides what a client may see; backend-specific
//! conversions (redb, the MongoDB driver) live in their backend.

use std::borrow::Cow;
use std::sync::Arc;

/// Result alias used across the crate so every fallible path speaks [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause of an internal error, shared so [`Error`] stays `Clone`: one
/// DataLoader batch result (and error) is handed to every resolver that waited on it.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The client sent something invalid.
    #[error("{message}")]
    BadInput {
        /// The argument or input field at fault, as the client spelled it.
        field: &'static str,
        /// What is wrong with it, safe to show.
        message: String,
    },
    /// No identity, or one that can't be trusted (bad or expired token, wrong password).
    #[error("{0}")]
    Unauthenticated(Cow<'static, str>),
    /// The identity is known but may not do this.
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    /// The target of the operation does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation collides with existing state (a taken email, a write conflict).
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// A delete given `expectedPlan` found a different plan in its transaction; nothing was deleted.
    #[error("the deletion plan changed since it was previewed; nothing was deleted")]
    PlanChanged {
        /// Posts the delete would now delete.
        posts: u64,
        /// Comments it would now delete.
        comments: u64,
        /// References it would now detach.
        detached: u64,
        /// The fresh plan's token.
        token: String,
    },
    /// Too many attempts; the client may retry after the given number of seconds.
    #[error("too many attempts; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next attempt is admitted.
        retry_after_secs: u64,
    },
    /// The service cannot do this now, for a reason that passes (the disk is
    /// full, the store is being reopened): nothing was written, and a retry
    /// later may succeed. Its cause is logged, never shown.
    #[error("{context}")]
    Unavailable {
        /// What could not be done.
        context: Cow<'static, str>,
        /// Why, when another error says so.
        #[source]
        source: Option<Cause>,
    },
    /// A bug or an infrastructure failure: never shown to clients, always logged with its cause.
    #[error("{context}")]
    Internal {
        /// What the server was doing.
        context: Cow<'static, str>,
        /// Why it failed, when another error says so.
        #[source]
        source: Option<Cause>,
    },
}

impl Error {
    /// A `BAD_USER_INPUT` error that names the offending field.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Error::BadInput { field, message: message.into() }
    }

    /// An internal error with no underlying cause (a broken invariant).
    pub fn internal(context: impl Into<Cow<'static, str>>) -> Self {
        Error::Internal { context: context.into(), source: None }
    }

    /// An internal error caused by `source`, which is kept (not flattened to text).
    pub fn internal_from<E>(context: impl Into<Cow<'static, str>>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Internal { context: context.into(), source: Some(Arc::new(source)) }
    }

    /// An [`Error::Unavailable`] with no underlying cause.
    pub fn unavailable(context: impl Into<Cow<'static, str>>) -> Self {
        Error::Unavailable { context: context.into(), source: None }
    }

    /// An [`Error::Unavailable`] caused by `source`, which is kept.
    pub fn unavailable_from<E>(context: impl Into<Cow<'static, str>>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Unavailable { context: context.into(), source: Some(Arc::new(source)) }
    }

    /// The `CONFLICT` for a sign-up whose email has an account, whichever layer notices it.
    pub fn email_taken() -> Self {
        Error::Conflict("an account with this email already exists".into())
    }

    /// A `NOT_FOUND` error for a kind of thing and its id.
    pub fn not_found(kind: &str, id: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{kind} {id} not found"))
    }

    /// The first cause of type `E` in this error's source chain, if any:
    /// how a caller tells one failure of a dependency from another without
    /// a variant per case (the embedded store's reopen tells a file another
    /// process holds from a damaged one).
    pub fn find_cause<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(mut err) = next {
            // A shared cause shows up as the `Arc` around it; look inside.
            if let Some(shared) = err.downcast_ref::<Cause>() {
                err = &**shared;
            }
            if let Some(found) = err.downcast_ref::<E>() {
                return Some(found);
            }
            next = err.source();
        }
        None
    }

    /// The error and every cause, `: `-separated, for logs.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(err) = next {
            out.push_str(": ");
            out.push_str(&err.to_string());
            next = err.source();
        }
        out
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Self {
        Error::internal_from("a blocking task failed", err)
    }
}

impl From<bson::error::Error> for Error {
    fn from(err: bson::error::Error) -> Self {
        Error::internal_from("BSON", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An internal error keeps its cause: the chain shows it and it can be found by type.
    #[test]
    fn internal_errors_keep_their_cause() {
        let io = std::io::Error::other("disk on fire");
        let err = Error::internal_from("writing the secret", io);
        assert_eq!(err.chain(), "writing the secret: disk on fire");
        assert!(err.find_cause::<std::io::Error>().is_some());
        let cloned = err.clone();
        assert_eq!(cloned.to_string(), "writing the secret");
    }
}
