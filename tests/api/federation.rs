//! blogql as an Apollo Federation v2 subgraph (`--federation`).

use serde_json::json;

use crate::helpers::{TestApp, data, expect_error};

/// `_service { sdl }` answers exactly the SDL `print-schema --federation` prints.
#[tokio::test]
async fn service_sdl_is_the_subgraph_sdl() {
    let app = TestApp::spawn_with(|s| s.graphql.federation = true).await;
    let resp = app.graphql("{ _service { sdl } }", json!({})).await;
    assert_eq!(data(&resp)["_service"]["sdl"], json!(blogql::graphql::subgraph_sdl()));
}

/// `_entities` resolves users, posts and comments in the order asked, through
/// one batch per type: 30 representations cost three round trips.
#[tokio::test]
async fn entities_resolve_in_one_batch_per_type() {
    let app = TestApp::spawn_with(|s| s.graphql.federation = true).await;
    let mut reps = Vec::new();
    let mut want = Vec::new();
    for i in 0..10 {
        let (token, user) = app.sign_up(&format!("U{i}")).await;
        let post = app.create_post(&token, &format!("post {i}")).await;
        let comment = app.comment(&token, &post, &format!("comment {i}")).await;
        reps.push(json!({ "__typename": "User", "id": user }));
        reps.push(json!({ "__typename": "Post", "id": post }));
        reps.push(json!({ "__typename": "Comment", "id": comment }));
        want.push(json!({ "__typename": "User", "name": format!("U{i}") }));
        want.push(json!({ "__typename": "Post", "title": format!("post {i}") }));
        want.push(json!({ "__typename": "Comment", "body": format!("comment {i}") }));
    }
    let q = "query($r: [_Any!]!) { _entities(representations: $r) { __typename
        ... on User { name } ... on Post { title } ... on Comment { body } } }";
    let before = app.store.round_trips();
    let resp = app.graphql(q, json!({ "r": reps })).await;
    assert_eq!(data(&resp)["_entities"], json!(want));
    assert_eq!(app.store.round_trips() - before, 3);
}

/// Without the setting, the federation fields do not exist.
#[tokio::test]
async fn federation_is_off_by_default() {
    let app = TestApp::spawn().await;
    expect_error(&app.graphql("{ _service { sdl } }", json!({})).await, "GRAPHQL_VALIDATION_FAILED");
}
