//! HTTP routes: GraphQL over HTTP on `/graphql`, GraphiQL on `/`, and probes.
//!
//! `POST /graphql` takes `application/json`; `GET /graphql` takes queries in
//! the query string but never mutations (a GET must be safe to repeat, and
//! browsers and proxies may prefetch it). Answers are `application/json`, or
//! `application/graphql-response+json` when the client's `Accept` asks for
//! it, in which case a request that could not execute at all gets a 4xx.

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::GraphQLRequest;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::graphql::{BlogSchema, RequestCtx, Viewer, build_schema};

const JSON: &str = "application/json";
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

#[derive(Clone)]
struct Routes {
    schema: BlogSchema,
    state: AppState,
}

/// The application's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Routes { schema: build_schema(state.clone()), state };
    Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(routes)
}

/// A GraphQL-shaped error body, so even transport-level refusals parse as GraphQL responses.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))], body.to_string()).into_response()
}

/// Turns request-parsing failures (bad JSON, a `query` that is not a string)
/// into a 400 GraphQL error instead of a plain-text body.
pub struct RequestRejection(async_graphql::ParseRequestError);

impl From<async_graphql::ParseRequestError> for RequestRejection {
    fn from(err: async_graphql::ParseRequestError) -> Self {
        RequestRejection(err)
    }
}

impl IntoResponse for RequestRejection {
    fn into_response(self) -> Response {
        let message = match &self.0 {
            async_graphql::ParseRequestError::PayloadTooLarge => {
                return error_response(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body is too large");
            }
            other => format!("could not read the GraphQL request: {other}"),
        };
        error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", &message)
    }
}

async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").title("blogql").finish())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(routes): State<Routes>) -> Response {
    match routes.state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = ?err, "readiness probe failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

async fn graphql_post(
    State(routes): State<Routes>,
    headers: HeaderMap,
    req: GraphQLRequest<RequestRejection>,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(JSON) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send GraphQL requests as Content-Type: application/json",
        );
    }
    execute(&routes, &headers, req.into_inner()).await
}

async fn graphql_get(
    State(routes): State<Routes>,
    headers: HeaderMap,
    req: GraphQLRequest<RequestRejection>,
) -> Response {
    let req = req.into_inner();
    if is_mutation(&req) {
        let mut resp =
            error_response(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "mutations must be sent with POST");
        resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    execute(&routes, &headers, req).await
}

/// Whether the operation the request would run is a mutation. Unparseable
/// documents say no here and fail properly in execution.
fn is_mutation(req: &async_graphql::Request) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&req.query) else {
        return false;
    };
    let ty = match (&req.operation_name, doc.operations) {
        (_, async_graphql::parser::types::DocumentOperations::Single(op)) => Some(op.node.ty),
        (Some(name), async_graphql::parser::types::DocumentOperations::Multiple(ops)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        (None, async_graphql::parser::types::DocumentOperations::Multiple(ops)) => {
            ops.values().next().filter(|_| ops.len() == 1).map(|op| op.node.ty)
        }
    };
    ty == Some(OperationType::Mutation)
}

/// Reads the bearer token, if any, into a [`Viewer`].
fn viewer(state: &AppState, headers: &HeaderMap) -> Viewer {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Viewer::Anonymous;
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match token {
        Some(token) => match state.auth.verify(token) {
            Ok(id) => Viewer::User(id),
            Err(err) => Viewer::Invalid(err),
        },
        None => Viewer::Invalid(crate::error::Error::Unauthenticated(
            "the Authorization header must be `Bearer <token>`".into(),
        )),
    }
}

async fn execute(routes: &Routes, headers: &HeaderMap, req: async_graphql::Request) -> Response {
    let ctx = RequestCtx::new(viewer(&routes.state, headers), &routes.state.store);
    let resp = routes.schema.execute(req.data(ctx)).await;
    respond(headers, &resp)
}

fn respond(headers: &HeaderMap, resp: &async_graphql::Response) -> Response {
    let wants_graphql_response =
        headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(GRAPHQL_RESPONSE));
    // A response without data whose errors have no path never started executing:
    // GraphQL over HTTP asks for 400 then, under its own media type.
    let request_error = resp.data == async_graphql::Value::Null
        && !resp.errors.is_empty()
        && resp.errors.iter().all(|e| e.path.is_empty());
    let (status, content_type) = if wants_graphql_response {
        let status = if request_error { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        (status, GRAPHQL_RESPONSE)
    } else {
        (StatusCode::OK, JSON)
    };
    match serde_json::to_vec(resp) {
        Ok(body) => Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap_or_else(|_| {
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal server error")
            }),
        Err(err) => {
            tracing::error!(error = %err, "serializing a GraphQL response failed");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal server error")
        }
    }
}
