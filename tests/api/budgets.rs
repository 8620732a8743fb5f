//! Security round 3: requests that used to crash or exhaust the server with
//! one cheap request are refused within their budgets, and the server keeps
//! answering. Attacks that could kill the process run against the real binary.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Binary, TestApp, expect_error};

fn nest(open: &str, close: &str, n: usize) -> String {
    format!("{}{}", open.repeat(n), close.repeat(n))
}

/// Every form of unbounded value nesting from the review (lists, input
/// objects, a variable default, a directive argument, a document over the
/// cache's 64 KiB) is refused as `GRAPHQL_PARSE_FAILED` over POST and GET,
/// and the real binary is still up and answering `/healthz` afterwards.
#[tokio::test]
async fn deep_values_do_not_overflow_the_stack() {
    let server = Binary::start(&[]).await;
    let client = reqwest::Client::new();
    let lists = nest("[", "]", 1600);
    let objects = nest("{a:", "}", 2048);
    let padding = "#".repeat(70 * 1024);
    let docs = [
        format!("{{ __typename(a: {lists}) }}"),
        format!("{{ __typename(a: {objects}) }}"),
        format!("query($v: [Int] = {lists}) {{ __typename }}"),
        format!("{{ __typename @include(if: {lists}) }}"),
        format!("{padding}\n{{ __typename(a: {lists}) }}"),
    ];
    for doc in &docs {
        let post: Value = client
            .post(server.url("/graphql"))
            .json(&json!({ "query": doc }))
            .send()
            .await
            .expect("the server answers the POST")
            .json()
            .await
            .expect("json");
        let message = expect_error(&post, "GRAPHQL_PARSE_FAILED");
        assert!(message.contains("levels deep"), "{message}");
        let get = client.get(server.url("/graphql")).query(&[("query", doc.as_str())]).send().await;
        // Over GET a document this long may pass the URI limit: then hyper refuses it, which is fine too.
        if let Ok(get) = get
            && get.status() == 200
        {
            let body: Value = get.json().await.expect("json");
            expect_error(&body, "GRAPHQL_PARSE_FAILED");
        }
        let health = client.get(server.url("/healthz")).send().await.expect("healthz after the attack");
        assert_eq!(health.status(), 200);
    }
    // GET with a document short enough for any URI limit.
    let short = format!("{{ __typename(a: {}) }}", nest("[", "]", 600));
    let get: Value = client
        .get(server.url("/graphql"))
        .query(&[("query", short.as_str())])
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    expect_error(&get, "GRAPHQL_PARSE_FAILED");
    assert_eq!(client.get(server.url("/healthz")).send().await.expect("healthz").status(), 200);
}

