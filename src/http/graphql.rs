//! `POST /graphql` and `GET /graphql`: each request through the named
//! steps (see [`steps`]), the schema, and back out, counted once.

use crate::code::Code;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql_axum::GraphQLRequest;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::answers::{self, Version};
use super::conn::ConnSlot;
use super::incoming::{DocumentIds, Incoming};
use super::steps::outcome::{cap_errors, label_request_errors, not_executed};
use super::steps::respond::{cached, replay, respond};
use super::steps::trusted::{self, Admitted};
use super::steps::{Refusal, apq, cost, operation, parse};
use super::viewer::Viewing;
use super::{RequestRejection, Routes, error_response, idempotency, persisted};
use crate::graphql::{RequestCtx, Viewer};
use crate::metrics::Outcome;
use crate::telemetry::{SpanId, TraceContext, context, otlp};

pub(super) async fn graphql_post(
    State(routes): State<Arc<Routes>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Viewing(viewer): Viewing,
    headers: HeaderMap,
    Incoming { req, document_id }: Incoming,
) -> Response {
    if super::live::sse::wants_events(&headers) {
        return super::live::sse::serve(routes, client.ip(), viewer, req).await;
    }
    traced(&routes, Some(client.ip()), viewer, &headers, req, document_id, Method::POST).await
}

/// `GET /graphql`: a query in the URL; with `Upgrade: websocket`, a
/// subscription socket (see [`super::live::ws`]); with `Accept:
/// text/event-stream`, a subscription's event stream (as on POST, see
/// [`super::live::sse`]).
pub(super) async fn graphql_get(
    State(routes): State<Arc<Routes>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.headers.get(header::UPGRADE).and_then(|v| v.to_str().ok());
    if upgrade.is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        let slot = parts.extensions.get::<ConnSlot>().cloned();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &routes).await {
            Ok(ws) => super::live::ws::upgrade(routes, ws, client.ip(), slot),
            Err(rejection) => rejection.into_response(),
        };
    }
    let Ok(Viewing(viewer)) = Viewing::from_request_parts(&mut parts, &routes).await;
    let params = Query::<HashMap<String, String>>::from_request_parts(&mut parts, &routes).await;
    let params = params.map(|Query(params)| params).unwrap_or_default();
    let headers = parts.headers.clone();
    let req = match GraphQLRequest::<RequestRejection>::from_request(Request::from_parts(parts, body), &routes).await {
        Ok(req) => req,
        Err(rejection) => return rejection.into_response(),
    };
    let mut req = req.into_inner();
    // GraphQL over HTTP names the parameter `operationName`; async-graphql reads `operation_name`.
    if req.operation_name.is_none() {
        req.operation_name = params.get("operationName").filter(|name| !name.is_empty()).cloned();
    }
    if super::live::sse::wants_events(&headers) {
        return super::live::sse::serve(routes, client.ip(), viewer, req).await;
    }
    let document_id = if req.query.is_empty() { DocumentIds::from_params(&params).into_id() } else { None };
    traced(&routes, Some(client.ip()), viewer, &headers, req, document_id, Method::GET).await
}

