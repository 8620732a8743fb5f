//! The one error type of blogql and the one place it becomes a GraphQL error.
//!
//! Every layer (store, cascade rules, resolvers) returns [`Error`]. Only
//! [`Error::into_graphql`] decides what a client sees, so internal detail
//! (driver messages, file paths, panics) can be logged and never leak.

use async_graphql::ErrorExtensions;

/// Result alias used across the crate so every fallible path speaks [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while serving a request, classified by what
/// the client should do about it.
///
/// It is `Clone` because DataLoader shares one batch result (and error)
/// between every resolver that waited on the batch.
///
/// It deliberately does not implement `Display`: async-graphql converts any
/// `Display` type into a GraphQL error by its text, which would bypass the
/// code mapping and could leak internal detail. Without it, the only way out
/// is [`Error::into_graphql`].
#[derive(Debug, Clone)]
pub enum Error {
    /// The client sent something invalid; `field` names the argument or input field.
    BadInput {
        /// The input field at fault, as the client spelled it.
        field: Option<String>,
        /// What is wrong with it, safe to show.
        message: String,
    },
    /// No identity, or an identity that can't be trusted (bad, expired token; wrong password).
    Unauthenticated(String),
    /// The identity is known but may not do this.
    Forbidden(String),
    /// The target of the operation does not exist.
    NotFound(String),
    /// The operation collides with existing state (a taken email, a write conflict).
    Conflict(String),
    /// Too many attempts; the client may retry after the given number of seconds.
    RateLimited {
        /// Seconds until the next attempt is admitted.
        retry_after_secs: u64,
    },
    /// A bug or an infrastructure failure. The detail is logged, never sent.
    Internal(String),
}

/// The message clients see for every [`Error::Internal`]; deliberately says nothing.
pub const INTERNAL_MESSAGE: &str = "internal server error";

impl Error {
    /// A `BAD_USER_INPUT` error that names the offending field.
    pub fn bad_input(field: &str, message: impl Into<String>) -> Self {
        Error::BadInput { field: Some(field.to_owned()), message: message.into() }
    }

    /// An internal error from anything displayable; the text is only ever logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal(detail.to_string())
    }

    /// A `NOT_FOUND` error for a kind of thing and its id.
    pub fn not_found(kind: &str, id: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{kind} {id} not found"))
    }

    /// The message a client may see (internal errors show a generic one).
    pub fn public_message(&self) -> &str {
        match self {
            Error::BadInput { message, .. } => message,
            Error::Unauthenticated(m) | Error::Forbidden(m) | Error::NotFound(m) | Error::Conflict(m) => m,
            Error::RateLimited { .. } => "too many attempts; retry later",
            Error::Internal(_) => INTERNAL_MESSAGE,
        }
    }

    /// The full text for operators (logs, the CLI's exit message); includes internal detail.
    pub fn detail(&self) -> String {
        match self {
            Error::Internal(detail) => detail.clone(),
            other => other.public_message().to_owned(),
        }
    }

    /// The stable machine-readable code clients switch on (`extensions.code`).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadInput { .. } => "BAD_USER_INPUT",
            Error::Unauthenticated(_) => "UNAUTHENTICATED",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::NotFound(_) => "NOT_FOUND",
            Error::Conflict(_) => "CONFLICT",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// The single mapping point from [`Error`] to a GraphQL error.
    ///
    /// Internal errors are logged here with their detail and replaced by
    /// [`INTERNAL_MESSAGE`], so no resolver can forget to scrub them.
    pub fn into_graphql(self) -> async_graphql::Error {
        let code = self.code();
        match self {
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error while serving a request");
                async_graphql::Error::new(INTERNAL_MESSAGE).extend_with(|_, e| e.set("code", code))
            }
            Error::BadInput { field, message } => async_graphql::Error::new(message).extend_with(|_, e| {
                e.set("code", code);
                if let Some(field) = &field {
                    e.set("field", field.as_str());
                }
            }),
            Error::RateLimited { retry_after_secs } => async_graphql::Error::new("too many attempts; retry later")
                .extend_with(|_, e| {
                    e.set("code", code);
                    e.set("retryAfterSeconds", retry_after_secs);
                }),
            Error::Unauthenticated(message)
            | Error::Forbidden(message)
            | Error::NotFound(message)
            | Error::Conflict(message) => async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code)),
        }
    }
}

impl From<Error> for async_graphql::Error {
    fn from(err: Error) -> Self {
        err.into_graphql()
    }
}

impl From<redb::Error> for Error {
    fn from(err: redb::Error) -> Self {
        Error::internal(format!("embedded store: {err}"))
    }
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(err: $t) -> Self {
                Error::from(redb::Error::from(err))
            }
        }
    )*};
}
redb_errors!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<bson::ser::Error> for Error {
    fn from(err: bson::ser::Error) -> Self {
        Error::internal(format!("bson encode: {err}"))
    }
}

impl From<bson::de::Error> for Error {
    fn from(err: bson::de::Error) -> Self {
        Error::internal(format!("bson decode: {err}"))
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(err: tokio::task::JoinError) -> Self {
        Error::internal(format!("blocking task failed: {err}"))
    }
}
