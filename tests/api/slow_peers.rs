//! Peers that stop taking part, on both backends: a socket whose peer stops
//! answering pings is closed; a socket or SSE stream whose peer stops
//! reading is dropped once a message has waited the send timeout (never
//! buffered without end), counted, and its subscriptions freed.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::TestApp;
use crate::subscriptions::{connect, listening, send};

/// How long a test waits for the server to act (writes on mongoeco are slow).
const WAIT: Duration = Duration::from_secs(30);

/// A subscription whose every event is large: the comment's 5,000-character
/// body twenty times over (about 100 KB), so a few events fill any socket buffer.
const BIG_EVENTS: &str = "subscription($p: ID!) { commentAdded(postId: $p) { \
    a: body b: body c: body d: body e: body f: body g: body h: body i: body j: body \
    k: body l: body m: body n: body o: body p: body q: body r: body s: body t: body } }";

/// A TCP connection to the app whose receive buffer is as small as the
/// kernel allows, so a client that stops reading stalls the server quickly.
async fn small_window(app: &TestApp) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(app.addr).await.expect("connect")
}

/// Writes big comments on `post` until the server has dropped the slow
/// subscriber (no listener left on the hub); returns how many it took.
async fn comment_until_dropped(app: &TestApp, token: &str, post: &str) -> usize {
    let body = "x".repeat(5000);
    let started = Instant::now();
    let mut written = 0;
    while app.store.hub().listeners() > 0 {
        assert!(started.elapsed() < WAIT, "the slow subscriber is still served after {written} events");
        if written < 400 {
            app.comment(token, post, &body).await;
            written += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    written
}

/// A socket whose peer stops answering pings is closed after two ping
/// intervals (code 1001), and its subscription is freed.
#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let app = TestApp::spawn_with(|s| s.http.ws_ping_interval_secs = 1).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut socket = connect(&app, json!({})).await;
    let subscribe = json!({ "query": BIG_EVENTS, "variables": { "p": post } });
    send(&mut socket, json!({ "id": "1", "type": "subscribe", "payload": subscribe })).await;
    listening(&app, 1).await;
    // Read, but never answer: pings go unanswered.
    let started = Instant::now();
    let mut pings = 0;
    let code = loop {
        let message = tokio::time::timeout(WAIT, socket.next()).await.expect("a close in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("json");
                assert_eq!(value["type"], "ping", "{value}");
                pings += 1;
            }
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            other => panic!("neither a ping nor a close: {other:?}"),
        }
    };
    assert_eq!(code, 1001);
    assert!(pings >= 1, "the server pinged before giving up");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5), "closed after {waited:?}");
    assert_eq!(app.store.hub().listeners(), 0);
}

/// A WebSocket peer that stops reading while events pile up is dropped once
/// one has waited the send timeout: the slow-consumer counter moves, the
/// subscription and the socket gauge are freed, and the connection ends.
#[tokio::test]
async fn a_socket_that_stops_reading_is_dropped() {
    let app = TestApp::spawn_with(|s| s.http.send_timeout_secs = 1).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut request = format!("ws://{}/graphql", app.addr).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::client_async(request, small_window(&app).await).await.expect("upgrade");
    let subscribe =
        json!({ "id": "1", "type": "subscribe", "payload": { "query": BIG_EVENTS, "variables": { "p": post } } });
    for message in [json!({ "type": "connection_init" }), subscribe] {
        socket.send(Message::text(message.to_string())).await.expect("send");
    }
    listening(&app, 1).await;
    // From here on the client reads nothing.
    let written = comment_until_dropped(&app, &ann, &post).await;
    assert!(written > 1, "dropped after {written} events: the queue and buffers hold more than one");
    assert_eq!(app.metric("blogql_subscription_slow_consumers_total ").await, 1);
    let started = Instant::now();
    while app.metric("blogql_subscription_sockets ").await != 0 {
        assert!(started.elapsed() < WAIT, "the socket gauge still counts the dropped socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading now drains what was buffered, then finds the connection gone.
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
        }
    });
    ended.await.expect("the connection ends");
}

/// An SSE client that stops reading is dropped the same way: counted, its
/// subscription and the stream gauge freed, its stream aborted.
#[tokio::test]
async fn a_stream_that_stops_reading_is_dropped() {
    let app = TestApp::spawn_with(|s| s.http.send_timeout_secs = 1).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut stream = small_window(&app).await;
    let body = json!({ "query": BIG_EVENTS, "variables": { "p": post } }).to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n\
         Content-Length: {}\r\n\r\n{body}",
        app.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    listening(&app, 1).await;
    // The client reads nothing, not even the response head.
    comment_until_dropped(&app, &ann, &post).await;
    assert_eq!(app.metric("blogql_subscription_slow_consumers_total ").await, 1);
    let started = Instant::now();
    while app.metric("blogql_subscription_streams ").await != 0 {
        assert!(started.elapsed() < WAIT, "the stream gauge still counts the dropped stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
