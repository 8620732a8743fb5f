//! Crash safety of the embedded store: SIGKILL in the middle of a large
//! cascade leaves the user either fully present or fully gone for readers,
//! a staged deletion cut short is finished by the next start, and writes
//! committed in groups lose none that was answered.

use std::sync::Arc;
use std::time::Duration;

use blogql::auth::{Auth, HashCost};
use blogql::model::{PostId, UserId};
use blogql::seed::{SeedPlan, seed};
use blogql::store::embedded::EmbeddedStore;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::helpers::{Binary, TEST_SECRET};

const POSTS: usize = 2000;

fn auth() -> Auth {
    Auth::new(TEST_SECRET.as_bytes(), Duration::from_secs(3600), HashCost { memory_kib: 64, iterations: 1 })
        .expect("auth")
}

/// Seeds a victim with `POSTS` posts, each commented on and liked by a second
/// user, plus follows both ways; returns the victim's id.
async fn seed_victim(dir: &std::path::Path) -> UserId {
    seed_victim_with(dir, POSTS).await
}

/// [`seed_victim`] with `posts` posts per user.
async fn seed_victim_with(dir: &std::path::Path, posts: usize) -> UserId {
    seed_in(dir, 2, posts, 1).await[0].0
}

/// Seeds `users` accounts with `posts` posts each, and `each` comment, like
/// and follow per post or user; returns them with their posts.
async fn seed_in(dir: &std::path::Path, users: usize, posts: usize, each: usize) -> Vec<(UserId, Vec<PostId>)> {
    let store = EmbeddedStore::open(dir).expect("open").into();
    let plan = SeedPlan {
        users,
        posts_per_user: posts,
        comments_per_post: each,
        likes_per_post: each,
        follows_per_user: each,
        password_hash: auth()
            .hash_password(blogql::domain::Password::parse("password123").expect("password"))
            .await
            .expect("hash"),
    };
    seed(&store, &plan).await.expect("seed").users
}

/// Whether the victim is entirely present (with all its posts) or entirely
/// gone for readers; panics otherwise. A staged deletion the kill cut short
/// is then finished, as the next start's reaper would, and must leave
/// nothing of the victim behind.
async fn victim_state(dir: &std::path::Path, victim: UserId) -> bool {
    let store: blogql::store::Store = EmbeddedStore::open(dir).expect("the store opens after SIGKILL").into();
    let raw = store.snapshot().await.expect("snapshot");
    let problems = blogql::check::violations(&raw);
    assert!(problems.is_empty(), "integrity violations after SIGKILL: {:#?}", &problems[..problems.len().min(10)]);
    let snap = blogql::check::visible(&raw);
    let present = snap.users.iter().any(|u| u.id == victim);
    if !raw.jobs.is_empty() {
        assert!(!present, "a job is recorded, yet the victim is visible");
        blogql::reaper::drain(&store, 1000).await.expect("the restart finishes the job");
        let after = store.snapshot().await.expect("snapshot");
        assert!(after.jobs.is_empty());
        assert!(blogql::check::violations(&after).is_empty());
        assert!(after.users.iter().all(|u| u.id != victim) && after.posts.iter().all(|p| p.author != victim));
        println!("  a staged deletion was cut short ({} of its documents reaped) and finished", raw.jobs[0].reaped);
    }
    let posts = snap.posts.iter().filter(|p| p.author == victim).count();
    let comments_on_posts =
        snap.comments.iter().filter(|c| snap.posts.iter().any(|p| p.id == c.post && p.author == victim)).count();
    if present {
        assert_eq!((posts, comments_on_posts), (POSTS, POSTS), "victim present but its dependents were cut");
    } else {
        assert_eq!(posts, 0, "victim gone but posts remain");
    }
    present
}

/// The real binary is killed with SIGKILL at a random moment while deleting a
/// user with 2,000 posts, comments and likes, again and again; after every
/// restart the store opens, the checker is clean, and the user is all there
/// or all gone (and gone for sure once the server had answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delete_user_is_all_or_nothing() {
    let runs: usize = std::env::var("BLOGQL_CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let seed_value: u64 =
        std::env::var("BLOGQL_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed_value);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut victim = seed_victim(dir.path()).await;
    let client = reqwest::Client::new();
    let (mut kept, mut gone, mut answered) = (0, 0, 0);
    for run in 0..runs {
        // The binary opens the store before it listens, so answering means ready.
        let mut server = Binary::start_in(dir.path(), &[]).await;
        let token = auth().issue(victim, 0).expect("token");
        let request = client
            .post(server.url("/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": "mutation($id: ID!) { deleteUser(id: $id) { deletedPostCount } }", "variables": { "id": victim.to_hex() } }))
            .send();
        let delay = Duration::from_millis(rng.random_range(0..400));
        let reply = Arc::new(tokio::sync::Mutex::new(None));
        let slot = Arc::clone(&reply);
        let waiter = tokio::spawn(async move {
            if let Ok(resp) = request.await {
                let ok = resp.json::<serde_json::Value>().await.map(|v| v.get("errors").is_none()).unwrap_or(false);
                *slot.lock().await = Some(ok);
            }
        });
        tokio::time::sleep(delay).await;
        let answered_ok = *reply.lock().await == Some(true);
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
        waiter.abort();

        let present = victim_state(dir.path(), victim).await;
        println!("run {run}: killed after {delay:?}; answered before kill: {answered_ok}; victim present: {present}");
        if answered_ok {
            answered += 1;
            assert!(!present, "the server confirmed the deletion, yet the user is back after the crash");
        }
        if present {
            kept += 1;
        } else {
            gone += 1;
            victim = seed_victim(dir.path()).await;
        }
    }
    println!(
        "crash seed {seed_value}: {kept} runs kept the user, {gone} deleted it ({answered} answered before the kill)"
    );
}

