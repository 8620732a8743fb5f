//! Trusted documents: the manifest formats clients produce, every way a
//! request names a document, the required mode and its log-only rollout,
//! load errors and reloads.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, data, expect_error};

const POSTS: &str = "query Count { posts { totalCount } }";
const VIEWER: &str = "query Me { viewer { id } }";

fn hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn apollo_manifest(bodies: &[&str]) -> String {
    let operations: Vec<Value> =
        bodies.iter().map(|body| json!({ "id": hash(body), "body": body, "name": "x", "type": "query" })).collect();
    json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": operations }).to_string()
}

async fn serving(manifest: &Path, required: bool, log_only: bool) -> TestApp {
    let manifest = manifest.to_path_buf();
    TestApp::spawn_with(move |s| {
        s.graphql.trusted_documents = Some(manifest);
        s.graphql.require_trusted_documents = required;
        s.graphql.trusted_documents_log_only = log_only;
        s.http.metrics = true;
    })
    .await
}

async fn post(app: &TestApp, body: Value) -> Value {
    app.client.post(app.url("/graphql")).json(&body).send().await.expect("request").json().await.expect("json")
}

/// An Apollo manifest's document runs by `documentId: "sha256:…"` (POST and GET), by APQ hash, and by its text.
#[tokio::test]
async fn apollo_manifest_documents_run_by_every_name() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, apollo_manifest(&[POSTS])).expect("write");
    let app = serving(&path, true, false).await;
    let id = format!("sha256:{}", hash(POSTS));
    let by_id = post(&app, json!({ "documentId": id })).await;
    assert_eq!(data(&by_id)["posts"]["totalCount"], 0);
    let by_get = app.graphql_get(&[("documentId", &id)]).await;
    assert_eq!(data(&by_get)["posts"]["totalCount"], 0);
    let by_apq =
        post(&app, json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash(POSTS) } } })).await;
    assert_eq!(data(&by_apq)["posts"]["totalCount"], 0);
    let by_text = app.graphql(POSTS, json!({})).await;
    assert_eq!(data(&by_text)["posts"]["totalCount"], 0);
}

/// Relay's `persisted_queries.json` runs by `doc_id` and `id`; graphql-codegen's hash map runs by `documentId` with the hash.
#[tokio::test]
async fn relay_and_codegen_manifests_run_by_their_ids() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("persisted_queries.json");
    std::fs::write(&path, json!({ "5f2b8c1e": POSTS, hash(VIEWER): VIEWER }).to_string()).expect("write");
    let app = serving(&path, true, false).await;
    assert_eq!(data(&post(&app, json!({ "doc_id": "5f2b8c1e" })).await)["posts"]["totalCount"], 0);
    assert_eq!(data(&post(&app, json!({ "id": "5f2b8c1e" })).await)["posts"]["totalCount"], 0);
    let viewer = post(&app, json!({ "documentId": format!("sha256:{}", hash(VIEWER)) })).await;
    assert_eq!(data(&viewer)["viewer"], Value::Null);
    expect_error(&post(&app, json!({ "doc_id": "no-such-id" })).await, "PERSISTED_QUERY_NOT_FOUND");
}

/// Required: an untrusted document is refused before parsing (a syntax error gets the same code), APQ cannot register one, and introspection still follows `--introspection`.
#[tokio::test]
async fn required_documents_refuse_everything_else_before_parsing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, apollo_manifest(&[POSTS])).expect("write");
    let app = serving(&path, true, false).await;
    expect_error(&app.graphql(VIEWER, json!({})).await, "UNTRUSTED_DOCUMENT");
    expect_error(&app.graphql("{ posts { ", json!({})).await, "UNTRUSTED_DOCUMENT");
    let register =
        json!({ "query": VIEWER, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash(VIEWER) } } });
    expect_error(&post(&app, register).await, "UNTRUSTED_DOCUMENT");
    let again = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash(VIEWER) } } });
    expect_error(&post(&app, again).await, "UNTRUSTED_DOCUMENT");
    let schema = app.graphql("{ __schema { queryType { name } } }", json!({})).await;
    assert_eq!(data(&schema)["__schema"]["queryType"]["name"], "Query");
    let mixed = app.graphql("{ __schema { queryType { name } } posts { totalCount } }", json!({})).await;
    expect_error(&mixed, "UNTRUSTED_DOCUMENT");
    let metrics = app.metric("blogql_errors_total{code=\"UNTRUSTED_DOCUMENT\"}").await;
    assert_eq!(metrics, 5, "each refusal is counted under its code");
}

