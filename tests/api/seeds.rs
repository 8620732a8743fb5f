//! The seeds' story: Max writes two posts; deleting Max deletes them.

use serde_json::json;

use crate::helpers::{TestApp, data, int_at};

/// Deleting Max deletes both of Max's posts and leaves no orphan behind.
#[tokio::test]
async fn deleting_max_deletes_his_posts() {
    let app = TestApp::spawn().await;
    let (max, max_id) = app.sign_up("Max").await;
    let p1 = app.create_post(&max, "My first post").await;
    let p2 = app.create_post(&max, "My second post").await;

    let resp = app
        .graphql(
            "query($id: ID!) { user(id: $id) { postCount posts { edges { node { id } } } } }",
            json!({ "id": max_id }),
        )
        .await;
    assert_eq!(int_at(data(&resp), "/user/postCount"), 2);
    let listed: Vec<_> =
        data(&resp)["user"]["posts"]["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].clone()).collect();
    assert_eq!(listed, vec![json!(p2), json!(p1)], "newest first");

    let done = app
        .ok_as(
            &max,
            "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId deletedPostCount deletedCommentCount } }",
            json!({ "id": max_id }),
        )
        .await;
    assert_eq!(done["deleteUser"]["deletedUserId"], json!(max_id));
    assert_eq!(int_at(&done, "/deleteUser/deletedPostCount"), 2);

    for post in [&p1, &p2] {
        let resp = app.graphql("query($id: ID!) { post(id: $id) { id } }", json!({ "id": post })).await;
        assert!(data(&resp)["post"].is_null(), "post {post} survived its author");
    }
    let resp =
        app.graphql("{ posts { edges { node { id } } } user: users { edges { node { id } } } }", json!({})).await;
    assert_eq!(data(&resp)["posts"]["edges"], json!([]));
    assert_eq!(data(&resp)["user"]["edges"], json!([]));
    let snap = app.snapshot().await;
    assert!(snap.users.is_empty() && snap.posts.is_empty() && snap.comments.is_empty());
}
