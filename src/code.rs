//! The client-facing error codes (`extensions.code`), listed once: the
//! GraphQL error mapping, the HTTP refusals and the metrics all name a code
//! from here, so a new code cannot be answered without being counted.

/// An `extensions.code` the API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// An argument or input field is invalid (`extensions.field` names it).
    BadUserInput,
    /// No identity, or one that cannot be trusted.
    Unauthenticated,
    /// The identity may not do this.
    Forbidden,
    /// The target does not exist.
    NotFound,
    /// The operation collides with existing state.
    Conflict,
    /// Too many attempts (`retryAfterSeconds`).
    RateLimited,
    /// The store cannot write now (`retryAfterSeconds`).
    ServiceUnavailable,
    /// A bug or an unexpected failure; the client sees no detail.
    InternalServerError,
    /// The document does not parse, or is refused before parsing.
    GraphqlParseFailed,
    /// The document does not validate, or exceeds a query limit.
    GraphqlValidationFailed,
    /// An APQ hash the server does not hold.
    PersistedQueryNotFound,
    /// APQ is turned off.
    PersistedQueryNotSupported,
    /// A document not in the trusted-documents manifest, while the server
    /// requires trusted documents (`--require-trusted-documents`).
    UntrustedDocument,
    /// The answer would exceed `--max-response-bytes`.
    ResponseTooLarge,
    /// An `Idempotency-Key` whose first request still runs (`409`).
    IdempotencyKeyInUse,
    /// An `Idempotency-Key` sent with a different request (`422`).
    IdempotencyKeyReused,
    /// A mutation over GET (`405`).
    MethodNotAllowed,
    /// An unreadable request (`400`).
    BadRequest,
    /// Not `application/json` (`415`).
    UnsupportedMediaType,
    /// A body over `--max-body-bytes` (`413`).
    PayloadTooLarge,
    /// A request or its body took too long (`408`).
    RequestTimeout,
}

impl Code {
    /// Every code, in the order metrics list them.
    pub const ALL: [Code; 21] = [
        Code::BadUserInput,
        Code::Unauthenticated,
        Code::Forbidden,
        Code::NotFound,
        Code::Conflict,
        Code::RateLimited,
        Code::ServiceUnavailable,
        Code::InternalServerError,
        Code::GraphqlParseFailed,
        Code::GraphqlValidationFailed,
        Code::PersistedQueryNotFound,
        Code::PersistedQueryNotSupported,
        Code::UntrustedDocument,
        Code::ResponseTooLarge,
        Code::IdempotencyKeyInUse,
        Code::IdempotencyKeyReused,
        Code::MethodNotAllowed,
        Code::BadRequest,
        Code::UnsupportedMediaType,
        Code::PayloadTooLarge,
        Code::RequestTimeout,
    ];

    /// The code as clients read it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::BadUserInput => "BAD_USER_INPUT",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::RateLimited => "RATE_LIMITED",
            Code::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Code::InternalServerError => "INTERNAL_SERVER_ERROR",
            Code::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Code::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Code::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Code::PersistedQueryNotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Code::UntrustedDocument => "UNTRUSTED_DOCUMENT",
            Code::ResponseTooLarge => "RESPONSE_TOO_LARGE",
            Code::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            Code::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            Code::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Code::BadRequest => "BAD_REQUEST",
            Code::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Code::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Code::RequestTimeout => "REQUEST_TIMEOUT",
        }
    }

    /// The code a client-facing string names, if any.
    pub fn parse(code: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Its position in [`Code::ALL`].
    pub fn index(self) -> usize {
        Code::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ALL` lists every code once, in screaming snake case, and each parses back to itself.
    #[test]
    fn every_code_is_listed_once_and_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for (i, code) in Code::ALL.into_iter().enumerate() {
            let text = code.as_str();
            assert!(text.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{text}");
            assert!(seen.insert(text), "{text} twice");
            assert_eq!(Code::parse(text), Some(code));
            assert_eq!(code.index(), i);
        }
        // A code missing from ALL would still need an as_str arm; this match makes
        // adding a variant without listing it a compile error here.
        let listed = |c: Code| match c {
            Code::BadUserInput
            | Code::Unauthenticated
            | Code::Forbidden
            | Code::NotFound
            | Code::Conflict
            | Code::RateLimited
            | Code::ServiceUnavailable
            | Code::InternalServerError
            | Code::GraphqlParseFailed
            | Code::GraphqlValidationFailed
            | Code::PersistedQueryNotFound
            | Code::PersistedQueryNotSupported
            | Code::UntrustedDocument
            | Code::ResponseTooLarge
            | Code::IdempotencyKeyInUse
            | Code::IdempotencyKeyReused
            | Code::MethodNotAllowed
            | Code::BadRequest
            | Code::UnsupportedMediaType
            | Code::PayloadTooLarge
            | Code::RequestTimeout => Code::ALL.contains(&c),
        };
        assert!(Code::ALL.into_iter().all(listed));
        assert_eq!(Code::parse("WHATEVER"), None);
    }
}