/// A staged deleteUser whose reaper is SIGKILLed again and again, each
/// restart resuming the job, ends with exactly the store an unstaged delete
/// of the same user leaves: the same users, posts and comments, byte for
/// byte as documents, and no job. The job spans two stored parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_reaping_ends_like_an_unstaged_delete() {
    let staged_dir = tempfile::tempdir().expect("temp dir");
    // 3,000 posts: 6,000 comments, 3,000 posts, 3,000 liked, 1 follow entry: two parts.
    let victim = seed_victim_with(staged_dir.path(), 3000).await;
    let twin_dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        staged_dir.path().join(blogql::store::embedded::DB_FILE),
        twin_dir.path().join(blogql::store::embedded::DB_FILE),
    )
    .expect("copy the store");

    // The twin: the same user deleted in one transaction.
    let twin: blogql::store::Store = EmbeddedStore::open(twin_dir.path()).expect("open twin").into();
    let unstaged = blogql::cmd::DeleteUser { actor: victim, id: victim, expected_plan: None, budget: usize::MAX };
    assert!(twin.run(unstaged).await.expect("unstaged delete").job.is_none());
    let expected = twin.snapshot().await.expect("twin snapshot");
    drop(twin);

    // Staged, with steps of 100 documents, killed soon after it answers and again after each restart.
    let budget = [("BLOGQL_CASCADE_BUDGET_DOCS", "100")];
    let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
    let mut cut_short = Vec::new();
    for run in 0..4 {
        let mut server = Binary::start_in(staged_dir.path(), &budget).await;
        if run == 0 {
            let resp: serde_json::Value = reqwest::Client::new()
                .post(server.url("/graphql"))
                .bearer_auth(auth().issue(victim, 0).expect("token"))
                .json(&json!({ "query": "mutation($id: ID!) { deleteUser(id: $id) { staged } }", "variables": { "id": victim.to_hex() } }))
                .send()
                .await
                .expect("deleteUser")
                .json()
                .await
                .expect("json");
            assert_eq!(resp["data"]["deleteUser"]["staged"], json!(true), "{resp}");
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap the process");
        let store: blogql::store::Store = EmbeddedStore::open(staged_dir.path()).expect("open").into();
        let snap = store.snapshot().await.expect("snapshot");
        assert!(blogql::check::violations(&snap).is_empty(), "consistent for readers after every kill");
        assert!(blogql::check::visible(&snap).users.iter().all(|u| u.id != victim), "hidden after every kill");
        match snap.jobs.first() {
            Some(job) => {
                assert!(job.lens().iter().sum::<usize>() > blogql::model::JOB_PART_LEN, "more than one part");
                cut_short.push(job.reaped);
            }
            None => break,
        }
    }
    println!("job progress at each kill: {cut_short:?}");
    assert!(cut_short.iter().any(|r| *r > 0), "at least one kill landed while the reaper was mid-job: {cut_short:?}");

    let store: blogql::store::Store = EmbeddedStore::open(staged_dir.path()).expect("open").into();
    blogql::reaper::drain(&store, 100).await.expect("the last start finishes the job");
    let got = store.snapshot().await.expect("snapshot");
    assert!(got.jobs.is_empty());
    assert_eq!(got.users, expected.users);
    assert_eq!(got.posts.len(), expected.posts.len());
    assert_eq!(got.posts, expected.posts);
    assert_eq!(got.comments, expected.comments);
    assert_eq!(got, expected);
}

