//! OpenTelemetry export: a small OTLP/HTTP receiver inside the test decodes
//! what the real binary sends (with its own protobuf definitions, not the
//! server's encoder) and checks the span trees, the caller's trace, the
//! sampler, and that spans do not grow with list length.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::Binary;

#[derive(Clone, PartialEq, prost::Message)]
struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Span {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    trace_state: String,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    name: String,
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(oneof = "Any", tags = "1, 2, 3, 4")]
    value: Option<Any>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Any {
    #[prost(string, tag = "1")]
    Str(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Span {
    fn attr(&self, key: &str) -> Option<&Any> {
        self.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
    }
    fn str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(Any::Str(s)) => Some(s),
            _ => None,
        }
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.attr(key) {
            Some(Any::Int(i)) => Some(*i),
            _ => None,
        }
    }
}

/// An OTLP/HTTP receiver on a free port: every span it was sent, and the service names.
struct Receiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let services = Arc::new(Mutex::new(Vec::new()));
        let (into, names) = (Arc::clone(&spans), Arc::clone(&services));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (into, names) = (Arc::clone(&into), Arc::clone(&names));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, length) = loop {
                        let n = socket.read(&mut chunk).await.expect("read");
                        assert!(n > 0, "the exporter closed before sending a request");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            assert!(head.starts_with("post /v1/traces "), "{head}");
                            assert!(head.contains("content-type: application/x-protobuf"), "{head}");
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .expect("content-length");
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = socket.read(&mut chunk).await.expect("read body");
                        assert!(n > 0, "short body");
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let request =
                        ExportTraceServiceRequest::decode(&buf[head_end..head_end + length]).expect("protobuf");
                    for rs in request.resource_spans {
                        let service =
                            rs.resource.iter().flat_map(|r| &r.attributes).find(|kv| kv.key == "service.name");
                        if let Some(Any::Str(name)) =
                            service.and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.clone())
                        {
                            names.lock().expect("names").push(name);
                        }
                        for ss in rs.scope_spans {
                            into.lock().expect("spans").extend(ss.spans);
                        }
                    }
                    let _ =
                        socket.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                });
            }
        });
        Receiver { port, spans, services }
    }

    /// Every span of `trace` (hex), once its request span has arrived (it ends last).
    async fn trace(&self, trace: &str) -> Vec<Span> {
        let started = std::time::Instant::now();
        loop {
            let spans: Vec<Span> =
                self.spans.lock().expect("spans").iter().filter(|s| hex(&s.trace_id) == trace).cloned().collect();
            if spans.iter().any(|s| s.name == "request") {
                return spans;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no request span for trace {trace}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends a GraphQL request; returns the body and the `X-Request-Id` it answered with.
async fn send(
    server: &Binary,
    token: Option<&str>,
    traceparent: &str,
    query: &str,
    variables: Value,
) -> (Value, String) {
    let mut req = reqwest::Client::new()
        .post(server.url("/graphql"))
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=1")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    let id = resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (resp.json().await.expect("json"), id)
}

fn parent(trace: &str, span: u8, sampled: bool) -> String {
    format!("00-{trace}-{}-{}", format!("{span:02x}").repeat(8), if sampled { "01" } else { "00" })
}

async fn serving(receiver: &Receiver) -> Binary {
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    Binary::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_SERVICE_NAME", "blogql-test")]).await
}

/// Names and parents: the request span continues the caller's span and every other span of the trace hangs under a span of the trace.
fn check_tree(spans: &[Span], caller_span: &str) -> BTreeMap<String, usize> {
    let ids: Vec<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    let mut names = BTreeMap::new();
    for span in spans {
        *names.entry(span.name.clone()).or_insert(0) += 1;
        if span.name == "request" {
            assert_eq!(hex(&span.parent_span_id), caller_span, "the request continues the caller's span");
            assert_eq!(span.kind, 2, "a request is a server span");
        } else {
            assert!(ids.contains(&hex(&span.parent_span_id)), "{} hangs under no span of the trace", span.name);
            assert_eq!(span.kind, 1, "{} is internal", span.name);
        }
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    }
    names
}

/// A nested query's trace: the request (continuing the caller's traceparent, its span id the X-Request-Id) with operation, outcome, hash and cost; parse, validate and execute under it; one load span per batch under execute; an unsampled caller's trace is not exported.
#[tokio::test]
async fn a_nested_query_exports_one_span_tree() {
    let receiver = Receiver::start().await;
    let server = serving(&receiver).await;
    let seed = parent("9af7651916cd43dd8448eb211c80319c", 9, false);
    let sign_up =
        "mutation { signUp(input: {name: \"Bo\", email: \"bo@example.com\", password: \"correct horse\"}) { token } }";
    let (body, _) = send(&server, None, &seed, sign_up, json!({})).await;
    let token = body["data"]["signUp"]["token"].as_str().expect("token").to_owned();
    let create = "mutation { createPost(input: {title: \"t\", body: \"b\"}) { id } }";
    let (post, _) = send(&server, Some(&token), &seed, create, json!({})).await;
    let comment = "mutation($p: ID!) { createComment(input: {postId: $p, body: \"c\"}) { id } }";
    send(&server, Some(&token), &seed, comment, json!({ "p": post["data"]["createPost"]["id"] })).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let query = "query Nested { posts(first: 5) { edges { node { title author { name } comments(first: 3) { edges { node { body author { name } } } } } } } }";
    let (body, request_id) = send(&server, None, &parent(trace, 0xab, true), query, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let spans = receiver.trace(trace).await;
    let names = check_tree(&spans, &"ab".repeat(8));
    assert_eq!(names.get("request"), Some(&1));
    for step in ["parse", "validate", "execute"] {
        assert_eq!(names.get(step), Some(&1), "{step} in {names:?}");
    }
    assert!(names.get("load").is_some_and(|n| *n >= 1), "{names:?}");
    let request = spans.iter().find(|s| s.name == "request").expect("request span");
    assert_eq!(hex(&request.span_id), request_id, "the request id is the request span's id");
    assert_eq!(request.trace_state, "vendor=1", "the caller's tracestate goes on");
    assert_eq!(request.str("graphql.operation.name"), Some("Nested"));
    assert_eq!(request.str("graphql.operation.type"), Some("query"));
    assert_eq!(request.str("outcome"), Some("ok"));
    assert_eq!(request.int("http.response.status_code"), Some(200));
    assert!(request.int("graphql.complexity").is_some_and(|c| c > 5), "{:?}", request.attributes);
    assert!(request.str("graphql.document.hash").is_some_and(|h| h.len() == 64));
    let execute = spans.iter().find(|s| s.name == "execute").expect("execute span");
    for load in spans.iter().filter(|s| s.name == "load") {
        assert_eq!(load.parent_span_id, execute.span_id, "a load runs under execute");
        assert!(load.int("keys").is_some_and(|k| k >= 1));
    }
    assert!(receiver.services.lock().expect("names").iter().all(|n| n == "blogql-test"));

    let unsampled = "1af7651916cd43dd8448eb211c80319c";
    send(&server, None, &parent(unsampled, 0xcd, false), query, json!({})).await;
    // A later sampled request's spans arrive after any the unsampled one could have sent.
    let later = "2af7651916cd43dd8448eb211c80319c";
    send(&server, None, &parent(later, 0xef, true), "{ __typename }", json!({})).await;
    receiver.trace(later).await;
    let leaked = receiver.spans.lock().expect("spans").iter().filter(|s| hex(&s.trace_id) == unsampled).count();
    assert_eq!(leaked, 0, "the caller did not sample that trace");
}

/// A deleteUser's trace holds its transaction (command, attempts, committed) under the request; a query over 50 posts yields the same spans as over 5.
#[tokio::test]
async fn transactions_are_spans_and_lists_do_not_add_spans() {
    let receiver = Receiver::start().await;
    let server = serving(&receiver).await;
    let sign_up = "mutation { signUp(input: {name: \"Ann\", email: \"ann@example.com\", password: \"correct horse\"}) { token user { id } } }";
    let (body, _) = send(&server, None, &parent("3af7651916cd43dd8448eb211c80319c", 1, true), sign_up, json!({})).await;
    let token = body["data"]["signUp"]["token"].as_str().expect("token").to_owned();
    let id = body["data"]["signUp"]["user"]["id"].as_str().expect("id").to_owned();
    for i in 0..50 {
        let create = format!("mutation {{ createPost(input: {{title: \"t{i}\", body: \"b\"}}) {{ id }} }}");
        let (done, _) =
            send(&server, Some(&token), &parent("4af7651916cd43dd8448eb211c80319c", 2, false), &create, json!({}))
                .await;
        assert!(done.get("errors").is_none(), "{done}");
    }
    let mut shapes = Vec::new();
    for (n, trace) in [(5, "5af7651916cd43dd8448eb211c80319c"), (50, "6af7651916cd43dd8448eb211c80319c")] {
        let query = format!(
            "{{ posts(first: {n}) {{ edges {{ node {{ title author {{ name }} likedBy(first: 2) {{ totalCount }} }} }} }} }}"
        );
        let (body, _) = send(&server, None, &parent(trace, 3, true), &query, json!({})).await;
        assert_eq!(body["data"]["posts"]["edges"].as_array().map(Vec::len), Some(n));
        shapes.push(check_tree(&receiver.trace(trace).await, &"03".repeat(8)));
    }
    assert_eq!(shapes[0], shapes[1], "spans per request do not grow with the list");

    let trace = "7af7651916cd43dd8448eb211c80319c";
    let delete = "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }";
    let (body, _) = send(&server, Some(&token), &parent(trace, 4, true), delete, json!({ "id": id })).await;
    assert_eq!(body["data"]["deleteUser"]["deletedUserId"], id.as_str(), "{body}");
    let spans = receiver.trace(trace).await;
    check_tree(&spans, &"04".repeat(8));
    let request = spans.iter().find(|s| s.name == "request").expect("request");
    assert_eq!(request.str("graphql.operation.type"), Some("mutation"));
    let transaction =
        spans.iter().find(|s| s.name == "transaction" && s.str("command") == Some("deleteUser")).unwrap_or_else(|| {
            panic!("no deleteUser transaction in {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
        });
    assert_eq!(transaction.int("attempts"), Some(1));
    assert_eq!(transaction.str("outcome"), Some("committed"));
    let execute = spans.iter().find(|s| s.name == "execute").expect("execute");
    assert_eq!(transaction.parent_span_id, execute.span_id, "the transaction runs under execute");
}

/// A staged deletion's reaper steps are traces of their own: a `reaper step` span over its `reapDeletion` transaction.
#[tokio::test]
async fn reaper_steps_are_traces_of_their_own() {
    let receiver = Receiver::start().await;
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let server =
        Binary::start(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("BLOGQL_CASCADE_BUDGET_DOCS", "3")]).await;
    let none = parent("8af7651916cd43dd8448eb211c80319c", 5, false);
    let sign_up = "mutation { signUp(input: {name: \"Cy\", email: \"cy@example.com\", password: \"correct horse\"}) { token user { id } } }";
    let (body, _) = send(&server, None, &none, sign_up, json!({})).await;
    let token = body["data"]["signUp"]["token"].as_str().expect("token").to_owned();
    let id = body["data"]["signUp"]["user"]["id"].as_str().expect("id").to_owned();
    for i in 0..8 {
        let create = format!("mutation {{ createPost(input: {{title: \"t{i}\", body: \"b\"}}) {{ id }} }}");
        send(&server, Some(&token), &none, &create, json!({})).await;
    }
    let delete = "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId staged } }";
    let (body, _) = send(&server, Some(&token), &none, delete, json!({ "id": id })).await;
    assert_eq!(body["data"]["deleteUser"]["staged"], true, "{body}");
    let started = std::time::Instant::now();
    loop {
        let spans = receiver.spans.lock().expect("spans").clone();
        let steps: Vec<&Span> = spans.iter().filter(|s| s.name == "reaper step").collect();
        let done = steps.iter().any(|step| {
            spans.iter().any(|t| {
                t.name == "transaction" && t.parent_span_id == step.span_id && t.str("command") == Some("reapDeletion")
            })
        });
        if done {
            assert!(steps.iter().all(|s| s.parent_span_id.is_empty()), "a reaper step starts its own trace");
            assert!(steps.iter().all(|s| s.str("job").is_some()));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no reaper step was exported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
