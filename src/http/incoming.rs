//! Reading a GraphQL request from a `POST` body, with the id of a persisted
//! document it may name instead of sending its text.
//!
//! async-graphql's extractor reads `query`, `operationName`, `variables` and
//! `extensions`, but not the ids that name a persisted document outside
//! `extensions`: `documentId` (GraphQL over HTTP's persisted-documents
//! proposal) and Relay's `id` / `doc_id`. So the body is read once, decoded
//! as async-graphql's request, and, only when it has no query text, scanned
//! a second time for those ids: a request with text pays nothing for them.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{JSON, RequestRejection, error_response};
use crate::code::Code;

/// A GraphQL request sent with `POST`.
pub(super) struct Incoming {
    /// The request.
    pub req: async_graphql::Request,
    /// The persisted document it names by id, when it sent no text.
    pub document_id: Option<String>,
}

/// The ids a request without text may name its document by.
#[derive(Deserialize, Default)]
pub(super) struct DocumentIds {
    #[serde(rename = "documentId")]
    document_id: Option<String>,
    id: Option<String>,
    doc_id: Option<String>,
}

impl DocumentIds {
    /// The first of `documentId`, `doc_id` and `id` that is set.
    pub fn into_id(self) -> Option<String> {
        self.document_id.or(self.doc_id).or(self.id).filter(|id| !id.is_empty())
    }

    /// The ids from a `GET` request's query-string parameters.
    pub fn from_params(params: &std::collections::HashMap<String, String>) -> DocumentIds {
        DocumentIds {
            document_id: params.get("documentId").cloned(),
            id: params.get("id").cloned(),
            doc_id: params.get("doc_id").cloned(),
        }
    }
}

/// Whether a `Content-Type` is JSON (the only body this API reads).
pub(super) fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(JSON)
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Response> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !is_json(content_type) {
            return Err(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedMediaType,
                "send GraphQL requests as Content-Type: application/json",
            ));
        }
        let reject = |err: async_graphql::ParseRequestError| RequestRejection::from(err).into_response();
        // The body's size and pace are bounded by the layers around the routes.
        let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|err| reject(async_graphql::ParseRequestError::Io(std::io::Error::other(err.to_string()))))?;
        let req = serde_json::from_slice::<async_graphql::BatchRequest>(&bytes)
            .map_err(|err| reject(async_graphql::ParseRequestError::InvalidRequest(Box::new(err))))?
            .into_single()
            .map_err(reject)?;
        let document_id = if req.query.is_empty() {
            serde_json::from_slice::<DocumentIds>(&bytes).ok().and_then(DocumentIds::into_id)
        } else {
            None
        };
        Ok(Incoming { req, document_id })
    }
}
