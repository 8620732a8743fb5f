//! Resuming a subscription from a cursor (`after:`), on both backends: what
//! was committed after the cursor is replayed in order from the lists, then
//! the subscription goes live, with no gap and no repeat at the seam.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, data, expect_error, str_at};
use crate::sse::stream;
use crate::subscriptions::{connect, listening, next, send, silent_for};

const COMMENT: &str = "mutation($i: CreateCommentInput!) { createComment(input: $i) { id cursor } }";

const RESUME_COMMENTS: &str = "subscription($p: ID!, $a: String) { commentAdded(postId: $p, after: $a) { body } }";

/// Comments on `post` as `token`; returns the new comment's cursor.
async fn comment(app: &TestApp, token: &str, post: &str, body: &str) -> String {
    let resp = app.graphql_as(token, COMMENT, json!({ "i": { "postId": post, "body": body } })).await;
    str_at(data(&resp), "/createComment/cursor")
}

/// While a writer keeps commenting, subscriptions resumed from the third
/// comment's cursor at intervals during the writes each get every later
/// comment exactly once, in order: the replayed ones, then the live ones.
/// (Whether a write lands inside a seam's narrow window is luck here; the
/// seam's rule is proven for every interleaving by the proptest beside `Seam`.)
#[tokio::test]
async fn resuming_replays_then_goes_live_without_gap_or_repeat() {
    const WRITES: usize = 60;
    const RESUMES: usize = 12;
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut cursor = String::new();
    for n in 1..=5 {
        let c = comment(&app, &ann, &post, &format!("c{n}")).await;
        if n == 3 {
            cursor = c;
        }
    }
    let (written, mut progress) = tokio::sync::watch::channel(0usize);
    let writer = {
        let (client, url, ann, post) = (app.client.clone(), app.url("/graphql"), ann.clone(), post.clone());
        tokio::spawn(async move {
            for n in 1..=WRITES {
                let body =
                    json!({ "query": COMMENT, "variables": { "i": { "postId": post, "body": format!("w{n}") } } });
                let resp = client.post(&url).bearer_auth(&ann).json(&body).send().await.expect("write");
                assert_eq!(resp.status(), 200);
                let _ = written.send(n);
            }
        })
    };
    // Each subscription starts while the writer runs, a few writes after the
    // last, so writes commit during its replay and around its seam.
    let mut socket = connect(&app, json!({})).await;
    for r in 0..RESUMES {
        let _ = progress.wait_for(|n| *n >= r * WRITES / RESUMES).await;
        let subscribe = json!({ "query": RESUME_COMMENTS, "variables": { "p": post, "a": cursor } });
        send(&mut socket, json!({ "id": r.to_string(), "type": "subscribe", "payload": subscribe })).await;
    }
    writer.await.expect("writer");
    let expected: Vec<String> =
        ["c4", "c5"].into_iter().map(String::from).chain((1..=WRITES).map(|n| format!("w{n}"))).collect();
    let mut got = vec![Vec::new(); RESUMES];
    while got.iter().any(|bodies| bodies.len() < expected.len()) {
        let message = next(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        let r: usize = message["id"].as_str().and_then(|id| id.parse().ok()).expect("an id we sent");
        got[r].push(message["payload"]["data"]["commentAdded"]["body"].as_str().expect("body").to_owned());
    }
    for bodies in &got {
        assert_eq!(bodies, &expected);
    }
    assert_eq!(silent_for(&mut socket, Duration::from_millis(300)).await, None, "nothing is sent twice");
}

/// `feedPostAdded(after:)` over SSE replays the feed's posts newer than the
/// cursor (followed authors only, oldest first), then delivers new ones.
#[tokio::test]
async fn the_feed_resumes_over_sse() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let (carl, _) = app.sign_up("Carl").await;
    app.ok_as(&ann, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": bob_id })).await;
    let post_as = |token: &str, title: &str| {
        let (token, title) = (token.to_owned(), title.to_owned());
        let app = &app;
        async move {
            let resp = app
                .graphql_as(
                    &token,
                    "mutation($i: CreatePostInput!) { createPost(input: $i) { cursor } }",
                    json!({ "i": { "title": title, "body": "b" } }),
                )
                .await;
            str_at(data(&resp), "/createPost/cursor")
        }
    };
    let cursor = post_as(&bob, "b1").await;
    post_as(&carl, "not followed").await;
    post_as(&bob, "b2").await;
    post_as(&ann, "mine").await;
    let query = "subscription($a: String) { feedPostAdded(after: $a) { title } }";
    let mut events = stream(&app, Some(&ann), query, json!({ "a": cursor })).await;
    let title = |payload: Value| payload["data"]["feedPostAdded"]["title"].as_str().unwrap_or_default().to_owned();
    assert_eq!(title(events.payload().await), "b2");
    assert_eq!(title(events.payload().await), "mine");
    listening(&app, 1).await;
    post_as(&carl, "still not followed").await;
    post_as(&bob, "b3").await;
    assert_eq!(title(events.payload().await), "b3");
}

/// A cursor further back than `--max-subscription-replay` items is
/// `BAD_USER_INPUT` (as is a malformed one), and a cursor exactly that far
/// back is replayed whole.
#[tokio::test]
async fn replay_is_bounded() {
    let app = TestApp::spawn_with(|s| s.http.max_subscription_replay = 3).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut cursors = Vec::new();
    for n in 1..=5 {
        cursors.push(comment(&app, &ann, &post, &format!("c{n}")).await);
    }
    let mut socket = connect(&app, json!({})).await;
    for (id, cursor) in [("far", cursors[0].as_str()), ("bad", "not-a-cursor")] {
        let subscribe = json!({ "query": RESUME_COMMENTS, "variables": { "p": post, "a": cursor } });
        send(&mut socket, json!({ "id": id, "type": "subscribe", "payload": subscribe })).await;
        let refused = next(&mut socket).await;
        assert_eq!(refused["type"], "error", "{refused}");
        expect_error(&json!({ "errors": refused["payload"] }), "BAD_USER_INPUT");
    }
    let subscribe = json!({ "query": RESUME_COMMENTS, "variables": { "p": post, "a": cursors[1] } });
    send(&mut socket, json!({ "id": "ok", "type": "subscribe", "payload": subscribe })).await;
    for body in ["c3", "c4", "c5"] {
        assert_eq!(next(&mut socket).await["payload"]["data"]["commentAdded"]["body"], body);
    }
}
