//! Staged deletion: a cascade over `--cascade-budget-docs` is hidden in one
//! transaction and finished by the reaper; nobody sees a half-deleted user.
//! These run on both backends (tier 2 runs them on mongoeco, budget 2).

use std::collections::BTreeSet;

use blogql::cmd::{ReapDeletion, Reaped};
use blogql::store::Snapshot;
use serde_json::{Value, json};

use crate::helpers::{TestApp, data, expect_error, int_at, str_at};

/// Small enough that every fixture here is staged.
const BUDGET: usize = 2;

const DELETE_USER: &str = "mutation($id: ID!) { deleteUser(id: $id) {
    staged deletionJobId deletedPostIds deletedCommentIds deletedPostCount deletedCommentCount detachedReferenceCount } }";
const USER_PREVIEW: &str = "query($id: ID!) { deleteUserPreview(id: $id) { staged postCount commentCount planToken } }";

/// A server whose cascades over two documents are staged, with the reaper
/// off (`reap`: false) so a test sees the state between the tombstone and the end.
async fn app(reap: bool) -> TestApp {
    TestApp::spawn_with(|s| {
        s.store.cascade_budget_docs = BUDGET;
        s.store.reap_deletions = reap;
    })
    .await
}

/// The people and documents of a staged deletion of Ann.
struct World {
    ann: String,
    ann_id: String,
    bob: String,
    bob_id: String,
    cat_id: String,
    /// Ann's posts.
    p1: String,
    p2: String,
    /// Bob's post.
    q1: String,
    /// Bob's comment on Ann's post, Ann's comment on Bob's post, Cat's comment on Bob's post.
    bob_on_p1: String,
    ann_on_q1: String,
    cat_on_q1: String,
}

/// Ann (two posts) and Bob (one) comment and like on each other's posts and
/// follow each other; Cat follows Ann and comments on Bob's post.
async fn world(app: &TestApp) -> World {
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let (cat, cat_id) = app.sign_up("Cat").await;
    let p1 = app.create_post(&ann, "ann 1").await;
    let p2 = app.create_post(&ann, "ann 2").await;
    let q1 = app.create_post(&bob, "bob 1").await;
    let bob_on_p1 = app.comment(&bob, &p1, "bob on ann").await;
    let ann_on_q1 = app.comment(&ann, &q1, "ann on bob").await;
    let cat_on_q1 = app.comment(&cat, &q1, "cat on bob").await;
    let like = "mutation($p: ID!) { likePost(postId: $p) { id } }";
    app.ok_as(&ann, like, json!({ "p": q1 })).await;
    app.ok_as(&bob, like, json!({ "p": p1 })).await;
    let follow = "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }";
    app.ok_as(&ann, follow, json!({ "u": bob_id })).await;
    app.ok_as(&bob, follow, json!({ "u": ann_id })).await;
    app.ok_as(&cat, follow, json!({ "u": ann_id })).await;
    World { ann, ann_id, bob, bob_id, cat_id, p1, p2, q1, bob_on_p1, ann_on_q1, cat_on_q1 }
}

fn ids(v: &Value) -> BTreeSet<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect()
}

/// Runs every job to its end, as the reaper would.
async fn reap(app: &TestApp) {
    blogql::reaper::drain(&app.store, BUDGET).await.expect("reaping");
}