/// What a request came to, before it is written out and counted.
enum Answer {
    /// The schema ran it (or its validation refused it), for this operation
    /// label; `mutation` says whether it was a mutation (so it may have committed).
    Ran { resp: async_graphql::Response, operation: String, mutation: bool, keep: Option<answers::Pending> },
    /// A query's answer, kept by the answer cache at the store's current state.
    Cached { body: bytes::Bytes, operation: String },
    /// Refused here, before the schema saw it.
    Refused(async_graphql::Response),
    /// A mutation sent over GET: refused at the HTTP level.
    MutationOverGet,
    /// A retried mutation: the answer its `Idempotency-Key` kept, as it was sent.
    Replayed { body: Vec<u8>, operation: String },
    /// An `Idempotency-Key` in use or reused: refused at the HTTP level.
    KeyRefused { status: StatusCode, code: Code, message: &'static str },
}

/// Runs one request in its span (see [`request_span`]), then writes its
/// log line and hands back its request id in `X-Request-Id`.
async fn traced(
    routes: &Routes,
    client: Option<IpAddr>,
    viewer: Viewer,
    headers: &HeaderMap,
    req: async_graphql::Request,
    document_id: Option<String>,
    method: Method,
) -> Response {
    let started = std::time::Instant::now();
    let trace = TraceContext::from_headers(headers);
    let span_id = SpanId::random();
    let request_id = match context::caller_request_id(headers) {
        Some(id) => id.to_owned(),
        None => span_id.to_string(),
    };
    let span = request_span(&request_id, &trace, span_id);
    let done = execute(routes, client, viewer, headers, req, document_id, method).instrument(span.clone()).await;
    let Executed { mut http, operation, outcome, kind } = done;
    span.record("graphql.operation.name", &*operation);
    span.record("graphql.operation.type", kind);
    span.record("outcome", outcome.label());
    span.record("http.response.status_code", http.status().as_u16());
    tracing::info!(
        target: "blogql::request",
        request_id = %request_id,
        trace_id = %trace.trace_id,
        operation = &*operation,
        kind,
        outcome = outcome.label(),
        status = http.status().as_u16(),
        duration_ms = started.elapsed().as_micros() as f64 / 1000.0,
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        http.headers_mut().insert(REQUEST_ID, value);
    }
    http
}

/// The response header that carries the request id (the caller's, or the request span's id).
const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// A request's answer, and what its log line and metrics say of it.
struct Executed {
    http: Response,
    operation: std::borrow::Cow<'static, str>,
    outcome: Outcome,
    /// `query` or `mutation`, once the operation was known.
    kind: Option<&'static str>,
}

async fn execute(
    routes: &Routes,
    client: Option<IpAddr>,
    viewer: Viewer,
    headers: &HeaderMap,
    req: async_graphql::Request,
    document_id: Option<String>,
    method: Method,
) -> Executed {
    let started = std::time::Instant::now();
    // Boxed, like the schema's future inside it: a future is moved whole
    // each time an enclosing one is built or boxed (axum boxes the handler's),
    // so unboxed these made the handler's future 7.5 KB, copied several
    // times a request (see the README's "Smaller request futures").
    let answer = Box::pin(answer(routes, client, viewer, headers, req, document_id.as_deref(), method)).await;
    let kind = match &answer {
        Answer::Ran { mutation: true, .. } | Answer::Replayed { .. } | Answer::MutationOverGet => Some("mutation"),
        Answer::Ran { mutation: false, .. } | Answer::Cached { .. } => Some("query"),
        _ => None,
    };
    // How the request ended, and (for the metrics) its codes, read before the
    // answer is handed to the encoder; the operation label is moved out of it after.
    let outcome = match &answer {
        Answer::Ran { resp, .. } if resp.errors.is_empty() => Outcome::Ok,
        Answer::Ran { resp, .. } if !not_executed(resp) => Outcome::Error,
        Answer::Replayed { .. } | Answer::Cached { .. } => Outcome::Ok,
        _ => Outcome::Rejected,
    };
    // Read once, for the metrics and for the span's first `code`.
    let span = tracing::Span::current();
    let codes = (routes.state.metrics.is_some() || !span.is_disabled()).then(|| {
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
            Answer::Ran { resp, .. } | Answer::Refused(resp) => codes(resp),
            Answer::MutationOverGet => vec![Code::MethodNotAllowed.as_str().to_owned()],
            Answer::Replayed { .. } | Answer::Cached { .. } => Vec::new(),
            Answer::KeyRefused { code, .. } => vec![code.as_str().to_owned()],
        }
    });
    if let Some(first) = codes.as_ref().and_then(|codes| codes.first()) {
        span.record("code", first.as_str());
    }
    let limit = routes.state.settings.http.max_response_bytes;
    let (http, operation): (Response, std::borrow::Cow<'static, str>) = match answer {
        Answer::Ran { resp, operation, mutation, keep } => {
            let keep = keep.filter(|_| resp.errors.is_empty());
            let http = respond(headers, resp, mutation, limit, &routes.budget, &routes.encode_slots, keep).await;
            (http, operation.into())
        }
        Answer::Cached { body, operation } => (cached(headers, body, &routes.budget), operation.into()),
        Answer::Refused(resp) => {
            (respond(headers, resp, false, limit, &routes.budget, &routes.encode_slots, None).await, "refused".into())
        }
        Answer::MutationOverGet => {
            let mut resp = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::MethodNotAllowed,
                "mutations must be sent with POST",
            );
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            (resp, "refused".into())
        }
        Answer::Replayed { body, operation } => (replay(headers, body), operation.into()),
        Answer::KeyRefused { status, code, message } => (error_response(status, code, message), "refused".into()),
    };
    if let (Some(metrics), Some(codes)) = (&routes.state.metrics, codes) {
        metrics.request(&operation, outcome, started.elapsed(), codes.iter().map(String::as_str));
    }
    Executed { http, operation, outcome, kind }
}

