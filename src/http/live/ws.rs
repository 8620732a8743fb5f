//! Subscriptions over WebSocket: the `graphql-transport-ws` protocol of
//! graphql-ws (what Apollo Client's `GraphQLWsLink`, urql and Relay speak),
//! on `/graphql` itself.
//!
//! One task reads the socket and owns the protocol state; one writes to it
//! from a bounded queue; each subscription is a task that runs its stream
//! and queues `next` messages. The protocol's close codes:
//! - 4400: a malformed message; 4401: `subscribe` before `connection_ack`;
//! - 4403: an invalid or ended token in `connection_init`, or a token ended
//!   while the socket is open (checked every [`RECHECK`]);
//! - 4406: the client did not offer `graphql-transport-ws`;
//! - 4408: no `connection_init` within `--ws-init-timeout-secs`;
//! - 4409: a second subscriber with an id in use; 4429: a second `connection_init`.
//!
//! The socket keeps its place in the connection counts until it closes
//! ([`crate::http::conn::ConnSlot`]), and none of the HTTP read, idle or request
//! timeouts applies to it after the upgrade: pings find dead peers instead.
//! A peer that stops reading is closed once a message has waited the send
//! timeout, never buffered without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{
    Ended, Frame, Gauge, OUT_QUEUE, RECHECK, Series, accepted, count_slow_consumer, pump, refusal_errors, start,
};
use crate::code::Code;
use crate::graphql::Viewer;
use crate::http::Routes;
use crate::http::conn::ConnSlot;
use crate::http::steps::Refusal;
use crate::metrics::Metrics;

/// The subprotocol spoken.
const PROTOCOL: &str = "graphql-transport-ws";

/// Bytes a socket reads at a time.
const READ_BUFFER: usize = 4096;

/// A close code with its reason.
type Close = (u16, String);

/// Upgrades a `/graphql` GET that asks for a WebSocket.
pub(in crate::http) fn upgrade(
    routes: Arc<Routes>,
    ws: WebSocketUpgrade,
    client: IpAddr,
    slot: Option<ConnSlot>,
) -> Response {
    let max_message = routes.state.settings.http.max_body_bytes;
    ws.protocols([PROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        // An idle socket should cost little: the 128 KiB default read buffer
        // was most of one (bench/subs.sh); longer messages still arrive whole.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            // Counted against the connection limits until the socket closes.
            let _slot = slot;
            serve(socket, routes, client).await;
        })
}

/// Serves one socket until either side closes it.
async fn serve(socket: WebSocket, routes: Arc<Routes>, client: IpAddr) {
    let offered = socket.protocol().is_some_and(|p| p.as_bytes() == PROTOCOL.as_bytes());
    let (mut sink, mut incoming) = socket.split();
    if !offered {
        let _ = sink.send(close_message((4406, "Subprotocol not acceptable".into()))).await;
        return;
    }
    let metrics = routes.state.metrics.clone();
    let _counted = Gauge::hold(metrics.as_ref(), Series::Socket);
    let (out, mut outgoing) = mpsc::channel::<Message>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let last = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || last {
                break;
            }
        }
    });
    let http = &routes.state.settings.http;
    let (init_timeout, ping_every) =
        (Duration::from_secs(http.ws_init_timeout_secs), Duration::from_secs(http.ws_ping_interval_secs.max(1)));
    let mut conn = Connection { routes: routes.clone(), client, out: out.clone(), viewer: None, subs: HashMap::new() };
    let mut tasks: JoinSet<(String, Ended)> = JoinSet::new();
    let init_deadline = tokio::time::sleep(init_timeout);
    tokio::pin!(init_deadline);
    let mut ticker = tokio::time::interval(RECHECK.min(ping_every));
    let (mut heard, mut pinged, mut checked) = (Instant::now(), Instant::now(), Instant::now());
    let close: Option<Close> = loop {
        tokio::select! {
            () = &mut init_deadline, if conn.viewer.is_none() => {
                break Some((4408, "Connection initialisation timeout".into()));
            }
            message = incoming.next() => {
                heard = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Err(close) = conn.handle(&text, &mut tasks).await {
                            break Some(close);
                        }
                    }
                    Some(Ok(Message::Binary(_))) => break Some((4400, "graphql-transport-ws sends text messages".into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                }
            }
            Some(done) = tasks.join_next() => {
                if let Ok((id, ended)) = done {
                    conn.subs.remove(&id);
                    if ended == Ended::NotRead {
                        break Some(slow_consumer(metrics.as_ref()));
                    }
                }
            }
            _ = ticker.tick() => {
                if heard.elapsed() >= ping_every * 2 {
                    break Some((1001, "no answer to pings".into()));
                }
                if pinged.elapsed() >= ping_every {
                    pinged = Instant::now();
                    if conn.out.try_send(text_message(json!({ "type": "ping" }))).is_err() {
                        break Some(slow_consumer(metrics.as_ref()));
                    }
                }
                if checked.elapsed() >= RECHECK {
                    checked = Instant::now();
                    if !conn.still_accepted().await {
                        break Some((4403, "Forbidden".into()));
                    }
                }
            }
        }
    };
    tasks.abort_all();
    // The close frame and what is queued before it get the send timeout to
    // go out; a peer that is not reading gets its socket dropped instead
    // (the writer aborted, the connection closed under it), never a wait
    // without end.
    let send_timeout = routes.state.settings.http.send_timeout();
    let mut writer = writer;
    let flushed = async {
        if let Some(close) = close {
            let _ = out.send(close_message(close)).await;
        }
        drop((out, conn));
        let _ = (&mut writer).await;
    };
    if tokio::time::timeout(send_timeout, flushed).await.is_err() {
        writer.abort();
    }
}

