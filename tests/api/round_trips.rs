//! DataLoader batching: store round trips grow with query depth, not list length.

use serde_json::json;

use crate::helpers::{TestApp, data};

const QUERY: &str = "{ posts(first: 50) { edges { node { author { name } comments(first: 5) { edges { node { author { name } } } } } } } }";

/// Seeds `posts` posts spread over 5 authors, each with 3 comments by 3 other users.
async fn seed(app: &TestApp, posts: usize) {
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(app.sign_up(&format!("U{i}")).await.0);
    }
    for i in 0..posts {
        let post = app.create_post(&users[i % 5], &format!("post {i}")).await;
        for j in 1..=3 {
            app.comment(&users[(i + j) % 5], &post, "nice").await;
        }
    }
}

async fn round_trips_for(posts: usize) -> u64 {
    // Default settings: batches close by executor progress, not by a timer,
    // so a starved CPU cannot split a level over two batches.
    let app = TestApp::spawn().await;
    seed(&app, posts).await;
    let before = app.store.round_trips();
    let resp = app.graphql(QUERY, json!({})).await;
    let edges = data(&resp)["posts"]["edges"].as_array().unwrap().len();
    assert_eq!(edges, posts);
    app.store.round_trips() - before
}

/// The same query costs exactly 4 round trips with 5 posts and with 50: the posts
/// page, their authors, one batched comments page per post, the comments' authors.
#[tokio::test]
async fn round_trips_do_not_grow_with_list_length() {
    let small = round_trips_for(5).await;
    let large = round_trips_for(50).await;
    assert_eq!(small, 4, "posts page + authors + comment pages + comment authors");
    assert_eq!(large, small);
}

/// `totalCount` needing an index count is batched like any reference: users'
/// comment counts cost one round trip for 5 users and for 50, and stored counts none.
#[tokio::test]
async fn total_counts_are_batched() {
    let app = TestApp::spawn().await;
    let mut tokens = Vec::new();
    for i in 0..50 {
        tokens.push(app.sign_up(&format!("U{i}")).await.0);
    }
    let post = app.create_post(&tokens[0], "p").await;
    for t in &tokens[..10] {
        app.comment(t, &post, "hi").await;
    }
    let mut trips = Vec::new();
    for n in [5, 50] {
        let q = format!(
            "{{ users(first: {n}) {{ totalCount edges {{ node {{ comments {{ totalCount }} posts {{ totalCount }} }} }} }} }}"
        );
        let before = app.store.round_trips();
        let resp = app.graphql(&q, json!({})).await;
        let users = &data(&resp)["users"];
        assert_eq!(users["totalCount"], json!(50));
        let sum: i64 = users["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["comments"]["totalCount"].as_i64().unwrap())
            .sum();
        assert_eq!(sum, if n == 50 { 10 } else { 0 }, "the 10 commenters are the oldest accounts");
        trips.push(app.store.round_trips() - before);
    }
    // users page + users count + one batched comment count; `posts { totalCount }` is a stored
    // count and `comments { totalCount }` reads no page, since neither selects edges.
    assert_eq!(trips, vec![3, 3]);
}

/// A post's comments (and their authors) loaded ahead by the posts list equal
/// the same post's comments read on their own, forward and backward, with a
/// cursor from a variable; two aliases with different pages (which are not
/// loaded ahead) get their own pages.
#[tokio::test]
async fn comments_loaded_ahead_equal_comments_read_alone() {
    let app = TestApp::spawn().await;
    seed(&app, 3).await;
    let fields = "edges { cursor node { id body author { name } } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } totalCount";
    let alone = |post: &str, page: &str| {
        let q = format!("{{ post(id: \"{post}\") {{ comments({page}) {{ {fields} }} }} }}");
        let app = &app;
        async move { data(&app.graphql(&q, json!({})).await)["post"]["comments"].clone() }
    };
    let listed = data(&app.graphql("{ posts(first: 3) { edges { node { id } } } }", json!({})).await)["posts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    let first_page = alone(&listed[0], "first: 1").await;
    let cursor = first_page["edges"][0]["cursor"].as_str().unwrap().to_owned();
    for page in ["first: 2", "last: 2", "first: 1, after: $c", "last: 5, before: $c"] {
        let (vars, values) =
            if page.contains("$c") { ("($c: String)", json!({ "c": cursor })) } else { ("", json!({})) };
        let q = format!(
            "query{vars} {{ posts(first: 3) {{ edges {{ node {{ id comments({page}) {{ {fields} }} }} }} }} }}"
        );
        let resp = app.graphql(&q, values).await;
        for edge in data(&resp)["posts"]["edges"].as_array().unwrap() {
            let post = edge["node"]["id"].as_str().unwrap();
            let page_alone = page.replace("$c", &format!("\"{cursor}\""));
            assert_eq!(edge["node"]["comments"], alone(post, &page_alone).await, "{page} on {post}");
        }
    }
    let q = format!(
        "{{ posts(first: 3) {{ edges {{ node {{ id a: comments(first: 1) {{ {fields} }} b: comments(last: 2) {{ {fields} }} }} }} }} }}"
    );
    let resp = app.graphql(&q, json!({})).await;
    for edge in data(&resp)["posts"]["edges"].as_array().unwrap() {
        let post = edge["node"]["id"].as_str().unwrap();
        assert_eq!(edge["node"]["a"], alone(post, "first: 1").await);
        assert_eq!(edge["node"]["b"], alone(post, "last: 2").await);
    }
}
