//! `GET /metrics`: Prometheus counters that move with the traffic they describe.

use serde_json::json;

use crate::helpers::TestApp;

async fn scrape(app: &TestApp) -> String {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    resp.text().await.unwrap()
}

/// The value of the sample line that starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

/// Requests by operation and outcome, error codes, committed and rolled-back
/// transactions and DataLoader batch sizes all count what happened.
#[tokio::test]
async fn metrics_count_what_happened() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    for i in 0..3 {
        let post = app.create_post(&ann, &format!("p{i}")).await;
        app.comment(&ann, &post, "c").await;
    }
    app.graphql("query Feed { posts { edges { node { author { name } } } } }", json!({})).await;
    app.graphql("query Feed { posts { edges { node { title } } } }", json!({})).await;
    app.graphql("{ nope }", json!({})).await;
    let missing = bson::oid::ObjectId::new().to_hex();
    app.graphql_as(&ann, "mutation Del($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": missing }))
        .await;
    let get = app.client.get(app.url("/graphql")).query(&[("query", "mutation { __typename }")]).send().await.unwrap();
    assert_eq!(get.status(), 405);

    let text = scrape(&app).await;
    assert_eq!(sample(&text, "blogql_requests_total{operation=\"Feed\",outcome=\"ok\"}"), 2.0);
    assert_eq!(sample(&text, "blogql_requests_total{operation=\"Del\",outcome=\"error\"}"), 1.0);
    assert_eq!(sample(&text, "blogql_requests_total{operation=\"anonymous\",outcome=\"rejected\"}"), 1.0);
    assert_eq!(sample(&text, "blogql_errors_total{code=\"NOT_FOUND\"}"), 1.0);
    assert_eq!(sample(&text, "blogql_errors_total{code=\"GRAPHQL_VALIDATION_FAILED\"}"), 1.0);
    assert_eq!(sample(&text, "blogql_errors_total{code=\"METHOD_NOT_ALLOWED\"}"), 1.0);
    assert_eq!(sample(&text, "blogql_requests_total{operation=\"refused\",outcome=\"rejected\"}"), 1.0);
    // signUp + 3 createPost + 3 createComment committed; the missing deletePost rolled back.
    assert_eq!(sample(&text, "blogql_transactions_total{result=\"committed\"}"), 7.0);
    assert_eq!(sample(&text, "blogql_transactions_total{result=\"rolled_back\"}"), 1.0);
    // The feed's authors were one batch of one distinct key.
    assert!(sample(&text, "blogql_dataloader_batch_size_count") >= 1.0);
    assert!(sample(&text, "blogql_request_duration_seconds_count") >= 10.0);
}

/// `blogql_staged_deletions` counts a staged deletion from its commit until the reaper has finished it.
#[tokio::test]
async fn staged_deletions_are_a_gauge() {
    let app = TestApp::spawn_with(|s| {
        s.store.cascade_budget_docs = 2;
        s.store.reap_deletions = false;
    })
    .await;
    assert_eq!(sample(&scrape(&app).await, "blogql_staged_deletions"), 0.0);
    let (ann, ann_id) = app.sign_up("Ann").await;
    app.create_post(&ann, "a").await;
    app.create_post(&ann, "b").await;
    let done = app.ok_as(&ann, "mutation($id: ID!) { deleteUser(id: $id) { staged } }", json!({ "id": ann_id })).await;
    assert_eq!(done["deleteUser"]["staged"], json!(true));
    assert_eq!(sample(&scrape(&app).await, "blogql_staged_deletions"), 1.0);
    blogql::reaper::drain(&app.store, 2).await.unwrap();
    assert_eq!(sample(&scrape(&app).await, "blogql_staged_deletions"), 0.0);
}

/// With `--metrics false` the route is gone.
#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = TestApp::spawn_with(|s| s.http.metrics = false).await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}