/// With many writes in flight (so the writer commits them in groups, one
/// fsync each), SIGKILL at a random moment loses no answered write: every
/// post, comment and like the server confirmed is there after the restart,
/// and the store is consistent, so each unanswered write is all there or
/// all gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_many_writes_in_flight_keeps_every_answered_one() {
    const WRITERS: usize = 16;
    let dir = tempfile::tempdir().expect("temp dir");
    let seeded = seed_in(dir.path(), 4, 1, 0).await;
    let target = seeded[0].1[0];
    let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
    let limits = [("BLOGQL_WRITES_PER_USER_PER_MINUTE", "100000000"), ("BLOGQL_MAX_CONNECTIONS_PER_IP", "1000")];
    for run in 0..3 {
        let server = Binary::start_in(dir.path(), &limits).await;
        let confirmed = Arc::new(std::sync::Mutex::new(Vec::<(&str, UserId, String)>::new()));
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let (user, _) = seeded[w % seeded.len()];
            let token = auth().issue(user, 0).expect("token");
            let (url, confirmed) = (server.url("/graphql"), Arc::clone(&confirmed));
            writers.spawn(async move {
                let client = reqwest::Client::new();
                // Its latest post, which it then comments on and likes.
                let mut mine = target.to_hex();
                for i in 0.. {
                    let text = format!("run {run} writer {w} write {i}");
                    let (kind, query, variables) = match i % 3 {
                        0 => (
                            "post",
                            "mutation($t: String!) { createPost(input: {title: $t, body: $t}) { id } }",
                            json!({ "t": text }),
                        ),
                        1 => (
                            "comment",
                            "mutation($t: String!, $p: ID!) { createComment(input: {postId: $p, body: $t}) { id } }",
                            json!({ "t": text, "p": mine }),
                        ),
                        _ => ("like", "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": mine })),
                    };
                    let Ok(resp) = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({ "query": query, "variables": variables }))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(body) = resp.json::<serde_json::Value>().await else { return };
                    assert!(body.get("errors").is_none(), "{body}");
                    let what = match kind {
                        "post" => {
                            mine = body["data"]["createPost"]["id"].as_str().expect("id").to_owned();
                            text
                        }
                        "comment" => text,
                        _ => mine.clone(),
                    };
                    confirmed.lock().expect("lock").push((kind, user, what));
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
        let metrics = reqwest::get(server.url("/metrics")).await.expect("metrics").text().await.expect("text");
        let mut server = server;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
        writers.abort_all();
        while writers.join_next().await.is_some() {}
        let confirmed = std::mem::take(&mut *confirmed.lock().expect("lock"));

        let series = |name: &str| -> u64 {
            metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).expect("the series is reported")
        };
        let (commits, grouped) =
            (series("blogql_store_durable_commits_total "), series("blogql_store_grouped_writes_total "));
        assert!(grouped > commits, "writes were grouped: {grouped} writes in {commits} durable commits");

        let store: blogql::store::Store =
            EmbeddedStore::open(dir.path()).expect("the store opens after SIGKILL").into();
        let snap = store.snapshot().await.expect("snapshot");
        let problems = blogql::check::violations(&snap);
        assert!(problems.is_empty(), "integrity violations after SIGKILL: {:#?}", &problems[..problems.len().min(10)]);
        let titles: std::collections::HashSet<&str> = snap.posts.iter().map(|p| p.title.as_str()).collect();
        let bodies: std::collections::HashSet<&str> = snap.comments.iter().map(|c| c.body.as_str()).collect();
        for (kind, user, what) in &confirmed {
            match *kind {
                "post" => assert!(titles.contains(what.as_str()), "the answered post {what:?} was lost"),
                "comment" => assert!(bodies.contains(what.as_str()), "the answered comment {what:?} was lost"),
                _ => {
                    let liked = snap.posts.iter().find(|p| p.id.to_hex() == *what).expect("a liked post was kept");
                    assert!(liked.liked_by.contains(user), "the answered like of {what} was lost");
                }
            }
        }
        println!(
            "run {run}: {} writes answered, {grouped} writes in {commits} durable commits, all kept",
            confirmed.len()
        );
        assert!(confirmed.len() > WRITERS, "enough writes were answered before the kill to mean something");
    }
}

/// A restart after SIGKILL replays the redo log the killed server wrote
/// (`/metrics` counts the frames) and serves every answered post, also
/// when the restart turns the log off.
#[tokio::test]
async fn a_restart_after_sigkill_replays_the_redo_log() {
    for log_off in [false, true] {
        let dir = tempfile::tempdir().expect("store dir");
        let user = seed_in(dir.path(), 1, 0, 0).await[0].0;
        let token = auth().issue(user, 0).expect("token");
        let mut server = Binary::start_in(dir.path(), &[]).await;
        for i in 0..20 {
            let query = format!("mutation {{ createPost(input: {{title: \"kept {i}\", body: \"b\"}}) {{ id }} }}");
            let body = server.graphql(Some(&token), &query).await;
            assert!(body.get("errors").is_none(), "{body}");
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");

        let env: &[(&str, &str)] = if log_off { &[("BLOGQL_STORE_REDO_LOG_MIB", "0")] } else { &[] };
        let mut server = Binary::start_in(dir.path(), env).await;
        let metrics = reqwest::get(server.url("/metrics")).await.expect("metrics").text().await.expect("text");
        let replayed: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("blogql_store_redo_replayed_frames_total ")?.trim().parse().ok())
            .expect("the series is reported");
        assert!(replayed > 0, "the restart replayed no frame (log off: {log_off})");
        let body = server.graphql(None, "{ posts(first: 50) { edges { node { title } } } }").await;
        let titles = body["data"]["posts"]["edges"].as_array().map_or(0, |edges| edges.len());
        assert_eq!(titles, 20, "every answered post is served after the restart: {body}");
        server.child.kill().expect("kill");
        server.child.wait().expect("reap");
    }
}
