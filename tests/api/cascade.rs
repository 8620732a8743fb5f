//! Cascades and relation pulls: deletePost, deleteComment and a multi-level deleteUser.

use serde_json::json;

use crate::helpers::{TestApp, data, expect_error, int_at, str_at};

const USER: &str = "query($id: ID!) { user(id: $id) { postCount followerCount followingCount
    posts { edges { node { id } } } followers { edges { node { id } } } following { edges { node { id } } } } }";
const POST: &str = "query($id: ID!) { post(id: $id) { id commentCount likeCount
    likedBy { edges { node { id } } } comments { edges { node { id author { id } } } } } }";

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["edges"].as_array().unwrap().iter().map(|e| e["node"]["id"].as_str().unwrap().to_owned()).collect()
}

/// deletePost removes the post's comments and pulls its id out of the author's `posts`.
#[tokio::test]
async fn delete_post_clears_the_relation() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let keep = app.create_post(&ann, "keep").await;
    let gone = app.create_post(&ann, "gone").await;
    let c1 = app.comment(&bob, &gone, "first").await;
    app.comment(&ann, &gone, "second").await;
    app.comment(&bob, &keep, "stays").await;

    let done = app
        .ok_as(
            &ann,
            "mutation($id: ID!) { deletePost(id: $id) { deletedPostId deletedCommentCount } }",
            json!({ "id": gone }),
        )
        .await;
    assert_eq!(str_at(&done, "/deletePost/deletedPostId"), gone);
    assert_eq!(int_at(&done, "/deletePost/deletedCommentCount"), 2);

    let user = app.graphql(USER, json!({ "id": ann_id })).await;
    assert_eq!(int_at(data(&user), "/user/postCount"), 1);
    assert_eq!(ids(&data(&user)["user"]["posts"]), vec![keep.clone()]);
    let comment = app.graphql("query($id: ID!) { comment(id: $id) { id } }", json!({ "id": c1 })).await;
    assert!(data(&comment)["comment"].is_null());
    let snap = app.snapshot().await;
    assert_eq!(snap.users.iter().find(|u| u.id.to_hex() == ann_id).unwrap().posts.len(), 1);
    assert_eq!(snap.comments.len(), 1);
    app.assert_consistent().await;
}

/// deleteComment decrements the post's commentCount; the post's author may delete others' comments.
#[tokio::test]
async fn delete_comment_keeps_count_in_step() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let (eve, _) = app.sign_up("Eve").await;
    let post = app.create_post(&ann, "post").await;
    let by_bob = app.comment(&bob, &post, "one").await;
    let by_bob_2 = app.comment(&bob, &post, "two").await;
    let q = "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId } }";

    expect_error(&app.graphql_as(&eve, q, json!({ "id": by_bob })).await, "FORBIDDEN");
    let done = app.ok_as(&bob, q, json!({ "id": by_bob })).await;
    assert_eq!(str_at(&done, "/deleteComment/deletedCommentId"), by_bob);
    app.ok_as(&ann, q, json!({ "id": by_bob_2 })).await;
    expect_error(&app.graphql_as(&ann, q, json!({ "id": by_bob_2 })).await, "NOT_FOUND");

    let resp = app.graphql(POST, json!({ "id": post })).await;
    assert_eq!(int_at(data(&resp), "/post/commentCount"), 0);
    app.assert_consistent().await;
}

