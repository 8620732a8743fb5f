//! Subscriptions over SSE (graphql-sse's distinct connections mode), on
//! both backends: the same subscription code as the WebSocket, framed as
//! `next` and `complete` events; refusals inside an accepted stream; the
//! token in the `Authorization` header; keep-alives past the HTTP timeouts.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::subscriptions::listening;

/// How long a test waits for an event that should come.
const WAIT: Duration = Duration::from_secs(10);

const COMMENT_ADDED: &str = "subscription($p: ID!) { commentAdded(postId: $p) { body post { commentCount } } }";

/// One open event stream, read event by event.
pub(crate) struct Events {
    resp: reqwest::Response,
    buffer: String,
    /// Keep-alive comments seen so far.
    comments: usize,
}

impl Events {
    /// The next event as `(event, data)`; `None` once the stream has ended.
    pub(crate) async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (String::new(), String::new());
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim_start());
                    }
                }
                if event.is_empty() {
                    continue;
                }
                let data = if data.is_empty() { Value::Null } else { serde_json::from_str(&data).expect("json data") };
                return Some((event, data));
            }
            let chunk = tokio::time::timeout(WAIT, self.resp.chunk()).await.expect("an event in time");
            match chunk.expect("a readable stream") {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("utf-8")),
                None => return None,
            }
        }
    }

    /// The next `next` event's payload; panics on anything else.
    pub(crate) async fn payload(&mut self) -> Value {
        let (event, data) = self.next().await.expect("an event");
        assert_eq!(event, "next", "{data}");
        data
    }

    /// Asserts the stream sends `complete`, then ends.
    async fn completes(&mut self) {
        assert_eq!(self.next().await.map(|(event, _)| event).as_deref(), Some("complete"));
        assert_eq!(self.next().await, None, "the stream ends after complete");
    }
}

/// Opens an event stream for `query` over POST, with `token` if any.
pub(crate) async fn stream(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Events {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "text/event-stream")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    Events { resp, buffer: String::new(), comments: 0 }
}

/// The code of a refusal event's first error.
fn code(payload: &Value) -> Option<&str> {
    payload["errors"][0]["extensions"]["code"].as_str()
}

/// Comments arrive as `next` events in commit order, each resolved in a
/// fresh snapshot (the count includes it); deleting the post completes the
/// stream, and the stream gauge in `/metrics` counts it while open.
#[tokio::test]
async fn comments_stream_until_the_post_is_deleted() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut events = stream(&app, None, COMMENT_ADDED, json!({ "p": post })).await;
    listening(&app, 1).await;
    for body in ["one", "two", "three"] {
        app.comment(&ann, &post, body).await;
    }
    for (n, body) in ["one", "two", "three"].into_iter().enumerate() {
        let payload = events.payload().await;
        assert_eq!(payload["data"]["commentAdded"]["body"], body);
        let count = payload["data"]["commentAdded"]["post"]["commentCount"].as_u64().expect("a count");
        assert!(count > n as u64, "event {n} resolved against its own commit or later: {count}");
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("\nblogql_subscription_streams 1\n"), "{metrics}");
    app.ok_as(&ann, "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }", json!({ "id": post })).await;
    events.completes().await;
}