/// The span a request runs in: one per request, never one per field. It
/// names its trace (the caller's, or a new one) and its own span id (the
/// request id, unless the caller sent one), which is where an OpenTelemetry
/// trace starts; its parse, validate and execute steps, loads and store
/// transactions are its children. What the request turned out to be
/// (operation, outcome, first error code, document hash, cost) is recorded
/// as it is learned.
///
/// The sampler decides first: a trace it leaves out gets the span under the
/// untraced target, which only the logs may take; at `RUST_LOG=warn` that
/// request then creates no span at all.
fn request_span(request_id: &str, trace: &TraceContext, span_id: SpanId) -> tracing::Span {
    macro_rules! span {
        ($target:expr) => {
            tracing::info_span!(
                target: $target,
                "request",
                request_id,
                trace_id = %trace.trace_id,
                span_id = %span_id,
                parent_id = trace.parent.map(tracing::field::display),
                sampled = trace.sampled,
                tracestate = trace.tracestate.as_deref(),
                "graphql.operation.name" = tracing::field::Empty,
                "graphql.operation.type" = tracing::field::Empty,
                "graphql.document.hash" = tracing::field::Empty,
                "graphql.complexity" = tracing::field::Empty,
                outcome = tracing::field::Empty,
                code = tracing::field::Empty,
                "http.response.status_code" = tracing::field::Empty,
            )
        };
    }
    if otlp::traces(trace.trace_id, trace.sampled) { span!(module_path!()) } else { span!(otlp::UNTRACED) }
}