/// One socket's protocol state.
struct Connection {
    routes: Arc<Routes>,
    client: IpAddr,
    out: mpsc::Sender<Message>,
    /// Set by `connection_init`: who the subscriptions run as.
    viewer: Option<Viewer>,
    /// Subscriptions running, by the client's id.
    subs: HashMap<String, tokio::task::AbortHandle>,
}

impl Connection {
    /// Handles one text message; `Err` closes the socket with that code.
    async fn handle(&mut self, text: &str, tasks: &mut JoinSet<(String, Ended)>) -> Result<(), Close> {
        let message: Value = serde_json::from_str(text).map_err(|_| (4400, "the message is not JSON".into()))?;
        let kind = message.get("type").and_then(Value::as_str).ok_or((4400, "the message has no type".into()))?;
        match kind {
            "connection_init" => self.init(message.get("payload")).await,
            "ping" => {
                let _ = self.out.try_send(text_message(json!({ "type": "pong" })));
                Ok(())
            }
            "pong" => Ok(()),
            "subscribe" => {
                let id = message_id(&message)?;
                let payload = message.get("payload").cloned().ok_or((4400, "subscribe needs a payload".into()))?;
                self.subscribe(id, payload, tasks)
            }
            "complete" => {
                let id = message_id(&message)?;
                if let Some(task) = self.subs.remove(&id) {
                    task.abort();
                }
                Ok(())
            }
            other => Err((4400, format!("unknown message type {other:?}"))),
        }
    }

    /// `connection_init`: reads the token from the payload's `Authorization`
    /// (any case), refuses an invalid or ended one, and acknowledges.
    async fn init(&mut self, payload: Option<&Value>) -> Result<(), Close> {
        if self.viewer.is_some() {
            return Err((4429, "Too many initialisation requests".into()));
        }
        let header = payload.and_then(authorization);
        let viewer = match header {
            None | Some(Value::Null) => Viewer::Anonymous,
            Some(value) => {
                let token = value.as_str().and_then(crate::http::viewer::bearer_token).ok_or_else(forbidden)?;
                let token = self.routes.state.auth.verify(token).map_err(|_| forbidden())?;
                if !accepted(&self.routes, &token).await {
                    return Err(forbidden());
                }
                Viewer::User(token)
            }
        };
        self.viewer = Some(viewer);
        self.out.try_send(text_message(json!({ "type": "connection_ack" }))).map_err(|_| forbidden())?;
        Ok(())
    }

    /// Whether the socket's token (if any) is still accepted by its account.
    async fn still_accepted(&self) -> bool {
        match &self.viewer {
            Some(Viewer::User(token)) => accepted(&self.routes, token).await,
            _ => true,
        }
    }

