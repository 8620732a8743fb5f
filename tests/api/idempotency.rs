//! `Idempotency-Key` on mutations: a retry gets the first answer and writes
//! nothing; a key reused for another request, or sent while its first
//! attempt runs, is refused; the answer outlives a restart and, on MongoDB,
//! is shared by every process.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TEST_SECRET, TestApp, data, error_code, mongodb_uri, str_at};

const CREATE: &str = "mutation($i: CreatePostInput!) { createPost(input: $i) { id title } }";

/// What a keyed request came back with.
struct Keyed {
    status: u16,
    replayed: bool,
    bytes: Vec<u8>,
    body: Value,
}

/// POSTs `query` as `token` (if any) with `Idempotency-Key: key` (if any).
async fn send(app: &TestApp, token: Option<&str>, key: Option<&str>, query: &str, variables: Value) -> Keyed {
    let mut req = app.client.post(app.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let bytes = resp.bytes().await.expect("body").to_vec();
    let body = serde_json::from_slice(&bytes).expect("a JSON body");
    Keyed { status, replayed, bytes, body }
}

fn post_input(title: &str) -> Value {
    json!({ "i": { "title": title, "body": "body" } })
}

/// A retried `createPost` answers the first answer byte for byte, marked as a replay, and writes one post.
#[tokio::test]
async fn a_retried_mutation_gets_the_first_answer_and_writes_once() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let first = send(&app, Some(&ann), Some("k-1"), CREATE, post_input("once")).await;
    assert_eq!(first.status, 200);
    assert!(!first.replayed, "the first attempt ran");
    let id = str_at(data(&first.body), "/createPost/id");
    for _ in 0..3 {
        let again = send(&app, Some(&ann), Some("\"k-1\""), CREATE, post_input("once")).await;
        assert_eq!(again.status, 200);
        assert!(again.replayed, "a retry is a replay: {}", again.body);
        assert_eq!(again.bytes, first.bytes, "the same answer, byte for byte");
    }
    let posts = app.snapshot().await.posts;
    assert_eq!(posts.len(), 1, "one post, however many retries");
    assert_eq!(posts[0].id.to_hex(), id);
    // Without a key, the same request writes again, as it always did.
    send(&app, Some(&ann), None, CREATE, post_input("once")).await;
    assert_eq!(app.snapshot().await.posts.len(), 2);
    app.assert_consistent().await;
}

/// A key sent again with other variables is 422 IDEMPOTENCY_KEY_REUSED and writes nothing; variables' key order does not matter.
#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let vars = json!({ "i": { "title": "t", "body": "b" } });
    let reordered = json!({ "i": { "body": "b", "title": "t" } });
    assert!(!send(&app, Some(&ann), Some("k"), CREATE, vars).await.replayed);
    assert!(send(&app, Some(&ann), Some("k"), CREATE, reordered).await.replayed, "the same input, keys reordered");
    let other = send(&app, Some(&ann), Some("k"), CREATE, post_input("other")).await;
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(error_code(&other.body), "IDEMPOTENCY_KEY_REUSED");
    let other_doc = "mutation M($i: CreatePostInput!) { createPost(input: $i) { id } }";
    let renamed = send(&app, Some(&ann), Some("k"), other_doc, json!({ "i": { "title": "t", "body": "b" } })).await;
    assert_eq!(error_code(&renamed.body), "IDEMPOTENCY_KEY_REUSED", "another document is another request");
    assert_eq!(app.snapshot().await.posts.len(), 1);
}

/// Eight concurrent attempts with one key write one post: each answer is the first (or its replay) or 409 IDEMPOTENCY_KEY_IN_USE.
#[tokio::test]
async fn concurrent_attempts_with_one_key_write_once() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let attempts = (0..8).map(|_| send(&app, Some(&ann), Some("race"), CREATE, post_input("raced")));
    let answers = futures::future::join_all(attempts).await;
    let mut ids = std::collections::HashSet::new();
    let mut in_use = 0;
    for a in &answers {
        match a.status {
            200 => {
                ids.insert(str_at(data(&a.body), "/createPost/id"));
            }
            409 => {
                assert_eq!(error_code(&a.body), "IDEMPOTENCY_KEY_IN_USE");
                in_use += 1;
            }
            other => panic!("unexpected status {other}: {}", a.body),
        }
    }
    assert_eq!(ids.len(), 1, "every answer names the same post: {ids:?}");
    assert!(in_use < 8, "at least one attempt ran");
    assert_eq!(app.snapshot().await.posts.len(), 1);
}

/// A mutation that wrote nothing (a FORBIDDEN edit) keeps no answer: the same key runs again.
#[tokio::test]
async fn a_mutation_that_wrote_nothing_keeps_no_answer() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "ann's").await;
    let edit = "mutation($id: ID!) { updatePost(id: $id, input: { title: \"bob was here\" }) { id } }";
    let refused = send(&app, Some(&bob), Some("e"), edit, json!({ "id": post })).await;
    assert_eq!(error_code(&refused.body), "FORBIDDEN");
    let again = send(&app, Some(&bob), Some("e"), edit, json!({ "id": post })).await;
    assert!(!again.replayed, "nothing was kept, so the retry ran: {}", again.body);
    assert_eq!(error_code(&again.body), "FORBIDDEN");
}

