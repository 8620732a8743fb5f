//! Deletion previews and plan tokens: the counts are exactly what the delete
//! reports, and a delete confirmed with a stale token deletes nothing.

use serde_json::{Value, json};

use crate::helpers::{TestApp, data, expect_error};

const USER_PREVIEW: &str =
    "query($id: ID!) { deleteUserPreview(id: $id) { postCount commentCount detachedReferenceCount planToken } }";
const POST_PREVIEW: &str =
    "query($id: ID!) { deletePostPreview(id: $id) { postCount commentCount detachedReferenceCount planToken } }";
const DELETE_USER: &str = "mutation($id: ID!, $plan: String) { deleteUser(id: $id, expectedPlan: $plan) {
    deletedPostCount deletedCommentCount detachedReferenceCount } }";
const DELETE_POST: &str =
    "mutation($id: ID!, $plan: String) { deletePost(id: $id, expectedPlan: $plan) { deletedCommentCount } }";

/// Ann with two posts, comments on both sides, likes and follows both ways.
async fn fixture(app: &TestApp) -> (String, String, String, String, String) {
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let p1 = app.create_post(&ann, "ann 1").await;
    app.create_post(&ann, "ann 2").await;
    let q1 = app.create_post(&bob, "bob 1").await;
    app.comment(&bob, &p1, "bob on ann").await;
    app.comment(&ann, &p1, "ann on ann").await;
    app.comment(&ann, &q1, "ann on bob").await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": q1 })).await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": p1 })).await;
    let follow = "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }";
    app.ok_as(&ann, follow, json!({ "u": bob_id })).await;
    app.ok_as(&bob, follow, json!({ "u": ann_id })).await;
    (ann, ann_id, bob, p1, q1)
}

fn plan(resp: &Value, field: &str) -> Value {
    data(resp)[field].clone()
}

/// The preview's counts are exactly what deleteUser then reports, the token
/// is stable while nothing changes, and the delete accepts it.
#[tokio::test]
async fn user_preview_matches_the_delete() {
    let app = TestApp::spawn().await;
    let (ann, ann_id, _, _, _) = fixture(&app).await;
    let first = plan(&app.graphql_as(&ann, USER_PREVIEW, json!({ "id": ann_id })).await, "deleteUserPreview");
    let again = plan(&app.graphql_as(&ann, USER_PREVIEW, json!({ "id": ann_id })).await, "deleteUserPreview");
    assert_eq!(first, again, "same store, same plan and token");
    // 2 posts; bob's and ann's comments on p1 plus ann's on q1; q1's likedBy and bob's two follow arrays (one doc).
    assert_eq!((first["postCount"].clone(), first["commentCount"].clone()), (json!(2), json!(3)));
    assert_eq!(first["detachedReferenceCount"], json!(2));

    let done = app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id, "plan": first["planToken"] })).await;
    assert_eq!(
        done["deleteUser"],
        json!({ "deletedPostCount": first["postCount"], "deletedCommentCount": first["commentCount"],
                "detachedReferenceCount": first["detachedReferenceCount"] })
    );
    app.assert_consistent().await;
}

/// A comment created between the preview and the delete makes the delete
/// refuse with PLAN_CHANGED and the fresh counts, changing nothing; the fresh
/// token then works.
#[tokio::test]
async fn a_changed_plan_refuses_the_delete() {
    let app = TestApp::spawn().await;
    let (ann, ann_id, bob, p1, _) = fixture(&app).await;
    let shown = plan(&app.graphql_as(&ann, USER_PREVIEW, json!({ "id": ann_id })).await, "deleteUserPreview");
    app.comment(&bob, &p1, "a late comment").await;
    let before = app.snapshot().await;
    let resp = app.graphql_as(&ann, DELETE_USER, json!({ "id": ann_id, "plan": shown["planToken"] })).await;
    expect_error(&resp, "CONFLICT");
    let ext = &resp["errors"][0]["extensions"];
    assert_eq!(ext["reason"], json!("PLAN_CHANGED"));
    assert_eq!(ext["commentCount"], json!(4), "the fresh count includes the late comment");
    assert_eq!(ext["postCount"], json!(2));
    assert_ne!(ext["planToken"], shown["planToken"]);
    assert_eq!(app.snapshot().await, before, "a refused delete changes nothing");

    let done = app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id, "plan": ext["planToken"] })).await;
    assert_eq!(done["deleteUser"]["deletedCommentCount"], json!(4));
    // Without expectedPlan the delete behaves as before.
    let post = app.create_post(&bob, "x").await;
    app.ok_as(&bob, DELETE_POST, json!({ "id": post })).await;
}

