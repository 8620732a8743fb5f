//! Hostile and broken input: every case gets a clear error and the server keeps answering.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, expect_error, str_at};

/// What a case sends: raw body with a content type, or a GraphQL query with variables.
enum Send {
    Raw(&'static str, String),
    Query(String, Value),
}

/// Strings that must never reach a client: they would mean a panic or leaked internals.
const LEAKS: [&str; 11] = [
    "panicked",
    "backtrace",
    "redb",
    "mongodb",
    "bson",
    "src/",
    "thread '",
    "RUST_",
    "untagged",
    "BatchRequest",
    "serde",
];

fn alias_flood(n: usize) -> String {
    let fields: String = (0..n).map(|i| format!("a{i}: posts(first: 100) {{ edges {{ node {{ id }} }} }} ")).collect();
    format!("{{ {fields} }}")
}

fn typename_flood(n: usize) -> String {
    let fields: String = (0..n).map(|i| format!("a{i}: __typename ")).collect();
    format!("{{ {fields} }}")
}

fn deep(levels: usize) -> String {
    let mut q = String::from("id");
    for _ in 0..levels {
        q = format!("posts(first: 1) {{ edges {{ node {{ author {{ {q} }} }} }} }}");
    }
    format!("{{ users(first: 1) {{ edges {{ node {{ {q} }} }} }} }}")
}

/// Each hostile case gets the expected status and code, no reply leaks internals,
/// and the server answers /healthz after every one.
#[tokio::test]
async fn hostile_corpus() {
    let app = TestApp::spawn().await;
    let (token, _) = app.sign_up("Ann").await;
    let post = app.create_post(&token, "target").await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let cases: Vec<(&str, Send, u16, &str)> = vec![
        ("malformed JSON", Send::Raw("application/json", "{\"query\": ".into()), 400, "BAD_REQUEST"),
        ("empty body", Send::Raw("application/json", String::new()), 400, "BAD_REQUEST"),
        ("wrong content type", Send::Raw("text/plain", r#"{"query":"{ viewer { id } }"}"#.into()), 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("query not a string", Send::Raw("application/json", r#"{"query": {"a": 1}}"#.into()), 400, "BAD_REQUEST"),
        ("batch", Send::Raw("application/json", r#"[{"query":"{ viewer { id } }"}]"#.into()), 400, "BAD_REQUEST"),
        ("body over the limit", Send::Raw("application/json", format!(r#"{{"query":"{huge}"}}"#)), 413, "PAYLOAD_TOO_LARGE"),
        ("syntax error", Send::Query("{ users { ".into(), json!({})), 200, "GRAPHQL_PARSE_FAILED"),
        ("unknown field", Send::Query("{ nope }".into(), json!({})), 200, "GRAPHQL_VALIDATION_FAILED"),
        (
            "variable type mismatch",
            Send::Query("query($f: Int) { posts(first: $f) { edges { cursor } } }".into(), json!({ "f": "ten" })),
            200,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "Int out of range",
            Send::Query("query($f: Int) { posts(first: $f) { edges { cursor } } }".into(), json!({ "f": 1u64 << 40 })),
            200,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "fragment cycle",
            Send::Query("{ viewer { ...A } } fragment A on User { ...B } fragment B on User { ...A }".into(), json!({})),
            200,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("deep nesting", Send::Query(deep(10), json!({})), 200, "GRAPHQL_VALIDATION_FAILED"),
        ("alias flood", Send::Query(typename_flood(1001), json!({})), 200, "GRAPHQL_VALIDATION_FAILED"),
        ("token flood", Send::Query(alias_flood(1500), json!({})), 200, "GRAPHQL_PARSE_FAILED"),
        // 130 pages of 100 edges cost 130 × (1 + 100 × 2) = 26,130, over the 25,000 limit.
        ("complexity", Send::Query(alias_flood(130), json!({})), 200, "GRAPHQL_VALIDATION_FAILED"),
        (
            "NUL in a title",
            Send::Query(
                "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }".into(),
                json!({ "i": { "title": "a\u{0}b", "body": "" } }),
            ),
            200,
            "BAD_USER_INPUT",
        ),
        (
            "huge comment",
            Send::Query(
                "mutation($p: ID!, $b: String!) { createComment(input: {postId: $p, body: $b}) { id } }".into(),
                json!({ "p": post, "b": "y".repeat(600_000) }),
            ),
            200,
            "BAD_USER_INPUT",
        ),
        ("bad id", Send::Query("{ post(id: \"not-an-id\") { id } }".into(), json!({})), 200, "BAD_USER_INPUT"),
        ("bad cursor", Send::Query("{ posts(after: \"%%%\") { edges { cursor } } }".into(), json!({})), 200, "BAD_USER_INPUT"),
        ("first too large", Send::Query("{ posts(first: 1000) { edges { cursor } } }".into(), json!({})), 200, "BAD_USER_INPUT"),
        ("first negative", Send::Query("{ posts(first: -5) { edges { cursor } } }".into(), json!({})), 200, "BAD_USER_INPUT"),
        (
            "duplicate sign-up",
            Send::Query(
                "mutation { signUp(input: {name: \"Ann\", email: \"ann@example.com\", password: \"12345678\"}) { token } }".into(),
                json!({}),
            ),
            200,
            "CONFLICT",
        ),
    ];
    for (name, send, status, code) in cases {
        let req = app.client.post(app.url("/graphql"));
        let req = match send {
            Send::Raw(content_type, body) => req.header("content-type", content_type).body(body),
            Send::Query(query, variables) => {
                req.bearer_auth(&token).json(&json!({ "query": query, "variables": variables }))
            }
        };
        let resp = req.send().await.unwrap_or_else(|e| panic!("{name}: transport error {e}"));
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name}: not JSON: {text}"));
        assert_eq!(str_at(&body, "/errors/0/extensions/code"), code, "{name}: {body}");
        // Too-deep documents meet the recursion check (nesting plus fragments) or the depth rule first.
        let why: &[&str] = match name {
            "deep nesting" => &["nested too deep", "recursion depth"],
            "alias flood" => &["more than 1000 fields"],
            "token flood" => &["more than 15000 tokens"],
            "complexity" => &["too complex"],
            _ => &[""],
        };
        let message = str_at(&body, "/errors/0/message");
        assert!(why.iter().any(|w| message.contains(w)), "{name}: {body}");
        for leak in LEAKS {
            assert!(!text.contains(leak), "{name}: reply contains {leak:?}: {text}");
        }
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "server unhealthy after {name}");
    }
    assert_eq!(app.snapshot().await.posts.len(), 1);
    app.assert_consistent().await;
}

/// A normal, well-shaped query stays well inside the limits.
#[tokio::test]
async fn ordinary_queries_fit_the_limits() {
    let app = TestApp::spawn().await;
    let q = "{ posts(first: 50) { edges { node { author { name } comments(first: 5) { edges { node { author { name } } } } likedBy(first: 10) { edges { node { name } } } } } } }";
    let resp = app.graphql(q, json!({})).await;
    assert!(resp.get("errors").is_none(), "{resp}");
}

/// A client that never finishes its headers is disconnected after the read timeout.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    let app = TestApp::spawn_with(|s| s.http.read_timeout_secs = 1).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"POST /graphql HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a stalled connection open for 10 s");
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

/// Log-in attempts beyond the per-email budget are RATE_LIMITED with a retry hint.
#[tokio::test]
async fn log_in_is_rate_limited_per_email() {
    let app = TestApp::spawn_with(|s| s.auth.login_failures_before_backoff = 3).await;
    app.sign_up("Ann").await;
    let q = "mutation($p: String!) { logIn(input: {email: \"ann@example.com\", password: $p}) { token } }";
    for _ in 0..3 {
        expect_error(&app.graphql(q, json!({ "p": "wrong password" })).await, "UNAUTHENTICATED");
    }
    let limited = app.graphql(q, json!({ "p": "correct horse" })).await;
    expect_error(&limited, "RATE_LIMITED");
    assert!(limited.pointer("/errors/0/extensions/retryAfterSeconds").and_then(Value::as_u64).is_some());
    // Another email is not affected.
    let other = app
        .graphql("mutation { logIn(input: {email: \"bob@example.com\", password: \"xxxxxxxx\"}) { token } }", json!({}))
        .await;
    expect_error(&other, "UNAUTHENTICATED");
}

/// Cross-origin calls are refused by default and allowed for configured origins only.
#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
    };
    let app = TestApp::spawn().await;
    let resp = preflight(&app, "https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec!["https://app.example".into()]).await;
    let ok = preflight(&app, "https://app.example").await.unwrap();
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");
    let evil = preflight(&app, "https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
}

/// The allowed request headers default to what Apollo Client sends and are a setting.
#[tokio::test]
async fn cors_headers_are_a_setting() {
    let allowed = |resp: &reqwest::Response| {
        resp.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase()
    };
    let preflight = |app: &TestApp| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,apollographql-client-name")
            .send()
    };
    let app = TestApp::spawn_with(|s| s.http.cors_origins = vec!["https://app.example".into()]).await;
    let resp = preflight(&app).await.unwrap();
    for h in ["content-type", "authorization", "accept", "apollographql-client-name", "apollographql-client-version"] {
        assert!(allowed(&resp).contains(h), "{h} missing from {}", allowed(&resp));
    }
    let app = TestApp::spawn_with(|s| {
        s.http.cors_origins = vec!["https://app.example".into()];
        s.http.cors_headers = vec!["content-type".into(), "x-tenant".into()];
    })
    .await;
    let resp = preflight(&app).await.unwrap();
    assert!(allowed(&resp).contains("x-tenant"));
    assert!(!allowed(&resp).contains("authorization"));
}

/// `query{...F0} fragment F0 on Query{...F1 ...F1} ... fragment Fk on Query{...Missing}`:
/// each level doubles the expanded size.
fn fragment_fan_out(levels: usize) -> String {
    let mut q = String::from("query { ...F0 }");
    for i in 0..levels {
        q.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
    }
    q.push_str(&format!(" fragment F{levels} on Query {{ ...Missing }}"));
    q
}

/// Exponential fragment fan-out (k = 24 and 64) is refused in under 100 ms over
/// POST and GET, and /healthz keeps answering while several such requests run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_fan_out_is_refused_fast() {
    let app = TestApp::spawn().await;
    for levels in [24, 64] {
        let query = fragment_fan_out(levels);
        let started = std::time::Instant::now();
        let resp = app.graphql(&query, json!({})).await;
        let post_took = started.elapsed();
        let message = expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
        assert!(message.contains("more than"), "{message}");
        let started = std::time::Instant::now();
        let get = app.graphql_get(&[("query", query.as_str())]).await;
        let get_took = started.elapsed();
        expect_error(&get, "GRAPHQL_VALIDATION_FAILED");
        assert!(post_took < Duration::from_millis(100), "k={levels}: POST took {post_took:?}");
        assert!(get_took < Duration::from_millis(100), "k={levels}: GET took {get_took:?}");
    }
    // Eight at once, with /healthz asked in the middle.
    let app = std::sync::Arc::new(app);
    let attackers: Vec<_> = (0..8)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move { app.graphql(&fragment_fan_out(64), json!({})).await })
        })
        .collect();
    let started = std::time::Instant::now();
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert!(started.elapsed() < Duration::from_millis(500), "/healthz took {:?}", started.elapsed());
    for attacker in attackers {
        expect_error(&attacker.await.unwrap(), "GRAPHQL_VALIDATION_FAILED");
    }
}

/// Control characters (other than tab and newline) are refused in names, titles and
/// bodies, and invisible formatting characters in names and titles.
#[tokio::test]
async fn control_and_invisible_characters_are_refused() {
    let app = TestApp::spawn().await;
    let (token, _) = app.sign_up("Ann").await;
    let create = "mutation($t: String!, $b: String!) { createPost(input: {title: $t, body: $b}) { id } }";
    for (title, body, field) in [
        ("a\u{1}b".to_owned(), String::new(), "title"),
        ("\u{200b}".repeat(200), String::new(), "title"),
        ("fine".to_owned(), "\u{1}".repeat(50_000), "body"),
    ] {
        let resp = app.graphql_as(&token, create, json!({ "t": title, "b": body })).await;
        expect_error(&resp, "BAD_USER_INPUT");
        assert_eq!(str_at(&resp, "/errors/0/extensions/field"), field);
    }
    let sign_up = "mutation($n: String!) { signUp(input: {name: $n, email: \"z@example.com\", password: \"12345678\"}) { token } }";
    let resp = app.graphql(sign_up, json!({ "n": "\u{1b}[31mAnn" })).await;
    expect_error(&resp, "BAD_USER_INPUT");
    // Tabs and newlines are fine in a body.
    app.ok_as(&token, create, json!({ "t": "poem", "b": "line one\n\tline two" })).await;
}

/// GET accepts the spec's `operationName` to pick one of several operations.
#[tokio::test]
async fn get_honours_operation_name() {
    let app = TestApp::spawn().await;
    let query = "query A { viewer { id } } query B { users(first: 1) { edges { cursor } } }";
    let resp = app.graphql_get(&[("query", query), ("operationName", "B")]).await;
    assert!(resp.get("errors").is_none(), "{resp}");
    assert!(resp.pointer("/data/users/edges").is_some(), "{resp}");
}

/// Small queries cannot buy huge answers: aliasing a 50,000-character body 500 times
/// is over the complexity limit (200 a body), 120 times is over the 8 MiB
/// response cap (RESPONSE_TOO_LARGE, never a truncated answer), and six such
/// requests at once keep the real server under 256 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_queries_cannot_buy_huge_responses() {
    let server = crate::helpers::Binary::start(&[]).await;
    let client = reqwest::Client::new();
    let url = server.url("/graphql");
    let send = |token: Option<String>, query: String, variables: Value| {
        let mut req = client.post(&url).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let signed = send(
        None,
        "mutation { signUp(input: {name: \"A\", email: \"a@example.com\", password: \"12345678\"}) { token } }".into(),
        json!({}),
    )
    .await;
    let token = str_at(&signed, "/data/signUp/token");
    // Quotes are legal and JSON escapes each to two bytes: a 100 KB answer per body.
    let created = send(
        Some(token),
        "mutation($b: String!) { createPost(input: {title: \"t\", body: $b}) { id } }".into(),
        json!({ "b": "\"".repeat(50_000) }),
    )
    .await;
    let post = str_at(&created, "/data/createPost/id");
    let aliases = |n: usize| -> String {
        let fields: String = (0..n).map(|i| format!("a{i}: post(id: $p) {{ body }} ")).collect();
        format!("query($p: ID!) {{ {fields} }}")
    };
    let refused = send(None, aliases(500), json!({ "p": post })).await;
    expect_error(&refused, "GRAPHQL_VALIDATION_FAILED");
    let requests: Vec<_> = (0..6).map(|_| send(None, aliases(120), json!({ "p": post }))).collect();
    for resp in futures::future::join_all(requests).await {
        let message = expect_error(&resp, "RESPONSE_TOO_LARGE");
        assert!(resp.get("data").is_none_or(Value::is_null), "never a partial answer");
        assert!(message.contains("exceed"), "{message}");
    }
    let peak = server.peak_rss_mib();
    println!("six 12 MB answers refused; peak RSS {peak} MiB");
    assert!(peak < 256, "peak RSS {peak} MiB");
}

/// Reads until the server closes the connection; the time it took, or None after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut buf)).await.ok().map(|_| started.elapsed())
}

/// A silent TCP connection, and one that sends only the HTTP/2 preface, are both
/// closed within the read timeout; an idle keep-alive connection within the idle timeout.
#[tokio::test]
async fn idle_connections_are_closed() {
    let app = TestApp::spawn_with(|s| {
        s.http.read_timeout_secs = 1;
        s.http.idle_timeout_secs = 2;
    })
    .await;
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(5)).await;
    assert!(took.is_some_and(|t| t < Duration::from_millis(1900)), "silent connection: {took:?}");

    let mut preface = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let took = closed_within(&mut preface, Duration::from_secs(5)).await;
    assert!(took.is_some_and(|t| t < Duration::from_millis(1900)), "HTTP/2 preface only: {took:?}");

    let mut keep_alive = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    keep_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    // hyper's header timer also runs while HTTP/1.1 waits for the next request,
    // so a keep-alive connection goes at the read timeout, within the idle timeout.
    let took = closed_within(&mut keep_alive, Duration::from_secs(6)).await;
    assert!(took.is_some_and(|t| t < Duration::from_millis(2500)), "keep-alive after one request: {took:?}");
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
}

/// With a cap of two connections, two silent clients hold both slots; a third
/// client is served once the read timeout frees one, and not before.
#[tokio::test]
async fn connections_are_capped() {
    let app = TestApp::spawn_with(|s| {
        s.http.read_timeout_secs = 2;
        s.http.max_connections = 2;
    })
    .await;
    let _a = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new().get(app.url("/healthz")).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(waited >= Duration::from_millis(1500), "served while both slots were held: {waited:?}");
}
