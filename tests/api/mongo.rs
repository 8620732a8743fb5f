//! MongoDB-only tests: command counts, failpoints, transient retries and the
//! startup probe. They need a MongoDB deployment, so they are `#[ignore]`d
//! (and listed as ignored, by name) in a plain `cargo test`; `.ci/run` runs
//! them against mongoeco (tier 2). `tier3_*` tests need a real replica set.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::doc;
use serde_json::{Value, json};

use crate::helpers::{MongoHandle, TEST_SECRET, TestApp, data, expect_error, int_at, mongodb_uri};

const DELETE_USER: &str =
    "mutation($id: ID!) { deleteUser(id: $id) { deletedPostCount deletedCommentCount detachedReferenceCount } }";

/// A test app on MongoDB; a MongoDB test run without one fails loudly instead of passing.
async fn mongo_app() -> (TestApp, MongoHandle) {
    assert!(mongodb_uri().is_some(), "this test needs MONGODB_URI pointing at a MongoDB deployment");
    // No reaper: its poll would add its own `find` to the command log these tests read.
    let mut app = TestApp::spawn_with(|s| s.store.reap_deletions = false).await;
    let mongo = app.mongo.take().expect("MONGODB_URI is set, so the app runs on MongoDB");
    (app, mongo)
}

/// The `failCommand` failpoint is one per server, and turning it off ends any
/// test's armed failure, so tests that use it take turns.
static FAILPOINT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Arms mongoeco's or mongod's `failCommand` failpoint for the next `command` on `coll` of this test's database.
async fn fail_next(mongo: &MongoHandle, command: &str, coll: &str, code: i32, labels: &[&str]) {
    let namespace = format!("{}.{coll}", mongo.db.name());
    let reply = mongo
        .db
        .client()
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": { "times": 1 },
            "data": { "failCommands": [command], "errorCode": code, "errorLabels": labels, "namespace": namespace },
        })
        .await;
    reply.expect("configureFailPoint");
}

async fn failpoint_off(mongo: &MongoHandle) {
    let off = doc! { "configureFailPoint": "failCommand", "mode": "off" };
    mongo.db.client().database("admin").run_command(off).await.expect("failpoint off");
}

/// A command name and the collection it targets.
type Target = (&'static str, &'static str);

/// Runs deleteUser as Ann. For a failpoint on `find` on `users`, the command
/// runs straight on the store: over HTTP the first such `find` is the token
/// check's viewer load, outside the transaction, and the failpoint must hit
/// the cascade's own read of the user inside it. Returns the GraphQL answer,
/// or for the direct run its outcome in the same shape.
async fn delete_ann(app: &TestApp, target: Target, ann: &str, ann_id: &str) -> Value {
    if target != ("find", "users") {
        return app.graphql_as(ann, DELETE_USER, json!({ "id": ann_id })).await;
    }
    let id = blogql::model::UserId::parse(ann_id).expect("an id");
    let cmd = blogql::cmd::DeleteUser { actor: id, id, expected_plan: None, budget: usize::MAX };
    match app.store.run(cmd).await {
        Ok(d) => json!({ "data": { "deleteUser": {
            "deletedPostCount": d.posts.len(), "deletedCommentCount": d.comments.len(), "detachedReferenceCount": d.detached,
        } } }),
        Err(err) => json!({ "errors": [{ "message": "internal server error",
            "extensions": { "code": blogql::graphql::error::code(&err).as_str() } }] }),
    }
}

/// Every distinct (command, collection) of the deleteUser cascade, in the order it sends them.
const DELETE_USER_COMMANDS: [Target; 8] = [
    ("find", "users"),
    ("aggregate", "posts"),
    ("delete", "comments"),
    ("aggregate", "comments"),
    ("update", "posts"),
    ("delete", "posts"),
    ("update", "users"),
    ("delete", "users"),
];