/// The post preview matches deletePost, and a new comment invalidates its token.
#[tokio::test]
async fn post_preview_matches_the_delete() {
    let app = TestApp::spawn().await;
    let (ann, _, bob, p1, _) = fixture(&app).await;
    let shown = plan(&app.graphql_as(&ann, POST_PREVIEW, json!({ "id": p1 })).await, "deletePostPreview");
    assert_eq!(
        (shown["postCount"].clone(), shown["commentCount"].clone(), shown["detachedReferenceCount"].clone()),
        (json!(1), json!(2), json!(1))
    );
    app.comment(&bob, &p1, "late").await;
    let resp = app.graphql_as(&ann, DELETE_POST, json!({ "id": p1, "plan": shown["planToken"] })).await;
    expect_error(&resp, "CONFLICT");
    assert_eq!(resp["errors"][0]["extensions"]["commentCount"], json!(3));
    let fresh = plan(&app.graphql_as(&ann, POST_PREVIEW, json!({ "id": p1 })).await, "deletePostPreview");
    let done = app.ok_as(&ann, DELETE_POST, json!({ "id": p1, "plan": fresh["planToken"] })).await;
    assert_eq!(done["deletePost"]["deletedCommentCount"], fresh["commentCount"]);
}

/// Previews have the delete's authorization: the owner only, NOT_FOUND for a missing id.
#[tokio::test]
async fn previews_are_authorized_like_the_delete() {
    let app = TestApp::spawn().await;
    let (ann, ann_id, bob, p1, _) = fixture(&app).await;
    expect_error(&app.graphql_as(&bob, USER_PREVIEW, json!({ "id": ann_id })).await, "FORBIDDEN");
    expect_error(&app.graphql_as(&bob, POST_PREVIEW, json!({ "id": p1 })).await, "FORBIDDEN");
    expect_error(&app.graphql(USER_PREVIEW, json!({ "id": ann_id })).await, "UNAUTHENTICATED");
    let missing = bson::oid::ObjectId::new().to_hex();
    expect_error(&app.graphql_as(&ann, USER_PREVIEW, json!({ "id": missing })).await, "NOT_FOUND");
    expect_error(&app.graphql_as(&ann, POST_PREVIEW, json!({ "id": missing })).await, "NOT_FOUND");
}

/// Previews, a FORBIDDEN preview and deletes refused for a stale token run
/// no write transaction at all: they plan in a read snapshot, so none of
/// them ever queues on (or holds) the embedded store's single writer.
#[tokio::test]
async fn previews_and_stale_deletes_never_take_the_writer() {
    let app = TestApp::spawn().await;
    let (ann, ann_id, bob, p1, _) = fixture(&app).await;
    let before = app.store.transactions();
    for _ in 0..3 {
        data(&app.graphql_as(&ann, USER_PREVIEW, json!({ "id": ann_id })).await);
        data(&app.graphql_as(&ann, POST_PREVIEW, json!({ "id": p1 })).await);
    }
    expect_error(&app.graphql_as(&bob, USER_PREVIEW, json!({ "id": ann_id })).await, "FORBIDDEN");
    expect_error(&app.graphql_as(&bob, POST_PREVIEW, json!({ "id": p1 })).await, "FORBIDDEN");
    let stale = app.graphql_as(&ann, DELETE_USER, json!({ "id": ann_id, "plan": "p1.stale" })).await;
    expect_error(&stale, "CONFLICT");
    assert_eq!(stale["errors"][0]["extensions"]["reason"], json!("PLAN_CHANGED"));
    expect_error(&app.graphql_as(&ann, DELETE_POST, json!({ "id": p1, "plan": "p1.stale" })).await, "CONFLICT");
    let after = app.store.transactions();
    assert_eq!(
        (after.committed, after.rolled_back),
        (before.committed, before.rolled_back),
        "no preview or refused delete ran a transaction"
    );
}

