//! Subscriptions over graphql-transport-ws, on both backends: committed
//! events only, in commit order, each resolved afresh; the protocol's close
//! codes; and the per-socket limit.

use std::time::Duration;

use blogql::cmd::CreateComment;
use blogql::domain::CommentBody;
use blogql::error::Error;
use blogql::model::{PostId, UserId};
use blogql::store::events::Source;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::faults::FailAt;
use crate::helpers::TestApp;

pub(crate) type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for a message that should come.
const WAIT: Duration = Duration::from_secs(10);

/// Opens a socket to `/graphql` offering `protocol` (none when `None`).
async fn open(app: &TestApp, protocol: Option<&str>) -> Socket {
    let mut request = format!("ws://{}/graphql", app.addr).into_client_request().expect("request");
    if let Some(protocol) = protocol {
        request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol).expect("header"));
    }
    let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    socket
}

/// Opens a graphql-transport-ws socket and initialises it with `payload`; waits for the ack.
pub(crate) async fn connect(app: &TestApp, payload: Value) -> Socket {
    let mut socket = open(app, Some("graphql-transport-ws")).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": payload })).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    socket
}

pub(crate) async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.expect("send");
}

/// The next protocol message (pings are answered and skipped); panics on a close.
pub(crate) async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next()).await.expect("a message in time");
        match message.expect("open").expect("a frame") {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value["type"] == "ping" {
                    send(socket, json!({ "type": "pong" })).await;
                    continue;
                }
                return value;
            }
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The close code the server ends the socket with.
async fn closed_with(socket: &mut Socket) -> u16 {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next()).await.expect("a close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// The next message within `wait`, if one comes (pings are answered and skipped).
pub(crate) async fn silent_for(socket: &mut Socket, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, next(socket)).await.ok()
}