/// A megabyte of `[]` is refused by the token bound in milliseconds, not
/// parsed for a second on a worker, and a normal query still runs.
#[tokio::test]
async fn token_floods_are_refused_before_parsing() {
    let app = TestApp::spawn().await;
    let flood = format!("{{ __typename(a: [{}]) }}", "[]".repeat(400_000));
    let started = Instant::now();
    let resp = app.graphql(&flood, json!({})).await;
    let message = expect_error(&resp, "GRAPHQL_PARSE_FAILED");
    assert!(message.contains("tokens"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    let ok = app.graphql("{ __typename }", json!({})).await;
    assert_eq!(ok["data"]["__typename"], "Query");
}

/// A cheap deletion payload cannot buy a huge answer: 300 aliases of `body`
/// under `affectedPosts` (the review's 256-byte request) are refused by
/// complexity before anything runs (nothing is deleted), while the ordinary
/// cache-refresh selection and a small `first` with bodies are accepted.
#[tokio::test]
async fn payload_lists_are_costed_by_their_bound() {
    let app = TestApp::spawn().await;
    let (token, id) = app.sign_up("Max").await;
    let delete = |selection: String| {
        let query = format!("mutation($id: ID!) {{ deleteUser(id: $id) {{ {selection} }} }}");
        let (app, token, id) = (&app, &token, &id);
        async move { app.graphql_as(token, &query, json!({ "id": id })).await }
    };
    let bodies: String = (0..300).map(|i| format!("b{i}: body ")).collect();
    let message = expect_error(&delete(format!("affectedPosts {{ {bodies} }}")).await, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("too complex"), "{message}");
    for list in ["deletedPostIds", "deletedCommentIds"] {
        let many: String = (0..30).map(|i| format!("l{i}: {list} ")).collect();
        expect_error(&delete(many).await, "GRAPHQL_VALIDATION_FAILED");
    }
    assert_eq!(app.snapshot().await.users.len(), 1, "the refused delete deleted nothing");
    expect_error(&delete("affectedPosts(first: 1001) { id }".into()).await, "BAD_USER_INPUT");
    assert_eq!(app.snapshot().await.users.len(), 1, "an out-of-range first is refused before anything is written");
    let selection =
        "deletedUserId affectedUserCount affectedPosts(first: 50) { id body } affectedUsers { id followerCount }";
    let ok = delete(selection.into()).await;
    assert_eq!(ok["data"]["deleteUser"]["deletedUserId"], id.as_str(), "{ok}");
    assert_eq!(app.snapshot().await.users.len(), 0);
}

/// The server's resident memory now (VmRSS), in MiB.
fn rss_mib(server: &Binary) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        / 1024
}

/// `/metrics` labels only what documents name, in bounded length: 256
/// requests with distinct 64 KB `operationName`s (the review's attack, which
/// left 396 MB scrapes) and 16 documents whose operations have 64 KB names
/// leave `/metrics` under 1 MB and RSS grown by under 32 MiB, and count as
/// `unknown` and `__other__`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_stay_bounded() {
    let server = Binary::start(&[]).await;
    let client = reqwest::Client::new();
    client.post(server.url("/graphql")).json(&json!({ "query": "{ __typename }" })).send().await.expect("warm up");
    let before = rss_mib(&server);
    for i in 0..256 {
        let name = format!("N{i}{}", "x".repeat(64 * 1024));
        let body = json!({ "query": "{ __typename }", "operationName": name });
        client.post(server.url("/graphql")).json(&body).send().await.expect("request");
    }
    for i in 0..16 {
        let name = format!("D{i}{}", "y".repeat(64 * 1024));
        let body = json!({ "query": format!("query {name} {{ __typename }}") });
        client.post(server.url("/graphql")).json(&body).send().await.expect("request");
    }
    let metrics = client.get(server.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let grown = rss_mib(&server).saturating_sub(before);
    println!("/metrics is {} bytes; RSS grew {grown} MiB", metrics.len());
    assert!(metrics.len() < 1024 * 1024, "/metrics is {} bytes", metrics.len());
    assert!(!metrics.contains("xxxxxxxx") && !metrics.contains("yyyyyyyy"));
    assert!(metrics.contains("operation=\"unknown\""), "{metrics}");
    assert!(metrics.contains("operation=\"__other__\""), "{metrics}");
    assert!(grown < 32, "RSS grew {grown} MiB");
}

/// A thousand distinct 60 KB documents never take the real server's RSS
/// over 400 MiB and are all answered well within 75 s: floods of `[]` are
/// refused by the token bound before parsing, and valid ones are cached
/// within the cache's byte budget, not by count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_large_documents_stay_within_memory() {
    let server = Binary::start(&[]).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..1000 {
        let flood = format!("{{ __typename(a: [{}]) }} # {i}", "[],".repeat(20 * 1024));
        let resp: Value = client
            .post(server.url("/graphql"))
            .json(&json!({ "query": flood }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        expect_error(&resp, "GRAPHQL_PARSE_FAILED");
        let valid = format!("{{ __typename }} # {i} {}", "z".repeat(60 * 1024));
        let resp: Value = client
            .post(server.url("/graphql"))
            .json(&json!({ "query": valid }))
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        assert_eq!(resp["data"]["__typename"], "Query");
    }
    let took = started.elapsed();
    let peak = server.peak_rss_mib();
    println!("2,000 distinct 60 KB documents in {took:?}, peak RSS {peak} MiB");
    assert!(peak < 400, "peak RSS {peak} MiB");
    assert!(took < Duration::from_secs(75), "{took:?}");
}

/// A document that fails validation is not cached: after registering it
/// through APQ, its hash alone is unknown (so it cannot take a valid
/// document's place), while a valid one is served by hash.
#[tokio::test]
async fn only_validated_documents_are_cached() {
    let app = TestApp::spawn().await;
    let hash = |q: &str| -> String {
        use sha2::Digest;
        sha2::Sha256::digest(q.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    let send = |query: Option<&str>, sha: String| {
        let mut body = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": sha } } });
        if let Some(query) = query {
            body["query"] = json!(query);
        }
        let req = app.client.post(app.url("/graphql")).json(&body);
        async move { req.send().await.expect("post").json::<Value>().await.expect("json") }
    };
    let invalid = "{ noSuchField }";
    expect_error(&send(Some(invalid), hash(invalid)).await, "GRAPHQL_VALIDATION_FAILED");
    expect_error(&send(None, hash(invalid)).await, "PERSISTED_QUERY_NOT_FOUND");
    let valid = "{ __typename }";
    assert_eq!(send(Some(valid), hash(valid)).await["data"]["__typename"], "Query");
    assert_eq!(send(None, hash(valid)).await["data"]["__typename"], "Query");
}

/// Sends `request` on a socket from `local` with a tiny receive buffer and never reads from it.
async fn stuck_reader(server: std::net::SocketAddr, request: String) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let mut stream = socket.connect(server).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    stream
}

/// An HTTP/1.1 POST of `query` as raw text.
fn raw_post(query: &str, variables: Value) -> String {
    let body = json!({ "query": query, "variables": variables }).to_string();
    format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers waiting for a reader that never reads hold their bytes against
/// the process's answer budget: with an 8 MiB budget, one stuck 7.5 MB
/// answer makes the next big one `503 SERVICE_UNAVAILABLE` with
/// `Retry-After` (small answers still go through, and a mutation's answer is
/// cut down to its ids rather than refused), and once the send
/// deadline closes the stuck connection the budget is whole again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_for_slow_readers_stay_within_the_budget() {
    let app = TestApp::spawn_with(|s| {
        s.http.max_response_bytes_in_flight = 8 * 1024 * 1024;
        s.http.send_timeout_secs = 2;
    })
    .await;
    let (token, _) = app.sign_up("Ann").await;
    let created = app
        .ok_as(
            &token,
            "mutation($b: String!) { createPost(input: {title: \"t\", body: $b}) { id } }",
            json!({ "b": "\"".repeat(50_000) }),
        )
        .await;
    let post = created["createPost"]["id"].as_str().expect("post id").to_owned();
    let aliases: String = (0..75).map(|i| format!("a{i}: post(id: $p) {{ body }} ")).collect();
    let big = format!("query($p: ID!) {{ {aliases} }}");
    let mut stuck = stuck_reader(app.addr, raw_post(&big, json!({ "p": post }))).await;
    // Its answer has started (so it was encoded and holds its share); read no more than the status.
    let mut status = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut stuck, &mut status).await.expect("the stuck answer starts");
    assert_eq!(&status, b"HTTP/1.1 200");
    let refused = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": big, "variables": { "p": post } }))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = refused.json().await.expect("json");
    expect_error(&body, "SERVICE_UNAVAILABLE");
    // A mutation has committed by then: its 1 MB answer is cut down to its ids, not refused.
    let creates: String =
        (0..10).map(|i| format!("c{i}: createPost(input: {{ title: \"t\", body: $b }}) {{ id body }} ")).collect();
    let written = app
        .graphql_as(&token, &format!("mutation($b: String!) {{ {creates} }}"), json!({ "b": "\"".repeat(50_000) }))
        .await;
    assert_eq!(written["errors"][0]["extensions"]["committed"], json!(true), "{written}");
    assert!((0..10).all(|i| written["data"][format!("c{i}")]["id"].is_string()), "{written}");
    let small = app.graphql("{ __typename }", json!({})).await;
    assert_eq!(small["data"]["__typename"], "Query", "small answers still fit");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let served = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": big, "variables": { "p": post } }))
        .send()
        .await
        .expect("post");
    assert_eq!(served.status(), 200, "the send deadline closed the stuck connection and freed its bytes");
    assert!(served.bytes().await.expect("body").len() > 7_000_000);
}

/// One address cannot take every connection slot: past
/// `--max-connections-per-ip` its new connections are closed at once, while
/// a client from another address (127.0.0.2) is served; and a body that
/// trickles in (a megabyte announced, a byte every 300 ms) is cut with 408
/// after the first second instead of holding its slot until the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_hold_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|s| {
        s.http.max_connections = 16;
        s.http.max_connections_per_ip = 8;
    })
    .await;
    let trickle =
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{";
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
        stream.write_all(trickle.as_bytes()).await.expect("headers");
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ninth = tokio::net::TcpStream::connect(app.addr).await.expect("the kernel accepts");
    let _ = ninth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), ninth.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the ninth connection from one address is closed unanswered: {buf:?}"
    );
    let other =
        reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().expect("client");
    let started = Instant::now();
    let health = other.get(app.url("/healthz")).send().await.expect("another address is served");
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // The trickling bodies are cut by the minimum rate.
    let mut stream = held.pop().expect("a held connection");
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        let _ = stream.write_all(b" ").await;
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&answer).contains("REQUEST_TIMEOUT") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "cut after {:?}", started.elapsed());
}