    /// `subscribe`: checks the document as HTTP does, then runs it in a task of its own.
    fn subscribe(&mut self, id: String, payload: Value, tasks: &mut JoinSet<(String, Ended)>) -> Result<(), Close> {
        let Some(viewer) = self.viewer.clone() else { return Err((4401, "Unauthorized".into())) };
        if self.subs.contains_key(&id) {
            return Err((4409, format!("Subscriber for {id} already exists")));
        }
        let max = self.routes.state.settings.http.max_subscriptions_per_connection;
        if self.subs.len() >= max {
            let why = format!("a socket may hold at most {max} subscriptions; complete one first");
            self.refuse(&id, &Refusal::new(Code::RateLimited, why));
            return Ok(());
        }
        let request: async_graphql::Request = serde_json::from_value(payload)
            .map_err(|_| (4400, "the subscribe payload is not a GraphQL request".into()))?;
        match start(&self.routes, viewer, self.client, request) {
            Ok(live) => {
                let (out, timeout) = (self.out.clone(), self.routes.state.settings.http.send_timeout());
                let id_for_task = id.clone();
                let task = tasks.spawn(async move {
                    let ended = pump(live, &out, timeout, |frame| message(&id_for_task, frame)).await;
                    (id_for_task, ended)
                });
                self.subs.insert(id, task);
            }
            Err(refusal) => self.refuse(&id, &refusal),
        }
        Ok(())
    }

    /// Answers subscription `id` with one `error` message.
    fn refuse(&self, id: &str, refusal: &Refusal) {
        let _ = self.out.try_send(message(id, Frame::Refused(&refusal_errors(refusal))));
    }
}

/// The `Authorization` value of a `connection_init` payload: a key of that
/// name in any case, or one inside the payload's `headers` object (where
/// GraphiQL's fetcher puts its Headers editor).
fn authorization(payload: &Value) -> Option<&Value> {
    fn find(value: &Value) -> Option<&Value> {
        value.as_object()?.iter().find(|(key, _)| key.eq_ignore_ascii_case("authorization")).map(|(_, value)| value)
    }
    find(payload).or_else(|| payload.as_object()?.get("headers").and_then(find))
}

/// The close for a peer that does not read its messages, counted.
fn slow_consumer(metrics: Option<&std::sync::Arc<Metrics>>) -> Close {
    count_slow_consumer(metrics);
    (4499, "Slow consumer: messages were not read within the send timeout".into())
}

fn forbidden() -> Close {
    (4403, "Forbidden".into())
}

/// The `id` of a message that must have one.
fn message_id(message: &Value) -> Result<String, Close> {
    match message.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err((4400, "the message needs an id".into())),
    }
}

fn text_message(value: Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

fn close_message((code, reason): Close) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }))
}

/// Subscription `id`'s `frame` as a graphql-transport-ws message, around
/// the shared JSON without encoding it again: a refusal is one `error` message.
fn message(id: &str, frame: Frame<'_>) -> Message {
    let id = serde_json::to_string(id).unwrap_or_else(|_| String::from("\"\""));
    let (kind, payload) = match frame {
        Frame::Next(json) => ("next", Some(json)),
        Frame::Refused(json) => ("error", Some(json)),
        Frame::Complete => ("complete", None),
    };
    let mut text = String::with_capacity(40 + id.len() + payload.map_or(0, <[u8]>::len));
    text.push_str("{\"id\":");
    text.push_str(&id);
    text.push_str(",\"type\":\"");
    text.push_str(kind);
    text.push('"');
    if let Some(json) = payload {
        text.push_str(",\"payload\":");
        // The fan's JSON is serde_json's output, so always UTF-8.
        text.push_str(std::str::from_utf8(json).unwrap_or("null"));
    }
    text.push('}');
    Message::Text(Utf8Bytes::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token is found at the top of the payload or in its `headers`, in
    /// any case; the top level wins; anything else is no token.
    #[test]
    fn the_token_is_read_from_the_payload_or_its_headers() {
        let cases = [
            (json!({ "Authorization": "Bearer a" }), Some("Bearer a")),
            (json!({ "authorization": "Bearer a" }), Some("Bearer a")),
            (json!({ "headers": { "AUTHORIZATION": "Bearer b" } }), Some("Bearer b")),
            (json!({ "Authorization": "Bearer a", "headers": { "Authorization": "Bearer b" } }), Some("Bearer a")),
            (json!({ "headers": "Bearer b" }), None),
            (json!({ "token": "Bearer a" }), None),
            (json!("Bearer a"), None),
        ];
        for (payload, expected) in cases {
            assert_eq!(authorization(&payload).and_then(Value::as_str), expected, "{payload}");
        }
    }
}