/// The store once the server's own reaper has no job left, or after 10 s.
async fn reaped_by_the_server(app: &TestApp) -> Snapshot {
    let mut snap = app.snapshot().await;
    for _ in 0..200 {
        if snap.jobs.is_empty() {
            // Without snapshot reads (mongoeco) a snapshot reads its
            // collections one after another, so one that saw the job gone
            // may have read the users before the last step deleted the
            // root: read once more, wholly after the job was seen gone.
            return app.snapshot().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        snap = app.snapshot().await;
    }
    snap
}

/// The staged payload reports the plan (what the preview showed) and a job;
/// the preview says it would be staged.
#[tokio::test]
async fn the_payload_is_the_plan_and_names_the_job() {
    let app = app(false).await;
    let w = world(&app).await;
    let preview = app.ok_as(&w.ann, USER_PREVIEW, json!({ "id": w.ann_id })).await;
    assert_eq!(preview["deleteUserPreview"]["staged"], json!(true));
    let done = app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    let d = &done["deleteUser"];
    assert_eq!(d["staged"], json!(true));
    assert!(d["deletionJobId"].is_string(), "{d}");
    assert_eq!(ids(&d["deletedPostIds"]), BTreeSet::from([w.p1.clone(), w.p2.clone()]));
    assert_eq!(ids(&d["deletedCommentIds"]), BTreeSet::from([w.bob_on_p1.clone(), w.ann_on_q1.clone()]));
    assert_eq!(d["deletedPostCount"], preview["deleteUserPreview"]["postCount"]);
    assert_eq!(d["deletedCommentCount"], preview["deleteUserPreview"]["commentCount"]);
    // q1's likedBy, and Bob's and Cat's follow arrays.
    assert_eq!(d["detachedReferenceCount"], json!(3));
    assert_eq!(app.snapshot().await.jobs.len(), 1, "the job is durable");
    app.assert_consistent().await;
}

/// Right after a staged deleteUser (nothing reaped yet), every read shape
/// finds nothing of the user, its posts, the comments on them or its
/// comments, and no count includes them; then the reaper deletes them.
#[tokio::test]
async fn every_read_shape_finds_nothing_right_after() {
    let app = app(false).await;
    let w = world(&app).await;
    app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    assert_hidden(&app, &w).await;
    app.assert_consistent().await;

    reap(&app).await;
    let snap = app.snapshot().await;
    assert!(snap.jobs.is_empty());
    let gone = [&w.ann_id, &w.p1, &w.p2, &w.bob_on_p1, &w.ann_on_q1];
    let stored = stored_ids(&snap);
    assert!(gone.iter().all(|id| !stored.contains(*id)), "the reaper deleted everything the plan named");
    assert_hidden(&app, &w).await;
    app.assert_consistent().await;
}

fn stored_ids(snap: &Snapshot) -> BTreeSet<String> {
    let users = snap.users.iter().map(|u| u.id.to_hex());
    let posts = snap.posts.iter().map(|p| p.id.to_hex());
    users.chain(posts).chain(snap.comments.iter().map(|c| c.id.to_hex())).collect()
}

/// Every list and count around Ann's documents, as Bob sees them.
const LISTS: &str = "query($a: ID!, $b: ID!, $q: ID!, $cat: ID!) {
        users(first: 10) { totalCount edges { node { id } } }
        posts(first: 10) { totalCount edges { node { id } } }
        byAnn: posts(authorId: $a) { totalCount edges { node { id } } }
        bob: user(id: $b) { postCount followerCount followingCount
            followers(first: 10) { totalCount edges { node { id } } }
            following(first: 10) { totalCount edges { node { id } } }
            comments(first: 10) { totalCount edges { node { id } } } }
        cat: user(id: $cat) { followingCount following(first: 10) { totalCount edges { node { id } } } }
        q1: post(id: $q) { commentCount likeCount
            comments(first: 10) { totalCount edges { node { id author { id } } } }
            likedBy(first: 10) { totalCount edges { node { id } } } } }";

