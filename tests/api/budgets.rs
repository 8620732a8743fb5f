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
    let bodies: String = (0..300).map(|i| format!("b{i}: body ")).collect();
    let attack = format!("mutation($id: ID!) {{ deleteUser(id: $id) {{ affectedPosts {{ {bodies} }} }} }}");
    let resp = app.graphql_as(&token, &attack, json!({ "id": id })).await;
    let message = expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("too complex"), "{message}");
    for list in ["deletedPostIds", "deletedCommentIds"] {
        let many: String = (0..30).map(|i| format!("l{i}: {list} ")).collect();
        let resp = app
            .graphql_as(
                &token,
                &format!("mutation($id: ID!) {{ deleteUser(id: $id) {{ {many} }} }}"),
                json!({ "id": id }),
            )
            .await;
        expect_error(&resp, "GRAPHQL_VALIDATION_FAILED");
    }
    assert_eq!(app.snapshot().await.users.len(), 1, "the refused delete deleted nothing");
    let resp = app
        .graphql_as(
            &token,
            "mutation($id: ID!) { deleteUser(id: $id) { affectedPosts(first: 1001) { id } } }",
            json!({ "id": id }),
        )
        .await;
    expect_error(&resp, "BAD_USER_INPUT");
    assert_eq!(app.snapshot().await.users.len(), 1, "an out-of-range first is refused before anything is written");
    let ok = app
        .ok_as(
            &token,
            "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId affectedUserCount affectedPosts(first: 50) { id body } affectedUsers { id followerCount } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(ok["deleteUser"]["deletedUserId"], id.as_str());
    assert_eq!(app.snapshot().await.users.len(), 0);
}
