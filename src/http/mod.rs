//! HTTP routes: GraphQL over HTTP on `/graphql`, GraphiQL on `/`, and probes;
//! [`conn`] owns the accept loop and connection limits.
//!
//! `POST /graphql` takes `application/json`; `GET /graphql` takes queries in
//! the query string but never mutations (a GET must be safe to repeat, and
//! browsers and proxies may prefetch it). Answers are `application/json`, or
//! `application/graphql-response+json` when the client's `Accept` asks for
//! it, in which case a request that could not execute at all gets a 4xx.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql_axum::GraphQLRequest;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};
use tower_http::trace::TraceLayer;

pub mod budget;
mod committed;
pub mod conn;
mod encode;
pub mod graphiql;
mod idempotency;
pub mod persisted;
pub mod slow_body;
mod viewer;

use self::encode::{EncodeError, Over};
use self::viewer::Viewing;
use crate::app::AppState;
use crate::graphql::{AppSchema, RequestCtx, Viewer, build_schema};
use crate::limits::{
    check_query_size, check_typename, introspection, lexical, mentions_introspection, mutation_field_names,
    preview_fields,
};
use crate::metrics::Outcome;
use crate::store::idempotency::{Claim, IdemKey, Lease};

const JSON: &str = "application/json";
const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

#[derive(Clone)]
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
}

/// The application's routes over `state`, with its HTTP limits applied:
/// body size (413 beyond it), request and body-read timeouts (408), CORS for
/// the configured origins only, and a tracing span per request.
pub fn router(state: AppState) -> Router {
    let http = state.settings.http.clone();
    let graphql = &state.settings.graphql;
    let docs = std::sync::Arc::new(persisted::DocumentCache::new(
        graphql.persisted_queries,
        graphql.persisted_queries_mib.saturating_mul(1024 * 1024),
    ));
    let budget = budget::ResponseBudget::new(http.max_response_bytes_in_flight);
    let schema = build_schema(state.clone());
    let introspection = std::sync::Arc::new(introspection::Shape::of_sdl(&schema.sdl()));
    let routes = Routes { schema, state, docs, budget, introspection, encode_slots: encode::EncodeSlots::new() };
    let assets = graphiql::GraphiqlAssets::new(http.graphiql_assets_dir.clone());
    let graphiql = Router::new()
        .route("/", get(graphiql::page))
        .route("/graphiql/{file}", get(graphiql::asset))
        .with_state(assets);
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(routes)
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
        .layer(TraceLayer::new_for_http())
}

