//! The home feed (`Query.feed`): the posts of the viewer's followees and the
//! viewer's own, newest first, following every change at once, with exact
//! counts and a constant number of store round trips. Both backends.

use blogql::cmd::Command;
use blogql::error::Result;
use blogql::model::{PostDoc, UserDoc};
use blogql::model::{PostId, UserId};
use blogql::store::Tx;
use bson::DateTime;
use serde_json::{Value, json};

use crate::helpers::{TestApp, data, expect_error, int_at, mongodb_uri, str_at};

const FEED: &str = "query($f: Int, $a: String, $l: Int, $b: String) {
    feed(first: $f, after: $a, last: $l, before: $b) {
        totalCount edges { cursor node { id author { name } } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
const FOLLOW: &str = "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }";
const UNFOLLOW: &str = "mutation($u: ID!) { unfollowUser(userId: $u) { followee { id } } }";

fn ids(feed: &Value) -> Vec<String> {
    feed["edges"].as_array().into_iter().flatten().map(|e| e["node"]["id"].as_str().unwrap_or("").to_owned()).collect()
}

async fn feed(app: &TestApp, token: &str, vars: Value) -> Value {
    data(&app.graphql_as(token, FEED, vars).await)["feed"].clone()
}

/// Ann follows Bob and Cat, not Dan; each writes three posts, in turn.
struct World {
    ann: String,
    bob: String,
    bob_id: String,
    cat_id: String,
    dan: String,
    /// The posts Ann's feed shows, newest first.
    shown: Vec<String>,
}

async fn world(app: &TestApp) -> World {
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let (cat, cat_id) = app.sign_up("Cat").await;
    let (dan, _) = app.sign_up("Dan").await;
    app.ok_as(&ann, FOLLOW, json!({ "u": bob_id })).await;
    app.ok_as(&ann, FOLLOW, json!({ "u": cat_id })).await;
    let mut shown = Vec::new();
    for i in 0..3 {
        shown.push(app.create_post(&bob, &format!("bob {i}")).await);
        app.create_post(&dan, &format!("dan {i}")).await;
        shown.push(app.create_post(&cat, &format!("cat {i}")).await);
        shown.push(app.create_post(&ann, &format!("ann {i}")).await);
    }
    shown.reverse();
    World { ann, bob, bob_id, cat_id, dan, shown }
}

/// The feed holds exactly the followees' and the viewer's posts, newest
/// first, with authors, and `totalCount` is their sum; an unfollowed
/// author's posts never appear.
#[tokio::test]
async fn feed_lists_followees_and_own_posts_newest_first() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let got = feed(&app, &w.ann, json!({ "f": 20 })).await;
    assert_eq!(ids(&got), w.shown);
    assert_eq!(int_at(&got, "/totalCount"), 9);
    assert_eq!(str_at(&got, "/edges/0/node/author/name"), "Ann");
    assert_eq!(got["pageInfo"]["hasNextPage"], json!(false));
    // Dan follows nobody: his feed is his own three posts.
    let dans = feed(&app, &w.dan, json!({})).await;
    assert_eq!((ids(&dans).len(), int_at(&dans, "/totalCount")), (3, 3));
}

/// Paging forward and backward walks the same order, each post once, and a
/// cursor from `posts` (the global list) positions the feed too.
#[tokio::test]
async fn feed_pages_both_ways_and_takes_other_lists_cursors() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let mut forward = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = feed(&app, &w.ann, json!({ "f": 2, "a": after })).await;
        forward.extend(ids(&page));
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(forward, w.shown);
    let mut backward = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = feed(&app, &w.ann, json!({ "l": 4, "b": before })).await;
        let mut got = ids(&page);
        got.extend(backward);
        backward = got;
        if page["pageInfo"]["hasPreviousPage"] != json!(true) {
            break;
        }
        before = page["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(backward, w.shown);
    // The global list's cursor at Ann's newest post: the feed goes on after it.
    let posts = data(&app.graphql("{ posts(first: 1) { edges { cursor node { id } } } }", json!({})).await).clone();
    assert_eq!(str_at(&posts, "/posts/edges/0/node/id"), w.shown[0]);
    let cursor = str_at(&posts, "/posts/edges/0/cursor");
    assert_eq!(ids(&feed(&app, &w.ann, json!({ "f": 20, "a": cursor })).await), w.shown[1..]);
}

/// Without a token the feed is `UNAUTHENTICATED`; `first` with `last`, and a
/// forged cursor, are `BAD_USER_INPUT`; a token whose account is gone is
/// treated as no token.
#[tokio::test]
async fn feed_refuses_bad_requests() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    expect_error(&app.graphql(FEED, json!({})).await, "UNAUTHENTICATED");
    expect_error(&app.graphql_as(&w.ann, FEED, json!({ "f": 2, "l": 2 })).await, "BAD_USER_INPUT");
    expect_error(&app.graphql_as(&w.ann, FEED, json!({ "f": 2, "a": "bm90LWEtY3Vyc29y" })).await, "BAD_USER_INPUT");
    let (gone, gone_id) = app.sign_up("Gone").await;
    app.ok_as(&gone, "mutation($id: ID!) { deleteUser(id: $id) { deletedPostCount } }", json!({ "id": gone_id })).await;
    expect_error(&app.graphql_as(&gone, FEED, json!({})).await, "UNAUTHENTICATED");
}

