//! The answer cache (`http::answers`): an answer served from it is exactly
//! what a fresh execution at the same store state answers, writes in
//! between change it at once, and it is off where other processes write.

use std::cell::RefCell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{TestApp, mongodb_uri};

/// The reads compared after every write: lists, counts, a viewer's own
/// state (`viewerHasLiked`, `viewer`) and variables.
const READS: [(&str, &str); 3] = [
    (
        "feed",
        "{ posts(first: 10) { edges { node { title likeCount viewerHasLiked commentCount \
         author { name postCount followerCount } comments(first: 3) { edges { node { body author { name } } } } } } } }",
    ),
    ("viewer", "{ viewer { name following(first: 5) { edges { node { name } } } followingCount } }"),
    (
        "user",
        "query($id: ID!) { user(id: $id) { name posts(first: 5) { edges { node { title } } } followers(first: 5) { edges { node { name } } } } }",
    ),
];

/// One write, by user index and post index (taken modulo what exists).
#[derive(Debug, Clone)]
enum Write {
    Post(usize),
    Comment(usize, usize),
    Like(usize, usize),
    Unlike(usize, usize),
    Follow(usize, usize),
    Unfollow(usize, usize),
    DeletePost(usize),
}

fn write() -> impl Strategy<Value = Write> {
    let (u, p) = (0usize..3, 0usize..50);
    prop_oneof![
        u.clone().prop_map(Write::Post),
        (u.clone(), p.clone()).prop_map(|(u, p)| Write::Comment(u, p)),
        (u.clone(), p.clone()).prop_map(|(u, p)| Write::Like(u, p)),
        (u.clone(), p.clone()).prop_map(|(u, p)| Write::Unlike(u, p)),
        (u.clone(), u.clone()).prop_map(|(a, b)| Write::Follow(a, b)),
        (u.clone(), u).prop_map(|(a, b)| Write::Unfollow(a, b)),
        p.prop_map(Write::DeletePost),
    ]
}