/// The body-limit and timeout layers answer 413 and 408 with plain text or
/// nothing; clients of a GraphQL API expect a GraphQL error body with a code.
async fn graphql_shaped_refusals(resp: Response) -> Response {
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(JSON));
    match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json => too_large(),
        StatusCode::REQUEST_TIMEOUT if !is_json => {
            error_response(StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT", "the request took too long")
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
        let message: &str = match &self.0 {
            async_graphql::ParseRequestError::PayloadTooLarge => return too_large(),
            async_graphql::ParseRequestError::Io(err) if err.to_string().contains("length limit exceeded") => {
                return too_large();
            }
            async_graphql::ParseRequestError::Io(err) if err.to_string().contains(slow_body::TOO_SLOW) => {
                return error_response(
                    StatusCode::REQUEST_TIMEOUT,
                    "REQUEST_TIMEOUT",
                    "the request body arrived too slowly",
                );
            }
            async_graphql::ParseRequestError::UnsupportedBatch => {
                return error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", "batched requests are not supported");
            }
            // The parser's own words name serde internals; say what a request must look like.
            other => {
                tracing::debug!(error = %other, "unreadable GraphQL request");
                "could not read the GraphQL request: send a JSON object with a string `query`, \
                 and optionally `variables` (an object) and `operationName` (a string)"
            }
        };
        error_response(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
}

fn too_large() -> Response {
    error_response(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", "request body is too large")
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(routes): State<Routes>) -> Response {
    match routes.state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err.chain(), "readiness probe failed");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}

async fn graphql_post(
    State(routes): State<Routes>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Viewing(viewer): Viewing,
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
    execute(&routes, Some(client.ip()), viewer, &headers, req.into_inner(), Method::POST).await
}

async fn graphql_get(
    State(routes): State<Routes>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Viewing(viewer): Viewing,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
    req: GraphQLRequest<RequestRejection>,
) -> Response {
    let mut req = req.into_inner();
    // GraphQL over HTTP names the parameter `operationName`; async-graphql reads `operation_name`.
    if req.operation_name.is_none() {
        req.operation_name = params.get("operationName").filter(|name| !name.is_empty()).cloned();
    }
    execute(&routes, Some(client.ip()), viewer, &headers, req, Method::GET).await
}

/// Whether the operation the request would run is a mutation.
fn is_mutation(doc: &ExecutableDocument, operation_name: Option<&str>) -> bool {
    let ty = match (operation_name, &doc.operations) {
        (_, DocumentOperations::Single(op)) => Some(op.node.ty),
        (Some(name), DocumentOperations::Multiple(ops)) => ops.get(name).map(|op| op.node.ty),
        (None, DocumentOperations::Multiple(ops)) => {
            ops.values().next().filter(|_| ops.len() == 1).map(|op| op.node.ty)
        }
    };
    ty == Some(OperationType::Mutation)
}

/// What a request came to, before it is written out and counted.
enum Answer {
    /// The schema ran it (or its validation refused it), for this operation
    /// label; `mutation` says whether it was a mutation (so it may have committed).
    Ran { resp: async_graphql::Response, operation: String, mutation: bool },
    /// Refused here, before the schema saw it.
    Refused(async_graphql::Response),
    /// A mutation sent over GET: refused at the HTTP level.
    MutationOverGet,
    /// A retried mutation: the answer its `Idempotency-Key` kept, as it was sent.
    Replayed { body: Vec<u8>, operation: String },
    /// An `Idempotency-Key` in use or reused: refused at the HTTP level.
    KeyRefused { status: StatusCode, code: &'static str, message: &'static str },
}

/// A mutation's claim on its `Idempotency-Key`, settled once it has run.
struct Claimed {
    /// Who sent it, whose write budget pays for the kept answer.
    viewer: bson::oid::ObjectId,
    record: IdemKey,
    lease: Lease,
    /// Its root mutation fields: if every one failed, nothing was written.
    fields: usize,
}

async fn execute(
    routes: &Routes,
    client: Option<IpAddr>,
    viewer: Viewer,
    headers: &HeaderMap,
    req: async_graphql::Request,
    method: Method,
) -> Response {
    let started = std::time::Instant::now();
    let answer = answer(routes, client, viewer, headers, req, method).await;
    // What the metrics count (outcome and codes), read before the answer is
    // handed to the encoder; the operation label is moved out of it after.
    let counted = routes.state.metrics.as_ref().map(|_| {
        let codes = |resp: &async_graphql::Response| -> Vec<String> {
            resp.errors
                .iter()
                .filter_map(|e| match e.extensions.as_ref().and_then(|x| x.get("code")) {
                    Some(async_graphql::Value::String(code)) => Some(code.clone()),
                    _ => None,
                })
                .collect()
        };
        match &answer {
            Answer::Ran { resp, .. } => {
                let outcome = if resp.errors.is_empty() {
                    Outcome::Ok
                } else if not_executed(resp) {
                    Outcome::Rejected
                } else {
                    Outcome::Error
                };
                (outcome, codes(resp))
            }
            Answer::Refused(resp) => (Outcome::Rejected, codes(resp)),
            Answer::MutationOverGet => (Outcome::Rejected, vec!["METHOD_NOT_ALLOWED".to_owned()]),
            Answer::Replayed { .. } => (Outcome::Ok, Vec::new()),
            Answer::KeyRefused { code, .. } => (Outcome::Rejected, vec![(*code).to_owned()]),
        }
    });
    let limit = routes.state.settings.http.max_response_bytes;
    let (http, operation): (Response, std::borrow::Cow<'static, str>) = match answer {
        Answer::Ran { resp, operation, mutation } => {
            (respond(headers, resp, mutation, limit, &routes.budget, &routes.encode_slots).await, operation.into())
        }
        Answer::Refused(resp) => {
            (respond(headers, resp, false, limit, &routes.budget, &routes.encode_slots).await, "refused".into())
        }
        Answer::MutationOverGet => {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "mutations must be sent with POST",
            );
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            (resp, "refused".into())
        }
        Answer::Replayed { body, operation } => (replay(headers, body), operation.into()),
        Answer::KeyRefused { status, code, message } => (error_response(status, code, message), "refused".into()),
    };
    if let (Some(metrics), Some((outcome, codes))) = (&routes.state.metrics, counted) {
        metrics.request(&operation, outcome, started.elapsed(), codes.iter().map(String::as_str));
    }
    http
}

/// The label an operation is counted under: the name the *document* gives
/// the operation that will run, `anonymous`, or `unknown` when the request
/// names an operation the document lacks. The request's `operationName` is
/// only used to choose; it is never the label itself, so a client cannot
/// make up label values beyond the names in documents it sends (which
/// [`crate::metrics`] further bounds in length and count).
/// (`unparsed` and `refused` label requests that never got this far.)
fn operation_label(doc: &ExecutableDocument, operation_name: Option<&str>) -> String {
    match (&doc.operations, operation_name) {
        (DocumentOperations::Single(_), None) => "anonymous".to_owned(),
        (DocumentOperations::Single(_), Some(_)) => "unknown".to_owned(),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get_key_value(name).map_or_else(|| "unknown".to_owned(), |(key, _)| key.to_string())
        }
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.keys().next().map_or_else(|| "anonymous".to_owned(), |n| n.to_string())
        }
        _ => "unknown".to_owned(),
    }
}