/// Waits until the `n` subscriptions sent so far have started, so nothing
/// committed from now on can be missed: `n` subscribers are running, and
/// each distinct run they share (`blogql_subscription_runs`) listens on the hub.
pub(crate) async fn listening(app: &TestApp, n: i64) {
    let started = std::time::Instant::now();
    loop {
        let text = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        let value = |prefix: &str| -> i64 {
            text.lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .filter_map(|rest| rest.rsplit(' ').next()?.parse::<i64>().ok())
                .sum()
        };
        let (members, runs) = (value("blogql_subscriptions{"), value("blogql_subscription_runs "));
        let listeners = i64::try_from(app.store.hub().listeners()).unwrap_or(0);
        if members >= n && runs >= 1.min(n) && listeners >= runs {
            return;
        }
        assert!(
            started.elapsed() < WAIT,
            "{members} of {n} subscriptions running, {listeners} of {runs} runs listening"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn bearer(token: &str) -> Value {
    json!({ "Authorization": format!("Bearer {token}") })
}

const COMMENT_ADDED: &str =
    "subscription($p: ID!) { commentAdded(postId: $p) { body author { name } post { commentCount } } }";

/// Subscribes `id` to `commentAdded` on `post`.
async fn watch_comments(socket: &mut Socket, id: &str, post: &str) {
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": COMMENT_ADDED, "variables": { "p": post } } }),
    )
    .await;
}

/// Committed comments arrive in commit order, each resolved as committed
/// then (`post.commentCount` counts it); the first subscriber's events do not
/// depend on the second's, and `complete` ends one subscription alone.
#[tokio::test]
async fn comments_arrive_in_commit_order_resolved_afresh() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "watched").await;
    let mut socket = connect(&app, json!({})).await;
    watch_comments(&mut socket, "a", &post).await;
    watch_comments(&mut socket, "b", &post).await;
    listening(&app, 2).await;
    for n in 1..=5 {
        app.comment(&ann, &post, &format!("comment {n}")).await;
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    while a.len() < 5 || b.len() < 5 {
        let message = next(&mut socket).await;
        assert_eq!(message["type"], "next", "{message}");
        let comment = &message["payload"]["data"]["commentAdded"];
        let seen = (comment["body"].as_str().expect("body").to_owned(), comment["post"]["commentCount"].clone());
        assert_eq!(comment["author"]["name"], "Ann");
        if message["id"] == "a" { a.push(seen) } else { b.push(seen) }
    }
    let bodies: Vec<&str> = a.iter().map(|(body, _)| body.as_str()).collect();
    assert_eq!(bodies, ["comment 1", "comment 2", "comment 3", "comment 4", "comment 5"]);
    assert_eq!(a.iter().map(|(b, _)| b).collect::<Vec<_>>(), b.iter().map(|(b, _)| b).collect::<Vec<_>>());
    for (i, (_, count)) in a.iter().enumerate() {
        assert!(
            count.as_i64().expect("count") > i as i64,
            "event {i} resolved against its own commit or later: {count}"
        );
    }
    send(&mut socket, json!({ "id": "a", "type": "complete" })).await;
    while app.store.hub().listeners() > 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.comment(&ann, &post, "only b").await;
    let message = next(&mut socket).await;
    assert_eq!(
        (message["id"].as_str(), message["payload"]["data"]["commentAdded"]["body"].as_str()),
        (Some("b"), Some("only b"))
    );
}

/// Under eight concurrent writers, two subscribers on separate sockets each
/// get every comment exactly once and in the same order; on the embedded
/// store (one writer, so commit order is the list's time order) that order
/// is the order of the post's comment list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_arrive_once_each_in_one_commit_order() {
    const WRITERS: usize = 8;
    const EACH: usize = 10;
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "busy").await;
    let mut first = connect(&app, json!({})).await;
    let mut second = connect(&app, json!({})).await;
    watch_comments(&mut first, "1", &post).await;
    watch_comments(&mut second, "2", &post).await;
    listening(&app, 2).await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, url, post) = (app.client.clone(), app.url("/graphql"), post.clone());
        let (token, _) = app.sign_up(&format!("Writer{w}")).await;
        writers.push(tokio::spawn(async move {
            for n in 0..EACH {
                let q = "mutation($i: CreateCommentInput!) { createComment(input: $i) { id } }";
                let body =
                    json!({ "query": q, "variables": { "i": { "postId": post, "body": format!("w{w} n{n}") } } });
                let resp = client.post(&url).bearer_auth(&token).json(&body).send().await.expect("write");
                assert_eq!(resp.status(), 200);
            }
        }));
    }
    for writer in writers {
        writer.await.expect("writer");
    }
    let mut orders = Vec::new();
    for socket in [&mut first, &mut second] {
        let mut bodies = Vec::new();
        while bodies.len() < WRITERS * EACH {
            let message = next(socket).await;
            bodies.push(message["payload"]["data"]["commentAdded"]["body"].as_str().expect("body").to_owned());
        }
        assert_eq!(silent_for(socket, Duration::from_millis(200)).await, None, "no event twice");
        orders.push(bodies);
    }
    let mut unique = orders[0].clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), WRITERS * EACH, "every comment once");
    assert_eq!(orders[0], orders[1], "both subscribers see one order");
    // Each writer's own comments keep their order (it waited for each answer).
    for w in 0..WRITERS {
        let mine: Vec<&String> = orders[0].iter().filter(|b| b.starts_with(&format!("w{w} "))).collect();
        let expected: Vec<String> = (0..EACH).map(|n| format!("w{w} n{n}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    if app.mongo.is_none() {
        let q = "query($p: ID!) { post(id: $p) { comments(first: 100) { edges { node { body } } } } }";
        let listed = app.graphql(q, json!({ "p": post })).await;
        let mut listed: Vec<String> = listed["data"]["post"]["comments"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"]["body"].as_str().expect("body").to_owned())
            .collect();
        listed.reverse();
        assert_eq!(orders[0], listed, "commit order is the list's order on the embedded store");
    }
}

/// A subscription gets only what commits after it starts: comments written
/// just before it (which a MongoDB outbox tail may publish only after the
/// subscriber has started listening) are not delivered as new.
#[tokio::test]
async fn commits_before_subscribing_are_not_delivered() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    for n in 1..=5 {
        app.comment(&ann, &post, &format!("before {n}")).await;
    }
    let mut socket = connect(&app, json!({})).await;
    watch_comments(&mut socket, "1", &post).await;
    listening(&app, 1).await;
    app.comment(&ann, &post, "after").await;
    let message = next(&mut socket).await;
    assert_eq!(message["payload"]["data"]["commentAdded"]["body"], "after", "{message}");
}

/// A write that rolls back publishes nothing: a comment failed at each of
/// its writes in turn reaches no subscriber, and the next committed one does.
#[tokio::test]
async fn rolled_back_writes_publish_nothing() {
    let app = TestApp::spawn().await;
    let (ann, ann_id) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "watched").await;
    let mut socket = connect(&app, json!({})).await;
    watch_comments(&mut socket, "c", &post).await;
    listening(&app, 1).await;
    let (author, post_id) = (UserId::parse(&ann_id).expect("id"), PostId::parse(&post).expect("id"));
    for write in 1..=4 {
        let cmd = CreateComment { author, post: post_id, body: CommentBody::parse("rolled back").expect("body") };
        let failed = app.store.run(FailAt { write, cmd }).await;
        assert!(matches!(failed, Err(Error::Internal { .. })), "write {write}: {failed:?}");
    }
    assert_eq!(silent_for(&mut socket, Duration::from_millis(500)).await, None, "nothing was committed");
    app.comment(&ann, &post, "committed").await;
    assert_eq!(next(&mut socket).await["payload"]["data"]["commentAdded"]["body"], "committed");
}