/// A full introspection query of the shape GraphiQL and codegen send.
const FULL_INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } \
    subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } } \
    fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description \
    args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } \
    interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } \
    possibleTypes { ...TypeRef } } \
    fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue } \
    fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name \
    ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

/// Introspection is costed by what it can answer: the full introspection
/// query that GraphiQL and codegen send runs, while 66 aliases of a deep
/// `__schema` walk (the review's 10 KB request, 420 ms of CPU) are refused
/// before they run.
#[tokio::test]
async fn introspection_is_costed_by_what_it_answers() {
    let app = TestApp::spawn().await;
    let full = app.graphql(FULL_INTROSPECTION, json!({})).await;
    assert!(full.get("errors").is_none(), "{full}");
    assert!(full["data"]["__schema"]["types"].as_array().is_some_and(|t| t.len() > 20));
    let walk = "types { fields { type { fields { type { fields { type { fields { name } } } } } } } }";
    let aliases: String = (0..66).map(|i| format!("s{i}: __schema {{ {walk} }} ")).collect();
    let started = Instant::now();
    let resp = app.graphql(&format!("{{ {aliases} }}"), json!({})).await;
    let message = expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("introspection"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
}

/// Bodies are costed by the bytes they may answer (a character is up to 4
/// bytes): a page of 100 posts with bodies passes, 125 aliased bodies of one
/// post do not.
#[tokio::test]
async fn bodies_are_costed_by_bytes() {
    let app = TestApp::spawn().await;
    let page =
        app.graphql("{ posts(first: 100) { edges { node { id title body author { name } } } } }", json!({})).await;
    assert!(page.get("errors").is_none(), "{page}");
    let bodies: String = (0..125).map(|i| format!("b{i}: body ")).collect();
    let resp = app.graphql(&format!("{{ post(id: \"{}\") {{ {bodies} }} }}", "0".repeat(24)), json!({})).await;
    let message = expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("too complex"), "{message}");
}

