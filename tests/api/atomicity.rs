//! Atomicity: a cascade that fails at any write leaves the store exactly as it was.

use serde_json::json;

use crate::helpers::{TestApp, data, expect_error, int_at};

/// Builds a user with posts, comments both ways, likes and follows; returns Ann's token and id.
async fn populated(app: &TestApp) -> (String, String, String) {
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let p1 = app.create_post(&ann, "ann 1").await;
    app.create_post(&ann, "ann 2").await;
    let q1 = app.create_post(&bob, "bob 1").await;
    app.comment(&bob, &p1, "bob on ann").await;
    app.comment(&ann, &q1, "ann on bob").await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": q1 })).await;
    app.ok_as(&bob, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": p1 })).await;
    app.ok_as(&ann, "mutation($u: ID!) { followUser(userId: $u) { id } }", json!({ "u": bob_id })).await;
    app.ok_as(&bob, "mutation($u: ID!) { followUser(userId: $u) { id } }", json!({ "u": ann_id })).await;
    (ann, ann_id, p1)
}

/// deleteUser failing at its 1st, 2nd, ... write rolls back completely each time,
/// reports only a generic INTERNAL_SERVER_ERROR, and finally succeeds unarmed.
#[tokio::test]
async fn delete_user_is_all_or_nothing_at_every_step() {
    let app = TestApp::spawn().await;
    let (ann, ann_id, _) = populated(&app).await;
    let q =
        "mutation($id: ID!) { deleteUser(id: $id) { deletedPostCount deletedCommentCount detachedReferenceCount } }";
    let before = app.snapshot().await;

    let mut failed_steps = 0;
    for step in 1.. {
        app.store.faults().fail_nth_write(step);
        let resp = app.graphql_as(&ann, q, json!({ "id": ann_id })).await;
        if resp.get("errors").is_none() {
            // The fault was armed past the last write: the transaction has `step - 1` writes.
            app.store.faults().fail_nth_write(0);
            let d = data(&resp);
            assert_eq!(int_at(d, "/deleteUser/deletedPostCount"), 2);
            assert_eq!(int_at(d, "/deleteUser/deletedCommentCount"), 2);
            assert_eq!(int_at(d, "/deleteUser/detachedReferenceCount"), 2);
            break;
        }
        let message = expect_error(&resp, "INTERNAL_SERVER_ERROR");
        assert_eq!(message, "internal server error");
        assert!(!resp.to_string().contains("injected"), "internal detail leaked: {resp}");
        assert_eq!(app.snapshot().await, before, "store changed after a failure at write {step}");
        failed_steps += 1;
        assert!(step < 50, "deleteUser never succeeded");
    }
    assert_eq!(failed_steps, 7, "deleteUser's seven writes were each failed once");
    assert_ne!(app.snapshot().await, before);
    app.assert_consistent().await;
}

/// deletePost and createComment roll back completely when any of their writes fails.
#[tokio::test]
async fn post_and_comment_writes_are_all_or_nothing() {
    let app = TestApp::spawn().await;
    let (ann, _, p1) = populated(&app).await;
    let before = app.snapshot().await;
    let cases = [
        ("mutation($p: ID!) { deletePost(id: $p) { deletedPostId } }", json!({ "p": p1 }), 3),
        ("mutation($p: ID!) { createComment(input: {postId: $p, body: \"x\"}) { id } }", json!({ "p": p1 }), 3),
        ("mutation { createPost(input: {title: \"t\", body: \"b\"}) { id } }", json!({}), 2),
    ];
    for (q, vars, writes) in cases {
        for step in 1..=writes {
            app.store.faults().fail_nth_write(step);
            expect_error(&app.graphql_as(&ann, q, vars.clone()).await, "INTERNAL_SERVER_ERROR");
            assert_eq!(app.snapshot().await, before, "{q} changed the store after failing at write {step}");
        }
    }
    app.store.faults().fail_nth_write(0);
    app.assert_consistent().await;
}
