//! Subscriptions, over either transport: [`ws`] (graphql-transport-ws on a
//! WebSocket) and `sse` (graphql-sse's distinct connections: one event
//! stream per subscription).
//!
//! Both run the same code from here on: `start` checks a subscription
//! document as HTTP checks a query (parse, size, the operation's checks,
//! the process's `--max-subscriptions`) and joins the [`fan`] that runs it
//! (one run, one encoding per answer, for every subscriber who asks the
//! same thing as the same viewer), and `pump` hands each shared answer to
//! the transport's bounded queue, framed for it, within the send timeout.
//! A peer that lets a message wait longer is not reading: its socket or
//! stream is closed and counted, never buffered without end.

pub mod fan;
pub(super) mod sse;
pub mod ws;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, Field, OperationType, Selection};
use bytes::Bytes;
use tokio::sync::mpsc;

use self::fan::{Key, Member, Shared};
use super::Routes;
use super::steps::{Refusal, cost, operation, parse};
use crate::auth::Token;
use crate::code::Code;
use crate::graphql::{RequestCtx, Viewer};
use crate::metrics::{Metrics, Subscriptions};

/// How often a subscription signed in with a token checks that its account
/// still accepts the token: an ended token ends its subscriptions within
/// this (and the 5 seconds the sessions contract promises).
pub const RECHECK: Duration = Duration::from_secs(2);

/// Messages queued for one socket or stream before its writer must catch up.
const OUT_QUEUE: usize = 64;

/// A subscription that passed its checks, running in its fan.
pub(super) struct Live {
    member: Member,
    running: Gauge,
    _slot: Slot,
}

/// What a subscription sends, before a transport frames it: JSON encoded
/// once for every member of its fan.
pub(super) enum Frame<'a> {
    /// One answer's JSON.
    Next(&'a [u8]),
    /// Refused before it ran (bad arguments, a missing post): its errors'
    /// JSON array, and nothing after.
    Refused(&'a [u8]),
    /// The stream ended.
    Complete,
}

/// How a subscription's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Its stream ended (or it was refused).
    Done,
    /// A message waited the send timeout: the peer is not reading.
    NotRead,
    /// The transport went away.
    Closed,
}

/// Checks subscription document `request` as HTTP checks a query and takes
/// its place among the process's subscriptions; the refusal says why not.
pub(super) fn start(
    routes: &Routes,
    viewer: Viewer,
    client: IpAddr,
    mut request: async_graphql::Request,
) -> Result<Live, Refusal> {
    let Some(slot) = Running::take(&routes.subscriptions) else {
        return Err(Refusal::new(Code::RateLimited, "the server holds as many subscriptions as it may; retry later"));
    };
    let graphql = &routes.state.settings.graphql;
    let mut field = Subscriptions::field_index("other");
    let mut shareable = false;
    let parses = match parse::parse(&request.query, graphql, &routes.introspection)? {
        Some(parsed) => {
            let op = request.operation_name.as_deref();
            let root = root_field(&parsed.doc, op);
            field = Subscriptions::field_index(root.map_or("other", |f| f.name.node.as_str()));
            // A resumed subscription replays from its own cursor: never shared.
            shareable = root.is_some_and(|f| !f.arguments.iter().any(|(name, _)| name.node == "after"));
            if operation::kind(&parsed.doc, op).is_some_and(|kind| kind != OperationType::Subscription) {
                return Err(Refusal::new(
                    Code::BadRequest,
                    "this transport runs subscriptions; send queries and mutations as application/json",
                ));
            }
            if let Err(operation::Stop::Refused(refusal)) =
                operation::check(&parsed.doc, op, &request.variables, true, graphql)
            {
                return Err(refusal);
            }
            cost::check(&routes.cost, &parsed.doc, op, &request.variables, graphql.max_query_complexity)?;
            request.set_parsed_query(parsed.doc);
            true
        }
        // The schema reports the syntax error, with its position.
        None => false,
    };
    let state = &routes.state;
    let key = Key::of(&request, &viewer, shareable);
    let member = routes.fans.join(key, parses, state.metrics.as_ref(), || {
        let mut ctx = RequestCtx::new(viewer, &state.store, state.metrics.as_ref());
        ctx.client_ip = Some(client);
        routes.schema.execute_stream(request.data(ctx))
    });
    let running = Gauge::hold(state.metrics.as_ref(), Series::Running(field));
    Ok(Live { member, running, _slot: slot })
}