/// What Bob, Cat and Ann's old token see after Ann's deletion, staged or finished.
async fn assert_hidden(app: &TestApp, w: &World) {
    let by_id = "query($u: ID!, $p: ID!, $c: ID!, $d: ID!) {
        user(id: $u) { id } post(id: $p) { id } comment(id: $c) { id } mine: comment(id: $d) { id }
        node(id: $u) { id } nodes(ids: [$u, $p, $c, $d]) { id } }";
    let vars = json!({ "u": w.ann_id, "p": w.p1, "c": w.bob_on_p1, "d": w.ann_on_q1 });
    let got = app.ok_as(&w.bob, by_id, vars).await;
    assert_eq!(
        got,
        json!({ "user": null, "post": null, "comment": null, "mine": null, "node": null, "nodes": [null, null, null, null] })
    );

    let lists = LISTS;
    let vars = json!({ "a": w.ann_id, "b": w.bob_id, "q": w.q1, "cat": w.cat_id });
    let got = app.ok_as(&w.bob, lists, vars).await;
    let node_ids = |pointer: &str| -> BTreeSet<String> {
        got.pointer(pointer)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| e["node"]["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(node_ids("/users/edges"), BTreeSet::from([w.bob_id.clone(), w.cat_id.clone()]));
    assert_eq!(int_at(&got, "/users/totalCount"), 2);
    assert_eq!(node_ids("/posts/edges"), BTreeSet::from([w.q1.clone()]));
    assert_eq!(int_at(&got, "/posts/totalCount"), 1);
    assert_eq!((int_at(&got, "/byAnn/totalCount"), node_ids("/byAnn/edges").len()), (0, 0));
    for field in ["followerCount", "followingCount", "followers/totalCount", "following/totalCount"] {
        assert_eq!(int_at(&got, &format!("/bob/{field}")), 0, "bob {field}");
    }
    assert!(node_ids("/bob/followers/edges").is_empty() && node_ids("/bob/following/edges").is_empty());
    assert_eq!(int_at(&got, "/bob/postCount"), 1);
    assert_eq!(int_at(&got, "/bob/comments/totalCount"), 0, "Bob's comment was on Ann's post");
    assert!(node_ids("/bob/comments/edges").is_empty());
    assert_eq!((int_at(&got, "/cat/followingCount"), int_at(&got, "/cat/following/totalCount")), (0, 0));
    assert_eq!(int_at(&got, "/q1/commentCount"), 1, "only Cat's comment is left on Bob's post");
    assert_eq!(int_at(&got, "/q1/comments/totalCount"), 1);
    assert_eq!(node_ids("/q1/comments/edges"), BTreeSet::from([w.cat_on_q1.clone()]));
    assert_eq!((int_at(&got, "/q1/likeCount"), int_at(&got, "/q1/likedBy/totalCount")), (0, 0));

    // Ann's token no longer authenticates, and her email no longer logs in.
    let write = app.graphql_as(&w.ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": w.q1 })).await;
    expect_error(&write, "UNAUTHENTICATED");
    let viewer = app.graphql_as(&w.ann, "{ viewer { id } }", json!({})).await;
    assert_eq!(data(&viewer)["viewer"], Value::Null);
    let log_in = "mutation { logIn(input: { email: \"ann@example.com\", password: \"correct horse\" }) { token } }";
    expect_error(&app.graphql(log_in, json!({})).await, "UNAUTHENTICATED");
}

/// No write can create a reference to a staged user, its posts or its
/// comments: commenting, liking, following and deleting them are `NOT_FOUND`.
#[tokio::test]
async fn no_new_reference_to_a_staged_user() {
    let app = app(false).await;
    let w = world(&app).await;
    app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    let before = app.snapshot().await;
    let attempts = [
        ("mutation($x: ID!) { createComment(input: { postId: $x, body: \"late\" }) { id } }", &w.p2),
        ("mutation($x: ID!) { likePost(postId: $x) { id } }", &w.p1),
        ("mutation($x: ID!) { unlikePost(postId: $x) { id } }", &w.p1),
        ("mutation($x: ID!) { followUser(userId: $x) { followee { id } } }", &w.ann_id),
        ("mutation($x: ID!) { deleteComment(id: $x) { deletedCommentId } }", &w.bob_on_p1),
    ];
    for (mutation, id) in attempts {
        let resp = app.graphql_as(&w.bob, mutation, json!({ "x": id })).await;
        expect_error(&resp, "NOT_FOUND");
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");
}

/// A staged deletePost hides the post and its comments at once, the
/// author's postCount drops, and the reaper then deletes them.
#[tokio::test]
async fn a_staged_post_deletion() {
    let app = app(false).await;
    let w = world(&app).await;
    let extra = app.comment(&w.bob, &w.q1, "bob on bob").await;
    let done = app
        .ok_as(
            &w.bob,
            "mutation($id: ID!) { deletePost(id: $id) { staged deletionJobId deletedCommentIds author { postCount } } }",
            json!({ "id": w.q1 }),
        )
        .await;
    let d = &done["deletePost"];
    assert_eq!((d["staged"].clone(), d["author"]["postCount"].clone()), (json!(true), json!(0)));
    assert_eq!(ids(&d["deletedCommentIds"]).len(), 3);
    let reads = "query($q: ID!, $c: ID!, $b: ID!) { post(id: $q) { id } comment(id: $c) { id }
        posts(first: 10) { totalCount } bob: user(id: $b) { postCount posts(first: 5) { totalCount edges { node { id } } }
        comments(first: 5) { totalCount } } }";
    let got = app.ok_as(&w.ann, reads, json!({ "q": w.q1, "c": extra, "b": w.bob_id })).await;
    assert_eq!(got["post"], Value::Null);
    assert_eq!(got["comment"], Value::Null);
    assert_eq!(int_at(&got, "/posts/totalCount"), 2, "Ann's two");
    assert_eq!(int_at(&got, "/bob/postCount"), 0);
    assert_eq!(int_at(&got, "/bob/posts/totalCount"), 0);
    assert_eq!(got["bob"]["posts"]["edges"], json!([]));
    assert_eq!(int_at(&got, "/bob/comments/totalCount"), 1, "only Bob's comment on Ann's post is left");
    app.assert_consistent().await;

    reap(&app).await;
    let snap = app.snapshot().await;
    assert!(snap.jobs.is_empty() && snap.posts.iter().all(|p| p.id.to_hex() != w.q1));
    assert!(snap.comments.iter().all(|c| c.post.to_hex() != w.q1));
    app.assert_consistent().await;
}

/// A page whose range is full of hidden documents is refilled from beyond
/// them: `first: 3` over a staged author's 12 newer posts still answers 3.
#[tokio::test]
async fn pages_are_refilled_past_hidden_documents() {
    let app = app(false).await;
    let (bob, _) = app.sign_up("Bob").await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let mut bobs = Vec::new();
    for i in 0..4 {
        bobs.push(app.create_post(&bob, &format!("bob {i}")).await);
    }
    for i in 0..12 {
        app.create_post(&ann, &format!("ann {i}")).await;
    }
    app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id })).await;
    let page = "query($after: String) { posts(first: 3, after: $after) { totalCount edges { node { id } }
        pageInfo { hasNextPage endCursor } } }";
    let first = app.ok_as(&bob, page, json!({})).await;
    let edges = |v: &Value| -> Vec<String> {
        v["posts"]["edges"].as_array().into_iter().flatten().map(|e| str_at(e, "/node/id")).collect()
    };
    let newest: Vec<String> = bobs.iter().rev().cloned().collect();
    assert_eq!(edges(&first), newest[..3].to_vec());
    assert_eq!(
        (int_at(&first, "/posts/totalCount"), first["posts"]["pageInfo"]["hasNextPage"].clone()),
        (4, json!(true))
    );
    let next = app.ok_as(&bob, page, json!({ "after": first["posts"]["pageInfo"]["endCursor"] })).await;
    assert_eq!(edges(&next), newest[3..].to_vec());
    assert_eq!(next["posts"]["pageInfo"]["hasNextPage"], json!(false));
}