/// `postChanged` reports likes and edits with the post as committed, then
/// `deleted: true` with a null post when it is deleted, and completes.
#[tokio::test]
async fn post_changes_end_with_the_deletion() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "watched").await;
    let mut socket = connect(&app, json!({})).await;
    let query = "subscription($id: ID!) { postChanged(id: $id) { id deleted post { title likeCount } } }";
    send(
        &mut socket,
        json!({ "id": "p", "type": "subscribe", "payload": { "query": query, "variables": { "id": post } } }),
    )
    .await;
    listening(&app, 1).await;
    app.ok_as(&ann, "mutation($p: ID!) { likePost(postId: $p) { id } }", json!({ "p": post })).await;
    let liked = next(&mut socket).await;
    assert_eq!(
        liked["payload"]["data"]["postChanged"],
        json!({ "id": post, "deleted": false, "post": { "title": "watched", "likeCount": 1 } })
    );
    app.ok_as(&ann, "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": post })).await;
    let gone = next(&mut socket).await;
    assert_eq!(gone["payload"]["data"]["postChanged"], json!({ "id": post, "deleted": true, "post": null }));
    assert_eq!(next(&mut socket).await, json!({ "id": "p", "type": "complete" }));
}

/// A missing post is `NOT_FOUND` and a malformed id `BAD_USER_INPUT`, each
/// as an `error` message for that operation; `feedPostAdded` without a token
/// is `UNAUTHENTICATED`; the socket stays open for the next subscription.
#[tokio::test]
async fn bad_arguments_are_errors_for_that_operation_only() {
    let app = TestApp::spawn().await;
    let mut socket = connect(&app, json!({})).await;
    let code = |message: &Value| message["payload"][0]["extensions"]["code"].as_str().map(str::to_owned);
    watch_comments(&mut socket, "missing", &PostId::new().to_hex()).await;
    let missing = next(&mut socket).await;
    assert_eq!((missing["type"].as_str(), code(&missing).as_deref()), (Some("error"), Some("NOT_FOUND")), "{missing}");
    watch_comments(&mut socket, "malformed", "nope").await;
    assert_eq!(code(&next(&mut socket).await).as_deref(), Some("BAD_USER_INPUT"));
    send(
        &mut socket,
        json!({ "id": "feed", "type": "subscribe", "payload": { "query": "subscription { feedPostAdded { id } }" } }),
    )
    .await;
    assert_eq!(code(&next(&mut socket).await).as_deref(), Some("UNAUTHENTICATED"));
    send(&mut socket, json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ posts { totalCount } }" } }))
        .await;
    assert_eq!(code(&next(&mut socket).await).as_deref(), Some("BAD_REQUEST"), "queries go over HTTP");
    send(&mut socket, json!({ "type": "ping" })).await;
    assert_eq!(next(&mut socket).await, json!({ "type": "pong" }), "still open");
}

/// `feedPostAdded` delivers new posts by followed users and the viewer, not
/// by others; following someone takes effect for the next post.
#[tokio::test]
async fn the_feed_subscription_follows_the_follows() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let (bob, bob_id) = app.sign_up("Bob").await;
    let mut socket = connect(&app, bearer(&ann)).await;
    send(&mut socket, json!({ "id": "f", "type": "subscribe", "payload": { "query": "subscription { feedPostAdded { title author { name } } }" } })).await;
    listening(&app, 1).await;
    app.create_post(&bob, "not followed yet").await;
    app.ok_as(&ann, "mutation($u: ID!) { followUser(userId: $u) { followee { id } } }", json!({ "u": bob_id })).await;
    app.create_post(&bob, "followed").await;
    app.create_post(&ann, "mine").await;
    let titles: Vec<Value> = [next(&mut socket).await, next(&mut socket).await]
        .iter()
        .map(|m| m["payload"]["data"]["feedPostAdded"]["title"].clone())
        .collect();
    assert_eq!(titles, [json!("followed"), json!("mine")]);
}

