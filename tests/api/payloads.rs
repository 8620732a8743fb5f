//! Mutation payloads carry every object a client cache must evict or refresh.

use serde_json::{Value, json};

use crate::helpers::{TestApp, data};

fn sorted(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

fn sorted_strs(ids: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
    ids.sort();
    ids
}

/// deletePost names every deleted comment and returns the author with a fresh postCount, plus `query`.
#[tokio::test]
async fn delete_post_payload_refreshes_the_author() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let keep = app.create_post(&ann, "keep").await;
    let gone = app.create_post(&ann, "gone").await;
    let c1 = app.comment(&bob, &gone, "one").await;
    let c2 = app.comment(&ann, &gone, "two").await;
    app.comment(&bob, &keep, "stays").await;

    let q = "mutation($id: ID!) { deletePost(id: $id) { __typename deletedPostId deletedCommentIds
        deletedCommentCount author { id postCount posts { edges { node { id } } } }
        query { post(id: $id) { id } } } }";
    let d = app.ok_as(&ann, q, json!({ "id": gone })).await;
    let p = &d["deletePost"];
    assert_eq!(p["__typename"], json!("DeletePostPayload"));
    assert_eq!(p["deletedPostId"], json!(gone));
    assert_eq!(sorted(&p["deletedCommentIds"]), sorted_strs(&[&c1, &c2]));
    assert_eq!(p["deletedCommentCount"], json!(2));
    assert_eq!(p["author"]["id"], json!(ann_id));
    assert_eq!(p["author"]["postCount"], json!(1));
    assert_eq!(p["author"]["posts"]["edges"], json!([{ "node": { "id": keep } }]));
    assert!(p["query"]["post"].is_null(), "the deleted post must not be readable through `query`");
}

/// deleteComment returns the post with a fresh commentCount.
#[tokio::test]
async fn delete_comment_payload_refreshes_the_post() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let c1 = app.comment(&ann, &post, "one").await;
    app.comment(&ann, &post, "two").await;
    let q = "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId post { id commentCount }
        query { comment(id: $id) { id } } } }";
    let d = app.ok_as(&ann, q, json!({ "id": c1 })).await;
    assert_eq!(
        d["deleteComment"],
        json!({ "deletedCommentId": c1, "post": { "id": post, "commentCount": 1 }, "query": { "comment": null } })
    );
}

/// deleteUser reports the ids it deleted and every surviving user and post it
/// changed, with their counts as they are after the delete.
#[tokio::test]
async fn delete_user_payload_names_everything_it_touched() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let (cat, cat_id) = app.sign_up("Cat").await;
    let (_dan, dan_id) = app.sign_up("Dan").await;

    let p1 = app.create_post(&ann, "ann 1").await;
    let p2 = app.create_post(&ann, "ann 2").await;
    let q1 = app.create_post(&bob, "bob 1").await;
    let q2 = app.create_post(&bob, "bob 2").await;
    let r1 = app.create_post(&cat, "cat 1").await;
    let on_p1 = app.comment(&bob, &p1, "bob on ann").await;
    let ann_on_q1 = app.comment(&ann, &q1, "ann on bob").await;
    let ann_on_q1_again = app.comment(&ann, &q1, "ann on bob again").await;
    app.comment(&cat, &q1, "cat on bob").await;
    let like = "mutation($p: ID!) { likePost(postId: $p) { id } }";
    app.ok_as(&ann, like, json!({ "p": q2 })).await;
    app.ok_as(&ann, like, json!({ "p": p2 })).await;
    app.ok_as(&cat, like, json!({ "p": p1 })).await;
    let follow = "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }";
    app.ok_as(&ann, follow, json!({ "u": bob_id })).await;
    app.ok_as(&cat, follow, json!({ "u": ann_id })).await;

    let q = "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId deletedPostIds deletedCommentIds
        deletedPostCount deletedCommentCount detachedReferenceCount
        affectedUsers { id followerCount followingCount }
        affectedPosts { id likeCount commentCount }
        query { user(id: $id) { id } } } }";
    let d = app.ok_as(&ann, q, json!({ "id": ann_id })).await;
    let p = &d["deleteUser"];
    assert_eq!(p["deletedUserId"], json!(ann_id));
    assert_eq!(sorted(&p["deletedPostIds"]), sorted_strs(&[&p1, &p2]));
    assert_eq!(sorted(&p["deletedCommentIds"]), sorted_strs(&[&on_p1, &ann_on_q1, &ann_on_q1_again]));
    assert_eq!((p["deletedPostCount"].clone(), p["deletedCommentCount"].clone()), (json!(2), json!(3)));
    assert_eq!(p["detachedReferenceCount"], json!(3), "q2.likedBy, Bob's followers, Cat's following");

    let mut users: Vec<Value> = p["affectedUsers"].as_array().unwrap().clone();
    users.sort_by_key(|u| u["id"].as_str().unwrap().to_owned());
    let mut want_users = vec![
        json!({ "id": bob_id, "followerCount": 0, "followingCount": 0 }),
        json!({ "id": cat_id, "followerCount": 0, "followingCount": 0 }),
    ];
    want_users.sort_by_key(|u| u["id"].as_str().unwrap().to_owned());
    assert_eq!(users, want_users, "Dan ({dan_id}) was never touched and must not be listed");

    let mut posts: Vec<Value> = p["affectedPosts"].as_array().unwrap().clone();
    posts.sort_by_key(|u| u["id"].as_str().unwrap().to_owned());
    let mut want_posts = vec![
        json!({ "id": q1, "likeCount": 0, "commentCount": 1 }),
        json!({ "id": q2, "likeCount": 0, "commentCount": 0 }),
    ];
    want_posts.sort_by_key(|u| u["id"].as_str().unwrap().to_owned());
    assert_eq!(posts, want_posts, "deleted posts and the untouched {r1} are not listed");
    assert!(p["query"]["user"].is_null());
    app.assert_consistent().await;
}

/// followUser and unfollowUser return both users with fresh counts, idempotently.
#[tokio::test]
async fn follow_payload_has_both_sides() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (_bob, bob_id) = app.sign_up("Bob").await;
    let q = "mutation($u: ID!) { followUser(userId: $u) { __typename follower { id followingCount }
        followee { id followerCount } } }";
    for _ in 0..2 {
        let d = app.ok_as(&ann, q, json!({ "u": bob_id })).await;
        assert_eq!(
            d["followUser"],
            json!({ "__typename": "FollowPayload", "follower": { "id": ann_id, "followingCount": 1 },
                    "followee": { "id": bob_id, "followerCount": 1 } })
        );
    }
    let read = app.graphql("query($u: ID!) { user(id: $u) { followerCount } }", json!({ "u": bob_id })).await;
    assert_eq!(data(&read)["user"]["followerCount"], json!(1));
}