/// A user whose deletion fans out: `posts` posts, comments on them by others,
/// the user's own comments elsewhere, likes and follows both ways.
async fn fan_out(app: &TestApp, posts: usize, comments_elsewhere: bool, likes: bool) -> (String, String) {
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let bobs = app.create_post(&bob, "bob's").await;
    for i in 0..posts {
        let post = app.create_post(&ann, &format!("ann {i}")).await;
        if i % 10 == 0 {
            app.comment(&bob, &post, "bob was here").await;
        }
    }
    if comments_elsewhere {
        app.comment(&ann, &bobs, "ann was here").await;
    }
    if likes {
        app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": bobs })).await;
    }
    app.ok_as(&ann, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": bob_id })).await;
    app.ok_as(&bob, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": ann_id })).await;
    (ann, ann_id)
}

/// The commands of the attempt that committed: mongoeco serialises commits through
/// one global version, so a test running in parallel can force a retry, and an
/// aborted or conflicted attempt is not the cost of the cascade.
async fn commands_for_delete_user(posts: usize) -> Vec<String> {
    let (app, mongo) = mongo_app().await;
    let (ann, ann_id) = fan_out(&app, posts, true, true).await;
    mongo.commands.take_names();
    let d = app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id })).await;
    let names = mongo.commands.take_names();
    assert_eq!(int_at(&d, "/deleteUser/deletedPostCount"), posts as i64);
    app.assert_consistent().await;
    let end = names.iter().rposition(|n| n == "commitTransaction").expect("a commit");
    // The request's first command is the token check's viewer `find`, before the transaction.
    assert_eq!(names.first().map(String::as_str), Some("find"), "{names:?}");
    let start =
        names[..end].iter().rposition(|n| n == "commitTransaction" || n == "abortTransaction").map_or(1, |i| i + 1);
    names[start..=end].to_vec()
}

/// deleteUser sends exactly the same commands for a user with 3 posts and with 300.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_delete_user_command_count_is_independent_of_fan_out() {
    let small_names = commands_for_delete_user(3).await;
    let large_names = commands_for_delete_user(300).await;
    assert_eq!(small_names, large_names, "3 posts vs 300 posts");
    let small = small_names.len();
    // find user; the plan (post ids, comment ids on them and by the user, liked
    // posts, follows), which decides whether to stage; ids then delete of the comments
    // on the posts; the user's own comments with their posts, then their delete; one
    // update for the counters; ids then delete of the posts; ids then pull of likes; ids
    // then pull of follows; delete user; the event outbox's next number and entry
    // (subscriptions); commit. The id reads are what the payload reports
    // (`deletedCommentIds`, ...).
    assert_eq!(small, 21, "{small_names:?}");
}

/// Each (command, collection) of the deleteUser and deletePost cascades, failed in
/// turn, aborts the whole transaction: the store is unchanged and the client sees
/// only a generic INTERNAL_SERVER_ERROR.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_failpoint_on_each_cascade_command_rolls_back() {
    let _turn = FAILPOINT.lock().await;
    // Fixtures chosen so that every command is the first of its kind on its collection:
    // (posts, comments elsewhere, likes) and the commands that fixture reaches first.
    let fixtures: [(usize, bool, bool, &[Target]); 3] = [
        (3, true, true, &DELETE_USER_COMMANDS),
        // No posts: the first comment delete is the one for the user's own comments.
        (0, true, true, &[("delete", "comments")]),
        // No comments elsewhere: the first posts update is the likedBy pull.
        (2, false, true, &[("update", "posts")]),
    ];
    for (posts, elsewhere, likes, commands) in fixtures {
        let (app, mongo) = mongo_app().await;
        let (ann, ann_id) = fan_out(&app, posts, elsewhere, likes).await;
        let before = app.snapshot().await;
        for (command, coll) in commands {
            fail_next(&mongo, command, coll, 8, &[]).await;
            let resp = delete_ann(&app, (*command, *coll), &ann, &ann_id).await;
            failpoint_off(&mongo).await;
            let message = expect_error(&resp, "INTERNAL_SERVER_ERROR");
            assert_eq!(message, "internal server error", "{command} on {coll}");
            let text = resp.to_string().to_lowercase();
            assert!(!text.contains("failpoint") && !text.contains("mongo"), "driver text leaked: {resp}");
            assert_eq!(app.snapshot().await, before, "deleteUser changed the store when {command} on {coll} failed");
        }
        app.ok_as(&ann, DELETE_USER, json!({ "id": ann_id })).await;
        app.assert_consistent().await;
    }

    let (app, mongo) = mongo_app().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "p").await;
    app.comment(&bob, &post, "c").await;
    let before = app.snapshot().await;
    let q = "mutation($id: ID!) { deletePost(id: $id) { deletedCommentCount } }";
    for (command, coll) in
        [("find", "posts"), ("aggregate", "comments"), ("delete", "comments"), ("delete", "posts"), ("update", "users")]
    {
        fail_next(&mongo, command, coll, 8, &[]).await;
        let resp = app.graphql_as(&ann, q, json!({ "id": post })).await;
        failpoint_off(&mongo).await;
        expect_error(&resp, "INTERNAL_SERVER_ERROR");
        assert_eq!(app.snapshot().await, before, "deletePost changed the store when {command} on {coll} failed");
    }
}