/// The protocol's close codes: 4406 without the subprotocol, 4401 for a
/// subscribe before the ack, 4429 for a second init, 4409 for an id in
/// use, 4400 for a malformed message, 4403 for a bad token, 4408 for no
/// init in time.
#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let app = TestApp::spawn_with(|s| s.http.ws_init_timeout_secs = 1).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;

    let mut socket = open(&app, None).await;
    assert_eq!(closed_with(&mut socket).await, 4406);

    let mut socket = open(&app, Some("graphql-transport-ws")).await;
    watch_comments(&mut socket, "early", &post).await;
    assert_eq!(closed_with(&mut socket).await, 4401);

    let mut socket = connect(&app, json!({})).await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(closed_with(&mut socket).await, 4429);

    let mut socket = connect(&app, json!({})).await;
    watch_comments(&mut socket, "same", &post).await;
    watch_comments(&mut socket, "same", &post).await;
    assert_eq!(closed_with(&mut socket).await, 4409);

    let mut socket = connect(&app, json!({})).await;
    socket.send(Message::text("{not json")).await.expect("send");
    assert_eq!(closed_with(&mut socket).await, 4400);

    let mut socket = open(&app, Some("graphql-transport-ws")).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": "Bearer not-a-token" } })).await;
    assert_eq!(closed_with(&mut socket).await, 4403);

    let mut socket = open(&app, Some("graphql-transport-ws")).await;
    assert_eq!(closed_with(&mut socket).await, 4408);
}

/// GraphiQL's fetcher sends its Headers editor as `connection_init`'s
/// `payload.headers` (next to the document and its options): the token is
/// found there, so an authenticated subscription runs as that viewer.
#[tokio::test]
async fn a_token_in_the_payloads_headers_signs_the_socket_in() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let payload = json!({
        "headers": { "Authorization": format!("Bearer {ann}") },
        "documentAST": { "kind": "Document", "definitions": [] },
        "shouldPersistHeaders": false,
    });
    let mut socket = connect(&app, payload).await;
    send(
        &mut socket,
        json!({ "id": "f", "type": "subscribe", "payload": { "query": "subscription { feedPostAdded { title } }" } }),
    )
    .await;
    listening(&app, 1).await;
    app.create_post(&ann, "mine").await;
    let message = next(&mut socket).await;
    assert_eq!(message["payload"]["data"]["feedPostAdded"]["title"], "mine", "{message}");
}

/// Every way a token ends closes its subscription sockets within 5 seconds
/// (4403): `logOut`, `logOutEverywhere`, `changePassword` and deleting the
/// account, each for its own user, all at once.
#[tokio::test]
async fn an_ended_token_closes_its_sockets() {
    let app = TestApp::spawn().await;
    let endings = [
        ("mutation { logOut }", json!({})),
        ("mutation { logOutEverywhere }", json!({})),
        (
            "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { token } }",
            json!({ "i": { "currentPassword": "correct horse", "newPassword": "battery staple horse" } }),
        ),
        ("mutation($id: ID!) { deleteUser(id: $id) { deletedUserId } }", json!({})),
    ];
    let mut sockets = Vec::new();
    let mut users = Vec::new();
    for (n, _) in endings.iter().enumerate() {
        let (token, id) = app.sign_up(&format!("Ending{n}")).await;
        let mut socket = connect(&app, json!({ "AUTHORIZATION": format!("Bearer {token}") })).await;
        send(
            &mut socket,
            json!({ "id": "f", "type": "subscribe", "payload": { "query": "subscription { feedPostAdded { id } }" } }),
        )
        .await;
        sockets.push(socket);
        users.push((token, id));
    }
    listening(&app, 4).await;
    for ((query, variables), (token, id)) in endings.iter().zip(&users) {
        let variables = if query.contains("deleteUser") { json!({ "id": id }) } else { variables.clone() };
        app.ok_as(token, query, variables).await;
    }
    let started = std::time::Instant::now();
    for (socket, (query, _)) in sockets.iter_mut().zip(&endings) {
        assert_eq!(closed_with(socket).await, 4403, "{query}");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "all closed after {:?}", started.elapsed());
}