/// Parses (or finds in the cache), checks, and runs one request.
async fn answer(
    routes: &Routes,
    client: Option<IpAddr>,
    viewer: Viewer,
    headers: &HeaderMap,
    mut req: async_graphql::Request,
    method: Method,
) -> Answer {
    // Parse once, here (or not at all, for a document in the cache): the
    // size check must run before anything expands fragment spreads, and GET
    // must know the operation type. The schema reuses this document; one
    // that does not parse is left to the schema, which reports the syntax error.
    let refuse = |code: &'static str, message: &str| Answer::Refused(request_error(code, message.to_owned()));
    let ttl_secs = routes.state.settings.graphql.idempotency_ttl_secs;
    let key = match idempotency::parse_key(headers) {
        Ok(key) if ttl_secs > 0 => key,
        Ok(_) => None,
        Err(why) => return refuse("BAD_USER_INPUT", why),
    };
    let apq = match persisted::requested_hash(&req.extensions.0) {
        Ok(hash) if routes.docs.enabled() => hash,
        Ok(Some(_)) => return refuse("PERSISTED_QUERY_NOT_SUPPORTED", "PersistedQueryNotSupported"),
        Ok(None) => None,
        Err(persisted::ApqError::Malformed(why)) => return refuse("BAD_USER_INPUT", why),
    };
    let hash = match apq {
        Some(hash) if req.query.is_empty() => hash,
        Some(hash) => {
            if persisted::sha256(&req.query) != hash {
                return refuse("BAD_USER_INPUT", "extensions.persistedQuery.sha256Hash does not match the query");
            }
            hash
        }
        None => persisted::sha256(&req.query),
    };
    let cached = routes.docs.get(&hash);
    // A freshly parsed document is cached only once the schema has validated it.
    let mut to_cache = None;
    let (doc, parses) = match cached {
        Some(entry) => {
            if req.query.is_empty() {
                req.query.clone_from(&entry.query);
            }
            (Some(entry.doc.clone()), true)
        }
        None if apq.is_some() && req.query.is_empty() => {
            return refuse("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound");
        }
        None => {
            let shape = match lexical::scan(&req.query, lexical_bounds(&routes.state.settings.graphql)) {
                Ok(shape) => shape,
                Err(err) => return refuse("GRAPHQL_PARSE_FAILED", &err.to_string()),
            };
            match async_graphql::parser::parse_query(&req.query) {
                Ok(doc) => {
                    let graphql = &routes.state.settings.graphql;
                    if let Err(err) = check_query_size(&doc, graphql.max_query_fields) {
                        return refuse("GRAPHQL_VALIDATION_FAILED", &err.to_string());
                    }
                    if let Err(why) = check_typename(&doc) {
                        return refuse("GRAPHQL_VALIDATION_FAILED", &why);
                    }
                    // A preview reads an account's whole fan-out: one a request.
                    if preview_fields(&doc) > 1 {
                        return refuse("GRAPHQL_VALIDATION_FAILED", "a request may run at most one deletion preview");
                    }
                    // The complexity limit's unit is about a kilobyte of answer.
                    let max_leaves = (graphql.max_query_complexity as u64).saturating_mul(1000)
                        / introspection::BYTES_PER_LEAF as u64;
                    if introspection::leaves(&doc, &routes.introspection) > max_leaves {
                        return refuse(
                            "GRAPHQL_VALIDATION_FAILED",
                            "the introspection selections could answer more than the complexity limit allows",
                        );
                    }
                    if routes.docs.enabled() && req.query.len() <= persisted::MAX_CACHED_QUERY_BYTES {
                        to_cache = Some((doc.clone(), shape.tokens));
                    }
                    (Some(doc), true)
                }
                Err(_) => (None, false),
            }
        }
    };
    let mut operation = String::from("unparsed");
    let mut mutation = false;
    let mut keyed = None;
    if let Some(doc) = doc {
        if !routes.state.settings.graphql.introspection && mentions_introspection(&doc) {
            return refuse("GRAPHQL_VALIDATION_FAILED", "introspection is turned off on this server");
        }
        mutation = is_mutation(&doc, req.operation_name.as_deref());
        if method == Method::GET && mutation {
            return Answer::MutationOverGet;
        }
        let max_mutations = routes.state.settings.graphql.max_mutation_fields;
        let fields = mutation_field_names(&doc, req.operation_name.as_deref());
        if fields.len() > max_mutations {
            return refuse(
                "GRAPHQL_VALIDATION_FAILED",
                &format!("a request may run at most {max_mutations} mutation fields"),
            );
        }
        if let (Some(key), Viewer::User(me)) = (key, &viewer)
            && idempotency::applies_to(&fields)
        {
            keyed = Some((*me, idempotency::record_key(*me, key), fields.len()));
        }
        if routes.state.settings.graphql.federation
            && let Err(why) = crate::graphql::federation::check_entities(
                &doc,
                req.operation_name.as_deref(),
                &req.variables,
                routes.state.settings.graphql.max_query_complexity,
            )
        {
            return refuse("GRAPHQL_VALIDATION_FAILED", &why);
        }
        if routes.state.metrics.is_some() {
            operation = operation_label(&doc, req.operation_name.as_deref());
        }
        req.set_parsed_query(doc);
    }
    let mut claimed = None;
    if let Some((viewer_id, record, fields)) = keyed {
        let fingerprint = idempotency::fingerprint(&hash, &req.variables, req.operation_name.as_deref());
        let lease_secs = routes.state.settings.http.request_timeout_secs.saturating_add(idempotency::LEASE_MARGIN_SECS);
        let until = bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis().saturating_add(lease_secs.saturating_mul(1000) as i64),
        );
        match routes.state.store.claim_key(&record, &fingerprint, until).await {
            Ok(Claim::Fresh(lease)) => claimed = Some(Claimed { viewer: viewer_id, record, lease, fields }),
            Ok(Claim::Replay(body)) => return Answer::Replayed { body, operation },
            Ok(Claim::InProgress) => {
                return Answer::KeyRefused {
                    status: StatusCode::CONFLICT,
                    code: "IDEMPOTENCY_KEY_IN_USE",
                    message: "a request with this Idempotency-Key is still running; retry after it has answered",
                };
            }
            Ok(Claim::Mismatch) => {
                return Answer::KeyRefused {
                    status: StatusCode::UNPROCESSABLE_ENTITY,
                    code: "IDEMPOTENCY_KEY_REUSED",
                    message: "this Idempotency-Key was sent with a different request; use a new key for a new request",
                };
            }
            Err(err) => {
                let err = async_graphql::Error::from(crate::graphql::error::ApiError::from(err));
                return Answer::Refused(async_graphql::Response::from_errors(vec![
                    err.into_server_error(async_graphql::Pos::default()),
                ]));
            }
        }
    }
    let mut ctx = RequestCtx::new(viewer, &routes.state.store, routes.state.metrics.as_ref());
    ctx.client_ip = client;
    let query = to_cache.is_some().then(|| req.query.clone());
    let mut resp = routes.schema.execute(req.data(ctx)).await;
    if let Some(claimed) = claimed {
        settle(routes, claimed, &resp, client).await;
    }
    if let (Some((doc, tokens)), Some(query)) = (to_cache, query)
        && !not_executed(&resp)
    {
        routes.docs.put(hash, &query, doc, tokens);
    }
    label_request_errors(&mut resp, parses);
    cap_errors(&mut resp);
    Answer::Ran { resp, operation, mutation }
}