/// Counts and logs an untrusted document served under `--trusted-documents-log-only`:
/// its hash and the operation name the client gave, never its text.
fn untrusted_served(routes: &Routes, named: &apq::Named, operation: Option<&str>) {
    if let Some(metrics) = &routes.state.metrics {
        metrics.untrusted_documents.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let hash = persisted::hex(&named.hash);
    tracing::warn!(hash, operation, "served a document that is not trusted (log-only mode)");
}

/// Runs one request through the steps (see [`steps`]) and the schema.
async fn answer(
    routes: &Routes,
    client: Option<IpAddr>,
    viewer: Viewer,
    headers: &HeaderMap,
    mut req: async_graphql::Request,
    document_id: Option<&str>,
    method: Method,
) -> Answer {
    let graphql = &routes.state.settings.graphql;
    let key = match idempotency::parse_key(headers) {
        Ok(key) if graphql.idempotency_ttl_secs > 0 => key,
        Ok(_) => None,
        Err(why) => return Answer::Refused(Refusal::new(Code::BadUserInput, why).into_response()),
    };
    // Parse once, here (or not at all, for a document in the cache): the
    // size check must run before anything expands fragment spreads, and GET
    // must know the operation type. The schema reuses this document; one
    // that does not parse is left to the schema, which reports the syntax error.
    // An APQ hash may name a trusted document even where APQ itself is off.
    let hashes = routes.docs.enabled() || routes.trusted.is_some();
    let mut named = match apq::named(&req.extensions.0, &req.query, hashes) {
        Ok(named) => named,
        Err(refusal) => return Answer::Refused(refusal.into_response()),
    };
    let trusted = match trusted::admit(routes.trusted.as_deref(), graphql, document_id, &named, &req.query) {
        Ok(Admitted::Trusted(doc)) => Some(doc),
        Ok(Admitted::Free) => None,
        Ok(Admitted::LoggedOnly) => {
            untrusted_served(routes, &named, req.operation_name.as_deref());
            None
        }
        Err(refusal) => return Answer::Refused(refusal.into_response()),
    };
    // A freshly parsed document is cached only once the schema has validated it,
    // so one from the cache has passed the full validation before.
    let mut to_cache = None;
    let mut validated_before = false;
    let (doc, parses) = match trusted {
        Some(trusted) => {
            if req.query.is_empty() {
                req.query.clone_from(&trusted.text);
            }
            named.hash = trusted.hash;
            (Some(trusted.doc.clone()), true)
        }
        None if !routes.docs.enabled() && named.hash_only => {
            return Answer::Refused(
                Refusal::new(Code::PersistedQueryNotSupported, "PersistedQueryNotSupported").into_response(),
            );
        }
        None => match routes.docs.get(&named.hash) {
            Some(entry) => {
                if req.query.is_empty() {
                    req.query.clone_from(&entry.query);
                }
                validated_before = true;
                (Some(entry.doc.clone()), true)
            }
            None if named.hash_only => {
                return Answer::Refused(
                    Refusal::new(Code::PersistedQueryNotFound, "PersistedQueryNotFound").into_response(),
                );
            }
            None => match tracing::info_span!("parse")
                .in_scope(|| parse::parse(&req.query, graphql, &routes.introspection))
            {
                Ok(Some(parse::Parsed { doc, tokens })) => {
                    if routes.docs.enabled() && req.query.len() <= persisted::MAX_CACHED_QUERY_BYTES {
                        to_cache = Some((doc.clone(), tokens));
                    }
                    (Some(doc), true)
                }
                Ok(None) => (None, false),
                Err(refusal) => return Answer::Refused(refusal.into_response()),
            },
        },
    };
    let mut label = String::from("unparsed");
    let mut checked = None;
    if let Some(doc) = doc {
        let op = req.operation_name.as_deref();
        let validated = tracing::info_span!("validate").in_scope(|| {
            let ok = operation::check(&doc, op, &req.variables, method == Method::GET, graphql)?;
            let cost = cost::check(&routes.cost, &doc, op, &req.variables, graphql.max_query_complexity)
                .map_err(operation::Stop::Refused)?;
            Ok((ok, cost))
        });
        match validated {
            Ok((ok, cost)) => {
                checked = Some(ok);
                let span = tracing::Span::current();
                if !span.is_disabled() {
                    span.record("graphql.complexity", cost);
                    span.record("graphql.document.hash", persisted::hex(&named.hash));
                }
            }
            Err(operation::Stop::MutationOverGet) => return Answer::MutationOverGet,
            Err(operation::Stop::Refused(refusal)) => return Answer::Refused(refusal.into_response()),
        }
        if routes.state.metrics.is_some() || tracing::enabled!(target: "blogql::request", tracing::Level::INFO) {
            label = operation::label(&doc, op);
        }
        validated_before = validated_before && crate::graphql::variables_fit(&doc, op, &req.variables);
        req.set_parsed_query(doc);
    }
    let mutation = checked.as_ref().is_some_and(|c| c.mutation);
    let mut claimed = None;
    if let (Some(key), Viewer::User(me), Some(checked)) = (key, &viewer, &checked)
        && checked.keyed
    {
        match idempotency::claim(&routes.state, me.user, key, &named.hash, &req, checked.mutation_fields).await {
            Ok(claim) => claimed = Some(claim),
            Err(idempotency::Unclaimed::Replay(body)) => return Answer::Replayed { body, operation: label },
            Err(idempotency::Unclaimed::Refused { status, code, message }) => {
                return Answer::KeyRefused { status, code, message };
            }
            Err(idempotency::Unclaimed::Failed(resp)) => return Answer::Refused(resp),
        }
    }
    // A query the store's current state has already answered is served as kept (see `answers`).
    let mut pending = match (&routes.answers, &checked) {
        (Some(cache), Some(_)) if !mutation => Version::of(&routes.state.store)
            .zip(answers::Key::of(named.hash, &req, &viewer))
            .map(|(at, key)| answers::Pending::new(std::sync::Arc::clone(cache), at, key)),
        _ => None,
    };
    if let Some(pending) = &mut pending
        && !answers::fresh_asked(headers)
        && let Some(body) = pending.lookup().await
    {
        return Answer::Cached { body, operation: label };
    }
    let mut ctx = RequestCtx::new(viewer, &routes.state.store, routes.state.metrics.as_ref());
    ctx.client_ip = client;
    let query = to_cache.is_some().then(|| req.query.clone());
    // async-graphql's own validation runs inside `execute`, with the resolvers
    // (only what the variables could break, for a document validated before).
    let mut resp = Box::pin(routes.schema.execute(req.data(ctx), validated_before))
        .instrument(tracing::info_span!("execute"))
        .await;
    if let Some(claimed) = claimed {
        idempotency::settle(&routes.state, claimed, &resp, client).await;
    }
    if let (Some((doc, tokens)), Some(query)) = (to_cache, query)
        && !not_executed(&resp)
    {
        routes.docs.put(named.hash, &query, doc, tokens);
    }
    label_request_errors(&mut resp, parses);
    cap_errors(&mut resp);
    // Kept only if no write moved the store while it ran: its reads saw exactly that state.
    let keep = pending.filter(|p| p.still_valid(&routes.state.store));
    Answer::Ran { resp, operation: label, mutation, keep }
}