/// A flood of deletion previews of a big account (24 clients at once, more
/// than the preview pool runs and queues) never delays another user's
/// write on the embedded store's single writer: every `createPost`
/// meanwhile answers within 1 s, each preview is answered or refused with
/// RATE_LIMITED, and some are answered. (Embedded in both tiers: on MongoDB
/// there is no single writer in blogql, and tier 2's mongoeco is one Python
/// thread that serves previews and writes alike.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_flood_does_not_delay_other_writes() {
    let home = crate::helpers::StoreHome::embedded_in(tempfile::tempdir().expect("temp dir"));
    let app = TestApp::spawn_in(home, Some(crate::helpers::TEST_SECRET)).await;
    let (_, bob_id) = app.sign_up("Bob").await;
    let raw = app.snapshot().await;
    let hash = raw.users.iter().find(|u| u.id.to_hex() == bob_id).expect("bob").password_hash.clone();
    let posts = 5_000;
    let plan = blogql::seed::SeedPlan {
        users: 2,
        posts_per_user: posts,
        comments_per_post: 1,
        likes_per_post: 1,
        follows_per_user: 1,
        password_hash: hash,
    };
    let seeded = blogql::seed::seed(&app.store, &plan).await.expect("seed");
    let big = seeded.users[0].0;
    let email = app.snapshot().await.users.into_iter().find(|u| u.id == big).expect("seeded").email;
    let login = "mutation($i: LogInInput!) { logIn(input: $i) { token } }";
    let resp = app.graphql(login, json!({ "i": { "email": email, "password": "correct horse" } })).await;
    let big_token = crate::helpers::str_at(data(&resp), "/logIn/token");
    let (writer, _) = app.sign_up("Cy").await;

    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let flood: Vec<_> = (0..24)
        .map(|_| {
            let (client, url, token) = (app.client.clone(), app.url("/graphql"), big_token.clone());
            let body = json!({ "query": USER_PREVIEW, "variables": { "id": big.to_hex() } });
            tokio::spawn(async move {
                let (mut answered, mut limited) = (0u32, 0u32);
                while std::time::Instant::now() < until {
                    let resp: Value = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .expect("send")
                        .json()
                        .await
                        .expect("json");
                    match resp["errors"][0]["extensions"]["code"].as_str() {
                        None => answered += 1,
                        Some("RATE_LIMITED") => limited += 1,
                        Some(other) => panic!("a preview failed with {other}: {resp}"),
                    }
                }
                (answered, limited)
            })
        })
        .collect();
    let mut slowest = std::time::Duration::ZERO;
    let mut writes = 0;
    while std::time::Instant::now() < until {
        let started = std::time::Instant::now();
        app.create_post(&writer, "written during the flood").await;
        slowest = slowest.max(started.elapsed());
        writes += 1;
    }
    let (mut answered, mut limited) = (0, 0);
    for task in flood {
        let (a, l) = task.await.expect("flood task");
        (answered, limited) = (answered + a, limited + l);
    }
    eprintln!("preview flood: {answered} answered, {limited} RATE_LIMITED; {writes} writes, slowest {slowest:?}");
    assert!(answered > 0, "previews are served under the flood");
    assert!(slowest < std::time::Duration::from_secs(1), "a write waited {slowest:?} behind previews");
}
