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
//! ([`super::conn::ConnSlot`]), and none of the HTTP read, idle or request
//! timeouts applies to it after the upgrade: pings find dead peers instead.
//! A peer that stops reading is closed once a message has waited the send
//! timeout, never buffered without end.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType, Selection};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::Routes;
use super::conn::ConnSlot;
use super::steps::{Refusal, operation, outcome, parse};
use crate::auth::Token;
use crate::code::Code;
use crate::graphql::{RequestCtx, Viewer};
use crate::metrics::{Metrics, Subscriptions};

/// The subprotocol spoken.
pub(super) const PROTOCOL: &str = "graphql-transport-ws";

/// How often a socket signed in with a token checks that its account still
/// accepts the token: an ended token closes its sockets within this (and
/// the 5 seconds the sessions contract promises).
pub const RECHECK: Duration = Duration::from_secs(2);

/// Messages queued for one socket before its writer must catch up.
const OUT_QUEUE: usize = 64;

/// A close code with its reason.
type Close = (u16, String);

/// Upgrades a `/graphql` GET that asks for a WebSocket.
pub(super) fn upgrade(routes: Routes, ws: WebSocketUpgrade, client: IpAddr, slot: Option<ConnSlot>) -> Response {
    let max_message = routes.state.settings.http.max_body_bytes;
    ws.protocols([PROTOCOL]).max_message_size(max_message).max_frame_size(max_message).on_upgrade(
        move |socket| async move {
            // Counted against the connection limits until the socket closes.
            let _slot = slot;
            serve(socket, routes, client).await;
        },
    )
}

/// Serves one socket until either side closes it.
async fn serve(socket: WebSocket, routes: Routes, client: IpAddr) {
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
    if let Some(close) = close {
        let _ = out.send(close_message(close)).await;
    }
    drop((out, conn));
    let _ = writer.await;
}

/// How a subscription's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its stream ended (or it sent an `error`).
    Done,
    /// The socket stopped taking messages: the peer is not reading.
    NotRead,
    /// The socket is closing.
    Closed,
}

/// One socket's protocol state.
struct Connection {
    routes: Routes,
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
        let header = payload.and_then(Value::as_object).and_then(|fields| {
            fields.iter().find(|(key, _)| key.eq_ignore_ascii_case("authorization")).map(|(_, value)| value)
        });
        let viewer = match header {
            None | Some(Value::Null) => Viewer::Anonymous,
            Some(value) => {
                let token = value.as_str().and_then(super::viewer::bearer_token).ok_or_else(forbidden)?;
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
            self.refuse(&id, Code::RateLimited, why);
            return Ok(());
        }
        let Some(slot) = Running::take(&self.routes.subscriptions) else {
            let why = "the server holds as many subscriptions as it may; retry later".to_owned();
            self.refuse(&id, Code::RateLimited, why);
            return Ok(());
        };
        let mut request: async_graphql::Request = serde_json::from_value(payload)
            .map_err(|_| (4400, "the subscribe payload is not a GraphQL request".into()))?;
        let graphql = &self.routes.state.settings.graphql;
        let mut field = Subscriptions::field_index("other");
        let parses = match parse::parse(&request.query, graphql, &self.routes.introspection) {
            Ok(Some(parsed)) => {
                let op = request.operation_name.as_deref();
                field = Subscriptions::field_index(root_field(&parsed.doc, op));
                if operation::kind(&parsed.doc, op).is_some_and(|kind| kind != OperationType::Subscription) {
                    let why = "send queries and mutations over HTTP; this socket runs subscriptions".to_owned();
                    self.refuse(&id, Code::BadRequest, why);
                    return Ok(());
                }
                if let Err(operation::Stop::Refused(refusal)) =
                    operation::check(&parsed.doc, op, &request.variables, true, graphql)
                {
                    self.refuse(&id, refusal.code, refusal.message.into_owned());
                    return Ok(());
                }
                request.set_parsed_query(parsed.doc);
                true
            }
            // The schema reports the syntax error, with its position.
            Ok(None) => false,
            Err(Refusal { code, message }) => {
                self.refuse(&id, code, message.into_owned());
                return Ok(());
            }
        };
        let state = &self.routes.state;
        let mut ctx = RequestCtx::new(viewer, &state.store, state.metrics.as_ref());
        ctx.client_ip = Some(self.client);
        let answers = self.routes.schema.execute_stream(request.data(ctx));
        let running = Gauge::hold(state.metrics.as_ref(), Series::Running(field));
        let sending = Sending { out: self.out.clone(), timeout: state.settings.http.send_timeout(), running, slot };
        let task = tasks.spawn(run(id.clone(), answers, sending, parses));
        self.subs.insert(id, task);
        Ok(())
    }