/// The small refusals: at most 100 errors per answer (500 unknown fields
/// answer 100, the last counting the rest); `__typename` takes no argument
/// and no directive but `@skip`/`@include`, which validation let through.
#[tokio::test]
async fn error_lists_and_typename_are_bounded() {
    let app = TestApp::spawn().await;
    let unknown: String = (0..500).map(|i| format!("f{i} ")).collect();
    let resp = app.graphql(&format!("{{ {unknown} }}"), json!({})).await;
    let errors = resp["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 100);
    assert!(errors[99]["message"].as_str().is_some_and(|m| m.contains("401 more errors")), "{}", errors[99]);
    assert_eq!(errors[99]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    for bad in ["{ __typename(a: 1) }", "{ __typename @deprecated }", "{ posts { __typename @skip(if: false, x: 1) } }"]
    {
        expect_error(&app.graphql(bad, json!({})).await, "GRAPHQL_VALIDATION_FAILED");
    }
    let ok = app.graphql("{ __typename @include(if: true) }", json!({})).await;
    assert_eq!(ok["data"]["__typename"], "Query");
}

/// Writes are budgeted: a request runs at most 20 mutation fields (21
/// aliased `createPost`s are refused and write nothing), and a user past
/// their writes per minute gets `RATE_LIMITED` while their deletes still work.
#[tokio::test]
async fn writes_are_budgeted() {
    let app = TestApp::spawn_with(|s| s.auth.writes_per_user_per_minute = 3).await;
    let (token, _) = app.sign_up("Ann").await;
    let posts: String =
        (0..21).map(|i| format!("p{i}: createPost(input: {{title: \"t\", body: \"b\"}}) {{ id }} ")).collect();
    let resp = app.graphql_as(&token, &format!("mutation {{ {posts} }}"), json!({})).await;
    let message = expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("at most 20 mutation fields"), "{message}");
    assert_eq!(app.snapshot().await.posts.len(), 0);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.create_post(&token, "t").await);
    }
    let over =
        app.graphql_as(&token, "mutation { createPost(input: {title: \"t\", body: \"b\"}) { id } }", json!({})).await;
    expect_error(&over, "RATE_LIMITED");
    let deleted = app
        .graphql_as(&token, "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": ids[0] }))
        .await;
    assert_eq!(deleted["data"]["deletePost"]["deletedPostId"], ids[0].as_str(), "{deleted}");
}

