//! Who is asking: the `Authorization: Bearer` token read into a [`Viewer`],
//! as an axum extractor, so a handler receives the viewer instead of parsing
//! headers itself.
//!
//! The scheme is matched case-insensitively (RFC 9110 §11.1: `bearer`,
//! `BEARER` and `Bearer` are one scheme). A request without the header is
//! anonymous. A malformed header or a bad token does not refuse the request
//! here: it becomes [`Viewer::Invalid`], and only a field that needs the
//! viewer fails, with `UNAUTHENTICATED`, so public fields of the same query
//! still answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use std::sync::Arc;

use super::Routes;
use crate::auth::Auth;
use crate::error::Error;
use crate::graphql::Viewer;

/// The request's [`Viewer`], extracted from its headers.
pub(super) struct Viewing(pub Viewer);

impl FromRequestParts<Arc<Routes>> for Viewing {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, routes: &Arc<Routes>) -> Result<Self, Self::Rejection> {
        Ok(Viewing(viewer(&routes.state.auth, &parts.headers)))
    }
}

/// Reads the bearer token, if any, into a [`Viewer`].
pub(super) fn viewer(auth: &Auth, headers: &HeaderMap) -> Viewer {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Viewer::Anonymous;
    };
    match value.to_str().ok().and_then(bearer_token) {
        Some(token) => match auth.verify(token) {
            Ok(id) => Viewer::User(id),
            Err(err) => Viewer::Invalid(err),
        },
        None => Viewer::Invalid(Error::Unauthenticated("the Authorization header must be `Bearer <token>`".into())),
    }
}

/// The token of an `Authorization` value in the Bearer scheme, in any case.
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheme matches in any case; the token is trimmed; other schemes and empty tokens are not bearer tokens.
    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc ", " Bearer abc"] {
            assert_eq!(bearer_token(value), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