/// A page passes over hidden documents on the index (the embedded store's
/// keys, MongoDB's query filter): with 300 hidden posts at the head of
/// `posts`, `first: 3` costs the same round trips as with none.
#[tokio::test]
async fn hidden_heads_are_skipped_on_the_index() {
    let app = app(false).await;
    let (bob, _) = app.sign_up("Bob").await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let mut bobs = Vec::new();
    for i in 0..3 {
        bobs.push(app.create_post(&bob, &format!("bob {i}")).await);
    }
    for i in 0..300 {
        app.create_post(&ann, &format!("ann {i}")).await;
    }
    let page = "{ posts(first: 3) { edges { node { id } } } }";
    let before = app.store.round_trips();
    app.ok_as(&bob, page, json!({})).await;
    let baseline = app.store.round_trips() - before;
    app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id })).await;
    let before = app.store.round_trips();
    let got = app.ok_as(&bob, page, json!({})).await;
    let spent = app.store.round_trips() - before;
    let ids: Vec<String> =
        got["posts"]["edges"].as_array().into_iter().flatten().map(|e| str_at(e, "/node/id")).collect();
    assert_eq!(ids, bobs.iter().rev().cloned().collect::<Vec<_>>(), "Bob's posts, newest first");
    assert_eq!(spent, baseline, "300 hidden posts at the head cost no extra round trip");
}