/// A transient WriteConflict on any command is retried by the transaction API and
/// the mutation takes effect exactly once.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_transient_failures_are_retried_exactly_once() {
    let _turn = FAILPOINT.lock().await;
    for (command, coll) in DELETE_USER_COMMANDS {
        let (app, mongo) = mongo_app().await;
        let (ann, ann_id) = fan_out(&app, 3, true, true).await;
        mongo.commands.take_names();
        fail_next(&mongo, command, coll, 112, &["TransientTransactionError"]).await;
        let resp = delete_ann(&app, (command, coll), &ann, &ann_id).await;
        failpoint_off(&mongo).await;
        let d = data(&resp);
        assert_eq!(
            d["deleteUser"],
            json!({ "deletedPostCount": 3, "deletedCommentCount": 2, "detachedReferenceCount": 2 }),
            "after a transient {command} on {coll}"
        );
        // The failed attempt was aborted and run again. (mongoeco may add commit-time
        // conflicts with tests running in parallel: more commits, never more effects.)
        let names = mongo.commands.take_names();
        assert!(count(&names, "abortTransaction") >= 1, "{command} on {coll}: {names:?}");
        assert!(count(&names, "commitTransaction") >= 1, "{command} on {coll}: {names:?}");
        let snap = app.snapshot().await;
        assert_eq!((snap.users.len(), snap.posts.len(), snap.comments.len()), (1, 1, 0));
        assert_eq!(snap.posts[0].comment_count, 0);
        app.assert_consistent().await;
    }

    // createComment: the counter must rise by exactly one despite the retry.
    for (command, coll) in [("find", "posts"), ("insert", "comments"), ("update", "posts"), ("update", "users")] {
        let (app, mongo) = mongo_app().await;
        let (ann, _) = app.sign_up("Ann").await;
        let post = app.create_post(&ann, "p").await;
        fail_next(&mongo, command, coll, 112, &["TransientTransactionError"]).await;
        app.comment(&ann, &post, "once").await;
        failpoint_off(&mongo).await;
        let snap = app.snapshot().await;
        assert_eq!(snap.comments.len(), 1, "after a transient {command} on {coll}");
        assert_eq!(snap.posts[0].comment_count, 1, "after a transient {command} on {coll}");
        app.assert_consistent().await;
    }
}

fn count(names: &[String], name: &str) -> usize {
    names.iter().filter(|n| n.as_str() == name).count()
}