/// One key names a different record for each viewer, and queries and sign-ups never use one.
#[tokio::test]
async fn keys_are_per_viewer_and_only_for_writes_without_tokens() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    assert!(!send(&app, Some(&ann), Some("same"), CREATE, post_input("t")).await.replayed);
    assert!(!send(&app, Some(&bob), Some("same"), CREATE, post_input("t")).await.replayed, "Bob's key is his own");
    assert_eq!(app.snapshot().await.posts.len(), 2);

    let count = "{ posts(first: 1) { totalCount } }";
    assert_eq!(send(&app, Some(&ann), Some("q"), count, json!({})).await.body["data"]["posts"]["totalCount"], 2);
    app.create_post(&ann, "third").await;
    let counted = send(&app, Some(&ann), Some("q"), count, json!({})).await;
    assert!(!counted.replayed);
    assert_eq!(counted.body["data"]["posts"]["totalCount"], 3, "a query with a key reads afresh");

    // A sign-up's answer carries a token: it is never kept, so a retry is the taken email, not a replay.
    let sign_up = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }";
    let input = json!({ "i": { "name": "Cy", "email": "cy@example.com", "password": "correct horse" } });
    assert!(send(&app, None, Some("s"), sign_up, input.clone()).await.body["data"]["signUp"]["token"].is_string());
    let retried = send(&app, None, Some("s"), sign_up, input).await;
    assert!(!retried.replayed);
    assert_eq!(error_code(&retried.body), "CONFLICT");
}

/// Empty, over-long, non-ASCII and repeated keys are BAD_USER_INPUT, before anything runs.
#[tokio::test]
async fn malformed_keys_are_refused() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    for key in ["", "\"\"", &"k".repeat(256), "a\"b"] {
        let refused = send(&app, Some(&ann), Some(key), CREATE, post_input("x")).await;
        assert_eq!(error_code(&refused.body), "BAD_USER_INPUT", "key {key:?}: {}", refused.body);
    }
    let twice = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&ann)
        .header("Idempotency-Key", "a")
        .header("Idempotency-Key", "b")
        .json(&json!({ "query": CREATE, "variables": post_input("x") }))
        .send()
        .await
        .expect("request");
    let body: Value = twice.json().await.expect("json");
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert!(app.snapshot().await.posts.is_empty(), "nothing ran");
}

/// A kept answer expires with --idempotency-ttl-secs: after it, the same key runs again.
#[tokio::test]
async fn a_kept_answer_expires() {
    let app = TestApp::spawn_with(|s| s.graphql.idempotency_ttl_secs = 1).await;
    let (ann, _) = app.sign_up("Ann").await;
    assert!(!send(&app, Some(&ann), Some("t"), CREATE, post_input("t")).await.replayed);
    assert!(send(&app, Some(&ann), Some("t"), CREATE, post_input("t")).await.replayed);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(!send(&app, Some(&ann), Some("t"), CREATE, post_input("t")).await.replayed, "expired, so it ran");
    assert_eq!(app.snapshot().await.posts.len(), 2);
}

/// A kept answer is in the store: after a restart on the same data, a retry still replays it.
#[tokio::test]
async fn a_kept_answer_outlives_a_restart() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let first = send(&app, Some(&ann), Some("r"), CREATE, post_input("kept")).await;
    let home = app.stop().await;
    let app = TestApp::spawn_in(home, Some(TEST_SECRET)).await;
    let again = send(&app, Some(&ann), Some("r"), CREATE, post_input("kept")).await;
    assert!(again.replayed);
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(app.snapshot().await.posts.len(), 1);
}

/// Two processes on one MongoDB database share keys: a retry to the other process replays, and a race across both writes once.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_processes_share_keys() {
    assert!(mongodb_uri().is_some(), "this test needs MONGODB_URI pointing at a MongoDB deployment");
    let one = TestApp::spawn().await;
    let two = one.second_process().await;
    let (ann, _) = one.sign_up("Ann").await;
    let first = send(&one, Some(&ann), Some("x"), CREATE, post_input("one")).await;
    let again = send(&two, Some(&ann), Some("x"), CREATE, post_input("one")).await;
    assert!(again.replayed, "the other process replays: {}", again.body);
    assert_eq!(again.bytes, first.bytes);

    let attempts = (0..6).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        send(app, Some(&ann), Some("y"), CREATE, post_input("raced"))
    });
    let answers = futures::future::join_all(attempts).await;
    let ran = answers.iter().filter(|a| a.status == 200 && !a.replayed).count();
    assert_eq!(ran, 1, "exactly one attempt ran across both processes");
    assert!(answers.iter().all(|a| a.status == 200 || error_code(&a.body) == "IDEMPOTENCY_KEY_IN_USE"));
    assert_eq!(one.snapshot().await.posts.len(), 2);
}