/// One subscription past `--max-subscriptions-per-connection` is refused
/// with `RATE_LIMITED`; the others keep running.
#[tokio::test]
async fn subscriptions_per_socket_are_capped() {
    let app = TestApp::spawn_with(|s| s.http.max_subscriptions_per_connection = 2).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut socket = connect(&app, json!({})).await;
    for id in ["1", "2", "3"] {
        watch_comments(&mut socket, id, &post).await;
    }
    let refused = next(&mut socket).await;
    listening(&app, 2).await;
    assert_eq!(
        (refused["id"].as_str(), refused["payload"][0]["extensions"]["code"].as_str()),
        (Some("3"), Some("RATE_LIMITED"))
    );
    app.comment(&ann, &post, "still served").await;
    let mut ids = vec![next(&mut socket).await["id"].clone(), next(&mut socket).await["id"].clone()];
    ids.sort_by_key(|id| id.to_string());
    assert_eq!(ids, [json!("1"), json!("2")]);
}

/// A live subscription socket outlives the HTTP read and idle timeouts (it
/// answers pings instead), and gets its event after them.
#[tokio::test]
async fn http_timeouts_do_not_close_a_live_socket() {
    let app = TestApp::spawn_with(|s| {
        s.http.read_timeout_secs = 1;
        s.http.idle_timeout_secs = 1;
        s.http.ws_ping_interval_secs = 1;
    })
    .await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut socket = connect(&app, json!({})).await;
    watch_comments(&mut socket, "late", &post).await;
    listening(&app, 1).await;
    // 2.5 s: past both timeouts, with pings answered by `silent_for`. Not a
    // whole number of ping intervals: a wait that ends as a ping arrives could
    // drop it unanswered, and the socket would rightly be closed.
    assert_eq!(silent_for(&mut socket, Duration::from_millis(2500)).await, None);
    // Pings keep coming while the comment is written (slowly, on a loaded
    // tier-2 store), so the socket is read, and pings answered, meanwhile.
    let (_, event) = tokio::join!(app.comment(&ann, &post, "after the timeouts"), next(&mut socket));
    assert_eq!(event["payload"]["data"]["commentAdded"]["body"], "after the timeouts");
}

/// Subscription sockets count against `--max-connections` until they close:
/// with both slots held by sockets, a plain request waits; it is served
/// once one socket closes.
#[tokio::test]
async fn sockets_count_against_the_connection_limit() {
    let app = TestApp::spawn_with(|s| s.http.max_connections = 2).await;
    let first = connect(&app, json!({})).await;
    let _second = connect(&app, json!({})).await;
    let healthz = || app.client.get(app.url("/healthz")).timeout(Duration::from_millis(700)).send();
    assert!(healthz().await.is_err(), "no slot is free while two sockets are open");
    drop(first);
    let started = std::time::Instant::now();
    loop {
        if healthz().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(started.elapsed() < WAIT, "a slot came free when the socket closed");
    }
}

/// `/metrics` counts open subscription sockets, running subscriptions by
/// field, events published and messages delivered, and gives the gauges
/// back when the socket closes.
#[tokio::test]
async fn subscriptions_are_counted_in_the_metrics() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let metric = |text: &str, name: &str| -> i64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    let scrape =
        || async { app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text") };
    let mut socket = connect(&app, json!({})).await;
    watch_comments(&mut socket, "m", &post).await;
    listening(&app, 1).await;
    app.comment(&ann, &post, "counted").await;
    next(&mut socket).await;
    let text = scrape().await;
    assert_eq!(metric(&text, "blogql_subscription_sockets "), 1);
    assert_eq!(metric(&text, "blogql_subscriptions{field=\"commentAdded\"} "), 1);
    assert_eq!(metric(&text, "blogql_subscriptions{field=\"postChanged\"} "), 0);
    assert_eq!(metric(&text, "blogql_subscription_events_published_total "), 2, "commentAdded and the post's change");
    assert_eq!(metric(&text, "blogql_subscription_messages_delivered_total "), 1);
    drop(socket);
    let started = std::time::Instant::now();
    while metric(&scrape().await, "blogql_subscription_sockets ") != 0 {
        assert!(started.elapsed() < WAIT, "the socket gauge went back to 0");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&scrape().await, "blogql_subscriptions{field=\"commentAdded\"} "), 0);
}