/// Keeps a keyed mutation's answer for its retries, or gives the key up if
/// the mutation wrote nothing. A failure here is logged, never answered: the
/// mutation's own answer still goes out, and the claim lapses with its lease.
async fn settle(routes: &Routes, claimed: Claimed, resp: &async_graphql::Response, client: Option<IpAddr>) {
    let store = &routes.state.store;
    let Claimed { viewer, record, lease, fields } = claimed;
    if not_executed(resp) || idempotency::wrote_nothing(resp, fields) {
        if let Err(err) = store.release_key(&record, lease).await {
            tracing::warn!(error = %err.chain(), "giving up an Idempotency-Key failed; it lapses with its lease");
        }
        return;
    }
    let limit = routes.state.settings.http.max_response_bytes;
    let mut kept = match idempotency::kept_form(resp, limit) {
        Ok(kept) => kept,
        Err(err) => {
            tracing::error!(error = %err, "encoding an answer to keep failed");
            return;
        }
    };
    // Kept bytes are written bytes: over the writer's budget, only the ids are kept.
    if routes.state.write_budget.charge_bytes(&viewer, client, kept.len()).is_err()
        && let Ok(cut) = serde_json::to_vec(&committed::cut_down(resp, limit))
    {
        kept = cut;
    }
    let ttl_ms = routes.state.settings.graphql.idempotency_ttl_secs.saturating_mul(1000);
    let until = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis().saturating_add(ttl_ms as i64));
    if let Err(err) = store.keep_answer(&record, lease, kept, until).await {
        tracing::warn!(error = %err.chain(), "keeping an Idempotency-Key's answer failed; a retry will run again");
    }
}

