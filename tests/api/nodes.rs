//! Relay object identification: `Node`, `node` and `nodes`.

use serde_json::json;

use crate::helpers::{TestApp, data, expect_error};

const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
    ... on User { name } ... on Post { title } ... on Comment { body } } }";

/// `node` refetches a user, a post and a comment by id alone, and answers null for an unknown id.
#[tokio::test]
async fn node_refetches_every_type() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "hello").await;
    let comment = app.comment(&ann, &post, "first!").await;
    let q = "query($id: ID!) { node(id: $id) { __typename id ... on User { name } ... on Post { title } ... on Comment { body } } }";
    for (id, want) in [
        (&ann_id, json!({ "__typename": "User", "id": ann_id, "name": "Ann" })),
        (&post, json!({ "__typename": "Post", "id": post, "title": "hello" })),
        (&comment, json!({ "__typename": "Comment", "id": comment, "body": "first!" })),
    ] {
        let resp = app.graphql(q, json!({ "id": id })).await;
        assert_eq!(data(&resp)["node"], want);
    }
    let unknown = bson::oid::ObjectId::new().to_hex();
    assert!(data(&app.graphql(q, json!({ "id": unknown })).await)["node"].is_null());
    expect_error(&app.graphql(q, json!({ "id": "nope" })).await, "BAD_USER_INPUT");
}

/// `nodes` keeps the order of `ids`, with null for unknown ids and duplicates answered twice.
#[tokio::test]
async fn nodes_keep_order_and_nulls() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "hello").await;
    let comment = app.comment(&ann, &post, "first!").await;
    let unknown = bson::oid::ObjectId::new().to_hex();
    let resp = app.graphql(NODES, json!({ "ids": [comment, unknown, ann_id, post, comment] })).await;
    assert_eq!(
        data(&resp)["nodes"],
        json!([
            { "__typename": "Comment", "id": comment, "body": "first!" },
            null,
            { "__typename": "User", "id": ann_id, "name": "Ann" },
            { "__typename": "Post", "id": post, "title": "hello" },
            { "__typename": "Comment", "id": comment, "body": "first!" },
        ])
    );
}

/// `nodes` with 100 ids costs the same three batched reads as with 3; 101 ids are refused.
#[tokio::test]
async fn nodes_cost_constant_round_trips() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let post = app.create_post(&ann, &format!("p{i}")).await;
        ids.push(app.comment(&ann, &post, "c").await);
        ids.push(post);
    }
    let mut trips = Vec::new();
    for n in [3, 100] {
        let before = app.store.round_trips();
        let resp = app.graphql(NODES, json!({ "ids": ids[..n] })).await;
        assert_eq!(data(&resp)["nodes"].as_array().unwrap().iter().filter(|n| !n.is_null()).count(), n);
        trips.push(app.store.round_trips() - before);
    }
    assert_eq!(trips, vec![3, 3], "users, posts and comments: one batch each");
    ids.push(ids[0].clone());
    expect_error(&app.graphql(NODES, json!({ "ids": ids })).await, "BAD_USER_INPUT");
}