    /// Answers subscription `id` with one `error` message.
    fn refuse(&self, id: &str, code: Code, message: String) {
        let error = json!({ "message": message, "extensions": { "code": code.as_str() } });
        let _ = self.out.try_send(text_message(json!({ "id": id, "type": "error", "payload": [error] })));
    }
}

/// Runs one subscription: a `next` per answer, then `complete`; an answer
/// refused before it ran (bad arguments, a missing post) is one `error`.
async fn run(
    id: String,
    mut answers: BoxStream<'static, async_graphql::Response>,
    sending: Sending,
    parses: bool,
) -> (String, Ended) {
    let Sending { out, timeout: send_timeout, running, slot: _slot } = sending;
    let mut first = true;
    while let Some(mut answer) = answers.next().await {
        outcome::label_request_errors(&mut answer, parses);
        outcome::cap_errors(&mut answer);
        let refused = first && answer.data == async_graphql::Value::Null && !answer.errors.is_empty();
        first = false;
        let message = if refused {
            json!({ "id": id, "type": "error", "payload": answer.errors })
        } else {
            json!({ "id": id, "type": "next", "payload": answer })
        };
        match tokio::time::timeout(send_timeout, out.send(text_message(message))).await {
            Ok(Ok(())) => {
                if let Some(metrics) = &running.metrics {
                    metrics.subscriptions.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Err(_)) => return (id, Ended::Closed),
            Err(_) => return (id, Ended::NotRead),
        }
        if refused {
            return (id, Ended::Done);
        }
    }
    let complete = text_message(json!({ "id": id, "type": "complete" }));
    match tokio::time::timeout(send_timeout, out.send(complete)).await {
        Ok(Ok(())) => (id, Ended::Done),
        Ok(Err(_)) => (id, Ended::Closed),
        Err(_) => (id, Ended::NotRead),
    }
}

/// Whether `token`'s account still accepts it (a fresh read: nothing is kept).
async fn accepted(routes: &Routes, token: &Token) -> bool {
    match routes.state.store.users_by_ids(&[token.user]).await {
        Ok(mut found) => found.pop().is_some_and(|user| token.accepted_by(&user)),
        Err(err) => {
            tracing::warn!(error = %err, "could not re-check a subscription socket's token");
            true
        }
    }
}

/// Where a subscription's messages go, within how long, its place in the
/// running gauge and in the process's subscriptions.
struct Sending {
    out: mpsc::Sender<Message>,
    timeout: Duration,
    running: Gauge,
    slot: Slot,
}

/// The subscriptions running in the process, against `--max-subscriptions`.
#[derive(Debug)]
pub struct Running {
    count: std::sync::atomic::AtomicUsize,
    max: usize,
}

/// One subscription's place in [`Running`], given back when it ends.
struct Slot(Arc<Running>);

impl Running {
    /// Room for `max` subscriptions.
    pub fn new(max: usize) -> Self {
        Running { count: std::sync::atomic::AtomicUsize::new(0), max }
    }

    /// A place for one more subscription, if the process has room.
    fn take(running: &Arc<Running>) -> Option<Slot> {
        let taken =
            running.count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < running.max).then_some(n + 1));
        taken.ok().map(|_| Slot(Arc::clone(running)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A gauge series one socket or subscription counts in.
#[derive(Clone, Copy)]
enum Series {
    Socket,
    Running(usize),
}

/// One unit of a gauge, given back when dropped (the socket closes, the subscription ends).
struct Gauge {
    metrics: Option<Arc<Metrics>>,
    series: Series,
}

impl Gauge {
    fn hold(metrics: Option<&Arc<Metrics>>, series: Series) -> Self {
        let gauge = Gauge { metrics: metrics.cloned(), series };
        if let Some(counter) = gauge.counter() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        gauge
    }

    fn counter(&self) -> Option<&AtomicI64> {
        let subs = &self.metrics.as_ref()?.subscriptions;
        match self.series {
            Series::Socket => Some(&subs.sockets),
            Series::Running(i) => subs.running.get(i),
        }
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        if let Some(counter) = self.counter() {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The close for a peer that does not read its messages, counted.
fn slow_consumer(metrics: Option<&Arc<Metrics>>) -> Close {
    if let Some(metrics) = metrics {
        metrics.subscriptions.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
    (4499, "Slow consumer: messages were not read within the send timeout".into())
}

/// The first root field of the operation `op` picks, for the metrics' label.
fn root_field<'a>(doc: &'a ExecutableDocument, op: Option<&str>) -> &'a str {
    let operation = match (op, &doc.operations) {
        (_, DocumentOperations::Single(operation)) => Some(operation),
        (Some(name), DocumentOperations::Multiple(ops)) => ops.get(name),
        (None, DocumentOperations::Multiple(ops)) => ops.values().next(),
    };
    let first = operation.and_then(|o| o.node.selection_set.node.items.first());
    match first.map(|s| &s.node) {
        Some(Selection::Field(field)) => field.node.name.node.as_str(),
        _ => "other",
    }
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
