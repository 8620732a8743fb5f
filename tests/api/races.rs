//! Races: random concurrent writes against cascading deletes never leave an orphan.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::helpers::{TestApp, mongodb_uri, str_at};

#[derive(Clone)]
struct Actor {
    token: String,
    id: String,
}

/// Codes a racing operation may legitimately end with: its target or its actor was deleted first.
const LOST_RACE: [&str; 2] = ["NOT_FOUND", "UNAUTHENTICATED"];

fn op(rng: &mut StdRng, users: &[Actor], posts: &[(String, usize)]) -> (String, String, Value) {
    let actor = rng.random_range(0..users.len());
    let token = users[actor].token.clone();
    let (post, author) = posts.choose(rng).cloned().unwrap_or_else(|| ("000000000000000000000000".into(), 0));
    let other = &users[rng.random_range(0..users.len())].id;
    match rng.random_range(0..7) {
        0 => (token, "mutation { createPost(input: {title: \"race\", body: \"\"}) { id } }".into(), json!({})),
        1 => (
            token,
            "mutation($p: ID!) { createComment(input: {postId: $p, body: \"race\"}) { id } }".into(),
            json!({ "p": post }),
        ),
        2 => (token, "mutation($p: ID!) { likePost(postId: $p) { id } }".into(), json!({ "p": post })),
        3 if other != &users[actor].id => {
            (token, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }".into(), json!({ "u": other }))
        }
        4 => (
            users[author].token.clone(),
            "mutation($p: ID!) { deletePost(id: $p) { deletedPostId } }".into(),
            json!({ "p": post }),
        ),
        5 => (
            token,
            "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }".into(),
            json!({ "id": users[actor].id }),
        ),
        _ => (token, "mutation($p: ID!) { unlikePost(postId: $p) { id } }".into(), json!({ "p": post })),
    }
}

/// Hundreds of rounds of createPost, createComment, likePost and followUser racing
/// deleteUser and deletePost on the same documents; the integrity checker stays
/// clean after every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_concurrent_writes_never_orphan() {
    // mongoeco serialises every commit through one lock, so MongoDB runs fewer rounds.
    let default_rounds = if mongodb_uri().is_some() { 100 } else { 300 };
    let rounds: usize = std::env::var("BLOGQL_RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_rounds);
    let seed: u64 = std::env::var("BLOGQL_RACE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    println!("race seed {seed} (set BLOGQL_RACE_SEED to replay), {rounds} rounds");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = Arc::new(TestApp::spawn().await);
    let mut next_user = 0;
    for round in 0..rounds {
        // Fresh cast each round: four users with a few posts, some already liked and followed.
        let mut users = Vec::new();
        for _ in 0..4 {
            let (token, id) = app.sign_up(&format!("R{next_user}")).await;
            next_user += 1;
            users.push(Actor { token, id });
        }
        let mut posts = Vec::new();
        for (i, user) in users.iter().enumerate().take(3) {
            posts.push((app.create_post(&user.token, "seed").await, i));
        }
        let ops: Vec<_> = (0..12).map(|_| op(&mut rng, &users, &posts)).collect();
        let tasks: Vec<_> = ops
            .into_iter()
            .map(|(token, query, vars)| {
                let app = Arc::clone(&app);
                tokio::spawn(async move { (query.clone(), app.graphql_as(&token, &query, vars).await) })
            })
            .collect();
        for task in tasks {
            let (query, resp) = task.await.expect("task");
            if resp.get("errors").is_some() {
                let code = str_at(&resp, "/errors/0/extensions/code");
                assert!(LOST_RACE.contains(&code.as_str()), "round {round} (seed {seed}): {query} failed with {resp}");
            }
        }
        let problems = blogql::check::violations(&app.snapshot().await);
        assert!(problems.is_empty(), "round {round} (seed {seed}): {problems:#?}");
    }
}
