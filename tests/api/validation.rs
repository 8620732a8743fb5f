//! Input validation and error codes: every bad input is BAD_USER_INPUT naming its field.

use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_error, str_at};

fn assert_bad_field(resp: &Value, field: &str) {
    expect_error(resp, "BAD_USER_INPUT");
    assert_eq!(str_at(resp, "/errors/0/extensions/field"), field, "in {resp:#}");
}

/// Sign-up rejects bad names, emails and passwords, naming the field, and stores nothing.
#[tokio::test]
async fn sign_up_validation() {
    let app = TestApp::spawn().await;
    let q = "mutation($i: SignUpInput!) { signUp(input: $i) { token } }";
    let cases = [
        (json!({ "name": "", "email": "a@b.io", "password": "12345678" }), "name"),
        (json!({ "name": "   ", "email": "a@b.io", "password": "12345678" }), "name"),
        (json!({ "name": "x".repeat(65), "email": "a@b.io", "password": "12345678" }), "name"),
        (json!({ "name": "Ann", "email": "not-an-email", "password": "12345678" }), "email"),
        (json!({ "name": "Ann", "email": "a@b", "password": "12345678" }), "email"),
        (json!({ "name": "Ann", "email": "a b@c.io", "password": "12345678" }), "email"),
        (json!({ "name": "Ann", "email": "a@b.io", "password": "1234567" }), "password"),
        (json!({ "name": "A\u{0}nn", "email": "a@b.io", "password": "12345678" }), "name"),
    ];
    for (input, field) in cases {
        assert_bad_field(&app.graphql(q, json!({ "i": input })).await, field);
    }
    // Limits count characters, not bytes.
    let ok =
        app.graphql(q, json!({ "i": { "name": "é".repeat(64), "email": "e@b.io", "password": "12345678" } })).await;
    assert!(ok.get("errors").is_none(), "{ok:#}");
    assert_eq!(app.snapshot().await.users.len(), 1);
}

/// Posts and comments reject bad titles and bodies, and missing targets are NOT_FOUND.
#[tokio::test]
async fn content_validation_and_missing_targets() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let create = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";
    assert_bad_field(&app.graphql_as(&ann, create, json!({ "i": { "title": "", "body": "" } })).await, "title");
    assert_bad_field(
        &app.graphql_as(&ann, create, json!({ "i": { "title": "t".repeat(201), "body": "" } })).await,
        "title",
    );
    assert_bad_field(
        &app.graphql_as(&ann, create, json!({ "i": { "title": "t", "body": "b".repeat(50_001) } })).await,
        "body",
    );
    let long_ok =
        app.graphql_as(&ann, create, json!({ "i": { "title": "t".repeat(200), "body": "b".repeat(50_000) } })).await;
    assert!(long_ok.get("errors").is_none());

    let comment = "mutation($i: CreateCommentInput!) { createComment(input: $i) { id } }";
    assert_bad_field(&app.graphql_as(&ann, comment, json!({ "i": { "postId": post, "body": "" } })).await, "body");
    assert_bad_field(
        &app.graphql_as(&ann, comment, json!({ "i": { "postId": post, "body": "c".repeat(5_001) } })).await,
        "body",
    );
    assert_bad_field(&app.graphql_as(&ann, comment, json!({ "i": { "postId": "xyz", "body": "hi" } })).await, "postId");
    let missing = "0123456789abcdef01234567";
    expect_error(
        &app.graphql_as(&ann, comment, json!({ "i": { "postId": missing, "body": "hi" } })).await,
        "NOT_FOUND",
    );

    let update = "mutation($id: ID!, $i: UpdatePostInput!) { updatePost(id: $id, input: $i) { id } }";
    assert_bad_field(&app.graphql_as(&ann, update, json!({ "id": post, "i": {} })).await, "input");
    expect_error(&app.graphql_as(&ann, update, json!({ "id": missing, "i": { "title": "x" } })).await, "NOT_FOUND");
    expect_error(
        &app.graphql_as(&ann, "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": missing }))
            .await,
        "NOT_FOUND",
    );
    expect_error(
        &app.graphql_as(&ann, "mutation($id: ID!) { likePost(postId: $id) { id } }", json!({ "id": missing })).await,
        "NOT_FOUND",
    );
    expect_error(
        &app.graphql_as(
            &ann,
            "mutation($id: ID!) { followUser(userId: $id) { followee { id } } }",
            json!({ "id": missing }),
        )
        .await,
        "NOT_FOUND",
    );
    assert_bad_field(
        &app.graphql_as(
            &ann,
            "mutation($id: ID!) { followUser(userId: $id) { followee { id } } }",
            json!({ "id": ann_id }),
        )
        .await,
        "userId",
    );
    assert_bad_field(&app.graphql("query { user(id: \"12\") { id } }", json!({})).await, "id");
    assert_bad_field(
        &app.graphql("query { posts(authorId: \"zz\") { edges { cursor } } }", json!({})).await,
        "authorId",
    );

    let snap = app.snapshot().await;
    assert_eq!((snap.posts.len(), snap.comments.len()), (2, 0));
    assert!(snap.users[0].following.is_empty());
}

