//! Automatic persisted queries over POST and GET, and the introspection switch.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, data, expect_error};

fn hash(query: &str) -> String {
    Sha256::digest(query.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn apq(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post(app: &TestApp, body: Value) -> Value {
    let resp = app.client.post(app.url("/graphql")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Apollo's flow: a hash-only request is `PERSISTED_QUERY_NOT_FOUND`; the
/// retry with the text registers it; then the hash alone runs, over POST and GET.
#[tokio::test]
async fn hash_only_requests_run_after_registration() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    app.create_post(&ann, "hello").await;
    let query = "query Titles($n: Int) { posts(first: $n) { edges { node { title } } } }";
    let h = hash(query);

    let miss = post(&app, json!({ "extensions": apq(&h), "variables": { "n": 1 } })).await;
    expect_error(&miss, "PERSISTED_QUERY_NOT_FOUND");
    assert_eq!(miss["errors"][0]["message"], json!("PersistedQueryNotFound"));

    let full = post(&app, json!({ "query": query, "extensions": apq(&h), "variables": { "n": 1 } })).await;
    assert_eq!(data(&full)["posts"]["edges"][0]["node"]["title"], json!("hello"));

    let hit = post(&app, json!({ "extensions": apq(&h), "variables": { "n": 1 } })).await;
    assert_eq!(hit, full, "the hash alone gives the same answer");

    let ext = apq(&h).to_string();
    let get = app.graphql_get(&[("extensions", ext.as_str()), ("variables", "{\"n\":1}")]).await;
    assert_eq!(get, full, "over GET too");
}

/// A text whose hash does not match is `BAD_USER_INPUT` and is not stored
/// under the claimed hash; malformed extensions are refused the same way.
#[tokio::test]
async fn mismatched_hashes_are_refused() {
    let app = TestApp::spawn().await;
    let claimed = hash("{ viewer { id } }");
    let resp = post(&app, json!({ "query": "{ users { totalCount } }", "extensions": apq(&claimed) })).await;
    expect_error(&resp, "BAD_USER_INPUT");
    expect_error(&post(&app, json!({ "extensions": apq(&claimed) })).await, "PERSISTED_QUERY_NOT_FOUND");
    for bad in [json!({ "persistedQuery": { "version": 2, "sha256Hash": claimed } }), json!({ "persistedQuery": 1 })] {
        expect_error(&post(&app, json!({ "query": "{ __typename }", "extensions": bad })).await, "BAD_USER_INPUT");
    }
}

/// A persisted mutation still cannot run over GET.
#[tokio::test]
async fn persisted_mutations_need_post() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let mutation = "mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }";
    let h = hash(mutation);
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&ann)
        .json(&json!({ "query": mutation, "extensions": apq(&h) }))
        .send()
        .await
        .unwrap();
    assert!(resp.json::<Value>().await.unwrap()["errors"].is_null());
    let ext = apq(&h).to_string();
    let resp = app.client.get(app.url("/graphql")).query(&[("extensions", ext.as_str())]).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(app.snapshot().await.posts.len(), 1);
}

/// The store is a bounded LRU of the configured size, and size 0 turns APQ off.
#[tokio::test]
async fn the_store_is_bounded() {
    let app = TestApp::spawn_with(|s| s.graphql.persisted_queries = 2).await;
    let queries = ["{ a: __typename }", "{ b: __typename }", "{ c: __typename }"];
    for q in queries {
        post(&app, json!({ "query": q, "extensions": apq(&hash(q)) })).await;
    }
    expect_error(&post(&app, json!({ "extensions": apq(&hash(queries[0])) })).await, "PERSISTED_QUERY_NOT_FOUND");
    let kept = post(&app, json!({ "extensions": apq(&hash(queries[2])) })).await;
    assert_eq!(data(&kept)["c"], json!("Query"));

    let off = TestApp::spawn_with(|s| s.graphql.persisted_queries = 0).await;
    let resp = post(&off, json!({ "extensions": apq(&hash(queries[0])) })).await;
    expect_error(&resp, "PERSISTED_QUERY_NOT_SUPPORTED");
    let plain = post(&off, json!({ "query": queries[0] })).await;
    assert_eq!(data(&plain)["a"], json!("Query"), "plain queries still run with the cache off");
}

/// Introspection answers by default; with the switch off it is a validation
/// error, while `__typename` keeps working.
#[tokio::test]
async fn introspection_can_be_turned_off() {
    let on = TestApp::spawn().await;
    let resp = on.graphql("{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(data(&resp)["__schema"]["queryType"]["name"], json!("Query"));

    let off = TestApp::spawn_with(|s| s.graphql.introspection = false).await;
    for q in ["{ __schema { queryType { name } } }", "{ __type(name: \"User\") { name } }"] {
        expect_error(&off.graphql(q, json!({})).await, "GRAPHQL_VALIDATION_FAILED");
    }
    let resp = off.graphql("{ __typename posts(first: 1) { __typename } }", json!({})).await;
    assert_eq!(data(&resp)["__typename"], json!("Query"));
}