/// A replayed answer, in the media type this request asks for.
fn replay(headers: &HeaderMap, body: Vec<u8>) -> Response {
    let wants_graphql_response =
        headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(GRAPHQL_RESPONSE));
    let content_type = if wants_graphql_response { GRAPHQL_RESPONSE } else { JSON };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(idempotency::REPLAYED, "true")
        .body(Body::from(body))
        .unwrap_or_else(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal server error")
        })
}

/// The lexical pass's bounds, from the GraphQL settings.
fn lexical_bounds(graphql: &crate::settings::GraphqlSettings) -> lexical::Bounds {
    lexical::Bounds { max_depth: graphql.max_query_nesting, max_tokens: graphql.max_query_tokens }
}

/// Most errors one answer lists; a document that earns more (a megabyte of
/// unused variables) gets the first ones and a count of the rest, not
/// an answer several times its own size.
pub const MAX_ERRORS: usize = 100;

/// Cuts the error list to [`MAX_ERRORS`], saying how many were left out.
fn cap_errors(resp: &mut async_graphql::Response) {
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
fn not_executed(resp: &async_graphql::Response) -> bool {
    resp.data == async_graphql::Value::Null && !resp.errors.is_empty() && resp.errors.iter().all(|e| e.path.is_empty())
}

/// Serves `/metrics` in the Prometheus text format; 404 when metrics are off.
async fn metrics(State(routes): State<Routes>) -> Response {
    match &routes.state.metrics {
        Some(metrics) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"))],
            metrics.render(routes.state.store.transactions(), routes.state.store.hidden().len()),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A response for a request refused before execution, with its code.
fn request_error(code: &'static str, message: String) -> async_graphql::Response {
    let mut err = async_graphql::ServerError::new(message, None);
    err.extensions.get_or_insert_with(Default::default).set("code", code);
    async_graphql::Response::from_errors(vec![err])
}

/// Gives errors raised before execution (syntax, validation, limits) a code,
/// as every other error has: `GRAPHQL_PARSE_FAILED` when the document did not
/// parse (`parses`, from the parse in [`execute`]), else `GRAPHQL_VALIDATION_FAILED`.
fn label_request_errors(resp: &mut async_graphql::Response, parses: bool) {
    let code = if parses { "GRAPHQL_VALIDATION_FAILED" } else { "GRAPHQL_PARSE_FAILED" };
    for err in resp.errors.iter_mut().filter(|e| e.path.is_empty()) {
        let has_code = err.extensions.as_ref().is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            err.extensions.get_or_insert_with(Default::default).set("code", code);
        }
    }
}

/// Seconds a client is told to wait when the answer budget is full: answers
/// in flight drain within the send deadline, usually far sooner.
const BUDGET_RETRY_AFTER_SECS: u64 = 1;

/// The most a cut-down mutation answer (see [`committed`]) may take outside
/// the answer budget when the budget is full: it reports writes that have
/// committed, and mutations are budgeted per user.
const CUT_DOWN_RESERVE_BYTES: usize = 64 * 1024;

/// Writes `resp` out (see [`encode`]). A mutation's answer that will not
/// fit (the size limit, the answer budget, or no encoding slot) is cut down
/// to what identifies its writes ([`committed`]), never dropped: the writes
/// have committed.
async fn respond(
    headers: &HeaderMap,
    resp: async_graphql::Response,
    mutation: bool,
    limit: usize,
    budget: &budget::ResponseBudget,
    slots: &encode::EncodeSlots,
) -> Response {
    let wants_graphql_response =
        headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(GRAPHQL_RESPONSE));
    // A response without data whose errors have no path never started executing:
    // GraphQL over HTTP asks for 400 then, under its own media type.
    let mut not_executed = not_executed(&resp);
    let resp = std::sync::Arc::new(resp);
    let encoded = match encode::encode_answer(&resp, not_executed, limit, budget, slots).await {
        Err(EncodeError::Over(_) | EncodeError::Busy) if mutation && !not_executed => {
            tracing::warn!(limit, "a mutation's answer would not fit; answering with its ids only");
            let cut = committed::cut_down(&resp, limit);
            match encode::encode_small(&cut, false, limit, budget) {
                Err(EncodeError::Over(Over::Budget)) => {
                    encode::encode_small(&cut, false, limit, &budget::ResponseBudget::new(CUT_DOWN_RESERVE_BYTES))
                }
                other => other,
            }
        }
        Err(EncodeError::Over(Over::Limit)) => {
            tracing::info!(limit, "a response exceeded the size limit and was refused");
            let refusal =
                request_error("RESPONSE_TOO_LARGE", format!("the response would exceed {limit} bytes; ask for less"));
            not_executed = true;
            encode::encode_small(&refusal, true, limit.max(1024), budget)
        }
        other => other,
    };
    let (body, share) = match encoded {
        Ok(encoded) => encoded,
        Err(EncodeError::Over(_) | EncodeError::Busy) => {
            tracing::warn!(
                budget = budget.total_bytes(),
                "answer bytes in flight are at the budget, or large answers queue for encoding; refusing an answer"
            );
            let mut refused = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "the server is busy sending other answers; retry shortly",
            );
            refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(BUDGET_RETRY_AFTER_SECS));
            return refused;
        }
        Err(EncodeError::Serde(err)) => {
            tracing::error!(error = %err, "serializing a GraphQL response failed");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal server error");
        }
    };
    let (status, content_type) = if wants_graphql_response {
        let status = if not_executed { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        (status, GRAPHQL_RESPONSE)
    } else {
        (StatusCode::OK, JSON)
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::new(budget::BudgetedBody::new(body, share)))
        .unwrap_or_else(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR", "internal server error")
        })
}