/// A refusal is a `next` event with only `errors`, then `complete`, inside
/// an accepted 200 stream: a missing post (`NOT_FOUND`), a malformed id
/// (`BAD_USER_INPUT`), the feed without a token (`UNAUTHENTICATED`), a bad
/// token (`UNAUTHENTICATED`), a query (`BAD_REQUEST`) and a syntax error.
#[tokio::test]
async fn refusals_are_error_events_in_an_accepted_stream() {
    let app = TestApp::spawn().await;
    let missing = "5f0000000000000000000000";
    let cases: [(Option<&str>, &str, Value, &str); 6] = [
        (None, COMMENT_ADDED, json!({ "p": missing }), "NOT_FOUND"),
        (None, COMMENT_ADDED, json!({ "p": "nope" }), "BAD_USER_INPUT"),
        (None, "subscription { feedPostAdded { id } }", json!({}), "UNAUTHENTICATED"),
        (Some("not-a-token"), COMMENT_ADDED, json!({ "p": missing }), "UNAUTHENTICATED"),
        (None, "{ posts(first: 1) { totalCount } }", json!({}), "BAD_REQUEST"),
        (None, "subscription {", json!({}), "GRAPHQL_PARSE_FAILED"),
    ];
    for (token, query, variables, expected) in cases {
        let mut events = stream(&app, token, query, variables).await;
        let payload = events.payload().await;
        assert_eq!(code(&payload), Some(expected), "{query}: {payload}");
        assert!(payload.get("data").is_none_or(Value::is_null), "{payload}");
        events.completes().await;
    }
}

/// `GET` with the document in the query string (what `EventSource` sends)
/// streams too.
#[tokio::test]
async fn get_streams_for_event_source() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let variables = json!({ "p": post }).to_string();
    let resp = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/event-stream")
        .query(&[("query", COMMENT_ADDED), ("variables", variables.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let mut events = Events { resp, buffer: String::new(), comments: 0 };
    listening(&app, 1).await;
    app.comment(&ann, &post, "over GET").await;
    assert_eq!(events.payload().await["data"]["commentAdded"]["body"], "over GET");
}

/// Logging out ends the token's streams within 5 seconds: an
/// `UNAUTHENTICATED` event, then `complete`.
#[tokio::test]
async fn an_ended_token_ends_its_streams() {
    let app = TestApp::spawn().await;
    let (ann, _) = app.sign_up("Ann").await;
    let mut events = stream(&app, Some(&ann), "subscription { feedPostAdded { id } }", json!({})).await;
    listening(&app, 1).await;
    app.ok_as(&ann, "mutation { logOut }", json!({})).await;
    let started = Instant::now();
    let payload = events.payload().await;
    assert_eq!(code(&payload), Some("UNAUTHENTICATED"), "{payload}");
    assert!(started.elapsed() < Duration::from_secs(5), "ended after {:?}", started.elapsed());
    events.completes().await;
}

/// A quiet stream outlives the HTTP read, idle and request timeouts, kept
/// alive by comment lines, and gets its event after them.
#[tokio::test]
async fn http_timeouts_do_not_end_a_live_stream() {
    // The request timeout also bounds the mutation that publishes the event:
    // 3 s leaves mongoeco under CI's load room (1 s once answered 408), and
    // the stream still outlives it.
    let app = TestApp::spawn_with(|s| {
        s.http.read_timeout_secs = 1;
        s.http.idle_timeout_secs = 1;
        s.http.request_timeout_secs = 3;
        s.http.ws_ping_interval_secs = 1;
    })
    .await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let mut events = stream(&app, None, COMMENT_ADDED, json!({ "p": post })).await;
    listening(&app, 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    app.comment(&ann, &post, "after the timeouts").await;
    assert_eq!(events.payload().await["data"]["commentAdded"]["body"], "after the timeouts");
    assert!(events.comments >= 2, "keep-alives in 4 s: {}", events.comments);
}

/// A client that goes away frees its subscription: the hub loses the
/// listener and the stream gauge returns to zero.
#[tokio::test]
async fn a_closed_stream_frees_its_subscription() {
    let app = TestApp::spawn_with(|s| s.http.ws_ping_interval_secs = 1).await;
    let (ann, _) = app.sign_up("Ann").await;
    let post = app.create_post(&ann, "p").await;
    let events = stream(&app, None, COMMENT_ADDED, json!({ "p": post })).await;
    listening(&app, 1).await;
    drop(events);
    let started = Instant::now();
    while app.store.hub().listeners() > 0 {
        assert!(started.elapsed() < WAIT, "the subscription outlived its stream");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("\nblogql_subscription_streams 0\n"), "{metrics}");
}