/// Deleting a user with likes, follows and comments on both sides removes every
/// dependent and pulls every reference, with exact counts.
#[tokio::test]
async fn delete_user_cascades_across_every_relation() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let (cat, cat_id) = app.sign_up("Cat").await;

    let p1 = app.create_post(&ann, "ann 1").await;
    let _p2 = app.create_post(&ann, "ann 2").await;
    let q1 = app.create_post(&bob, "bob 1").await;
    app.comment(&bob, &p1, "bob on ann").await;
    app.comment(&cat, &p1, "cat on ann").await;
    let cat_on_bob = app.comment(&cat, &q1, "cat on bob").await;
    app.comment(&ann, &q1, "ann on bob").await;
    app.comment(&ann, &q1, "ann on bob again").await;
    let like = "mutation($p: ID!) { likePost(postId: $p) { likeCount } }";
    app.ok_as(&ann, like, json!({ "p": q1 })).await;
    app.ok_as(&cat, like, json!({ "p": q1 })).await;
    app.ok_as(&bob, like, json!({ "p": p1 })).await;
    let follow = "mutation($u: ID!) { followUser(userId: $u) { followee { followerCount } } }";
    app.ok_as(&ann, follow, json!({ "u": bob_id })).await;
    app.ok_as(&bob, follow, json!({ "u": ann_id })).await;
    app.ok_as(&cat, follow, json!({ "u": ann_id })).await;
    app.ok_as(&cat, follow, json!({ "u": bob_id })).await;
    app.assert_consistent().await;

    let done = app
        .ok_as(
            &ann,
            "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId deletedPostCount deletedCommentCount detachedReferenceCount } }",
            json!({ "id": ann_id }),
        )
        .await;
    assert_eq!(int_at(&done, "/deleteUser/deletedPostCount"), 2);
    assert_eq!(int_at(&done, "/deleteUser/deletedCommentCount"), 4, "2 on Ann's posts + 2 by Ann on Bob's");
    assert_eq!(int_at(&done, "/deleteUser/detachedReferenceCount"), 3, "q1.likedBy, Bob's follows, Cat's follows");

    let post = app.graphql(POST, json!({ "id": q1 })).await;
    let post = &data(&post)["post"];
    assert_eq!(post["commentCount"], json!(1));
    assert_eq!(ids(&post["comments"]), vec![cat_on_bob]);
    assert_eq!(post["likeCount"], json!(1));
    assert_eq!(ids(&post["likedBy"]), vec![cat_id.clone()]);

    let bob_view = app.graphql(USER, json!({ "id": bob_id })).await;
    let bob_view = &data(&bob_view)["user"];
    assert_eq!(ids(&bob_view["followers"]), vec![cat_id.clone()]);
    assert_eq!(ids(&bob_view["following"]), Vec::<String>::new());
    assert_eq!((bob_view["followerCount"].clone(), bob_view["followingCount"].clone()), (json!(1), json!(0)));
    let cat_view = app.graphql(USER, json!({ "id": cat_id })).await;
    assert_eq!(ids(&data(&cat_view)["user"]["following"]), vec![bob_id.clone()]);

    let p1_view = app.graphql(POST, json!({ "id": p1 })).await;
    assert!(data(&p1_view)["post"].is_null());
    let snap = app.snapshot().await;
    assert_eq!((snap.users.len(), snap.posts.len(), snap.comments.len()), (2, 1, 1));
    app.assert_consistent().await;

    // Ann's token no longer authenticates anything.
    let resp =
        app.graphql_as(&ann, "mutation { createPost(input: {title: \"ghost\", body: \"\"}) { id } }", json!({})).await;
    expect_error(&resp, "UNAUTHENTICATED");
    assert_eq!(app.snapshot().await.posts.len(), 1);
}

/// Likes and follows are idempotent and their undo operations pull exactly one reference.
#[tokio::test]
async fn likes_and_follows_are_idempotent() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "p").await;
    let like = "mutation($p: ID!) { likePost(postId: $p) { likeCount viewerHasLiked } }";
    let unlike = "mutation($p: ID!) { unlikePost(postId: $p) { likeCount viewerHasLiked } }";
    for _ in 0..2 {
        let d = app.ok_as(&bob, like, json!({ "p": post })).await;
        assert_eq!(d["likePost"], json!({ "likeCount": 1, "viewerHasLiked": true }));
    }
    for _ in 0..2 {
        let d = app.ok_as(&bob, unlike, json!({ "p": post })).await;
        assert_eq!(d["unlikePost"], json!({ "likeCount": 0, "viewerHasLiked": false }));
    }
    let pair = "{ follower { id followingCount } followee { id followerCount } }";
    let follow = format!("mutation($u: ID!) {{ followUser(userId: $u) {pair} }}");
    let unfollow = format!("mutation($u: ID!) {{ unfollowUser(userId: $u) {pair} }}");
    for _ in 0..2 {
        let d = app.ok_as(&bob, &follow, json!({ "u": ann_id })).await;
        assert_eq!(
            d["followUser"],
            json!({ "follower": { "id": bob_id, "followingCount": 1 }, "followee": { "id": ann_id, "followerCount": 1 } })
        );
    }
    let me = app.ok_as(&bob, "{ viewer { id followingCount } }", json!({})).await;
    assert_eq!(me["viewer"], json!({ "id": bob_id, "followingCount": 1 }));
    app.assert_consistent().await;
    for _ in 0..2 {
        let d = app.ok_as(&bob, &unfollow, json!({ "u": ann_id })).await;
        assert_eq!(
            d["unfollowUser"],
            json!({ "follower": { "id": bob_id, "followingCount": 0 }, "followee": { "id": ann_id, "followerCount": 0 } })
        );
    }
    app.assert_consistent().await;
}
