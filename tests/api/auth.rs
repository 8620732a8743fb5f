//! The auth and ownership matrix: who may do what, and what bad tokens get.

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{TEST_SECRET, TestApp, data, expect_error, str_at};

const CREATE: &str = "mutation { createPost(input: {title: \"t\", body: \"b\"}) { id } }";

fn token_with(claims: serde_json::Value, secret: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Mutations that need a viewer refuse anonymous callers and every kind of bad token, and write nothing.
#[tokio::test]
async fn bad_or_missing_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let (good, id) = app.sign_up("Ann").await;

    expect_error(&app.graphql(CREATE, json!({})).await, "UNAUTHENTICATED");

    let expired = token_with(json!({ "sub": id, "iat": now() - 7200, "exp": now() - 3600 }), TEST_SECRET);
    let msg = expect_error(&app.graphql_as(&expired, CREATE, json!({})).await, "UNAUTHENTICATED");
    assert!(msg.contains("expired"), "{msg}");

    let wrong_key = token_with(json!({ "sub": id, "iat": now(), "exp": now() + 3600 }), "some-other-secret-0123456789");
    expect_error(&app.graphql_as(&wrong_key, CREATE, json!({})).await, "UNAUTHENTICATED");

    // Flip a character of the signed payload: the signature no longer matches.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let flipped: String = parts[1].chars().rev().collect();
    parts[1] = flipped;
    expect_error(&app.graphql_as(&parts.join("."), CREATE, json!({})).await, "UNAUTHENTICATED");

    // alg=none with no signature, naming a real user.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(json!({ "sub": id, "iat": now(), "exp": now() + 3600 }).to_string());
    let none = format!("{header}.{payload}.");
    expect_error(&app.graphql_as(&none, CREATE, json!({})).await, "UNAUTHENTICATED");

    expect_error(&app.graphql_as("not-a-jwt", CREATE, json!({})).await, "UNAUTHENTICATED");
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", format!("Basic {good}"))
        .json(&json!({ "query": CREATE }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    expect_error(&body, "UNAUTHENTICATED");

    // A bad token on `viewer` is an error too, not a silent anonymous answer.
    expect_error(&app.graphql_as(&expired, "{ viewer { id } }", json!({})).await, "UNAUTHENTICATED");
    assert!(app.snapshot().await.posts.is_empty(), "nothing was written");

    // The good token still works.
    data(&app.graphql_as(&good, CREATE, json!({})).await);
}

/// A wrong password and an unknown email get the same UNAUTHENTICATED message; the right one logs in.
#[tokio::test]
async fn log_in_does_not_reveal_which_emails_exist() {
    let app = TestApp::spawn().await;
    app.sign_up("Ann").await;
    let q = "mutation($i: LogInInput!) { logIn(input: $i) { token user { name email } } }";
    let wrong = expect_error(
        &app.graphql(q, json!({ "i": { "email": "ann@example.com", "password": "wrong password" } })).await,
        "UNAUTHENTICATED",
    );
    let unknown = expect_error(
        &app.graphql(q, json!({ "i": { "email": "nobody@example.com", "password": "correct horse" } })).await,
        "UNAUTHENTICATED",
    );
    assert_eq!(wrong, unknown);

    let resp = app.graphql(q, json!({ "i": { "email": "ANN@Example.com", "password": "correct horse" } })).await;
    let d = data(&resp);
    assert_eq!(d["logIn"]["user"], json!({ "name": "Ann", "email": "ann@example.com" }));
    let token = str_at(d, "/logIn/token");
    let me = app.ok_as(&token, "{ viewer { name } }", json!({})).await;
    assert_eq!(me["viewer"]["name"], json!("Ann"));
}

/// A taken email is CONFLICT, compared case-insensitively, and creates no second account.
#[tokio::test]
async fn duplicate_email_is_conflict() {
    let app = TestApp::spawn().await;
    app.sign_up("Ann").await;
    let resp = app
        .graphql(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            json!({ "i": { "name": "Other", "email": "  ANN@example.COM ", "password": "12345678" } }),
        )
        .await;
    expect_error(&resp, "CONFLICT");
    assert_eq!(app.snapshot().await.users.len(), 1);
}

/// Only owners may edit or delete; the email is shown only to its owner; the hash never.
#[tokio::test]
async fn ownership_matrix() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let post = app.create_post(&ann, "ann's").await;
    let comment = app.comment(&ann, &post, "ann's comment").await;

    let update = "mutation($id: ID!) { updatePost(id: $id, input: {title: \"hijacked\"}) { title } }";
    expect_error(&app.graphql_as(&bob, update, json!({ "id": post })).await, "FORBIDDEN");
    let del_post = "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }";
    expect_error(&app.graphql_as(&bob, del_post, json!({ "id": post })).await, "FORBIDDEN");
    let del_comment = "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId } }";
    expect_error(&app.graphql_as(&bob, del_comment, json!({ "id": comment })).await, "FORBIDDEN");
    let del_user = "mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }";
    expect_error(&app.graphql_as(&bob, del_user, json!({ "id": ann_id })).await, "FORBIDDEN");
    assert_eq!(app.snapshot().await.posts[0].title, "ann's");

    let edited = app.ok_as(&ann, update, json!({ "id": post })).await;
    assert_eq!(edited["updatePost"]["title"], json!("hijacked"));

    let q = "query($a: ID!, $b: ID!) { a: user(id: $a) { email } b: user(id: $b) { email } }";
    let vars = json!({ "a": ann_id, "b": bob_id });
    let as_ann = app.ok_as(&ann, q, vars.clone()).await;
    assert_eq!(as_ann, json!({ "a": { "email": "ann@example.com" }, "b": { "email": null } }));
    let anonymous = app.graphql(q, vars).await;
    assert_eq!(data(&anonymous), &json!({ "a": { "email": null }, "b": { "email": null } }));

    let hash_field = app.graphql("query($a: ID!) { user(id: $a) { passwordHash } }", json!({ "a": ann_id })).await;
    assert!(hash_field["errors"].is_array(), "the schema has no passwordHash field");
    let sdl = blogql::graphql::sdl();
    assert!(!sdl.to_lowercase().contains("password_hash") && !sdl.contains("passwordHash"));
}

/// The Bearer scheme is matched in any case (RFC 9110): `BEARER`, `bearer` and `Bearer` tokens all sign the request in.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = TestApp::spawn().await;
    let (token, id) = app.sign_up("Ann").await;
    let viewer = |scheme: &'static str| {
        let req = app.client.post(app.url("/graphql")).header("Authorization", format!("{scheme} {token}"));
        async move { req.json(&json!({ "query": "{ viewer { id } }" })).send().await.unwrap().json().await.unwrap() }
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let resp: serde_json::Value = viewer(scheme).await;
        assert_eq!(str_at(data(&resp), "/viewer/id"), id, "scheme {scheme}");
    }
    let resp: serde_json::Value = viewer("Basic").await;
    expect_error(&resp, "UNAUTHENTICATED");
}

/// A token the server has verified before, and so keeps, is still refused
/// once it expires (with the same 5 s leeway): keeping it skips the
/// signature check, never the expiry.
#[tokio::test]
async fn a_kept_token_still_expires_on_time() {
    use base64::Engine;
    let app = TestApp::spawn().await;
    let (good, id) = app.sign_up("Kit").await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = b64.decode(good.split('.').nth(1).expect("a payload")).expect("base64");
    let mut claims: serde_json::Value = serde_json::from_slice(&payload).expect("claims");
    let issued = now();
    // Accepted while the clock reads at most `issued + 3`, refused after.
    claims["exp"] = json!(issued - 2);
    let short = token_with(claims, TEST_SECRET);
    for _ in 0..3 {
        let resp = app.graphql_as(&short, "{ viewer { id } }", json!({})).await;
        assert_eq!(str_at(data(&resp), "/viewer/id"), id, "accepted inside the leeway");
    }
    while now() <= issued + 3 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let msg = expect_error(&app.graphql_as(&short, "{ viewer { id } }", json!({})).await, "UNAUTHENTICATED");
    assert!(msg.contains("expired"), "{msg}");
    expect_error(&app.graphql_as(&short, CREATE, json!({})).await, "UNAUTHENTICATED");
}
