//! HTTP routes: GraphQL over HTTP on `/graphql`, GraphiQL on `/`, and probes;
//! [`conn`] owns the accept loop and connection limits.
//!
//! `POST /graphql` takes `application/json`; `GET /graphql` takes queries in
//! the query string but never mutations (a GET must be safe to repeat, and
//! browsers and proxies may prefetch it). Answers are `application/json`, or
//! `application/graphql-response+json` when the client's `Accept` asks for
//! it, in which case a request that could not execute at all gets a 4xx.

use crate::code::Code;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

pub mod answers;
pub mod budget;
mod committed;
pub mod conn;
mod encode;
pub mod graphiql;
mod graphql;
mod idempotency;
mod incoming;
pub mod live;
pub mod persisted;
pub mod slow_body;
pub mod steps;
pub mod trusted;
mod viewer;

use crate::app::AppState;
use crate::graphql::{AppSchema, build_schema};
use crate::limits::introspection;

pub(super) const JSON: &str = "application/json";
pub(super) const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// What the GraphQL routes share, behind one `Arc` as the router's state:
/// axum clones the state for every request, and cloning this struct's dozen
/// handles was 7% of a cached answer's CPU (the clone and its drop, in
/// `bench/profile.sh nested`).
struct Routes {
    schema: AppSchema,
    state: AppState,
    /// Parsed documents by hash: APQ, and no re-parsing of repeat queries.
    docs: std::sync::Arc<persisted::DocumentCache>,
    /// Answer bytes in flight, across every connection.
    budget: budget::ResponseBudget,
    /// How long each introspection list can be in the served schema.
    introspection: std::sync::Arc<introspection::Shape>,
    /// Where answers too large to encode inline are encoded.
    encode_slots: encode::EncodeSlots,
    /// Subscriptions running in the process, against `--max-subscriptions`.
    subscriptions: std::sync::Arc<live::Running>,
    /// Subscription runs shared by the subscribers who ask the same thing.
    fans: std::sync::Arc<live::fan::Fans>,
    /// The served schema's cost model (`--max-query-complexity`, and the published `@cost`/`@listSize`).
    cost: std::sync::Arc<crate::graphql::cost::CostModel>,
    /// The trusted documents (`--trusted-documents`), when configured.
    trusted: Option<std::sync::Arc<trusted::TrustedDocuments>>,
    /// Answers kept while the store has not changed (`--answer-cache-mib`);
    /// only where this process makes every write (the embedded store).
    answers: Option<std::sync::Arc<answers::AnswerCache>>,
}

/// The application's routes over `state`, with its HTTP limits applied:
/// body size (413 beyond it), request and body-read timeouts (408), CORS for
/// the configured origins only, and a tracing span per request. Fails when
/// the trusted-documents manifest does not load.
pub fn router(state: AppState) -> anyhow::Result<Router> {
    let http = state.settings.http.clone();
    let graphql = &state.settings.graphql;
    let docs = Arc::new(persisted::DocumentCache::new(
        graphql.persisted_queries,
        graphql.persisted_queries_mib.saturating_mul(1024 * 1024),
    ));
    let budget = budget::ResponseBudget::new(http.max_response_bytes_in_flight);
    let schema = build_schema(state.clone());
    let served_sdl = schema.sdl();
    let introspection = Arc::new(introspection::Shape::of_sdl(&served_sdl));
    let cost = Arc::new(crate::graphql::cost::CostModel::of_sdl(&served_sdl));
    let subscriptions = Arc::new(live::Running::new(http.max_subscriptions));
    let fans = Arc::new(live::fan::Fans::default());
    let trusted = match &graphql.trusted_documents {
        Some(path) => {
            let docs = trusted::TrustedDocuments::load(path, graphql, Arc::clone(&introspection))?;
            let docs = Arc::new(docs);
            trusted::TrustedDocuments::watch(&docs);
            Some(docs)
        }
        None => None,
    };
    let answers = (graphql.answer_cache_mib > 0 && state.store.version().is_some())
        .then(|| Arc::new(answers::AnswerCache::new(graphql.answer_cache_mib.saturating_mul(1024 * 1024))));
    let routes = Routes {
        answers,
        schema,
        state,
        docs,
        budget,
        introspection,
        encode_slots: encode::EncodeSlots::new(),
        subscriptions,
        fans,
        cost,
        trusted,
    };
    let assets = graphiql::GraphiqlAssets::new(http.graphiql_assets_dir.clone());
    let graphiql = Router::new()
        .route("/", get(graphiql::page))
        .route("/graphiql/{file}", get(graphiql::asset))
        .with_state(assets);
    Ok(Router::new()
        .route("/graphql", get(graphql::graphql_get).post(graphql::graphql_post))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(routes))
        .merge(graphiql)
        .layer(axum::middleware::map_request_with_state(
            slow_body::BodyLimits { deadline: http.read_timeout(), min_bytes_per_sec: http.min_body_bytes_per_sec },
            slow_body::bound_request_body,
        ))
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(http.read_timeout()))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, http.request_timeout()))
        .layer(axum::middleware::map_response(graphql_shaped_refusals))
        .layer(cors(&http.cors_origins, &http.cors_headers))
        .layer(TraceLayer::new_for_http()))
}

