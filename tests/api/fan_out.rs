//! Shared resolution of subscriptions, on both backends: subscribers who
//! ask the same thing as the same viewer share one run, and answers that
//! depend on the viewer never cross to another token.

use serde_json::json;

use crate::helpers::TestApp;
use crate::subscriptions::{connect, listening, next, send};

const WATCH: &str = "subscription($p: ID!) { commentAdded(postId: $p) { body author { name } } }";

/// Three anonymous subscribers with one document and one post, on three
/// sockets, cost one resolution per event; a subscriber with a token runs
/// its own; all four get the comment.
#[tokio::test]
async fn identical_subscriptions_share_one_resolution() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let payload = json!({ "query": WATCH, "variables": { "p": post } });
    let mut sockets = Vec::new();
    for init in [json!({}), json!({}), json!({}), json!({ "Authorization": format!("Bearer {ann}") })] {
        let mut socket = connect(&app, init).await;
        send(&mut socket, json!({ "id": "w", "type": "subscribe", "payload": payload })).await;
        sockets.push(socket);
    }
    listening(&app, 4).await;
    let before = app.metric("blogql_subscription_answers_resolved_total ").await;
    app.comment(&ann, &post, "shared").await;
    for socket in &mut sockets {
        let message = next(socket).await;
        assert_eq!(message["payload"]["data"]["commentAdded"]["body"], "shared", "{message}");
        assert_eq!(message["id"], "w");
    }
    let resolved = app.metric("blogql_subscription_answers_resolved_total ").await - before;
    assert_eq!(resolved, 2, "one run for the three anonymous subscribers, one for the token");
    assert_eq!(app.store.hub().listeners(), 2, "two runs listen on the hub, not four");
}

/// `viewerHasLiked` in a shared subscription answers for each viewer:
/// Ann's like shows `true` to Ann's subscription and `false` to Bob's and
/// to an anonymous one, though all three use the same document.
#[tokio::test]
async fn answers_that_depend_on_the_viewer_are_not_shared() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    let post = app.create_post(&bob, "p").await;
    let q = "subscription($p: ID!) { postChanged(id: $p) { post { likeCount viewerHasLiked } } }";
    let payload = json!({ "query": q, "variables": { "p": post } });
    let mut sockets = Vec::new();
    for init in [
        json!({ "Authorization": format!("Bearer {ann}") }),
        json!({ "Authorization": format!("Bearer {bob}") }),
        json!({}),
    ] {
        let mut socket = connect(&app, init).await;
        send(&mut socket, json!({ "id": "c", "type": "subscribe", "payload": payload })).await;
        sockets.push(socket);
    }
    listening(&app, 3).await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": post })).await;
    let mut seen = Vec::new();
    for socket in &mut sockets {
        let message = next(socket).await;
        let post = &message["payload"]["data"]["postChanged"]["post"];
        seen.push((post["likeCount"].as_i64(), post["viewerHasLiked"].as_bool()));
    }
    assert_eq!(seen, [(Some(1), Some(true)), (Some(1), Some(false)), (Some(1), Some(false))]);
}