/// Runs the real binary against `uri` and returns (exit success, stderr, elapsed).
/// A binary still running after 60 s is killed and reported as a success
/// (it started serving), which fails the tests that expect it to refuse.
fn run_binary(uri: &str) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_blogql"))
        .env("MONGODB_URI", uri)
        .env("BLOGQL_JWT_SECRET", TEST_SECRET)
        .env("BLOGQL_BIND", "127.0.0.1:0")
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run blogql");
    while started.elapsed() < Duration::from_secs(60) {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            return (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    (true, String::from_utf8_lossy(&out.stderr).into_owned(), started.elapsed())
}

/// A deployment that refuses transactions stops the server with the replica-set recipe.
#[test]
#[ignore = "tier 2: needs BLOGQL_TEST_STANDALONE_URI (a mongoeco started with --standalone; .ci/run provides it)"]
fn mongo_startup_probe_refuses_a_deployment_without_transactions() {
    let uri = std::env::var("BLOGQL_TEST_STANDALONE_URI").expect("BLOGQL_TEST_STANDALONE_URI");
    let (ok, stderr, _) = run_binary(&uri);
    assert!(!ok, "blogql started on a deployment without transactions");
    assert!(stderr.contains("replica set"), "{stderr}");
    assert!(stderr.contains("--replSet rs0") && stderr.contains("rs.initiate()"), "{stderr}");
}

/// An unreachable MongoDB fails startup with a clear message within the selection timeout.
#[test]
fn unreachable_mongodb_fails_fast_and_clearly() {
    let (ok, stderr, elapsed) = run_binary("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1500&connectTimeoutMS=500");
    assert!(!ok);
    assert!(stderr.contains("cannot reach MongoDB"), "{stderr}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

/// Whether the deployment is a real MongoDB server rather than mongoeco.
async fn assert_real_server(mongo: &MongoHandle) {
    let info = mongo.db.run_command(doc! { "buildInfo": 1 }).await.expect("buildInfo");
    assert_ne!(info.get_str("gitVersion").ok(), Some("mongoeco"), "tier-3 tests need a real MongoDB replica set");
}

/// Concurrent likes on one post force real WriteConflicts; every one is retried and lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "tier 3: needs a real MongoDB replica set in MONGODB_URI (docker compose up -d; see README)"]
async fn tier3_write_conflicts_are_retried_to_a_correct_result() {
    let (app, mongo) = mongo_app().await;
    assert_real_server(&mongo).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "hot").await;
    let mut tokens = Vec::new();
    for i in 0..16 {
        tokens.push(app.sign_up(&format!("Fan{i}")).await.0);
    }
    mongo.commands.take_names();
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for token in tokens {
        let (app, post) = (Arc::clone(&app), post.clone());
        tasks.push(tokio::spawn(async move {
            let resp =
                app.graphql_as(&token, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": post })).await;
            data(&resp).clone()
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let names = mongo.commands.take_names();
    let (aborts, commits) = (count(&names, "abortTransaction"), count(&names, "commitTransaction"));
    assert!(aborts + commits > 16, "no conflict was forced: {commits} commits, {aborts} aborts");
    let snap = app.snapshot().await;
    assert_eq!(snap.posts[0].liked_by.len(), 16);
    app.assert_consistent().await;
}

/// createPost racing deleteUser leaves zero orphans under real MongoDB isolation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "tier 3: needs a real MongoDB replica set in MONGODB_URI (docker compose up -d; see README)"]
async fn tier3_create_post_racing_delete_user_leaves_no_orphans() {
    let (app, mongo) = mongo_app().await;
    assert_real_server(&mongo).await;
    let app = Arc::new(app);
    for round in 0..20 {
        let (token, id) = app.sign_up(&format!("Racer{round}")).await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (app, token) = (Arc::clone(&app), token.clone());
            tasks.push(tokio::spawn(async move {
                let q = "mutation($t: String!) { createPost(input: {title: $t, body: \"\"}) { id } }";
                app.graphql_as(&token, q, json!({ "t": format!("p{i}") })).await
            }));
        }
        let (app2, token2) = (Arc::clone(&app), token.clone());
        let deleter = tokio::spawn(async move { app2.graphql_as(&token2, DELETE_USER, json!({ "id": id })).await });
        for task in tasks {
            let resp: Value = task.await.expect("task");
            if resp.get("errors").is_some() {
                // Losing the race is fine; it must be a clean auth error, not an orphan.
                expect_error(&resp, "UNAUTHENTICATED");
            }
        }
        data(&deleter.await.expect("deleter"));
        app.assert_consistent().await;
    }
}

/// A request's reads share one snapshot at a cluster time until it writes, as on the embedded store.
#[tokio::test]
#[ignore = "tier 3: needs a real MongoDB replica set in MONGODB_URI (mongoeco has no snapshot reads at a cluster time)"]
async fn tier3_a_request_reads_one_snapshot_until_it_writes() {
    let (app, mongo) = mongo_app().await;
    assert_real_server(&mongo).await;
    crate::snapshot_reads::check_request_snapshot(app.store.clone()).await;
}

/// A second process on the same MongoDB (its own store handle and hidden
/// set, opened before the deletion) hides a user another process staged at
/// once, through the tombstone on the document; its reaper's poll learns of
/// the job and finishes it, after which nothing of the user is left.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_a_second_process_hides_and_reaps_a_staged_deletion() {
    assert!(mongodb_uri().is_some(), "this test needs MONGODB_URI pointing at a MongoDB deployment");
    let app = TestApp::spawn_with(|s| {
        s.store.cascade_budget_docs = 2;
        s.store.reap_deletions = false;
    })
    .await;
    let other = app.open_again().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "ann 1").await;
    app.comment(&bob, &post, "bob on ann").await;
    let staged =
        app.ok_as(&ann, "mutation($id: ID!) { deleteUser(id: $id) { staged } }", json!({ "id": ann_id })).await;
    assert_eq!(staged["deleteUser"]["staged"], json!(true));

    let ann_oid = blogql::model::UserId::parse(&ann_id).unwrap();
    assert!(other.users_by_ids(&[ann_oid]).await.unwrap().is_empty(), "the tombstone hides the user at once");
    assert_eq!(blogql::reaper::drain(&other, 2).await.unwrap(), 1, "the other process's reaper finished the job");
    let post_oid = blogql::model::PostId::parse(&post).unwrap();
    assert!(other.posts_by_ids(&[post_oid]).await.unwrap().is_empty());
    let snap = app.snapshot().await;
    assert!(snap.jobs.is_empty() && snap.comments.is_empty() && snap.posts.is_empty());
    assert_eq!(snap.users.len(), 1);
    app.assert_consistent().await;
}

/// Ann follows Bob and Cat, who have written two posts each; returns Ann's token.
async fn feed_world(app: &TestApp) -> String {
    let (ann, _) = app.sign_up("Ann").await;
    for name in ["Bob", "Cat"] {
        let (token, id) = app.sign_up(name).await;
        app.ok_as(&ann, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": id })).await;
        app.create_post(&token, &format!("{name} 1")).await;
        app.create_post(&token, &format!("{name} 2")).await;
    }
    ann
}

/// The feed's page is one `find` (on `author: {$in: …}`), however many
/// authors: the command log of `feed(first: 3)` holds the viewer's `find` and
/// the page's, and nothing else.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_feed_is_one_find() {
    let (app, mongo) = mongo_app().await;
    let ann = feed_world(&app).await;
    mongo.commands.take_names();
    let resp = app.graphql_as(&ann, "{ feed(first: 3) { edges { node { id } } } }", json!({})).await;
    assert_eq!(data(&resp)["feed"]["edges"].as_array().map(Vec::len), Some(3));
    let names = mongo.commands.take_names();
    assert_eq!(names, ["find", "find"], "the viewer, then the feed page");
}

/// On a real server the feed's query is served by the `(author, createdAt
/// desc, _id desc)` index as a SORT_MERGE of one index scan per author, not
/// a blocking sort (mongoeco's `explain` describes its own in-memory plan, so
/// this needs tier 3).
#[tokio::test]
#[ignore = "tier 3: needs a real MongoDB replica set in MONGODB_URI (docker compose up -d; see README)"]
async fn tier3_feed_is_a_sort_merge_plan() {
    let (app, mongo) = mongo_app().await;
    assert_real_server(&mongo).await;
    feed_world(&app).await;
    let authors: Vec<blogql::model::UserId> =
        app.snapshot().await.users.iter().filter(|u| u.name != "Ann").map(|u| u.id).collect();
    let explain = doc! {
        "explain": { "find": "posts", "filter": { "author": { "$in": authors } },
                     "sort": { "createdAt": -1, "_id": -1 }, "limit": 3 },
        "verbosity": "queryPlanner",
    };
    let plan = mongo.db.run_command(explain).await.expect("explain").to_string();
    assert!(plan.contains("SORT_MERGE"), "{plan}");
    assert!(!plan.contains("\"stage\": \"SORT\""), "a blocking sort: {plan}");
}
