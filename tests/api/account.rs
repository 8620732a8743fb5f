//! The viewer's account: `updateProfile`, `changePassword`, `logOut` and
//! `logOutEverywhere`, with what each may touch and which tokens survive.
//! Both backends; the two-process test needs MongoDB (tier 2).

use blogql::cmd::LogOut;
use blogql::domain::new_token_id;
use serde_json::{Value, json};

use crate::helpers::{StoreHome, TEST_SECRET, TestApp, data, expect_error, mongodb_uri, str_at};

const PROFILE: &str = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { id name bio } }";
const CHANGE: &str = "mutation($c: String!, $n: String!) {
    changePassword(input: {currentPassword: $c, newPassword: $n}) { token user { id } } }";
const LOG_IN: &str = "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";
const VIEWER: &str = "{ viewer { id name bio } }";
const WRITE: &str = "mutation { createPost(input: {title: \"t\", body: \"b\"}) { id } }";

/// What a token gets now: the viewer's name (null if refused) and whether a write is allowed.
async fn token_state(app: &TestApp, token: &str) -> (Value, bool) {
    let viewer = data(&app.graphql_as(token, VIEWER, json!({})).await)["viewer"]["name"].clone();
    let write = app.graphql_as(token, WRITE, json!({})).await;
    let allowed = write["errors"].is_null();
    if !allowed {
        expect_error(&write, "UNAUTHENTICATED");
    }
    (viewer, allowed)
}

async fn log_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.graphql(LOG_IN, json!({ "e": email, "p": password })).await
}

/// `bio` is null by default; `updateProfile` changes only the fields given,
/// an empty bio clears it, and line breaks are kept; it writes the viewer's
/// record and nothing else.
#[tokio::test]
async fn update_profile_changes_only_what_is_given() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (bob, _) = app.sign_up("Bob").await;
    app.create_post(&bob, "bob's").await;
    assert_eq!(data(&app.graphql_as(&ann, VIEWER, json!({})).await)["viewer"]["bio"], Value::Null);
    let before = app.snapshot().await;

    let got = app.ok_as(&ann, PROFILE, json!({ "i": { "bio": "line one\nline two" } })).await;
    assert_eq!(got["updateProfile"], json!({ "id": ann_id, "name": "Ann", "bio": "line one\nline two" }));
    let got = app.ok_as(&ann, PROFILE, json!({ "i": { "name": "  Ann B  " } })).await;
    assert_eq!(
        (str_at(&got, "/updateProfile/name"), str_at(&got, "/updateProfile/bio")),
        ("Ann B".into(), "line one\nline two".into())
    );

    let after = app.snapshot().await;
    assert_eq!(after.posts, before.posts);
    assert_eq!(after.comments, before.comments);
    let others =
        |s: &blogql::store::Snapshot| s.users.iter().filter(|u| u.id.to_hex() != ann_id).cloned().collect::<Vec<_>>();
    assert_eq!(others(&after), others(&before), "no other user's record changes");

    let got = app.ok_as(&ann, PROFILE, json!({ "i": { "bio": "" } })).await;
    assert_eq!(got["updateProfile"]["bio"], Value::Null, "an empty bio clears it");
    app.assert_consistent().await;
}

/// Bad profile input is `BAD_USER_INPUT` and changes nothing; without a token it is `UNAUTHENTICATED`.
#[tokio::test]
async fn update_profile_refuses_bad_input() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let before = app.snapshot().await;
    for input in [
        json!({}),
        json!({ "name": "   " }),
        json!({ "name": "x".repeat(65) }),
        json!({ "name": "two\nlines" }),
        json!({ "bio": "é".repeat(1001) }),
        json!({ "bio": "bell \u{7}" }),
        json!({ "bio": "evil \u{202E}txt.exe" }),
        json!({ "name": "Ann", "bio": "ok \u{2066}isolate" }),
    ] {
        expect_error(&app.graphql_as(&ann, PROFILE, json!({ "i": input })).await, "BAD_USER_INPUT");
    }
    expect_error(&app.graphql(PROFILE, json!({ "i": { "bio": "hi" } })).await, "UNAUTHENTICATED");
    assert_eq!(app.snapshot().await, before);
    let ok = app.ok_as(&ann, PROFILE, json!({ "i": { "bio": "é".repeat(1000) } })).await;
    assert_eq!(ok["updateProfile"]["bio"].as_str().map(|b| b.chars().count()), Some(1000));
}