/// The feed follows every change at once: a followee's new post is first;
/// an unfollow removes that author's posts and count; a deleted post and a
/// deleted followee disappear, with every count that included them.
#[tokio::test]
async fn feed_follows_changes_at_once() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let fresh = app.create_post(&w.bob, "bob fresh").await;
    let got = feed(&app, &w.ann, json!({ "f": 1 })).await;
    assert_eq!((ids(&got), int_at(&got, "/totalCount")), (vec![fresh.clone()], 10));

    app.ok_as(&w.ann, UNFOLLOW, json!({ "u": w.cat_id })).await;
    let got = feed(&app, &w.ann, json!({ "f": 20 })).await;
    assert_eq!(int_at(&got, "/totalCount"), 7);
    let authors: Vec<&str> =
        got["edges"].as_array().into_iter().flatten().filter_map(|e| e["node"]["author"]["name"].as_str()).collect();
    assert!(!authors.contains(&"Cat"), "{authors:?}");
    assert_eq!(ids(&got).len(), 7, "Bob's four and Ann's three");

    app.ok_as(&w.bob, "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": fresh })).await;
    let got = feed(&app, &w.ann, json!({ "f": 20 })).await;
    assert!(!ids(&got).contains(&fresh));
    assert_eq!((ids(&got).len(), int_at(&got, "/totalCount")), (6, 6));

    app.ok_as(&w.bob, "mutation($id: ID!) { deleteUser(id: $id) { deletedPostCount } }", json!({ "id": w.bob_id }))
        .await;
    let got = feed(&app, &w.ann, json!({ "f": 20 })).await;
    assert_eq!((ids(&got).len(), int_at(&got, "/totalCount")), (3, 3), "Ann's own three");
    app.assert_consistent().await;
}

/// A followee whose deletion is staged (hidden at once, reaped later) is
/// gone from the feed and its count at once, before the reaper runs.
#[tokio::test]
async fn a_staged_followee_leaves_the_feed_at_once() {
    let app = TestApp::spawn_with(|s| {
        s.store.cascade_budget_docs = 2;
        s.store.reap_deletions = false;
    })
    .await;
    let w = world(&app).await;
    let staged =
        app.ok_as(&w.bob, "mutation($id: ID!) { deleteUser(id: $id) { staged } }", json!({ "id": w.bob_id })).await;
    assert_eq!(staged["deleteUser"]["staged"], json!(true));
    let got = feed(&app, &w.ann, json!({ "f": 20 })).await;
    assert_eq!((ids(&got).len(), int_at(&got, "/totalCount")), (6, 6), "Cat's three and Ann's three");
    assert!(ids(&got).iter().all(|id| w.shown.contains(id)));
}

/// Test set-up, one transaction per call: users `from..to`, each with one
/// post, all followed by `reader` (creating thousands through the API would
/// take minutes). Called in chunks, so that on mongoeco, which serialises
/// commits, a chunk retried after a parallel test's commit is short.
struct Followees {
    reader: UserId,
    from: usize,
    to: usize,
}

/// Rows per [`Followees`] transaction.
const FOLLOWEES_PER_TX: usize = 25;

impl Command for Followees {
    type Output = ();
    const NAME: &'static str = "testFollowees";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let mut reader = tx.user(self.reader).await?.expect("the reader exists");
        let now = tx.now();
        for i in self.from..self.to {
            let mut user = UserDoc::new(UserId::new(), format!("F{i}"), format!("f{i}@example.com"), "-".into(), now);
            user.followers.push(self.reader);
            tx.insert(&user).await?;
            let at = DateTime::from_millis(now.timestamp_millis() - i as i64);
            let post = PostDoc {
                id: PostId::new(),
                title: format!("post {i}"),
                body: "b".into(),
                author: user.id,
                liked_by: Vec::new(),
                comment_count: 0,
                created_at: at,
                updated_at: at,
                deleting: None,
            };
            tx.insert(&post).await?;
            tx.push_user_post(user.id, post.id).await?;
            reader.following.push(user.id);
        }
        tx.replace(&reader).await
    }
}