/// Not required, a manifest only adds names: any document runs, and APQ registers as before.
#[tokio::test]
async fn an_optional_manifest_refuses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, apollo_manifest(&[POSTS])).expect("write");
    let app = serving(&path, false, false).await;
    assert_eq!(data(&app.graphql(VIEWER, json!({})).await)["viewer"], Value::Null);
    let register =
        json!({ "query": VIEWER, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash(VIEWER) } } });
    assert_eq!(data(&post(&app, register).await)["viewer"], Value::Null);
    let again = json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash(VIEWER) } } });
    assert_eq!(data(&post(&app, again).await)["viewer"], Value::Null);
}

/// Log-only: an untrusted document is served, and counted in `blogql_untrusted_documents_total`; a trusted one is not counted.
#[tokio::test]
async fn log_only_serves_and_counts_untrusted_documents() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, apollo_manifest(&[POSTS])).expect("write");
    let app = serving(&path, true, true).await;
    assert_eq!(data(&app.graphql(VIEWER, json!({})).await)["viewer"], Value::Null);
    assert_eq!(data(&app.graphql(VIEWER, json!({})).await)["viewer"], Value::Null);
    assert_eq!(data(&app.graphql(POSTS, json!({})).await)["posts"]["totalCount"], 0);
    assert_eq!(app.metric("blogql_untrusted_documents_total").await, 2);
}

/// A manifest entry that does not parse, or breaks a query limit, fails the start, naming the entry.
#[tokio::test]
async fn a_bad_entry_fails_the_load_and_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    for (id, body) in [("broken-one", "{ posts { "), ("too-wide", "{ a: __typename b: __typename c: __typename }")] {
        let path = dir.path().join(format!("{id}.json"));
        std::fs::write(&path, json!({ "ok": POSTS, id: body }).to_string()).expect("write");
        let mut settings = crate::helpers::test_settings(dir.path(), Some(crate::helpers::TEST_SECRET));
        settings.graphql.trusted_documents = Some(path);
        settings.graphql.max_query_fields = 2;
        let store = blogql::store::open(&settings.store).await.expect("store");
        let state = blogql::AppState::new(store, settings).expect("state");
        let Err(err) = blogql::build_app(state) else { panic!("the manifest with {id} loaded") };
        assert!(err.to_string().contains(id), "{err} names {id}");
    }
}

/// A changed manifest is reloaded within seconds; a changed one that does not load is refused and the previous one stays.
#[tokio::test]
async fn a_changed_manifest_is_reloaded_and_a_bad_one_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, apollo_manifest(&[POSTS])).expect("write");
    let app = serving(&path, true, false).await;
    expect_error(&app.graphql(VIEWER, json!({})).await, "UNTRUSTED_DOCUMENT");
    std::fs::write(&path, apollo_manifest(&[POSTS, VIEWER])).expect("rewrite");
    let started = std::time::Instant::now();
    while app.graphql(VIEWER, json!({})).await.get("errors").is_some() {
        assert!(started.elapsed() < Duration::from_secs(10), "the new manifest was not loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(&path, "{ not json").expect("break");
    // Two watch intervals: the broken file has been read and refused.
    tokio::time::sleep(blogql::http::trusted::WATCH_INTERVAL * 3).await;
    assert_eq!(data(&app.graphql(VIEWER, json!({})).await)["viewer"], Value::Null);
    assert_eq!(data(&app.graphql(POSTS, json!({})).await)["posts"]["totalCount"], 0);
}