/// Names and titles accept real users' text with joiners (emoji ZWJ
/// sequences, Persian's ZWNJ) and refuse bidirectional overrides.
#[tokio::test]
async fn names_accept_joiners_and_refuse_overrides() {
    let app = TestApp::spawn().await;
    let sign_up = "mutation($n: String!, $e: String!) { signUp(input: {name: $n, email: $e, password: \"correct horse\"}) { user { name } } }";
    for (i, name) in
        ["Zoë 👩\u{200d}💻", "🏳\u{fe0f}\u{200d}🌈", "👨\u{200d}👩\u{200d}👧", "می\u{200c}خواهم"].iter().enumerate()
    {
        let resp = app.graphql(sign_up, json!({ "n": name, "e": format!("u{i}@example.com") })).await;
        assert_eq!(resp["data"]["signUp"]["user"]["name"], *name, "{resp}");
    }
    for (i, name) in ["evil\u{202e}txt.exe", "a\u{2066}b", "\u{200d}lead"].iter().enumerate() {
        let resp = app.graphql(sign_up, json!({ "n": name, "e": format!("bad{i}@example.com") })).await;
        expect_error(&resp, "BAD_USER_INPUT");
    }
}

/// A request runs at most one deletion preview (each reads an account's whole
/// fan-out): 400 aliased previews are refused before any runs, one runs.
#[tokio::test]
async fn one_preview_per_request() {
    let app = TestApp::spawn().await;
    let (token, id) = app.sign_up("Ann").await;
    let previews: String = (0..400).map(|i| format!("p{i}: deleteUserPreview(id: $id) {{ postCount }} ")).collect();
    let resp = app.graphql_as(&token, &format!("query($id: ID!) {{ {previews} }}"), json!({ "id": id })).await;
    let message = expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("one deletion preview"), "{message}");
    let one = app
        .graphql_as(&token, "query($id: ID!) { deleteUserPreview(id: $id) { postCount } }", json!({ "id": id }))
        .await;
    assert_eq!(one["data"]["deleteUserPreview"]["postCount"], 0, "{one}");
}

/// M4: a mutation whose answer passes `--max-response-bytes` has committed,
/// so its answer is cut down, never dropped: every alias keeps the id it
/// wrote (and no body), one RESPONSE_TOO_LARGE error says `committed: true`,
/// and the ids are exactly the posts now stored. A query over the limit is
/// still refused whole.
#[tokio::test]
async fn a_committed_mutation_keeps_its_answer() {
    let app = TestApp::spawn_with(|s| s.http.max_response_bytes = 256 * 1024).await;
    let (token, _) = app.sign_up("Mia").await;
    let fields: String = (0..10)
        .map(|i| {
            format!("p{i}: createPost(input: {{ title: \"t{i}\", body: $b }}) {{ id body author {{ id name }} }} ")
        })
        .collect();
    let query = format!("mutation($b: String!) {{ {fields} }}");
    let resp = app.graphql_as(&token, &query, json!({ "b": "x".repeat(40_000) })).await;
    let message = expect_error(&resp, "RESPONSE_TOO_LARGE");
    assert!(message.contains("committed"), "{message}");
    assert_eq!(resp["errors"][0]["extensions"]["committed"], json!(true), "{resp}");
    let mut answered: Vec<String> = (0..10)
        .map(|i| {
            let post = &resp["data"][format!("p{i}")];
            assert!(post.get("body").is_none() && post["author"].get("name").is_none(), "texts are cut: {post}");
            post["id"].as_str().unwrap_or_else(|| panic!("p{i} keeps its id: {resp}")).to_owned()
        })
        .collect();
    let mut stored: Vec<String> = app.snapshot().await.posts.iter().map(|p| p.id.to_hex()).collect();
    answered.sort();
    stored.sort();
    assert_eq!(answered, stored, "the answer names exactly the posts written");

    let reads: String = (0..10).map(|i| format!("r{i}: post(id: \"{}\") {{ body }} ", stored[i])).collect();
    let read = app.graphql(&format!("{{ {reads} }}"), json!({})).await;
    expect_error(&read, "RESPONSE_TOO_LARGE");
    assert!(read.get("data").is_none_or(Value::is_null), "a query over the limit is refused whole: {read}");
}