const DEEP_FEED: &str = "{ feed(first: 20) { edges { node { author { name }
    comments(first: 3) { edges { node { author { name } } } } } } } }";

/// The store round trips of the deep feed query for a reader following `n` users.
async fn feed_round_trips(n: usize) -> u64 {
    let app = TestApp::spawn().await;
    let (reader, reader_id) = app.sign_up("Reader").await;
    let reader_id = UserId::parse(&reader_id).expect("an id");
    for from in (0..n).step_by(FOLLOWEES_PER_TX) {
        let to = (from + FOLLOWEES_PER_TX).min(n);
        app.store.run(Followees { reader: reader_id, from, to }).await.expect("seeding followees");
    }
    let (writer, _) = app.sign_up("Writer").await;
    // Some comments, so the comment level has authors to load.
    let first = str_at(&feed(&app, &reader, json!({ "f": 1 })).await, "/edges/0/node/id");
    app.comment(&writer, &first, "hello").await;
    let before = app.store.round_trips();
    let resp = app.graphql_as(&reader, DEEP_FEED, json!({})).await;
    let trips = app.store.round_trips() - before;
    assert_eq!(data(&resp)["feed"]["edges"].as_array().map(Vec::len), Some(20.min(n)));
    trips
}

/// `feed(first: 20)` with authors and comments (and their authors) costs the
/// same round trips for 5 followees as for thousands (5,000 on the embedded
/// store; 500 on MongoDB, where seeding thousands through mongoeco is slow):
/// the viewer, the page, its authors, its comment pages, their authors.
#[tokio::test]
async fn feed_round_trips_do_not_grow_with_followees() {
    let many = if mongodb_uri().is_some() { 500 } else { 5000 };
    let small = feed_round_trips(5).await;
    let large = feed_round_trips(many).await;
    assert_eq!(small, 5, "viewer + feed page + authors + comment pages + comment authors");
    assert_eq!(large, small, "5 followees vs {many}");
}

/// Sets the reader's `following` list as given: the cap test needs many
/// follows, not many users.
struct SetFollowing {
    reader: UserId,
    ids: Vec<UserId>,
}

impl Command for SetFollowing {
    type Output = ();
    const NAME: &'static str = "testSetFollowing";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let mut reader = tx.user(self.reader).await?.expect("the reader exists");
        reader.following = self.ids.clone();
        tx.replace(&reader).await
    }
}

/// A follow past `MAX_FOLLOWING` is `FORBIDDEN` and writes nothing, so one
/// `feed` never reads more authors than that; an unfollow makes room again.
#[tokio::test]
async fn following_is_capped_so_a_feed_stays_bounded() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let (_, bob_id) = app.sign_up("Bob").await;
    let (_, cat_id) = app.sign_up("Cat").await;
    app.ok_as(&ann, FOLLOW, json!({ "u": bob_id })).await;
    let mut ids: Vec<UserId> = (1..blogql::cmd::MAX_FOLLOWING).map(|_| UserId::new()).collect();
    ids.push(UserId::parse(&bob_id).expect("an id"));
    let reader = UserId::parse(&ann_id).expect("an id");
    app.store.run(SetFollowing { reader, ids }).await.expect("setting the follows");

    let refused = app.graphql_as(&ann, FOLLOW, json!({ "u": cat_id })).await;
    let message = expect_error(&refused, "FORBIDDEN");
    assert!(message.contains("5000 users"), "{message}");
    let counts = "query($u: ID!) { user(id: $u) { followerCount } }";
    let cat = app.ok_as(&ann, counts, json!({ "u": cat_id })).await;
    assert_eq!(int_at(&cat, "/user/followerCount"), 0, "the refused follow wrote nothing");
    let again = app.ok_as(&ann, FOLLOW, json!({ "u": bob_id })).await;
    assert_eq!(str_at(&again, "/followUser/followee/id"), bob_id, "an existing follow stays idempotent");

    app.ok_as(&ann, UNFOLLOW, json!({ "u": bob_id })).await;
    app.ok_as(&ann, FOLLOW, json!({ "u": cat_id })).await;
    let cat = app.ok_as(&ann, counts, json!({ "u": cat_id })).await;
    assert_eq!(int_at(&cat, "/user/followerCount"), 1, "room again after an unfollow");
}