/// The body-limit and timeout layers answer 413 and 408 with plain text or
/// nothing; clients of a GraphQL API expect a GraphQL error body with a code.
async fn graphql_shaped_refusals(resp: Response) -> Response {
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(JSON));
    match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json => too_large(),
        StatusCode::REQUEST_TIMEOUT if !is_json => {
            error_response(StatusCode::REQUEST_TIMEOUT, Code::RequestTimeout, "the request took too long")
        }
        _ => resp,
    }
}

/// CORS for the configured origins and request headers. With no origin
/// configured, browsers may call the API only from its own origin (GraphiQL
/// on `/` keeps working). Entries that are not valid header values are skipped.
fn cors(origins: &[String], headers: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    let headers: Vec<header::HeaderName> =
        headers.iter().filter_map(|h| header::HeaderName::from_bytes(h.trim().as_bytes()).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(headers)
        .expose_headers([header::HeaderName::from_static(idempotency::REPLAYED)])
        .max_age(Duration::from_secs(600))
}

/// A GraphQL-shaped error body, so even transport-level refusals parse as GraphQL responses.
pub(super) fn error_response(status: StatusCode, code: Code, message: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code.as_str() } }] });
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
        let message: &str = match &self.0 {
            async_graphql::ParseRequestError::PayloadTooLarge => return too_large(),
            async_graphql::ParseRequestError::Io(err) if err.to_string().contains("length limit exceeded") => {
                return too_large();
            }
            async_graphql::ParseRequestError::Io(err) if err.to_string().contains(slow_body::TOO_SLOW) => {
                return error_response(
                    StatusCode::REQUEST_TIMEOUT,
                    Code::RequestTimeout,
                    "the request body arrived too slowly",
                );
            }
            async_graphql::ParseRequestError::UnsupportedBatch => {
                return error_response(StatusCode::BAD_REQUEST, Code::BadRequest, "batched requests are not supported");
            }
            // The parser's own words name serde internals; say what a request must look like.
            other => {
                tracing::debug!(error = %other, "unreadable GraphQL request");
                "could not read the GraphQL request: send a JSON object with a string `query`, \
                 and optionally `variables` (an object) and `operationName` (a string)"
            }
        };
        error_response(StatusCode::BAD_REQUEST, Code::BadRequest, message)
    }
}

fn too_large() -> Response {
    error_response(StatusCode::PAYLOAD_TOO_LARGE, Code::PayloadTooLarge, "request body is too large")
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(routes): State<Arc<Routes>>) -> Response {
    match routes.state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err.chain(), "readiness probe failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

/// Serves `/metrics` in the Prometheus text format; 404 when metrics are off.
async fn metrics(State(routes): State<Arc<Routes>>) -> Response {
    match &routes.state.metrics {
        Some(metrics) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))],
            metrics.render(
                routes.state.store.transactions(),
                routes.state.store.hidden().len(),
                routes.state.store.hub().published(),
            ) + &answers::render(routes.answers.as_deref()),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