/// Runs `live` to its end: each shared answer framed by `frame` and queued
/// on `out` within `timeout`, then [`Frame::Complete`]. A subscription
/// refused before it ran gets [`Frame::Refused`], and nothing after.
pub(super) async fn pump<M>(
    live: Live,
    out: &mpsc::Sender<M>,
    timeout: Duration,
    frame: impl Fn(Frame<'_>) -> M,
) -> Ended {
    let Live { mut member, running, _slot } = live;
    loop {
        let shared = member.next().await;
        let (message, last) = match &shared {
            Shared::Next(json) => (frame(Frame::Next(json)), false),
            Shared::Refused(json) => (frame(Frame::Refused(json)), true),
            Shared::Complete => (frame(Frame::Complete), true),
        };
        match tokio::time::timeout(timeout, out.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Ended::Closed,
            Err(_) => return Ended::NotRead,
        }
        if let (Some(metrics), false) = (&running.metrics, matches!(shared, Shared::Complete)) {
            metrics.subscriptions.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if last {
            return Ended::Done;
        }
    }
}

/// A refusal as the JSON array of errors that [`Frame::Refused`] carries,
/// so a refusal before a subscription runs is framed as one from its run.
fn refusal_errors(refusal: &Refusal) -> Bytes {
    fan::encode(&[serde_json::json!({ "message": refusal.message, "extensions": { "code": refusal.code.as_str() } })])
}

/// Whether `token`'s account still accepts it (a fresh read: nothing is
/// kept). A store that cannot answer keeps the subscription: the next
/// check asks again.
async fn accepted(routes: &Routes, token: &Token) -> bool {
    match routes.state.store.users_by_ids(&[token.user]).await {
        Ok(mut found) => found.pop().is_some_and(|user| token.accepted_by(&user)),
        Err(err) => {
            tracing::warn!(error = %err, "could not re-check a subscription's token");
            true
        }
    }
}

/// Counts a peer closed for not reading.
fn count_slow_consumer(metrics: Option<&Arc<Metrics>>) {
    if let Some(metrics) = metrics {
        metrics.subscriptions.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }
}

/// The subscriptions running in the process, against `--max-subscriptions`.
#[derive(Debug)]
pub struct Running {
    count: AtomicUsize,
    max: usize,
}

/// One subscription's place in [`Running`], given back when it ends.
struct Slot(Arc<Running>);

impl Running {
    /// Room for `max` subscriptions.
    pub fn new(max: usize) -> Self {
        Running { count: AtomicUsize::new(0), max }
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

/// A gauge series one socket, stream or subscription counts in.
#[derive(Clone, Copy)]
enum Series {
    Socket,
    Stream,
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
            Series::Stream => Some(&subs.streams),
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

/// The first root field of the operation `op` picks (a subscription has
/// one), for the metrics' label and whether it resumes.
fn root_field<'a>(doc: &'a ExecutableDocument, op: Option<&str>) -> Option<&'a Field> {
    let operation = match (op, &doc.operations) {
        (_, DocumentOperations::Single(operation)) => Some(operation),
        (Some(name), DocumentOperations::Multiple(ops)) => ops.get(name),
        (None, DocumentOperations::Multiple(ops)) => ops.values().next(),
    };
    let first = operation.and_then(|o| o.node.selection_set.node.items.first());
    match first.map(|s| &s.node) {
        Some(Selection::Field(field)) => Some(&field.node),
        _ => None,
    }
}