/// `changePassword` with the right current password ends every earlier token
/// (the viewer is null, writes are `UNAUTHENTICATED`), returns a fresh token
/// that works at once, and only the new password logs in.
#[tokio::test]
async fn change_password_ends_earlier_sessions() {
    let app = TestApp::spawn().await;
    let (first, ann_id) = app.sign_up("Ann").await;
    let second = str_at(data(&log_in(&app, "ann@example.com", "correct horse").await), "/logIn/token");
    let changed = app.ok_as(&first, CHANGE, json!({ "c": "correct horse", "n": "battery staple" })).await;
    assert_eq!(str_at(&changed, "/changePassword/user/id"), ann_id);
    let fresh = str_at(&changed, "/changePassword/token");
    for old in [&first, &second] {
        assert_eq!(token_state(&app, old).await, (Value::Null, false), "an earlier token is refused");
    }
    assert_eq!(token_state(&app, &fresh).await, (json!("Ann"), true), "the fresh token works at once");
    expect_error(&log_in(&app, "ann@example.com", "correct horse").await, "UNAUTHENTICATED");
    let again = str_at(data(&log_in(&app, "ann@example.com", "battery staple").await), "/logIn/token");
    assert!(token_state(&app, &again).await.1);
}

/// A wrong current password is `UNAUTHENTICATED` and changes nothing; it
/// counts toward the log-in back-off for that email and address; a new
/// password that breaks the sign-up rules is `BAD_USER_INPUT`.
#[tokio::test]
async fn change_password_refuses_wrong_or_weak_passwords() {
    let app = TestApp::spawn_with(|s| s.auth.login_failures_before_backoff = 2).await;
    let (ann, _) = app.sign_up("Ann").await;
    let before = app.snapshot().await;
    expect_error(&app.graphql_as(&ann, CHANGE, json!({ "c": "correct horse", "n": "short" })).await, "BAD_USER_INPUT");
    for _ in 0..2 {
        let wrong = app.graphql_as(&ann, CHANGE, json!({ "c": "wrong horse", "n": "battery staple" })).await;
        expect_error(&wrong, "UNAUTHENTICATED");
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");
    assert!(token_state(&app, &ann).await.1, "the token still works");
    // Two failures from this address for this email: log-in must now wait.
    expect_error(&log_in(&app, "ann@example.com", "correct horse").await, "RATE_LIMITED");
    expect_error(&app.graphql(CHANGE, json!({ "c": "correct horse", "n": "battery staple" })).await, "UNAUTHENTICATED");
}

/// `logOut` ends the presented token only: the user's other token keeps
/// working, and the ended one is refused like no token at all, also for a
/// second `logOut`. `logOutEverywhere` ends every token issued until then,
/// and a log-in right after it works.
#[tokio::test]
async fn log_out_ends_one_token_and_everywhere_ends_all() {
    let app = TestApp::spawn().await;
    let (first, _) = app.sign_up("Ann").await;
    let second = str_at(data(&log_in(&app, "ann@example.com", "correct horse").await), "/logIn/token");
    let third = str_at(data(&log_in(&app, "ann@example.com", "correct horse").await), "/logIn/token");
    assert_eq!(app.ok_as(&first, "mutation { logOut }", json!({})).await["logOut"], json!(true));
    assert_eq!(token_state(&app, &first).await, (Value::Null, false));
    expect_error(&app.graphql_as(&first, "mutation { logOut }", json!({})).await, "UNAUTHENTICATED");
    assert_eq!(token_state(&app, &second).await, (json!("Ann"), true), "another token keeps working");

    assert_eq!(app.ok_as(&second, "mutation { logOutEverywhere }", json!({})).await["logOutEverywhere"], json!(true));
    for token in [&second, &third] {
        assert_eq!(token_state(&app, token).await, (Value::Null, false));
    }
    let next = str_at(data(&log_in(&app, "ann@example.com", "correct horse").await), "/logIn/token");
    assert!(token_state(&app, &next).await.1, "a token issued right after works");
    expect_error(&app.graphql("mutation { logOut }", json!({})).await, "UNAUTHENTICATED");
    // Within one request too: a write after `logOut` no longer counts the token.
    let both = app
        .graphql_as(&next, "mutation { logOut createPost(input: {title: \"t\", body: \"b\"}) { id } }", json!({}))
        .await;
    assert_eq!(both["data"]["logOut"], json!(true), "{both}");
    expect_error(&both, "UNAUTHENTICATED");
}

/// An ended token stays ended across a restart: the record, not the process, holds it.
#[tokio::test]
async fn an_ended_token_stays_ended_after_a_restart() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let other = str_at(data(&log_in(&app, "ann@example.com", "correct horse").await), "/logIn/token");
    app.ok_as(&ann, "mutation { logOut }", json!({})).await;
    let home: StoreHome = app.stop().await;
    let app = TestApp::spawn_in(home, Some(TEST_SECRET)).await;
    assert_eq!(token_state(&app, &ann).await, (Value::Null, false));
    assert!(token_state(&app, &other).await.1);
}

