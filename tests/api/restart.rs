//! Durability: data and sign-ins survive a server restart on the same data directory.

use serde_json::json;

use crate::helpers::{StoreHome, TestApp, data};

/// After a graceful restart, posts, comments, follows and previously issued tokens
/// (signed with the secret generated into the data dir) are all still there.
#[tokio::test]
async fn data_survives_restart() {
    let app = TestApp::spawn_in(StoreHome::fresh(), None).await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "durable").await;
    app.comment(&bob, &post, "still here").await;
    app.ok_as(&bob, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": ann_id })).await;
    let before = app.snapshot().await;
    let home = app.stop().await;
    assert!(home.path().join(blogql::JWT_SECRET_FILE).exists());

    let app = TestApp::spawn_in(home, None).await;
    assert_eq!(app.snapshot().await, before);
    let resp = app
        .graphql_as(
            &ann,
            "query($id: ID!) { viewer { name email followers { edges { node { id } } } } post(id: $id) { title commentCount comments { edges { node { author { id } } } } } }",
            json!({ "id": post }),
        )
        .await;
    let d = data(&resp);
    assert_eq!(d["viewer"]["name"], json!("Ann"));
    assert_eq!(d["viewer"]["followers"]["edges"][0]["node"]["id"], json!(bob_id));
    assert_eq!(d["post"]["title"], json!("durable"));
    assert_eq!(d["post"]["commentCount"], json!(1));
    assert_eq!(d["post"]["comments"]["edges"][0]["node"]["author"]["id"], json!(bob_id));
    // Writes keep working on the reopened store.
    app.create_post(&bob, "after restart").await;
    app.assert_consistent().await;
}