/// GET /healthz from 127.0.0.2 within `limit`: whether it answered 200 in time.
async fn healthz_from_elsewhere(port: u16, limit: Duration) -> bool {
    let Ok(client) = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build() else {
        return false;
    };
    let started = Instant::now();
    let asked = client.get(format!("http://127.0.0.1:{port}/healthz")).timeout(limit * 10).send().await;
    eprintln!("healthz: {:?} in {:?}", asked.as_ref().map(|r| r.status()), started.elapsed());
    matches!(asked, Ok(resp) if resp.status().is_success()) && started.elapsed() < limit
}

/// [`healthz_from_elsewhere`], given a second try: CI runs this beside the
/// whole tier-2 suite on two cores, and one check of one clean-clone run
/// missed 1 s there (it passed in the runs before and after). A server that
/// piles up answers misses both tries, so the check still fails then.
async fn healthz_answers_from_elsewhere(port: u16, limit: Duration) -> bool {
    healthz_from_elsewhere(port, limit).await || healthz_from_elsewhere(port, limit).await
}

/// C2 on the real binary: one h2c connection with `SETTINGS_INITIAL_WINDOW_SIZE=0`
/// asking 200 times for a 7.6 MB answer, then 100 HTTP/1 sockets that send the
/// same request and never read. Only 32 streams are let in at once, answers
/// past the 128 MiB budget are refused, so RSS stays under 512 MiB (2.9 GB
/// and 4.2 GB before), and `/healthz` from another address answers within 1 s throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_h2_and_h1_readers_cannot_pile_up_answers() {
    use tokio::io::AsyncWriteExt;
    let server = Binary::start(&[]).await;
    let client = reqwest::Client::new();
    let signed: Value = client
        .post(server.url("/graphql"))
        .json(&json!({ "query": "mutation { signUp(input: {name: \"H\", email: \"h@example.com\", password: \"12345678\"}) { token } }" }))
        .send()
        .await
        .expect("sign up")
        .json()
        .await
        .expect("json");
    let token = signed["data"]["signUp"]["token"].as_str().expect("token").to_owned();
    let created: Value = client
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({
            "query": "mutation($b: String!) { createPost(input: {title: \"t\", body: $b}) { id } }",
            "variables": { "b": "😀".repeat(50_000) },
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let post = created["data"]["createPost"]["id"].as_str().expect("post id").to_owned();
    let aliases: String = (0..38).map(|i| format!("a{i}: post(id: \"{post}\") {{ body }} ")).collect();
    let query = format!("{{ {aliases} }}");
    let url = reqwest::Url::parse_with_params(&server.url("/graphql"), &[("query", query.as_str())]).expect("url");
    let one: Value = client.get(url.clone()).send().await.expect("get").json().await.expect("json");
    assert!(one["data"]["a37"]["body"].is_string(), "the answer is served whole when read");
    let base = server.peak_rss_mib();

    // HTTP/2 with every stream window at 0: the server can send headers, never data.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.expect("connect");
    let (h2, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .expect("h2c handshake");
    let driver = tokio::spawn(connection);
    let uri: http::Uri = url.as_str().parse().expect("uri");
    let streams: Vec<_> = (0..200)
        .map(|_| {
            let (h2, uri) = (h2.clone(), uri.clone());
            tokio::spawn(async move {
                let mut ready = h2.ready().await?;
                let request = http::Request::get(uri).body(()).expect("request");
                let (answer, _) = ready.send_request(request, true)?;
                let head = answer.await?;
                // Hold the body unread until the test ends.
                std::future::pending::<()>().await;
                Ok::<_, h2::Error>(head)
            })
        })
        .collect();
    for second in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            healthz_answers_from_elsewhere(server.port, Duration::from_secs(1)).await,
            "h2 attack, second {second}"
        );
    }
    let h2_peak = server.peak_rss_mib();
    for stream in &streams {
        stream.abort();
    }
    driver.abort();

    // HTTP/1: sockets that send the request and never read.
    let request = format!(
        "GET {}{} HTTP/1.1\r\nHost: x\r\n\r\n",
        url.path(),
        url.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let mut sockets = Vec::new();
    for _ in 0..100 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("small receive buffer");
        let mut stream = socket.connect(([127, 0, 0, 1], server.port).into()).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send");
        sockets.push(stream);
    }
    for second in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            healthz_answers_from_elsewhere(server.port, Duration::from_secs(1)).await,
            "h1 attack, second {second}"
        );
    }
    let peak = server.peak_rss_mib();
    println!("slow readers: RSS {base} MiB before, {h2_peak} MiB after the h2 attack, {peak} MiB after the h1 one");
    assert!(peak < 512, "peak RSS {peak} MiB");
    drop(sockets);
}