/// Checking a token costs no round trip of its own: `viewer` with a token is
/// one store round trip, the viewer load that also checks the token.
#[tokio::test]
async fn the_token_check_rides_on_the_viewer_load() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let before = app.store.round_trips();
    let resp = app.graphql_as(&ann, "{ viewer { name bio email } }", json!({})).await;
    assert_eq!(str_at(data(&resp), "/viewer/name"), "Ann");
    assert_eq!(app.store.round_trips() - before, 1);
}

/// The token check's memo never serves the viewer's record from before the
/// request's own write: a payload's `query { viewer }` shows the write.
#[tokio::test]
async fn a_payloads_viewer_is_read_after_the_write() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "first").await;
    app.create_post(&ann, "second").await;
    let delete = "mutation($id: ID!) { deletePost(id: $id) { query { viewer { postCount } } } }";
    let resp = app.ok_as(&ann, delete, json!({ "id": post })).await;
    assert_eq!(resp["deletePost"]["query"]["viewer"]["postCount"], json!(1), "{resp}");
}

/// The ended-token list keeps only tokens that have not expired: ending a
/// token drops every entry whose token has expired by then.
#[tokio::test]
async fn ended_tokens_are_kept_only_until_they_expire() {
    let app = TestApp::spawn().await;
    let (_, ann_id) = app.sign_up("Ann").await;
    let ann = blogql::model::UserId::parse(&ann_id).expect("id");
    let now = chrono_now();
    let (expired, live) = (new_token_id(now - 10), new_token_id(now + 3600));
    app.store.run(LogOut { actor: ann, token: expired }).await.expect("log out");
    let listed = |s: blogql::store::Snapshot| s.users.into_iter().find(|u| u.id == ann).expect("ann").revoked_tokens;
    assert_eq!(listed(app.snapshot().await), vec![expired], "kept until the next log-out looks");
    app.store.run(LogOut { actor: ann, token: live }).await.expect("log out");
    assert_eq!(listed(app.snapshot().await), vec![live], "the expired one is gone");
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// On MongoDB, a token ended through one server process is refused by
/// another on its very next request, and a password change likewise.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn mongo_an_ended_token_is_refused_by_every_process() {
    assert!(mongodb_uri().is_some(), "this test needs MONGODB_URI pointing at a MongoDB deployment");
    let one = TestApp::spawn().await;
    let two = one.second_process().await;
    let (ann, _) = one.sign_up("Ann").await;
    let other = str_at(data(&log_in(&one, "ann@example.com", "correct horse").await), "/logIn/token");
    assert!(token_state(&two, &ann).await.1, "the other process accepts it first");
    one.ok_as(&ann, "mutation { logOut }", json!({})).await;
    assert_eq!(token_state(&two, &ann).await, (Value::Null, false));
    assert!(token_state(&two, &other).await.1);
    two.ok_as(&other, CHANGE, json!({ "c": "correct horse", "n": "battery staple" })).await;
    assert_eq!(token_state(&one, &other).await, (Value::Null, false));
}