/// Across processes on MongoDB: a comment written through server A reaches
/// a subscriber on server B, a second server on the same database with its
/// own client, hub and outbox tail; the comments arrive in commit order. On
/// mongoeco (no change streams) both tails poll.
#[tokio::test]
#[ignore = "tier 2: needs MONGODB_URI (.ci/run starts mongoeco for it)"]
async fn events_reach_subscribers_on_another_process() {
    let (sources, server) = cross_process_delivery().await;
    if server == "mongoeco" {
        assert_eq!(sources, (Source::Poll, Source::Poll));
    }
}

/// On a real replica set the same delivery goes through each process's
/// change stream on the outbox, not through polls.
#[tokio::test]
#[ignore = "tier 3: needs a real MongoDB replica set in MONGODB_URI (docker compose up -d; see README)"]
async fn tier3_events_cross_processes_through_the_change_stream() {
    let (sources, server) = cross_process_delivery().await;
    assert_ne!(server, "mongoeco", "tier-3 tests need a real MongoDB replica set");
    assert_eq!(sources, (Source::ChangeStream, Source::ChangeStream));
}

/// Runs the cross-process delivery check; returns where each process's hub
/// gets its events, and the server's `buildInfo.gitVersion`.
async fn cross_process_delivery() -> ((Source, Source), String) {
    assert!(crate::helpers::mongodb_uri().is_some(), "this test needs MONGODB_URI pointing at a MongoDB deployment");
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "shared").await;
    let other = app.open_again().await;
    let dir = tempfile::tempdir().expect("dir");
    let settings = crate::helpers::test_settings(dir.path(), Some(crate::helpers::TEST_SECRET));
    let state = blogql::app::AppState::new(other.clone(), settings).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = blogql::serve(listener, state, std::future::pending()).await;
    });
    let mut request = format!("ws://{addr}/graphql").into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    watch_comments(&mut socket, "b", &post).await;
    let started = std::time::Instant::now();
    while other.hub().listeners() < 1 {
        assert!(started.elapsed() < WAIT, "the subscription on B started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for n in 1..=3 {
        app.comment(&ann, &post, &format!("through A {n}")).await;
    }
    let mut bodies = Vec::new();
    for _ in 1..=3 {
        let message = next(&mut socket).await;
        bodies.push(message["payload"]["data"]["commentAdded"]["body"].as_str().expect("body").to_owned());
    }
    assert_eq!(bodies, ["through A 1", "through A 2", "through A 3"]);
    server.abort();
    let mongo = app.mongo.as_ref().expect("MONGODB_URI is set, so the app runs on MongoDB");
    let info = mongo.db.run_command(bson::doc! { "buildInfo": 1 }).await.expect("buildInfo");
    let version = info.get_str("gitVersion").unwrap_or_default().to_owned();
    ((app.store.hub().source(), other.hub().source()), version)
}

/// One subscription past `--max-subscriptions` for the whole process is
/// refused with `RATE_LIMITED`, whichever socket asks; one that ends frees its place.
#[tokio::test]
async fn subscriptions_per_process_are_capped() {
    let app = TestApp::spawn_with(|s| s.http.max_subscriptions = 2).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let (mut first, mut second) = (connect(&app, json!({})).await, connect(&app, json!({})).await);
    watch_comments(&mut first, "1", &post).await;
    watch_comments(&mut first, "2", &post).await;
    listening(&app, 2).await;
    watch_comments(&mut second, "3", &post).await;
    let refused = next(&mut second).await;
    assert_eq!(
        (refused["id"].as_str(), refused["payload"][0]["extensions"]["code"].as_str()),
        (Some("3"), Some("RATE_LIMITED"))
    );
    send(&mut first, json!({ "id": "1", "type": "complete" })).await;
    while app.store.hub().listeners() > 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The finished task gives its place back when the socket's reader sees it end.
    let started = std::time::Instant::now();
    loop {
        watch_comments(&mut second, "4", &post).await;
        if silent_for(&mut second, Duration::from_millis(200)).await.is_none() {
            break;
        }
        assert!(started.elapsed() < WAIT, "the completed subscription's place came free");
    }
    app.comment(&ann, &post, "to 2 and 4").await;
    assert_eq!(next(&mut second).await["id"], "4");
}