/// Sends `query` as `token` (or anonymously), from the cache or (`fresh`)
/// with `Cache-Control: no-cache`; returns the body.
async fn read(app: &TestApp, token: Option<&str>, query: &str, variables: Value, fresh: bool) -> Value {
    let mut req = app.client.post(app.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if fresh {
        req = req.header("cache-control", "no-cache");
    }
    req.send().await.expect("request").json().await.expect("json")
}

/// The cache's hits, or `None` when it is off (no series).
async fn hits(app: &TestApp) -> Option<i64> {
    let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines().find_map(|line| line.strip_prefix("blogql_answer_cache_hits_total ")?.trim().parse().ok())
}

/// Random writes by three users, each followed by every read as each of
/// them and anonymously, twice as is and once fresh: the three answers are
/// always equal, and some of them came from the cache.
#[test]
fn cached_answers_equal_fresh_executions_across_random_writes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (app, users) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let mut users = Vec::new();
        for name in ["Ann", "Bob", "Cy"] {
            users.push(app.sign_up(name).await);
        }
        (app, users)
    });
    // Posts that exist, with their author's index.
    let posts: RefCell<Vec<(String, usize)>> = RefCell::new(Vec::new());
    let cases: u32 = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12).min(24);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let apply = |w: &Write| {
        // Taken out for the write and put back after, so no borrow is held across an await.
        let mut list = std::mem::take(&mut *posts.borrow_mut());
        rt.block_on(async {
            let posts = &mut list;
            let post = |k: usize| posts.get(k % posts.len().max(1)).map(|(id, _)| id.clone());
            let token = |u: usize| users[u].0.as_str();
            match w {
                Write::Post(u) => {
                    let id = app.create_post(token(*u), &format!("post {}", posts.len())).await;
                    posts.push((id, *u));
                }
                Write::Comment(u, k) => {
                    if let Some(p) = post(*k) {
                        app.comment(token(*u), &p, &format!("comment by {u}")).await;
                    }
                }
                Write::Like(u, k) | Write::Unlike(u, k) => {
                    if let Some(p) = post(*k) {
                        let field = if matches!(w, Write::Like(..)) { "likePost" } else { "unlikePost" };
                        let q = format!("mutation($p: ID!) {{ {field}(postId: $p) {{ id }} }}");
                        app.ok_as(token(*u), &q, json!({ "p": p })).await;
                    }
                }
                Write::Follow(a, b) | Write::Unfollow(a, b) if a != b => {
                    let field = if matches!(w, Write::Follow(..)) { "followUser" } else { "unfollowUser" };
                    let q = format!("mutation($u: ID!) {{ {field}(userId: $u) {{ followee {{ id }} }} }}");
                    app.ok_as(token(*a), &q, json!({ "u": users[*b].1 })).await;
                }
                Write::Follow(..) | Write::Unfollow(..) => {}
                Write::DeletePost(k) => {
                    if !posts.is_empty() {
                        let at = k % posts.len();
                        let (id, author) = posts.remove(at);
                        let q = "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }";
                        app.ok_as(token(author), q, json!({ "id": id })).await;
                    }
                }
            }
        });
        *posts.borrow_mut() = list;
    };
    let compare = || -> Result<(), TestCaseError> {
        rt.block_on(async {
            let viewers = [None, Some(users[0].0.as_str()), Some(users[1].0.as_str()), Some(users[2].0.as_str())];
            for viewer in viewers {
                for (name, query) in READS {
                    let vars = json!({ "id": users[2].1 });
                    let first = read(&app, viewer, query, vars.clone(), false).await;
                    let second = read(&app, viewer, query, vars.clone(), false).await;
                    let fresh = read(&app, viewer, query, vars, true).await;
                    prop_assert!(fresh.get("errors").is_none(), "{name}: {fresh}");
                    prop_assert_eq!(&first, &fresh, "{} as {:?}: the first answer", name, viewer.is_some());
                    prop_assert_eq!(&second, &fresh, "{} as {:?}: the second answer", name, viewer.is_some());
                }
            }
            Ok(())
        })
    };
    runner
        .run(&proptest::collection::vec(write(), 1..8), |writes| {
            for w in &writes {
                apply(w);
                compare()?;
            }
            Ok(())
        })
        .expect("cached answers equal fresh ones");
    match rt.block_on(hits(&app)) {
        None => assert!(mongodb_uri().is_some(), "the cache is on for the embedded store"),
        Some(hits) => assert!(hits > 100, "the comparisons met the cache: {hits} hits"),
    }
}

/// A write moves the store's state, so the next read executes and sees it;
/// with `--answer-cache-mib 0` nothing is kept.
#[tokio::test]
async fn a_write_is_seen_at_once_and_the_cache_can_be_turned_off() {
    let app = TestApp::spawn().await;
    let (token, _) = app.sign_up("Dee").await;
    let titles = "{ posts(first: 5) { edges { node { title } } } }";
    let count = |v: &Value| v.pointer("/data/posts/edges").and_then(Value::as_array).map_or(0, Vec::len);
    assert_eq!(count(&app.graphql(titles, json!({})).await), 0);
    assert_eq!(count(&app.graphql(titles, json!({})).await), 0);
    app.create_post(&token, "first").await;
    assert_eq!(count(&app.graphql(titles, json!({})).await), 1, "the write is seen by the next read");
    let expected = if mongodb_uri().is_some() { None } else { Some(1) };
    assert_eq!(hits(&app).await, expected, "the second read was served as kept (on the embedded store only)");

    let off = TestApp::spawn_with(|s| s.graphql.answer_cache_mib = 0).await;
    off.graphql(titles, json!({})).await;
    off.graphql(titles, json!({})).await;
    assert_eq!(hits(&off).await, None, "nothing is kept when it is off");
}