/// Comment lists pass over a staged deletion's comments on the index too:
/// 100 hidden comments by Ann at the head of Bob's post's comments (and of
/// Bob's own list, none hidden) cost no refill: the one extra round trip
/// reads which hidden comments still exist, to correct the post's `commentCount`.
#[tokio::test]
async fn hidden_comment_heads_are_skipped_on_the_index() {
    let app = app(false).await;
    let (bob, _) = app.sign_up("Bob").await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let post = app.create_post(&bob, "bob's").await;
    let mine = app.comment(&bob, &post, "bob first").await;
    for i in 0..100 {
        app.comment(&ann, &post, &format!("ann {i}")).await;
    }
    let page = "query($p: ID!) { node(id: $p) { ... on Post { comments(first: 2) { edges { node { id } } } } } }";
    let vars = json!({ "p": post });
    let before = app.store.round_trips();
    app.ok_as(&bob, page, vars.clone()).await;
    let baseline = app.store.round_trips() - before;
    app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id })).await;
    let before = app.store.round_trips();
    let got = app.ok_as(&bob, page, vars).await;
    let spent = app.store.round_trips() - before;
    let ids: Vec<String> =
        got["node"]["comments"]["edges"].as_array().into_iter().flatten().map(|e| str_at(e, "/node/id")).collect();
    assert_eq!(ids, vec![mine], "only Bob's comment is left");
    assert_eq!(spent, baseline + 1, "the commentCount correction, and no refill for 100 hidden comments");
}

/// Comments racing a staged deleteUser on the user's posts either land
/// before the tombstone (and are in the plan, so reaped) or are refused; no
/// orphan is left once the reaper is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_comment_racing_the_tombstone_leaves_no_orphan() {
    let app = app(true).await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let mut posts = Vec::new();
    for i in 0..5 {
        posts.push(app.create_post(&ann, &format!("ann {i}")).await);
    }
    let comment = "mutation($p: ID!) { createComment(input: { postId: $p, body: \"racing\" }) { id } }";
    let mut racers = Vec::new();
    for round in 0..40 {
        let (url, client, bob, post) =
            (app.url("/graphql"), reqwest::Client::new(), bob.clone(), posts[round % posts.len()].clone());
        racers.push(tokio::spawn(async move {
            let body = json!({ "query": comment, "variables": { "p": post } });
            let resp: Value = client.post(url).bearer_auth(bob).json(&body).send().await?.json().await?;
            Ok::<Value, reqwest::Error>(resp)
        }));
    }
    let deleted = app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id })).await;
    assert_eq!(deleted["deleteUser"]["staged"], json!(true));
    let (mut landed, mut refused) = (0, 0);
    for racer in racers {
        let resp = racer.await.expect("join").expect("http");
        if resp.get("errors").is_some() {
            expect_error(&resp, "NOT_FOUND");
            refused += 1;
        } else {
            landed += 1;
        }
    }
    println!("{landed} comments landed before the tombstone, {refused} were refused");
    // The server's reaper finishes the job; wait for it.
    let snap = reaped_by_the_server(&app).await;
    assert!(snap.jobs.is_empty(), "the reaper finished");
    assert!(snap.comments.is_empty(), "every comment was on Ann's posts, so every one went with them");
    assert!(snap.posts.is_empty());
    app.assert_consistent().await;
}