/// Page sizes outside 0..=100 and malformed cursors are BAD_USER_INPUT.
#[tokio::test]
async fn paging_arguments_are_validated() {
    let app = TestApp::spawn().await;
    for first in [101, -1] {
        let resp = app.graphql("query($f: Int) { posts(first: $f) { edges { cursor } } }", json!({ "f": first })).await;
        assert_bad_field(&resp, "first");
    }
    for cursor in ["garbage!", "", "AAAA", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let resp =
            app.graphql("query($a: String) { users(after: $a) { edges { cursor } } }", json!({ "a": cursor })).await;
        assert_bad_field(&resp, "after");
    }
    let ok = app.graphql("{ posts(first: 0) { edges { cursor } pageInfo { hasNextPage } } }", json!({})).await;
    assert!(ok.get("errors").is_none());
}

/// A document validated on an earlier request still has its variables
/// checked before anything runs: after a good run, a variable of the wrong
/// kind, null or missing is GRAPHQL_VALIDATION_FAILED, and a two-like
/// mutation with one bad or missing variable likes nothing.
#[tokio::test]
async fn a_validated_document_still_checks_its_variables() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (first, second) = (app.create_post(&ann, "a").await, app.create_post(&ann, "b").await);
    let one = "mutation($p: ID!) { likePost(postId: $p) { id } }";
    let two = "mutation($p: ID!, $q: ID!) { a: likePost(postId: $p) { id } b: likePost(postId: $q) { id } }";
    assert!(app.graphql_as(&ann, one, json!({ "p": first })).await.get("errors").is_none());
    assert!(app.graphql_as(&ann, one, json!({ "p": first })).await.get("errors").is_none(), "cached and fit");
    for bad in [json!({ "p": 5.5 }), json!({ "p": null }), json!({}), json!({ "p": [first] })] {
        expect_error(&app.graphql_as(&ann, one, bad).await, "GRAPHQL_VALIDATION_FAILED");
    }
    let unlike = "mutation($p: ID!) { unlikePost(postId: $p) { id } }";
    assert!(app.graphql_as(&ann, unlike, json!({ "p": first })).await.get("errors").is_none());
    assert!(app.graphql_as(&ann, two, json!({ "p": first, "q": second })).await.get("errors").is_none());
    assert!(app.graphql_as(&ann, unlike, json!({ "p": first })).await.get("errors").is_none());
    assert!(app.graphql_as(&ann, unlike, json!({ "p": second })).await.get("errors").is_none());
    for bad in [json!({ "p": first, "q": true }), json!({ "p": first })] {
        expect_error(&app.graphql_as(&ann, two, bad).await, "GRAPHQL_VALIDATION_FAILED");
    }
    let posts = app.snapshot().await.posts;
    assert!(posts.iter().all(|p| p.liked_by.is_empty()), "a refused request liked a post: {posts:?}");
}