/// `blogql check` treats a job in progress as consistent, and reports one
/// whose reaper made no progress for ten minutes.
#[tokio::test]
async fn check_reports_a_stuck_job_only() {
    let app = app(false).await;
    let w = world(&app).await;
    app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    let mut snap = app.snapshot().await;
    assert!(blogql::check::violations(&snap).is_empty(), "in progress is consistent");
    let job = &mut snap.jobs[0];
    job.progress_at =
        bson::DateTime::from_millis(job.progress_at.timestamp_millis() - blogql::check::STUCK_AFTER_MS - 1);
    let found = blogql::check::violations(&snap);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("no progress"), "{found:?}");
}

/// A server restarted over a store with a job in progress hides its
/// documents from the first request and its reaper finishes the job.
#[tokio::test]
async fn a_restart_resumes_the_job() {
    let app = app(false).await;
    let w = world(&app).await;
    app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    let home = app.stop().await;
    let app = TestApp::spawn_in(home, Some(crate::helpers::TEST_SECRET)).await;
    let got = app
        .ok_as(&w.bob, "query($u: ID!) { user(id: $u) { id } users { totalCount } }", json!({ "u": w.ann_id }))
        .await;
    assert_eq!((got["user"].clone(), int_at(&got, "/users/totalCount")), (Value::Null, 2));
    let snap = reaped_by_the_server(&app).await;
    assert!(snap.jobs.is_empty(), "the restarted server's reaper finished the job");
    assert!(snap.users.iter().all(|u| u.id.to_hex() != w.ann_id));
    app.assert_consistent().await;
}

/// Each reaper step (here of at most 3 documents) leaves what readers see
/// exactly as it was at the tombstone, and the store consistent for them:
/// surviving documents change under the reads, never in front of them.
#[tokio::test]
async fn each_reaper_step_leaves_the_readers_view_unchanged() {
    let app = app(false).await;
    let w = world(&app).await;
    app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    let vars = json!({ "a": w.ann_id, "b": w.bob_id, "q": w.q1, "cat": w.cat_id });
    let view = app.ok_as(&w.bob, LISTS, vars.clone()).await;
    let job = app.snapshot().await.jobs[0].id;
    let mut steps = 0;
    while let Reaped::Progress(n) = app.store.run(ReapDeletion { job, budget: 3 }).await.expect("step") {
        steps += 1;
        assert!(n > 0);
        assert_eq!(app.ok_as(&w.bob, LISTS, vars.clone()).await, view, "after step {steps}");
        app.assert_consistent().await;
    }
    // 2 comments one at a time, 2 posts, 1 liked post, 2 follow arrays.
    assert_eq!(steps, 5, "comments, comments, posts, liked, follows");
    assert_eq!(app.ok_as(&w.bob, LISTS, vars).await, view, "after the last step");
    let snap = app.snapshot().await;
    assert!(snap.jobs.is_empty() && snap.users.iter().all(|u| u.id.to_hex() != w.ann_id));
    assert!(blogql::check::violations(&snap).is_empty());
}

/// `check --repair` plans no fix for documents under a job, and `--apply`
/// refuses (`CONFLICT`) until the reaper is done, changing nothing.
#[tokio::test]
async fn repair_waits_for_staged_deletions() {
    let app = app(false).await;
    let w = world(&app).await;
    app.ok_as(&w.ann, DELETE_USER, json!({ "id": w.ann_id })).await;
    let before = app.snapshot().await;
    let fixes = blogql::repair::plan(&before);
    assert!(fixes.is_empty(), "nothing under the job is a fix: {fixes:?}");
    let refused = blogql::repair::apply(&app.store, &fixes, BUDGET).await;
    assert!(matches!(refused, Err(blogql::error::Error::Conflict(_))), "{refused:?}");
    assert_eq!(app.snapshot().await, before);
    reap(&app).await;
    assert_eq!(blogql::repair::apply(&app.store, &[], BUDGET).await.expect("after the reaper"), 0);
}
